#!/usr/bin/env bash
# Keycloak (identity and user management; the Quarkus distribution in dev mode, H2 file
# database) on 127.0.0.1 for the real-systems tests and examples/real-nocodb-keycloak.yaml.
#
#   deploy/real-systems/keycloak.sh install   fetch the distribution from Maven Central (once)
#   deploy/real-systems/keycloak.sh start     start it (installs first if needed), wait until the
#                                             realm "syncline" answers
#   deploy/real-systems/keycloak.sh seed      print KEYCLOAK_URL, KEYCLOAK_REALM, KEYCLOAK_CLIENT_ID,
#                                             KEYCLOAK_CLIENT_SECRET and the master realm's
#                                             KEYCLOAK_ADMIN_USERNAME and _PASSWORD (also in seed.env)
#   deploy/real-systems/keycloak.sh stop      stop it
#   deploy/real-systems/keycloak.sh reset     stop it and delete its users (the install is kept)
#   deploy/real-systems/keycloak.sh status    exit 0 when it answers, 3 when it is not running
#
# The realm comes from keycloak-realm.json next to this script, imported on a fresh start: a
# confidential client "syncline" whose service account may manage users. Needs java 17+, mvn
# (the first time), unzip and curl. Environment: SYNCLINE_KEYCLOAK_PORT (default 8410; the
# management port is the next one), SYNCLINE_KEYCLOAK_HEAP, SYNCLINE_REAL_CACHE, SYNCLINE_REAL_STATE.
set -euo pipefail

NAME=keycloak
VERSION="${SYNCLINE_KEYCLOAK_VERSION:-26.7.3}"
PORT="${SYNCLINE_KEYCLOAK_PORT:-8410}"
MANAGEMENT_PORT=$((PORT + 1))
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/real-systems/lib.sh
source "$HERE/lib.sh"

ZIP="$CACHE_DIR/keycloak-quarkus-dist-$VERSION.zip"
SERVER="$STATE_DIR/keycloak-$VERSION"
URL="http://$HOST:$PORT"
REALM=syncline
# The master realm's admin (Keycloak's bootstrap admin): it may create realms, as the test of
# creates without a match key does (a realm of its own, empty).
ADMIN_USERNAME=admin
ADMIN_PASSWORD=admin

install() {
  installed && return 0
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  need mvn "install Apache Maven (Debian: apt-get install maven); it fetches Keycloak once"
  lock 9 "$CACHE_DIR.lock"
  installed && return 0
  say "fetching Keycloak $VERSION from Maven Central into $CACHE_DIR (once)"
  rm -rf "$CACHE_DIR"
  mkdir -p "$CACHE_DIR"
  if ! mvn -B -q -Dmaven.repo.local="$CACHE_DIR/m2" dependency:copy \
    "-Dartifact=org.keycloak:keycloak-quarkus-dist:$VERSION:zip" -DoutputDirectory="$CACHE_DIR" \
    >"$CACHE_DIR/mvn.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/mvn.log" >&2
    fail 1 "mvn could not fetch org.keycloak:keycloak-quarkus-dist:$VERSION:zip (output above)"
  fi
  rm -rf "$CACHE_DIR/m2" "$CACHE_DIR/mvn.log"
  touch "$CACHE_DIR/.complete"
  say "installed"
}

answers() { curl -sf -o /dev/null --max-time 2 "$URL/realms/$REALM"; }

start() {
  install
  need unzip "install unzip (Debian: apt-get install unzip)"
  already_running answers && return 0
  port_in_use "$PORT" && fail 1 "port $PORT is in use by another program; set SYNCLINE_KEYCLOAK_PORT"
  port_in_use "$MANAGEMENT_PORT" && fail 1 "port $MANAGEMENT_PORT (management) is in use by another program"
  if [[ ! -f "$SERVER/.unpacked" ]]; then
    rm -rf "$SERVER"
    mkdir -p "$STATE_DIR"
    unzip -q -o "$ZIP" -d "$STATE_DIR" || fail 1 "could not unpack $ZIP (delete $CACHE_DIR and install again)"
    touch "$SERVER/.unpacked"
  fi
  mkdir -p "$SERVER/data/import"
  cp "$HERE/keycloak-realm.json" "$SERVER/data/import/syncline-realm.json"
  cd "$SERVER"
  KC_BOOTSTRAP_ADMIN_USERNAME="$ADMIN_USERNAME" KC_BOOTSTRAP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    JAVA_OPTS_KC_HEAP="${SYNCLINE_KEYCLOAK_HEAP:--Xms64m -Xmx512m}" \
    launch bin/kc.sh start-dev --http-host "$HOST" --http-port "$PORT" \
    --http-management-port "$MANAGEMENT_PORT" --import-realm
  started answers
}

seed() {
  answers || fail 1 "Keycloak does not answer on $URL: run $0 start first"
  printf 'KEYCLOAK_URL=%s\nKEYCLOAK_REALM=%s\nKEYCLOAK_CLIENT_ID=syncline\nKEYCLOAK_CLIENT_SECRET=syncline-secret\nKEYCLOAK_ADMIN_USERNAME=%s\nKEYCLOAK_ADMIN_PASSWORD=%s\n' \
    "$URL" "$REALM" "$ADMIN_USERNAME" "$ADMIN_PASSWORD" >"$SEED_FILE"
  cat "$SEED_FILE"
}

reset() {
  stop_process
  rm -rf "$SERVER/data" "$SEED_FILE"
  say "data deleted ($SERVER/data)"
}

main answers "$@"
