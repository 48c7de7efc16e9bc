# Shared by the scripts in deploy/real-systems/: paths, processes and the commands they all
# take. Sourced, not run. Each script sets NAME, VERSION and PORT before sourcing it, and defines
# the functions install, start, seed and reset that `main` runs; messages, locks and pid files
# are deploy/lib.sh's.
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
SCRIPT="$NAME.sh"
LOCK_WAIT=900 # an install (npm, Maven) another run does may take this long
# say, fail, lock, running_pid (with is_ours below), port_in_use.
# shellcheck source=deploy/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib.sh"

need() { # need COMMAND HOW-TO-INSTALL
  command -v "$1" >/dev/null 2>&1 || fail 2 "$1 not found: $2"
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

# already_running PROBE: take the lock of the state directory (held until the script exits);
# when the system runs already, wait until PROBE succeeds and say so; else fail (return 1), and
# the caller starts it.
already_running() {
  lock 8 "$STATE_DIR.lock"
  [[ -n "$(running_pid)" ]] || return 1
  wait_ready "$1"
  say "already running on $URL"
}

# started PROBE: after `launch`, wait until PROBE succeeds and say where the system runs.
started() {
  wait_ready "$1"
  say "running on $URL (pid $(cat "$PID_FILE"), log $LOG_FILE)"
}

# main PROBE COMMAND: run one of the commands every script here takes; PROBE succeeds when the
# system answers on $URL. status exits 0 when it answers, 1 when started but not answering, 3
# when not running.
main() {
  local probe="$1"
  case "${2:-}" in
  install) install ;;
  start) start ;;
  seed) seed ;;
  stop) stop_process ;;
  reset) reset ;;
  status)
    if "$probe"; then say "running on $URL"; exit 0; fi
    [[ -n "$(running_pid)" ]] && { say "started but not answering"; exit 1; }
    say "not running"; exit 3
    ;;
  *)
    echo "usage: $0 install|start|seed|stop|reset|status" >&2
    exit 2
    ;;
  esac
}
