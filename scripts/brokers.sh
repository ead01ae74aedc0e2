#!/usr/bin/env bash
# Makes sure every broker the tests, examples and benchmarks use answers on loopback, installing and
# starting what is missing. Safe to run again: what already answers is left alone.
#
#   scripts/brokers.sh up [redis] [rabbitmq] [kafka] [postgres] [mariadb] [nats] [mosquitto]   (default: all)
#   scripts/brokers.sh down rabbitmq|kafka                        (the outage tests stop and restart them)
#   scripts/brokers.sh status
#
# Addresses are overridable: REDIS_URL, RABBITMQ_URL, KAFKA_BROKERS, DATABASE_URL, NATS_URL, MQTT_URL (then nothing is started for it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

port_answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "brokers.sh: $* missing and not root: install it (apt-get install $*)" >&2; exit 1; fi
  echo "brokers.sh: installing $* (apt-get)" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_for() { # name host port seconds
  for _ in $(seq 1 $(( $4 * 4 ))); do port_answers "$2" "$3" && return 0; sleep 0.25; done
  echo "brokers.sh: $1 did not answer on $2:$3 within $4 s" >&2; exit 1
}

redis_up() {
  if [ -n "${REDIS_URL:-}" ]; then echo "brokers.sh: redis from REDIS_URL (not managed here)"; return; fi
  if port_answers 127.0.0.1 6379; then echo "brokers.sh: redis answers on 127.0.0.1:6379"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for redis 127.0.0.1 6379 30
  echo "brokers.sh: redis started on 127.0.0.1:6379"
}

rabbitmq_up() {
  if [ -n "${RABBITMQ_URL:-}" ]; then echo "brokers.sh: rabbitmq from RABBITMQ_URL (not managed here)"; return; fi
  if port_answers 127.0.0.1 5672; then echo "brokers.sh: rabbitmq answers on 127.0.0.1:5672"; return; fi
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  # Loopback only (the Debian default config listens on all interfaces).
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  # A file handle per queue while it recovers its queues at start. Started as root, Debian's wrapper
  # runs the broker through `su rabbitmq`, whose PAM session sets the soft limit to 1024 (systemd's unit
  # would give 65536): a broker holding more queues than that never finished starting (seen with 936
  # queues left by a day of benchmarks). A limits file raises it to the hard limit (at most 65536).
  if [ "$(id -u)" = 0 ] && [ -d /etc/security/limits.d ]; then
    local hard; hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
    printf 'rabbitmq soft nofile %s\nrabbitmq hard nofile %s\n' "$hard" "$hard" > /etc/security/limits.d/switchboard-rabbitmq.conf
  fi
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for rabbitmq 127.0.0.1 5672 90
  rabbitmqctl await_startup >/dev/null 2>&1 || true
  echo "brokers.sh: rabbitmq started on 127.0.0.1:5672"
}

rabbitmq_down() {
  rabbitmqctl stop >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do port_answers 127.0.0.1 5672 || break; sleep 0.25; done
  echo "brokers.sh: rabbitmq stopped"
}

postgres_up() {
  if [ -n "${DATABASE_URL:-}" ]; then echo "brokers.sh: postgres from DATABASE_URL (not managed here)"; return; fi
  if port_answers 127.0.0.1 5432; then echo "brokers.sh: postgres answers on 127.0.0.1:5432"; return; fi
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Loopback only, trust for local test connections (the project's test database, nothing else).
  sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "/etc/postgresql/$version/main/postgresql.conf"
  grep -q "switchboard-tests" "/etc/postgresql/$version/main/pg_hba.conf" || \
    sed -i '1i host all all 127.0.0.1/32 trust # switchboard-tests' "/etc/postgresql/$version/main/pg_hba.conf"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for postgres 127.0.0.1 5432 60
  echo "brokers.sh: postgres started on 127.0.0.1:5432"
}

mariadb_up() {
  if [ -n "${MYSQL_URL:-}" ]; then echo "brokers.sh: mysql from MYSQL_URL (not managed here)"; return; fi
  if port_answers 127.0.0.1 3306; then echo "brokers.sh: mariadb answers on 127.0.0.1:3306"; return; fi
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
  # Loopback only; detached so it outlives the shell.
  mkdir -p /etc/mysql/conf.d /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  printf '[mysqld]\nbind-address = 127.0.0.1\n' > /etc/mysql/conf.d/switchboard-tests.cnf
  setsid nohup mysqld_safe >/dev/null 2>&1 < /dev/null &
  wait_for mariadb 127.0.0.1 3306 90
  # The tests log in as root over TCP without a password (the test server listens on loopback only).
  mariadb -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');" || true
  echo "brokers.sh: mariadb started on 127.0.0.1:3306"
}

nats_up() {
  if [ -n "${NATS_URL:-}" ]; then echo "brokers.sh: nats from NATS_URL (not managed here)"; return; fi
  if port_answers 127.0.0.1 4222; then echo "brokers.sh: nats answers on 127.0.0.1:4222"; return; fi
  command -v nats-server >/dev/null || apt_install nats-server
  # JetStream on, its storage in a directory this script owns; detached so it outlives the shell.
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/nats"
  mkdir -p "$dir"
  setsid nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$dir/jetstream" -l "$dir/nats-server.log" >/dev/null 2>&1 < /dev/null &
  wait_for nats 127.0.0.1 4222 30
  echo "brokers.sh: nats (JetStream) started on 127.0.0.1:4222, storage $dir/jetstream"
}

mosquitto_up() {
  if [ -n "${MQTT_URL:-}" ]; then echo "brokers.sh: mqtt from MQTT_URL (not managed here)"; return; fi
  if port_answers 127.0.0.1 1883; then echo "brokers.sh: mosquitto answers on 127.0.0.1:1883"; return; fi
  command -v mosquitto >/dev/null || apt_install mosquitto
  # Loopback only, anonymous (test broker), persistence in a directory this script owns; detached so
  # it outlives the shell. Queues sized for the tests' bursts (the default keeps 1000 per session);
  # TCP_NODELAY on (Mosquitto's default leaves Nagle on: a new subscriber's first messages wait ~40 ms).
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/mosquitto"
  mkdir -p "$dir"
  cat > "$dir/mosquitto.conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/
max_queued_messages 100000
set_tcp_nodelay true
log_dest file $dir/mosquitto.log
CONF
  # Started as root, mosquitto drops to its own user: that user writes the store and the log.
  if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$dir"; fi
  setsid nohup mosquitto -c "$dir/mosquitto.conf" >/dev/null 2>&1 < /dev/null &
  wait_for mosquitto 127.0.0.1 1883 30
  echo "brokers.sh: mosquitto started on 127.0.0.1:1883, persistence $dir"
}

kafka_up() {
  if [ -n "${KAFKA_BROKERS:-}" ]; then echo "brokers.sh: kafka from KAFKA_BROKERS (not managed here)"; return; fi
  bash "$root/scripts/kafka.sh" up
}

cmd=${1:-up}; shift || true
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(redis rabbitmq kafka postgres mariadb nats mosquitto)
case "$cmd" in
  up) for t in "${targets[@]}"; do "${t}_up"; done ;;
  down) for t in "${targets[@]}"; do
          case "$t" in kafka) bash "$root/scripts/kafka.sh" down ;; rabbitmq) rabbitmq_down ;; *) echo "brokers.sh: down $t is not supported" >&2; exit 2 ;; esac
        done ;;
  status)
    port_answers 127.0.0.1 6379 && echo "redis: up" || echo "redis: down"
    port_answers 127.0.0.1 5672 && echo "rabbitmq: up" || echo "rabbitmq: down"
    bash "$root/scripts/kafka.sh" status && echo "kafka: up" || echo "kafka: down"
    port_answers 127.0.0.1 5432 && echo "postgres: up" || echo "postgres: down"
    port_answers 127.0.0.1 3306 && echo "mariadb: up" || echo "mariadb: down"
    port_answers 127.0.0.1 4222 && echo "nats: up" || echo "nats: down"
    port_answers 127.0.0.1 1883 && echo "mosquitto: up" || echo "mosquitto: down" ;;
  *) echo "usage: $0 up|down|status [redis] [rabbitmq] [kafka] [postgres] [mariadb] [nats] [mosquitto]" >&2; exit 2 ;;
esac
