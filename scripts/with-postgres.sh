#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL server, for the store's tests:
#
#   scripts/with-postgres.sh cargo test -p server --lib store
#
# Creates a cluster in a temporary directory with Debian's binaries
# (scripts/setup.sh installs them), starts it on 127.0.0.1 on a free port
# (trust authentication, so loopback only; the socket stays in the temporary
# directory), exports PARLEY_TEST_POSTGRES_URL, runs the command, then stops
# the server and deletes the cluster whatever happens. Never touches a
# system service.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 command [argument...]" >&2
  exit 2
fi

bindir=""
for dir in /usr/lib/postgresql/*/bin; do
  [[ -x "$dir/initdb" ]] && bindir="$dir"
done
if [[ -z "$bindir" ]]; then
  echo "$0: PostgreSQL's initdb is missing (scripts/setup.sh installs it)" >&2
  exit 1
fi

tmp="$(mktemp -d -t parley-postgres.XXXXXX)"
# initdb refuses to run as root: the cluster then belongs to the system user
# Debian's package creates.
as_owner=()
user="$(id -un)"
if [[ "$(id -u)" -eq 0 ]]; then
  user=postgres
  as_owner=(runuser -u postgres --)
  chown postgres: "$tmp"
fi

cleanup() {
  if [[ -f "$tmp/data/postmaster.pid" ]]; then
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$tmp"
"${as_owner[@]}" "$bindir/initdb" -D "$tmp/data" --username="$user" --auth=trust \
  --encoding=UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log" >&2; exit 1; }

# A random port, again on the rare collision: pg_ctl -w fails if it is taken.
started=""
for _ in $(seq 20); do
  port=$((20000 + RANDOM % 30000))
  if "${as_owner[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 30 \
       -o "-c listen_addresses=127.0.0.1 -p $port -k $tmp" start >/dev/null; then
    started=1
    break
  fi
done
if [[ -z "$started" ]]; then
  cat "$tmp/server.log" >&2
  echo "$0: PostgreSQL did not start" >&2
  exit 1
fi
cd - >/dev/null

export PARLEY_TEST_POSTGRES_URL="postgres://$user@127.0.0.1:$port/postgres"
echo "==> PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (PARLEY_TEST_POSTGRES_URL)" >&2
status=0
"$@" || status=$?
exit "$status"
