#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this host for the replication tests (Debian's rabbitmq-server, no Docker):
# nodes sb-1@localhost .. sb-3@localhost, AMQP on 127.0.0.1:5781-5783, Erlang distribution on loopback
# (ports 25781-25783). Independent of the single broker on 5672.
#
#   scripts/rabbitmq-cluster.sh up       install rabbitmq-server if missing, start the nodes, join 2 and 3 to 1
#   scripts/rabbitmq-cluster.sh down     stop the three nodes
#   scripts/rabbitmq-cluster.sh status   exit 0 when all three answer
#   scripts/rabbitmq-cluster.sh kill N   SIGKILL node N's Erlang VM (a crash)
#   scripts/rabbitmq-cluster.sh start N  start node N again; it rejoins the cluster by itself
#
# Env: RABBITMQ_CLUSTER_DIR (<repo>/.rabbitmq-cluster, git-ignored). Needs root (the nodes run as the
# rabbitmq user, sharing its Erlang cookie).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${RABBITMQ_CLUSTER_DIR:-$root/.rabbitmq-cluster}
bin=/usr/lib/rabbitmq/bin

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
amqp_port() { echo $((5780 + $1)); }
node_name() { echo "sb-$1@localhost"; }
node_dir() { echo "$base/node-$1"; }
check_node() { [[ "${1:-}" =~ ^[123]$ ]] || { echo "rabbitmq-cluster.sh: node must be 1, 2 or 3" >&2; exit 2; }; }

# as_rabbitmq CMD...: runs a RabbitMQ command as the rabbitmq user with node N's environment.
as_rabbitmq() {
  local n=$1; shift
  local dir; dir=$(node_dir "$n")
  runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
    RABBITMQ_DIST_PORT=$((25780 + n)) \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    "$@"
}
ctl() { local n=$1; shift; as_rabbitmq "$n" "$bin/rabbitmqctl" -n "$(node_name "$n")" "$@"; }

prepare() {
  if ! [ -x "$bin/rabbitmq-server" ]; then
    [ "$(id -u)" = 0 ] || { echo "rabbitmq-cluster.sh: needs rabbitmq-server (apt-get install rabbitmq-server) and root" >&2; exit 1; }
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  for n in 1 2 3; do
    local dir; dir=$(node_dir "$n")
    mkdir -p "$dir/mnesia" "$dir/log"
    echo '[].' > "$dir/enabled_plugins"
    # Loopback only; the guest user may connect (from loopback).
    printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$(amqp_port "$n")" > "$dir/rabbitmq.conf"
    : > "$dir/rabbitmq-env.conf"
  done
  chown -R rabbitmq:rabbitmq "$base"
}

start_node() {
  local n=$1
  if port_answers "$(amqp_port "$n")"; then echo "rabbitmq-cluster.sh: node $n answers on 127.0.0.1:$(amqp_port "$n")"; return 0; fi
  local started=$SECONDS
  # -detached: the node outlives this shell.
  as_rabbitmq "$n" "$bin/rabbitmq-server" -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 240); do
    if port_answers "$(amqp_port "$n")" && ctl "$n" await_startup >/dev/null 2>&1; then
      echo "rabbitmq-cluster.sh: node $n ($(node_name "$n")) started on 127.0.0.1:$(amqp_port "$n") in $((SECONDS - started)) s"
      return 0
    fi
    sleep 0.5
  done
  echo "rabbitmq-cluster.sh: node $n did not start within 120 s; log: $(node_dir "$n")/log" >&2; exit 1
}

joined() { ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$1")\"" && ctl 1 cluster_status --formatter json 2>/dev/null | grep -o '"running_nodes":\[[^]]*\]' | grep -q "$(node_name "$1")"; }

up() {
  prepare
  for n in 1 2 3; do start_node "$n"; done
  for n in 2 3; do
    if joined "$n"; then continue; fi
    ctl "$n" stop_app >/dev/null 2>&1
    ctl "$n" reset >/dev/null 2>&1
    ctl "$n" join_cluster "$(node_name 1)" >/dev/null 2>&1
    ctl "$n" start_app >/dev/null 2>&1
    echo "rabbitmq-cluster.sh: node $n joined $(node_name 1)"
  done
  # Queues declared from now on (quorum queues take their members from the running nodes) see all three.
  ctl 1 await_online_nodes 3 --timeout 60 >/dev/null 2>&1 || { echo "rabbitmq-cluster.sh: the three nodes did not come online together" >&2; exit 1; }
  status
}

# The pid of node N's Erlang VM: our pid file, else the beam process named for it (started from another clone).
node_pid() {
  local f; f="$(node_dir "$1")/pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then cat "$f"; return 0; fi
  pgrep -f "beam.*-sname $(node_name "$1")" | head -n 1
}

down() {
  for n in 3 2 1; do
    port_answers "$(amqp_port "$n")" || continue
    ctl "$n" stop >/dev/null 2>&1 || { local pid; pid=$(node_pid "$n" || true); [ -n "$pid" ] && kill -9 "$pid"; }
    echo "rabbitmq-cluster.sh: node $n stopped"
  done
}

status() {
  local ok=0
  for n in 1 2 3; do
    if port_answers "$(amqp_port "$n")"; then echo "node $n: up ($(node_name "$n"), 127.0.0.1:$(amqp_port "$n"))"; else echo "node $n: down"; ok=1; fi
  done
  return $ok
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  kill) check_node "${2:-}"; pid=$(node_pid "$2" || true); [ -n "$pid" ] && kill -9 "$pid" && echo "rabbitmq-cluster.sh: node $2 (pid $pid) SIGKILLed" ;;
  start) check_node "${2:-}"; start_node "$2" ;;
  *) echo "usage: $0 up|down|status|kill N|start N" >&2; exit 2 ;;
esac
