#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, broker+controller in one JVM) for tests, CI, examples and
# benchmarks. No Docker: the broker's jars come from Maven Central through tools/kafka/pom.xml.
#
#   scripts/kafka.sh up      fetch jars if missing, format storage if new, start, wait until it answers.
#                            Safe to call when the broker already runs (it only checks it answers).
#   scripts/kafka.sh down    stop the broker this script started.
#   scripts/kafka.sh status  exit 0 when the broker answers.
#
#   scripts/kafka.sh cluster up|down|status     a 3-broker cluster (KRaft, each node broker+controller,
#                                               3 controller voters) on 127.0.0.1:19091-19093
#   scripts/kafka.sh cluster kill N             SIGKILL node N (1-3), as a crash would
#   scripts/kafka.sh cluster start N            start node N again (after a kill) and wait until it answers
#   scripts/kafka.sh cluster pid N              print node N's pid
#   scripts/kafka.sh cluster leader T P         print the node id leading partition P of topic T
#   scripts/kafka.sh cluster kill-leader T P    SIGKILL that node
#   Cluster env: KAFKA_CLUSTER_DIR (<repo>/.kafka-cluster), KAFKA_CLUSTER_RF (default replication factor
#   of topics, 3), KAFKA_CLUSTER_MIN_ISR (min.insync.replicas, 2). Internal topics use 3 replicas.
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

# write_properties DIR NODE_ID PORT CONTROLLER_PORT VOTERS [extra lines]
write_properties() {
  mkdir -p "$1/log"
  cat > "$1/server.properties" <<PROPS
process.roles=broker,controller
node.id=$2
controller.quorum.voters=$5
listeners=PLAINTEXT://127.0.0.1:$3,CONTROLLER://127.0.0.1:$4
advertised.listeners=PLAINTEXT://127.0.0.1:$3
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$1/log
offsets.topic.num.partitions=4
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=1000
group.classic.min.session.timeout.ms=1000
${6:-}
PROPS
}

single_node_properties() {
  write_properties "$data" 1 "$port" "$controller_port" "1@127.0.0.1:$controller_port" "num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
auto.create.topics.enable=true"
}

# format_storage DIR CLUSTER_ID: formats a node's log dir once.
format_storage() {
  [ -f "$1/log/meta.properties" ] && return 0
  java -cp "$libs/*" kafka.tools.StorageTool format -t "$2" -c "$1/server.properties" --ignore-formatted >/dev/null
}

# start_broker DIR PORT LABEL: starts the JVM outliving this shell, waits until it answers.
start_broker() {
  local dir=$1 p=$2 label=$3 started=$SECONDS
  : > "$dir/broker.log"
  setsid nohup java -Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$root/tools/kafka/log4j2.properties" \
      -cp "$libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 < /dev/null &
  echo $! > "$dir/broker.pid"
  for _ in $(seq 1 240); do
    if grep -q "Kafka Server started" "$dir/broker.log" && port_answers "$p"; then
      echo "kafka.sh: $label (Apache Kafka $version) started on 127.0.0.1:$p in $((SECONDS - started)) s (log: $dir/broker.log)"
      return 0
    fi
    if ! kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
      echo "kafka.sh: $label exited during start-up; last lines of $dir/broker.log:" >&2; tail -n 30 "$dir/broker.log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "kafka.sh: $label did not answer within 120 s; last lines of $dir/broker.log:" >&2; tail -n 30 "$dir/broker.log" >&2; exit 1
}

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

new_cluster_id() { java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1; }

up() {
  if answers; then echo "kafka.sh: broker answers on 127.0.0.1:$port"; return 0; fi
  fetch_jars
  single_node_properties
  [ -f "$data/log/meta.properties" ] || format_storage "$data" "$(new_cluster_id)"
  mkdir -p "$cache" && echo "$data" > "$record"
  start_broker "$data" "$port" broker
}

# ───────────── 3-broker cluster ─────────────
cluster_dir=${KAFKA_CLUSTER_DIR:-$root/.kafka-cluster}
cluster_port() { echo $((19090 + $1)); }
cluster_voters="1@127.0.0.1:19191,2@127.0.0.1:19192,3@127.0.0.1:19193"
node_dir() { echo "$cluster_dir/node-$1"; }
# The pid of node N: our pidfile, else a running kafka.Kafka whose properties listen on its port (started from another clone).
node_pid() {
  local f; f="$(node_dir "$1")/broker.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then cat "$f"; return 0; fi
  local pid props
  for pid in $(pgrep -f 'kafka\.Kafka .*server\.properties' || true); do
    props=$(tr '\0' ' ' < "/proc/$pid/cmdline" | grep -o '[^ ]*server\.properties' | tail -n 1)
    if [ -n "$props" ] && grep -q "PLAINTEXT://127.0.0.1:$(cluster_port "$1")" "$props" 2>/dev/null; then echo "$pid"; return 0; fi
  done
  return 1
}
check_node() { [[ "${1:-}" =~ ^[123]$ ]] || { echo "kafka.sh: cluster node must be 1, 2 or 3" >&2; exit 2; }; }

cluster_start_node() {
  local n=$1 dir; dir=$(node_dir "$n")
  if port_answers "$(cluster_port "$n")"; then echo "kafka.sh: cluster node $n answers on 127.0.0.1:$(cluster_port "$n")"; return 0; fi
  start_broker "$dir" "$(cluster_port "$n")" "cluster node $n"
}

cluster_up() {
  fetch_jars
  local id=""
  [ -f "$cluster_dir/cluster.id" ] && id=$(cat "$cluster_dir/cluster.id")
  [ -n "$id" ] || { mkdir -p "$cluster_dir"; id=$(new_cluster_id); echo "$id" > "$cluster_dir/cluster.id"; }
  for n in 1 2 3; do
    # Fast fencing of a dead broker (3 s) so a leader moves quickly; no unclean election: an
    # out-of-sync replica never becomes leader, so what acks=all confirmed survives.
    write_properties "$(node_dir "$n")" "$n" "$(cluster_port "$n")" $((19190 + n)) "$cluster_voters" "num.partitions=3
default.replication.factor=${KAFKA_CLUSTER_RF:-3}
min.insync.replicas=${KAFKA_CLUSTER_MIN_ISR:-2}
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
unclean.leader.election.enable=false
auto.create.topics.enable=false"
    format_storage "$(node_dir "$n")" "$id"
  done
  # Voters need a quorum to finish starting: launch all three, then wait for each.
  local pids=()
  for n in 1 2 3; do cluster_start_node "$n" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

cluster_down() {
  for n in 1 2 3; do
    local pid; pid=$(node_pid "$n" || true)
    [ -n "$pid" ] || continue
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$(node_dir "$n")/broker.pid"; echo "kafka.sh: cluster node $n stopped"
  done
}

cluster_status() {
  local ok=0
  for n in 1 2 3; do
    if port_answers "$(cluster_port "$n")"; then echo "node $n: up (127.0.0.1:$(cluster_port "$n"), pid $(node_pid "$n" || echo ?))"; else echo "node $n: down"; ok=1; fi
  done
  return $ok
}

cluster() {
  case "${1:-}" in
    up) cluster_up ;;
    down) cluster_down ;;
    status) cluster_status ;;
    kill) check_node "${2:-}"; local pid; pid=$(node_pid "$2" || true); [ -n "$pid" ] && kill -9 "$pid" && echo "kafka.sh: cluster node $2 (pid $pid) SIGKILLed" ;;
    start) check_node "${2:-}"; fetch_jars; cluster_start_node "$2" ;;
    pid) check_node "${2:-}"; node_pid "$2" ;;
    leader) [ -n "${3:-}" ] || { echo "usage: $0 cluster leader TOPIC PARTITION" >&2; exit 2; }
      node "$root/scripts/kafka-leader.mjs" "127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093" "$2" "$3" ;;
    kill-leader) [ -n "${3:-}" ] || { echo "usage: $0 cluster kill-leader TOPIC PARTITION" >&2; exit 2; }
      local leader; leader=$(node "$root/scripts/kafka-leader.mjs" "127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093" "$2" "$3")
      cluster kill "$leader" ;;
    *) echo "usage: $0 cluster up|down|status|kill N|start N|pid N|leader T P|kill-leader T P" >&2; exit 2 ;;
  esac
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
  cluster) shift; cluster "$@" ;;
  *) echo "usage: $0 up|down|status|cluster ..." >&2; exit 2 ;;
esac
