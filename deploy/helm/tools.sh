#!/usr/bin/env bash
# Installs the chart's check tools into a project-local folder, once:
#   helm                 `go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION` (built from the
#                        Go module proxy: about 18 minutes cold on a busy 2-core machine,
#                        then kept; a rebuild from Go's caches is quick)
#   kubernetes-validate  from PyPI, in a venv of its own (it pins its own jsonschema and
#                        referencing, which the project's venv need not share)
# Usage: deploy/helm/tools.sh [install|path]
#   install  build what is missing (the default)
#   path     print the folder holding `helm` and `kubernetes-validate`
# SYNCLINE_TOOLS_DIR moves the folder (default: .tools/ at the top of the checkout).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${SYNCLINE_TOOLS_DIR:-$root/.tools}"
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
KUBERNETES_VALIDATE_SPEC="${KUBERNETES_VALIDATE_SPEC:-kubernetes-validate>=1.37,<2}"
bin="$tools/bin"

say() { echo "helm-tools: $*" >&2; }

install_helm() {
  local stamp="$tools/helm-$HELM_VERSION.stamp"
  if [[ -x "$bin/helm" && -f "$stamp" ]]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || { say "go (1.24 or newer) is needed to build helm; install Go and run again"; exit 2; }
  say "building helm $HELM_VERSION with go install (minutes the first time)"
  local start=$SECONDS
  mkdir -p "$bin"
  # The binary goes into the checkout's .tools/; the module and build caches stay Go's own
  # (per user, outside the checkout), so a fresh clone on the same machine, as CI is,
  # rebuilds from them in about a minute instead of compiling everything again.
  GOBIN="$bin" GOFLAGS="${GOFLAGS:--buildvcs=false}" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  rm -f "$tools"/helm-*.stamp
  touch "$stamp"
  say "helm $HELM_VERSION built in $((SECONDS - start))s"
}

install_validate() {
  local venv="$tools/kv"
  local stamp="$tools/kv.stamp"
  if [[ -x "$bin/kubernetes-validate" && -f "$stamp" && "$(cat "$stamp")" == "$KUBERNETES_VALIDATE_SPEC" ]]; then
    return 0
  fi
  say "installing $KUBERNETES_VALIDATE_SPEC into $venv"
  mkdir -p "$bin"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet "$KUBERNETES_VALIDATE_SPEC"
  ln -sf "$venv/bin/kubernetes-validate" "$bin/kubernetes-validate"
  echo "$KUBERNETES_VALIDATE_SPEC" > "$stamp"
}

case "${1:-install}" in
  install) install_helm; install_validate; echo "$bin" ;;
  path) echo "$bin" ;;
  *) say "unknown command '$1' (install or path)"; exit 2 ;;
esac
