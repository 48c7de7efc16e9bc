#!/usr/bin/env bash
# Lint the chart, render it with its default values and with each file in ci/, and validate
# every rendered manifest against Kubernetes' own schemas, offline (kubernetes-validate,
# strict: unknown fields are errors), for the oldest Kubernetes the chart supports and the
# newest the validator knows. A custom resource (the ServiceMonitor) has no schema offline:
# it is set aside and named, and tests/deploy/test_helm_chart.py checks its fields.
# The tools come from deploy/helm/tools.sh (built once, cached in .tools/).
# Usage: deploy/helm/check.sh [OUT_DIR]   (the rendered manifests are left in OUT_DIR)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
chart="$here/syncline"
bin="$("$here/tools.sh" install)"
helm="$bin/helm"
validate="$bin/kubernetes-validate"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
# The oldest Kubernetes in Chart.yaml's kubeVersion, and the validator's newest (its default).
KUBE_VERSIONS=(1.25.0 newest)
CUSTOM_KINDS='ServiceMonitor'

say() { echo "helm-check: $*"; }

variants=(default)
for file in "$chart"/ci/*-values.yaml; do variants+=("$file"); done

for variant in "${variants[@]}"; do
  args=()
  name=default
  if [[ "$variant" != default ]]; then
    args=(--values "$variant")
    name="$(basename "$variant" -values.yaml)"
  fi
  "$helm" lint --strict "$chart" "${args[@]}" >"$out/$name.lint" 2>&1 ||
    { cat "$out/$name.lint"; say "helm lint failed ($name)"; exit 1; }
  say "lint ok ($name)"
  "$helm" template sync "$chart" --namespace sync "${args[@]}" >"$out/$name.yaml"
  # Split off the custom resources: kubernetes-validate only knows Kubernetes' own kinds.
  "$bin/../kv/bin/python" - "$out/$name.yaml" "$out/$name.core.yaml" "$CUSTOM_KINDS" <<'PY'
import sys, yaml
source, core, custom = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
docs = [d for d in yaml.safe_load_all(open(source, encoding="utf-8")) if d]
kept = [d for d in docs if d["kind"] not in custom]
for d in docs:
    if d["kind"] in custom:
        print(f"helm-check: not validated (custom resource, no schema offline): "
              f"{d['kind']}/{d['metadata']['name']} ({d['apiVersion']})")
with open(core, "w", encoding="utf-8") as f:
    yaml.safe_dump_all(kept, f, sort_keys=False)
print(f"helm-check: rendered {len(docs)} manifests: "
      + ", ".join(sorted({d['kind'] for d in docs})))
PY
  for version in "${KUBE_VERSIONS[@]}"; do
    log="$out/$name.validate-$version"
    against=()
    [[ "$version" == newest ]] || against=(--kubernetes-version "$version")
    if ! "$validate" --strict "${against[@]}" "$out/$name.core.yaml" >"$log" 2>&1 \
        || grep -q '^WARN' "$log"; then
      cat "$log"
      say "kubernetes-validate failed ($name, Kubernetes $version)"
      exit 1
    fi
    say "valid for Kubernetes $version ($name): $(grep -c ' passed for resource ' "$log") resources"
  done
done
say "ok; manifests in $out"
