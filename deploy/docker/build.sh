#!/usr/bin/env bash
# Build syncline's images on this machine without a registry: base images from Debian's
# packages (mmdebstrap, then docker import), then deploy/Dockerfile (the worker) and
# deploy/docker/kafka/ (a Kafka broker from the jars deploy/kafka/kafka.sh fetches) on them.
# Runs deploy/docker/setup.sh first (Docker, mmdebstrap, Compose; starts dockerd).
#
#   deploy/docker/build.sh [all]     bases (when missing), the worker image and the Kafka image
#   deploy/docker/build.sh bases     only the Debian bases (--rebuild: even when present)
#   deploy/docker/build.sh syncline  only the worker image
#   deploy/docker/build.sh kafka     only the Kafka image
#
# pip reaches the package index in the build with the host's certificate authorities, passed
# as a BuildKit secret (never stored in a layer). With a registry at hand, the same Dockerfile
# builds on the official Python image instead: see docs/DEPLOY.md.
# Environment (optional):
#   SYNCLINE_IMAGE         the worker image's name (default syncline:dev)
#   SYNCLINE_KAFKA_IMAGE   the Kafka image's name (default syncline-kafka:dev)
#   SYNCLINE_DEBIAN_SUITE  the Debian release of the bases (default bookworm)
#   SYNCLINE_CA_BUNDLE     the CA bundle handed to pip (default /etc/ssl/certs/ca-certificates.crt)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DOCKER="${SYNCLINE_DOCKER:-/usr/bin/docker}"
IMAGE="${SYNCLINE_IMAGE:-syncline:dev}"
KAFKA_IMAGE="${SYNCLINE_KAFKA_IMAGE:-syncline-kafka:dev}"
SUITE="${SYNCLINE_DEBIAN_SUITE:-bookworm}"
CA_BUNDLE="${SYNCLINE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
BASE="syncline-base/python:$SUITE"
BUILD_BASE="syncline-base/python-build:$SUITE"
JRE_BASE="syncline-base/jre:$SUITE"
export DOCKER_BUILDKIT=1

say() { echo "docker/build.sh: $*"; }
fail() {
  echo "docker/build.sh: $*" >&2
  exit 1
}

# debian_base NAME PACKAGES: a minimal Debian root file system with PACKAGES, as image NAME.
debian_base() {
  local name="$1" packages="$2" rebuild="${3:-}"
  if [[ -z "$rebuild" ]] && "$DOCKER" image inspect "$name" >/dev/null 2>&1; then
    say "$name present"
    return 0
  fi
  local started=$SECONDS tar
  tar="$(mktemp --suffix=.tar)"
  # Documentation, manuals and translations are left out: nobody reads them in a container.
  # The JRE's postinst links its manual pages as alternatives: man1/ must exist.
  mmdebstrap --quiet --variant=minbase --include="$packages" \
    --essential-hook='mkdir -p "$1/usr/share/man/man1"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" "$tar" || { rm -f "$tar"; fail "mmdebstrap could not build $name"; }
  "$DOCKER" import --change 'CMD ["bash"]' "$tar" "$name" >/dev/null
  rm -f "$tar"
  say "$name built from Debian $SUITE packages ($packages) in $((SECONDS - started))s"
}

python_bases() {
  debian_base "$BASE" python3,python3-venv,ca-certificates,passwd "${1:-}"
  debian_base "$BUILD_BASE" python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates,passwd "${1:-}"
}

jre_base() {
  debian_base "$JRE_BASE" openjdk-17-jre-headless,passwd "${1:-}"
}

secret_args() {
  [[ -s "$CA_BUNDLE" ]] && echo "--secret id=ca,src=$CA_BUNDLE"
  return 0
}

build_syncline() {
  local started=$SECONDS
  # shellcheck disable=SC2046 # secret_args is a list of flags or nothing
  "$DOCKER" build --network host $(secret_args) --build-arg BASE="$BASE" \
    --build-arg BUILD_BASE="$BUILD_BASE" -f deploy/Dockerfile -t "$IMAGE" .
  say "$IMAGE built in $((SECONDS - started))s; $(size "$IMAGE")"
}

build_kafka() {
  local started=$SECONDS jars context
  jars="$(deploy/kafka/kafka.sh fetch)"
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' RETURN
  cp deploy/docker/kafka/Dockerfile deploy/docker/kafka/entrypoint.sh \
    deploy/docker/kafka/log4j2.xml "$context/"
  mkdir "$context/jars"
  cp "$jars"/*.jar "$context/jars/"
  "$DOCKER" build --network host --build-arg BASE="$JRE_BASE" -t "$KAFKA_IMAGE" "$context"
  say "$KAFKA_IMAGE built in $((SECONDS - started))s; $(size "$KAFKA_IMAGE")"
}

size() {
  local bytes
  bytes="$("$DOCKER" image inspect --format '{{.Size}}' "$1")"
  echo "size $((bytes / 1000000)) MB"
}

deploy/docker/setup.sh >/dev/null
case "${1:-all}" in
all)
  python_bases
  build_syncline
  jre_base
  build_kafka
  ;;
bases)
  rebuild="$([[ ${2:-} == --rebuild ]] && echo rebuild)"
  python_bases "$rebuild"
  jre_base "$rebuild"
  ;;
syncline) python_bases && build_syncline ;;
kafka) jre_base && build_kafka ;;
*)
  echo "usage: $0 [all|bases [--rebuild]|syncline|kafka]" >&2
  exit 2
  ;;
esac
