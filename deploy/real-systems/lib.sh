# Shared by the scripts in deploy/real-systems/: paths, messages, locks and processes.
# Sourced, not run. Each script sets NAME, VERSION and PORT before sourcing it.
#
# Where things go (nothing is written inside the repository):
#   the installed system   ${SYNCLINE_REAL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/syncline}/NAME-VERSION
#   data, log, pid, seeds  ${SYNCLINE_REAL_STATE:-${XDG_STATE_HOME:-~/.local/state}/syncline}/NAME-PORT

CACHE_DIR="${SYNCLINE_REAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/syncline}/$NAME-$VERSION"
STATE_DIR="${SYNCLINE_REAL_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/syncline}/$NAME-$PORT"
PID_FILE="$STATE_DIR/$NAME.pid"
LOG_FILE="$STATE_DIR/server.log"
SEED_FILE="$STATE_DIR/seed.env"
HOST=127.0.0.1
START_TIMEOUT="${SYNCLINE_REAL_START_TIMEOUT:-240}"

say() { echo "$NAME.sh: $*"; }

# fail CODE MESSAGE: one line on stderr, then exit (2: a prerequisite is missing).
fail() {
  local code="$1"
  shift
  echo "$NAME.sh: $*" >&2
  exit "$code"
}

need() { # need COMMAND HOW-TO-INSTALL
  command -v "$1" >/dev/null 2>&1 || fail 2 "$1 not found: $2"
}

# lock FD FILE: an exclusive lock on FILE through descriptor FD until the script exits, so two
# concurrent runs neither install nor start twice. Skipped where flock(1) is missing.
lock() {
  command -v flock >/dev/null 2>&1 || return 0
  mkdir -p "$(dirname "$2")"
  eval "exec $1>\"\$2\""
  flock -w 900 "$1" || fail 1 "timed out waiting for the lock $2"
}

installed() { [[ -f "$CACHE_DIR/.complete" ]]; }

need_installed() {
  installed || fail 2 "$NAME $VERSION is not installed in $CACHE_DIR: run $0 install first"
}

# is_ours PID: PID is alive and its command line names this state directory (not a reused pid).
is_ours() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -r "/proc/$pid/environ" ]] || return 0
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SYNCLINE_REAL_OWNER=$STATE_DIR"
}

running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 0
  pid="$(cat "$PID_FILE")"
  if [[ -n "$pid" ]] && is_ours "$pid"; then
    echo "$pid"
  else
    rm -f "$PID_FILE"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

show_log_tail() {
  [[ -s "$LOG_FILE" ]] || return 0
  echo "---- last lines of $LOG_FILE ----" >&2
  tail -n 30 "$LOG_FILE" >&2
}

# launch COMMAND...: start COMMAND in its own session, detached, its output in $LOG_FILE, its
# pid in $PID_FILE. The environment marks it as this state directory's (see is_ours).
launch() {
  mkdir -p "$STATE_DIR"
  : >"$LOG_FILE"
  # 8>&- 9>&-: the server must not inherit the locks of `lock` and hold them while it runs.
  SYNCLINE_REAL_OWNER="$STATE_DIR" setsid nohup "$@" >>"$LOG_FILE" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$PID_FILE"
}

# wait_ready PROBE-FUNCTION: poll until the probe succeeds, the process dies, or the deadline.
wait_ready() {
  local probe="$1" deadline=$((SECONDS + START_TIMEOUT)) pid
  pid="$(cat "$PID_FILE")"
  while ! "$probe"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail
      rm -f "$PID_FILE"
      fail 1 "$NAME exited during start-up (log above)"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail
      fail 1 "$NAME did not answer on $HOST:$PORT within ${START_TIMEOUT}s (log above; still running as pid $pid, stop it with $0 stop)"
    fi
    sleep 0.5
  done
}

# stop_process: SIGTERM to the process group, SIGKILL after 30 s.
stop_process() {
  local pid deadline
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    say "not running"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after 30 s; SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  say "stopped"
}

# json_get KEY: the value of KEY in the JSON object on stdin (a clear error when absent).
json_get() {
  python3 -c '
import json, sys
key = sys.argv[1]
try:
    body = json.load(sys.stdin)
    print(body[key])
except Exception as exc:
    sys.exit(f"expected JSON with {key!r}: {exc}")
' "$1"
}
