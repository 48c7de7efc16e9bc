#!/usr/bin/env bash
# Run a single-node Apache Kafka broker (KRaft, broker and controller in one process) on
# 127.0.0.1 for development, tests and the demo.
#
#   deploy/kafka/kafka.sh up       fetch Kafka once, format the store once, start, wait until
#                                  it answers a metadata request; reuses a running broker
#   deploy/kafka/kafka.sh down     stop it (SIGTERM, then SIGKILL after a deadline)
#   deploy/kafka/kafka.sh status   exit 0 running, 1 started but not answering, 3 not running
#   deploy/kafka/kafka.sh logs     the last lines of the broker's log
#   deploy/kafka/kafka.sh fetch    fetch the jars once and print their directory (the Kafka
#                                  image of deploy/docker/build.sh is built from them)
#
# Needs java (17+), python3 and, the first time only, mvn. Nothing is written inside the
# repository. Environment (all optional):
#   SYNCLINE_KAFKA_PORT             client port (default 19092)
#   SYNCLINE_KAFKA_CONTROLLER_PORT  KRaft controller port (default client port + 1)
#   SYNCLINE_KAFKA_VERSION          org.apache.kafka:kafka_2.13 version (default below)
#   SYNCLINE_KAFKA_CACHE            where the jars go
#                                   (default ${XDG_CACHE_HOME:-~/.cache}/syncline/kafka-VERSION)
#   SYNCLINE_KAFKA_STATE            data, logs and pid file
#                                   (default ${XDG_STATE_HOME:-~/.local/state}/syncline/kafka-PORT)
#   SYNCLINE_KAFKA_HEAP             JVM heap flags (default -Xms256m -Xmx1g)
#   SYNCLINE_KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 120)
#   SYNCLINE_KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 30)
#   SYNCLINE_KAFKA_AUTO_CREATE      auto.create.topics.enable (default false: a client that
#                                   names a missing topic gets an error, not a topic with the
#                                   broker's defaults; true as many production brokers have it)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${SYNCLINE_KAFKA_VERSION:-4.1.2}"
HOST=127.0.0.1
PORT="${SYNCLINE_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${SYNCLINE_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
CACHE_DIR="${SYNCLINE_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/syncline/kafka-$VERSION}"
STATE_DIR="${SYNCLINE_KAFKA_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/syncline/kafka-$PORT}"
HEAP="${SYNCLINE_KAFKA_HEAP:--Xms256m -Xmx1g}"
START_TIMEOUT="${SYNCLINE_KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${SYNCLINE_KAFKA_STOP_TIMEOUT:-30}"
AUTO_CREATE="${SYNCLINE_KAFKA_AUTO_CREATE:-false}"

DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
LOG_FILE="$LOG_DIR/server.log"
PID_FILE="$STATE_DIR/kafka.pid"
PROPERTIES="$STATE_DIR/server.properties"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
PYTHON="${PYTHON:-python3}"

SCRIPT=kafka.sh
# say, fail, lock (8: state directory, 9: jar cache), running_pid, port_in_use.
# shellcheck source=deploy/lib.sh
source "$HERE/../lib.sh"

# Where this start-up's lines begin in $LOG_FILE, so a failure shows only those.
LOG_START=0

show_log_tail() {
  if [[ -s "$LOG_DIR/stdout.log" ]]; then
    echo "---- $LOG_DIR/stdout.log ----" >&2
    tail -n 40 "$LOG_DIR/stdout.log" >&2
  fi
  local recent=""
  [[ -s "$LOG_FILE" ]] && recent="$(tail -c +"$((LOG_START + 1))" "$LOG_FILE" | tail -n 40)"
  if [[ -n "$recent" ]]; then
    echo "---- last lines of $LOG_FILE ----" >&2
    echo "$recent" >&2
  fi
}

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 ||
    fail 2 "java not found: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
  local major
  major="$("$JAVA" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1)"
  [[ "${major:-0}" -ge 17 ]] ||
    fail 2 "Kafka $VERSION needs Java 17 or newer but $JAVA is version ${major:-unknown}: install openjdk-17-jre-headless or set JAVA_HOME"
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 ||
    fail 2 "mvn not found: install Apache Maven (Debian: apt-get install maven); it fetches the Kafka $VERSION jars once into $CACHE_DIR"
}

need_auto_create() {
  [[ "$AUTO_CREATE" == true || "$AUTO_CREATE" == false ]] ||
    fail 2 "SYNCLINE_KAFKA_AUTO_CREATE is '$AUTO_CREATE': set it to true or false"
}

need_python() {
  command -v "$PYTHON" >/dev/null 2>&1 ||
    fail 2 "python3 not found: install Python 3 (Debian: apt-get install python3); it is used to check that the broker answers"
}

# is_ours PID: PID is alive and is the broker of this state directory (not a reused pid).
is_ours() {
  local pid="$1" cmdline
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
  else
    cmdline="$(ps -p "$pid" -o command= 2>/dev/null || true)"
  fi
  [[ "$cmdline" == *kafka.Kafka*"$PROPERTIES"* ]]
}

answers() {
  "$PYTHON" "$HERE/probe.py" "$HOST:$PORT" --timeout 2 2>/dev/null
}

fetch() {
  [[ -f "$CACHE_DIR/.complete" ]] && return 0
  need_mvn
  mkdir -p "$(dirname "$CACHE_DIR")"
  lock 9 "$CACHE_DIR.lock"
  [[ -f "$CACHE_DIR/.complete" ]] && return 0 # another run fetched it while we waited
  say "fetching Kafka $VERSION and its dependencies with mvn into $CACHE_DIR (once)"
  local tmp
  tmp="$(mktemp -d "$CACHE_DIR.partial.XXXXXX")"
  if ! mvn -B -q -f "$HERE/pom.xml" -Dkafka.version="$VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$tmp.mvn.log" 2>&1; then
    tail -n 30 "$tmp.mvn.log" >&2
    rm -rf "$tmp" "$tmp.mvn.log"
    fail 1 "mvn could not fetch org.apache.kafka:kafka_2.13:$VERSION (output above)"
  fi
  rm -f "$tmp.mvn.log"
  touch "$tmp/.complete"
  rm -rf "$CACHE_DIR"
  mv "$tmp" "$CACHE_DIR"
}

write_properties() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  cat >"$PROPERTIES" <<EOF
# Written by deploy/kafka/kafka.sh on every start; edits here are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

# One node: every internal topic has one replica, so transactions (exactly-once) work.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Few partitions for internal topics: creating 50 of each is slow on a 2-core machine.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
num.partitions=1
# Every topic is created with the admin client, with its settings (syncline's by
# streams/topics.py, the tests' by the tests). Off, a client that names a missing topic gets
# an error instead of a topic with the broker's defaults (delete, not compact; a week's
# retention, not forever), which syncline would refuse at its next start.
auto.create.topics.enable=$AUTO_CREATE
# Tests join and leave consumer groups all the time; do not wait for more members.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
EOF
}

format_store() {
  if [[ -f "$STATE_DIR/kafka.version" && "$(cat "$STATE_DIR/kafka.version")" != "$VERSION" ]]; then
    say "the store in $DATA_DIR was made by Kafka $(cat "$STATE_DIR/kafka.version"); starting afresh for $VERSION"
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
  fi
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cluster_id
  # Kafka's own Uuid.randomUuid(): 16 random bytes, URL-safe base64, never starting with "-".
  cluster_id="$("$PYTHON" -c '
import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not cid.startswith("-"):
        print(cid)
        break
')"
  if ! "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$HERE/log4j2.xml" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$CACHE_DIR/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPERTIES" \
    >"$LOG_DIR/format.log" 2>&1; then
    cat "$LOG_DIR/format.log" >&2
    fail 1 "formatting the KRaft store in $DATA_DIR failed (output above)"
  fi
  echo "$VERSION" >"$STATE_DIR/kafka.version"
}

start_broker() {
  : >"$LOG_DIR/stdout.log"
  LOG_START="$(wc -c <"$LOG_FILE" 2>/dev/null || echo 0)"
  # setsid: the broker outlives this script and a Ctrl-C in the terminal that started
  # it. 8>&- 9>&-: it must not inherit the locks. stdout/stderr only ever get JVM crash output;
  # the broker itself logs to $LOG_FILE (log4j2.xml).
  # shellcheck disable=SC2086 # HEAP is a list of flags
  (cd "$STATE_DIR" && exec setsid "$JAVA" $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.xml" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$CACHE_DIR/*" kafka.Kafka "$PROPERTIES" \
    </dev/null >>"$LOG_DIR/stdout.log" 2>&1 8>&- 9>&-) &
  echo "$!" >"$PID_FILE"
}

# wait_ready PID: poll the broker until it answers a metadata request, it dies, or the
# deadline passes.
wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  until answers; do
    if ! is_ours "$pid"; then
      rm -f "$PID_FILE"
      show_log_tail
      fail 1 "the broker exited during start-up (log: $LOG_FILE)"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail
      fail 1 "the broker (pid $pid) did not answer on $HOST:$PORT within ${START_TIMEOUT}s; it is left running (stop it: $0 down; log: $LOG_FILE)"
    fi
    sleep 0.5
  done
}

cmd_up() {
  need_auto_create
  need_java
  need_python
  mkdir -p "$STATE_DIR"
  lock 8 "$STATE_DIR/lock"
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    wait_ready "$pid"
    say "Kafka already running on $HOST:$PORT (pid $pid)"
    return 0
  fi
  local port
  for port in "$PORT" "$CONTROLLER_PORT"; do
    if port_in_use "$port"; then
      fail 1 "port $port on $HOST is in use by another process; stop it or choose other ports with SYNCLINE_KAFKA_PORT=..."
    fi
  done
  fetch
  write_properties
  format_store
  start_broker
  pid="$(cat "$PID_FILE")"
  wait_ready "$pid"
  say "Kafka $VERSION up on $HOST:$PORT after ${SECONDS}s (pid $pid, log $LOG_FILE)"
}

cmd_down() {
  [[ -d "$STATE_DIR" ]] || {
    say "Kafka is not running on $HOST:$PORT"
    return 0
  }
  lock 8 "$STATE_DIR/lock"
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    say "Kafka is not running on $HOST:$PORT"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while is_ours "$pid"; do
    if ((SECONDS >= deadline)); then
      say "Kafka (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while is_ours "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
      break
    fi
    sleep 0.2
  done
  is_ours "$pid" && fail 1 "could not stop Kafka (pid $pid)"
  rm -f "$PID_FILE"
  say "Kafka stopped (was pid $pid on $HOST:$PORT)"
}

cmd_status() {
  need_python
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    say "not running (port $PORT, state $STATE_DIR)"
    return 3
  fi
  if answers; then
    say "running: Kafka $VERSION on $HOST:$PORT (pid $pid, log $LOG_FILE)"
    return 0
  fi
  say "started but not answering on $HOST:$PORT (pid $pid, log $LOG_FILE)"
  return 1
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || fail 1 "no log yet at $LOG_FILE"
  tail -n "${1:-50}" "$LOG_FILE"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
logs) cmd_logs "${2:-50}" ;;
fetch)
  fetch >&2
  echo "$CACHE_DIR"
  ;;
*)
  echo "usage: $0 up|down|status|logs [LINES]|fetch" >&2
  exit 2
  ;;
esac
