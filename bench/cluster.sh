#!/usr/bin/env bash
# Fan-out over many rooms, on one Parley process and on two sharing rooms
# through Redis, with the same load each time:
#
#   bench/cluster.sh [--clients N] [--rooms N] [--senders N] [--rate R]
#                    [--warmup S] [--duration S]
#                    [--only single,postgres,redis1,redis2] [--out DIR]
#
# Scenarios, each on fresh processes and a fresh database:
#   single    one server on SQLite (a new file), no Redis
#   postgres  one server on PostgreSQL, no Redis
#   redis1    one server on PostgreSQL with REDIS_URL: the Redis path, alone
#   redis2    two servers on one PostgreSQL and one Redis, the clients spread
#             over both (loadgen --addr A --addr B)
# With Redis, its pid is given to loadgen after the servers' (--server-pid),
# so the report has its CPU too; the summary keeps it apart. PostgreSQL's own
# CPU is not measured.
#
# Needs target/release/server and target/release/loadgen
# (cargo build --release -p server -p parley-bench), redis-server and
# PostgreSQL (scripts/setup.sh). Without PARLEY_TEST_POSTGRES_URL it runs
# itself inside scripts/with-postgres.sh (a throwaway cluster). Redis runs on a
# free loopback port with no persistence, in a temporary directory; everything
# it starts is stopped, and the directory removed, when it exits. Reports go
# to --out (default $TMPDIR/parley-cluster-out/): <scenario>.txt and .json,
# the servers' logs, and a summary table on stdout.
set -euo pipefail

clients=10000
rooms=1000
senders=1000
rate=1
warmup=5
duration=20
only=single,postgres,redis1,redis2
out="${TMPDIR:-/tmp}/parley-cluster-out"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --rooms) rooms="$2"; shift 2 ;;
    --senders) senders="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$0: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
server_bin="$target/release/server"
loadgen_bin="$target/release/loadgen"
for bin in "$server_bin" "$loadgen_bin"; do
  if [[ ! -x "$bin" ]]; then
    echo "$0: $bin is missing: cargo build --release -p server -p parley-bench" >&2
    exit 1
  fi
done

if [[ ",$only," =~ ,(postgres|redis) && -z "${PARLEY_TEST_POSTGRES_URL:-}" ]]; then
  exec scripts/with-postgres.sh "$repo/bench/cluster.sh" --clients "$clients" --rooms "$rooms" \
    --senders "$senders" --rate "$rate" --warmup "$warmup" --duration "$duration" \
    --only "$only" --out "$out"
fi

mkdir -p "$out"
tmp="$(mktemp -d -t parley-cluster.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nothing listens on.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# Waits until $1 (a command) succeeds, for up to 20 s.
wait_for() {
  for _ in $(seq 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$0: gave up waiting for: $*" >&2
  return 1
}

# Stops everything started so far (between scenarios).
stop_all() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

start_redis() {
  local port dir
  port="$(free_port)"
  dir="$tmp/redis-$port"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --daemonize no >"$dir/log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_for redis-cli -p "$port" ping
  redis_url="redis://127.0.0.1:$port"
}

# A new, empty database on the PostgreSQL server.
new_database() {
  local name="bench_$1_$$"
  PGOPTIONS="-c client_min_messages=warning" psql -q "$PARLEY_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
  database_url="${PARLEY_TEST_POSTGRES_URL%/*}/$name"
}

# start_server LOG ARGS...: sets server_addr and server_pid.
start_server() {
  local log="$1" port
  shift
  port="$(free_port)"
  server_addr="127.0.0.1:$port"
  "$server_bin" --addr "$server_addr" --log warn \
    --max-connections 1000000 --max-connections-per-ip 1000000 \
    --rate-limit-burst 1000000 --rate-limit-per-sec 1000000 \
    --request-rate-burst 1000000 --request-rate-per-sec 1000000 \
    --handshake-rate-burst 1000000 --handshake-rate-per-sec 1000000 "$@" >"$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_for curl -sf "http://$server_addr/healthz"
}

# run_loadgen NAME ADDR... -- PID...
run_loadgen() {
  local name="$1" flags=()
  shift
  while [[ "$1" != -- ]]; do flags+=(--addr "$1"); shift; done
  shift
  for pid in "$@"; do flags+=(--server-pid "$pid"); done
  echo "==> $name: ${flags[*]}" >&2
  local status=0
  RUST_LOG=warn "$loadgen_bin" "${flags[@]}" --json "$out/$name.json" \
    fanout --clients "$clients" --rooms "$rooms" --senders "$senders" --rate "$rate" \
    --warmup "$warmup" --duration "$duration" | tee "$out/$name.txt" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "$0: loadgen failed for $name (status $status)" >&2
  fi
}

for scenario in ${only//,/ }; do
  case "$scenario" in
    single)
      start_server "$out/single-server.log" --database-url "sqlite://$tmp/single.db"
      run_loadgen single "$server_addr" -- "$server_pid"
      ;;
    postgres)
      new_database postgres
      start_server "$out/postgres-server.log" --database-url "$database_url"
      run_loadgen postgres "$server_addr" -- "$server_pid"
      ;;
    redis1)
      start_redis
      new_database redis1
      start_server "$out/redis1-server.log" --database-url "$database_url" --redis-url "$redis_url"
      run_loadgen redis1 "$server_addr" -- "$server_pid" "$redis_pid"
      ;;
    redis2)
      start_redis
      new_database redis2
      start_server "$out/redis2-server-a.log" --database-url "$database_url" --redis-url "$redis_url"
      addr_a="$server_addr" pid_a="$server_pid"
      start_server "$out/redis2-server-b.log" --database-url "$database_url" --redis-url "$redis_url"
      run_loadgen redis2 "$addr_a" "$server_addr" -- "$pid_a" "$server_pid" "$redis_pid"
      ;;
    *) echo "$0: unknown scenario $scenario" >&2; exit 2 ;;
  esac
  stop_all
done

# The servers are the first .servers|length processes; Redis, if any, after.
echo
echo "| scenario | deliveries/s (expected) | p50 / p99 / max ms | missing, dup, gaps, wrong room, errors | Parley CPU s (per process) | Parley µs/delivery | Parley µs/message | Redis CPU s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for scenario in ${only//,/ }; do
  json="$out/$scenario.json"
  [[ -f "$json" ]] || { echo "| $scenario | (no report) |"; continue; }
  jq -r --arg s "$scenario" '
    def r(n): . * n | round / n;
    def cpu: .cpu_user_secs + .cpu_system_secs;
    (.servers | length) as $n
    | ([.server.processes[:$n][] | cpu]) as $parley
    | ($parley | add) as $total
    | "| \($s) | \(.deliveries_per_sec | round) (\(.expected / .duration_secs | round)) | \(.latency_ms.p50 | r(10)) / \(.latency_ms.p99 | r(10)) / \(.latency_ms.max | r(10)) | \(.missing), \(.duplicates), \(.gaps), \(.wrong_room), \(.errors) | \($total | r(100))\(if $n > 1 then " (" + ($parley | map(r(100) | tostring) | join(" + ")) + ")" else "" end) | \($total * 1e6 / .delivered | r(10)) | \($total * 1e6 / .sent | round) | \([.server.processes[$n:][] | cpu] | if length > 0 then add | r(100) | tostring else "-" end) |"' "$json"
done
