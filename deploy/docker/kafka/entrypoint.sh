#!/usr/bin/env bash
# Write server.properties from KAFKA_* variables (as apache/kafka reads them) over defaults
# for one node that is broker and controller, format the store the first time, and exec
# the broker: it is PID 1 and stops cleanly on SIGTERM.
set -euo pipefail

DATA=/var/lib/kafka/data
PROPS=/var/lib/kafka/server.properties
CLUSTER_ID="${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}"

declare -A props=(
  [process.roles]=broker,controller
  [node.id]=1
  [controller.quorum.voters]=1@localhost:9093
  [listeners]=PLAINTEXT://:9092,CONTROLLER://:9093
  [advertised.listeners]=PLAINTEXT://localhost:9092
  [controller.listener.names]=CONTROLLER
  [listener.security.protocol.map]=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
  [inter.broker.listener.name]=PLAINTEXT
  [log.dirs]="$DATA"
  [offsets.topic.replication.factor]=1
  [transaction.state.log.replication.factor]=1
  [transaction.state.log.min.isr]=1
  [share.coordinator.state.topic.replication.factor]=1
  [share.coordinator.state.topic.min.isr]=1
  [group.initial.rebalance.delay.ms]=0
)
for var in $(compgen -e); do
  case "$var" in
  KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS) continue ;;
  KAFKA_*)
    key="${var#KAFKA_}"
    key="${key,,}"
    key="${key//___/-}"
    key="${key//__/@}"
    key="${key//_/.}"
    props["${key//@/_}"]="${!var}"
    ;;
  esac
done
: >"$PROPS"
for key in "${!props[@]}"; do
  echo "$key=${props[$key]}" >>"$PROPS"
done

LOG4J="-Dlog4j2.configurationFile=/opt/kafka/log4j2.xml"
if [[ ! -f "$DATA/meta.properties" ]]; then
  mkdir -p "$DATA"
  java -Xmx256m "$LOG4J" -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format \
    -t "$CLUSTER_ID" -c "$PROPS"
fi
# shellcheck disable=SC2086 # the options are lists of flags
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC \
  -XX:MaxGCPauseMillis=20} -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "$LOG4J" \
  ${KAFKA_OPTS:-} -cp '/opt/kafka/libs/*' kafka.Kafka "$PROPS"
