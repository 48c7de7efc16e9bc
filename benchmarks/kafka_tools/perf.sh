#!/usr/bin/env bash
# Kafka's own producer benchmark against a broker, for `make bench`:
#   benchmarks/kafka_tools/perf.sh BOOTSTRAP TOPIC RECORDS RECORD_BYTES
# runs org.apache.kafka.tools.ProducerPerformance (acks=all, no throughput cap) and prints its
# summary line. The kafka-tools jar and its dependencies are fetched with mvn from Maven
# Central the first time into ${SYNCLINE_KAFKA_CACHE:-~/.cache/syncline}/kafka-tools-VERSION.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${SYNCLINE_KAFKA_VERSION:-4.1.2}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/syncline/kafka-tools-$VERSION"
[[ $# -eq 4 ]] || { echo "usage: $0 BOOTSTRAP TOPIC RECORDS RECORD_BYTES" >&2; exit 2; }
if [[ ! -f "$CACHE_DIR/.complete" ]]; then
  command -v mvn >/dev/null 2>&1 || { echo "perf.sh: mvn not found (Debian: apt-get install maven)" >&2; exit 2; }
  mkdir -p "$(dirname "$CACHE_DIR")"
  tmp="$(mktemp -d "$CACHE_DIR.partial.XXXXXX")"
  if ! mvn -B -q -f "$HERE/pom.xml" -Dkafka.version="$VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      >"$tmp.mvn.log" 2>&1; then
    tail -n 30 "$tmp.mvn.log" >&2; rm -rf "$tmp" "$tmp.mvn.log"
    echo "perf.sh: mvn could not fetch org.apache.kafka:kafka-tools:$VERSION" >&2; exit 1
  fi
  rm -f "$tmp.mvn.log"; touch "$tmp/.complete"; rm -rf "$CACHE_DIR"; mv "$tmp" "$CACHE_DIR"
fi
# The topic is made first (the broker's default partitions): brokers need not auto-create topics
# (the test broker does not), and ProducerPerformance would wait 60 s for it and fail.
java -Xmx256m -cp "$CACHE_DIR/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" \
  --create --if-not-exists --topic "$2" >/dev/null
exec java -Xmx512m -cp "$CACHE_DIR/*" org.apache.kafka.tools.ProducerPerformance \
  --topic "$2" --num-records "$3" --record-size "$4" --throughput -1 \
  --producer-props bootstrap.servers="$1" acks=all
