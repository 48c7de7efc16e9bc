#!/usr/bin/env bash
# Make this machine able to build and run syncline's images: Debian's Docker engine and client
# (docker.io), mmdebstrap for the offline base images, and Compose; start dockerd when it is
# not running. Idempotent: a second run only checks.
#
#   deploy/docker/setup.sh            install what is missing, start dockerd, print versions
#   deploy/docker/setup.sh check      exit 0 when docker can build and run here, else say why
#
# Debian's own client, /usr/bin/docker (20.10), is the one used: its built-in BuildKit takes
# `--secret` with DOCKER_BUILDKIT=1, while a newer client earlier on PATH may lack buildx.
# Compose is Debian's docker-compose package (Compose v1, Python). Needs root for apt-get.
# Environment (optional):
#   SYNCLINE_DOCKER        the docker client (default /usr/bin/docker)
#   SYNCLINE_DOCKERD_LOG   where dockerd's output goes (default /var/log/syncline-dockerd.log)
#   SYNCLINE_DOCKERD_WAIT  seconds to wait for dockerd to answer (default 60)
set -euo pipefail

DOCKER="${SYNCLINE_DOCKER:-/usr/bin/docker}"
DOCKERD_LOG="${SYNCLINE_DOCKERD_LOG:-/var/log/syncline-dockerd.log}"
WAIT="${SYNCLINE_DOCKERD_WAIT:-60}"

SCRIPT=docker/setup.sh
# shellcheck source=deploy/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"

engine_answers() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_packages() {
  local missing=()
  [[ -x /usr/bin/docker && -x /usr/sbin/dockerd ]] || missing+=(docker.io)
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || fail 2 "installing ${missing[*]} needs root (apt-get)"
  command -v apt-get >/dev/null 2>&1 || fail 2 "no apt-get: install ${missing[*]} yourself"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" uidmap >/dev/null
}

# why_not: the client's own words for why the engine does not answer.
why_not() { "$DOCKER" version 2>&1 >/dev/null | grep -v '^$' | tail -n 1; }

start_dockerd() {
  engine_answers && return 0
  [[ $(id -u) -eq 0 ]] ||
    fail 2 "the Docker engine does not answer ($(why_not)), and starting dockerd needs root"
  [[ -x /usr/sbin/dockerd ]] || fail 2 "no /usr/sbin/dockerd: run deploy/docker/setup.sh first"
  say "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: dockerd outlives this script and the shell that ran it.
  setsid /usr/sbin/dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  local deadline=$((SECONDS + WAIT))
  until engine_answers; do
    if ((SECONDS > deadline)); then
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      fail 1 "dockerd did not answer within ${WAIT}s; see $DOCKERD_LOG"
    fi
    sleep 1
  done
}

if [[ ${1:-} == check ]]; then
  [[ -x "$DOCKER" ]] || fail 3 "no $DOCKER (run deploy/docker/setup.sh)"
  engine_answers || fail 3 "the Docker engine does not answer: $(why_not)"
  exit 0
fi

install_packages
start_dockerd
say "docker $("$DOCKER" version --format '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null || echo 'no compose'), mmdebstrap $(mmdebstrap --version | awk '{print $2}')"
