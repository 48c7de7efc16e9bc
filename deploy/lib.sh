# Shared by the shell scripts of deploy/ (kafka/kafka.sh, docker/setup.sh, real-systems/lib.sh):
# messages, locks, pid files and ports. Sourced, not run. Set before sourcing:
#   SCRIPT     the name every message starts with ("kafka.sh")
# and, for the helpers that use them:
#   HOST       the address port_in_use tries
#   PID_FILE   where the pid of the started process is kept (running_pid)
#   is_ours    a function: is_ours PID succeeds when PID is that process (not a reused pid)
#   LOCK_WAIT  seconds lock waits (default 600)
# The wheel ships it beside the broker's script (daemon/shipped/lib.sh), so kafka.sh finds it
# at ../lib.sh both in a checkout and installed.

say() { echo "$SCRIPT: $*"; }

# fail CODE MESSAGE: one line on stderr, then exit (2: a prerequisite is missing).
fail() {
  local code="$1"
  shift
  echo "$SCRIPT: $*" >&2
  exit "$code"
}

# lock FD FILE: an exclusive lock on FILE through descriptor FD until the script exits, so two
# concurrent runs neither fetch, install nor start twice. Skipped where flock(1) is missing.
# A process the script starts must close FD (8>&- 9>&-) or it holds the lock while it runs.
lock() {
  command -v flock >/dev/null 2>&1 || return 0
  mkdir -p "$(dirname "$2")"
  eval "exec $1>\"\$2\""
  flock -w "${LOCK_WAIT:-600}" "$1" || fail 1 "timed out waiting for the lock $2"
}

# running_pid: print the pid in $PID_FILE if that process runs (is_ours); drop a stale file.
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

# port_in_use PORT: something accepts connections on $HOST:PORT.
port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
