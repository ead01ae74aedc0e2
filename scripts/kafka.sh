#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, broker+controller in one JVM) for tests, CI, examples and
# benchmarks. No Docker: the broker's jars come from Maven Central through tools/kafka/pom.xml.
#
#   scripts/kafka.sh up      fetch jars if missing, format storage if new, start, wait until it answers.
#                            Safe to call when the broker already runs (it only checks it answers).
#   scripts/kafka.sh down    stop the broker this script started.
#   scripts/kafka.sh status  exit 0 when the broker answers.
#
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_DATA_DIR (<repo>/.kafka-data, git-ignored),
#      SWITCHBOARD_CACHE (~/.cache/switchboard: jars cached between runs and clones).
# Listeners bind to 127.0.0.1 only. The data dir of the broker last started on a port is recorded in
# the cache, so `down` then `up` from another clone (CI) stops and restarts that same broker.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
cache=${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}
record=$cache/kafka-$port.datadir
data=${KAFKA_DATA_DIR:-}
if [ -z "$data" ] && [ -f "$record" ] && [ -f "$(cat "$record")/server.properties" ]; then data=$(cat "$record"); fi
data=${data:-$root/.kafka-data}
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/tools/kafka/pom.xml")
libs=$cache/kafka-$version/libs
log=$data/broker.log
pidfile=$data/broker.pid

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

fetch_jars() {
  [ -f "$libs/.complete" ] && return 0
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "kafka.sh: needs ${missing[*]} (Java 17+ and Maven): install them" >&2; exit 1; }
    echo "kafka.sh: installing ${missing[*]} (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  echo "kafka.sh: fetching Apache Kafka $version jars from Maven Central into $libs" >&2
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -f "$root/tools/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$libs/.complete"
}

write_properties() {
  mkdir -p "$data/log"
  cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/log
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=1000
group.classic.min.session.timeout.ms=1000
auto.create.topics.enable=true
PROPS
}

up() {
  if answers; then echo "kafka.sh: broker answers on 127.0.0.1:$port"; return 0; fi
  fetch_jars
  write_properties
  local cp="$libs/*"
  if [ ! -f "$data/log/meta.properties" ]; then
    local id
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" kafka.tools.StorageTool format -t "$id" -c "$data/server.properties" --ignore-formatted >/dev/null
  fi
  local started=$SECONDS
  mkdir -p "$cache" && echo "$data" > "$record"
  : > "$log"
  nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$root/tools/kafka/log4j2.properties" \
      -cp "$cp" kafka.Kafka "$data/server.properties" >>"$log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 240); do
    if grep -q "Kafka Server started" "$log" && answers; then
      echo "kafka.sh: Apache Kafka $version started on 127.0.0.1:$port in $((SECONDS - started)) s (log: $log)"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka.sh: broker exited during start-up; last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker did not answer within 120 s; last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1
}

# The pid of the broker serving $port: our pidfile, else a running kafka.Kafka whose properties listen on it.
broker_pid() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    mkdir -p "$cache" && echo "$data" > "$record"
    cat "$pidfile"; return
  fi
  local pid props
  for pid in $(pgrep -f 'kafka\.Kafka .*server\.properties' || true); do
    props=$(tr '\0' ' ' < "/proc/$pid/cmdline" | grep -o '[^ ]*server\.properties' | tail -n 1)
    if [ -n "$props" ] && grep -q "PLAINTEXT://127.0.0.1:$port" "$props" 2>/dev/null; then
      mkdir -p "$cache" && dirname "$props" > "$record" # `up` restarts this same broker
      echo "$pid"; return
    fi
  done
}

down() {
  local pid; pid=$(broker_pid)
  [ -n "$pid" ] || { echo "kafka.sh: no broker of ours runs on 127.0.0.1:$port"; return 0; }
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$pidfile"; echo "kafka.sh: broker stopped"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
