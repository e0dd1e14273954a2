#!/usr/bin/env bash
# A throwaway PostgreSQL + PostGIS cluster on loopback, under .local/.
#   pg.sh start NAME PORT   create (first time) and start cluster .local/pg-NAME
#   pg.sh stop NAME         stop it
# initdb refuses to run as root, so as root the cluster belongs to `postgres`.
set -euo pipefail
cmd="$1"; name="$2"; port="${3:-}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
data="$root/.local/pg-$name"
sock="$data/run"
bin="$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v initdb)")"

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# As root, a checkout in a private folder (mode 0700, e.g. under /root or
# `mktemp -d`) cannot be entered by `postgres`: keep the cluster in postgres's
# home instead, keyed by the checkout's path, with .local/pg-NAME linking to it.
if [[ $(id -u) -eq 0 ]] && ! (cd / && runuser -u postgres -- test -x "$root"); then
    home="$(getent passwd postgres | cut -d: -f6)"
    real="$home/civic-$(printf %s "$root" | sha1sum | cut -c1-12)-$name"
    mkdir -p "$root/.local" "$real" && chown postgres:postgres "$real"
    ln -sfn "$real" "$data"
    data="$real"
    sock="$data/run"
fi

case "$cmd" in
start)
    mkdir -p "$root/.local"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        mkdir -p "$data"
        [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$data"
        as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        as_owner mkdir -p "$sock"
    fi
    if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
            -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" >/dev/null \
            || { echo "PostgreSQL did not start (is port $port taken?); its log says:" >&2
                 tail -5 "$data/server.log" >&2; exit 1; }
    fi
    psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA)
    "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='civic'" | grep -q 1 \
        || "${psql[@]}" -d postgres -c "CREATE ROLE civic LOGIN SUPERUSER"
    "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname='civic'" | grep -q 1 \
        || "${psql[@]}" -d postgres -c "CREATE DATABASE civic OWNER civic"
    "${psql[@]}" -d civic -c "CREATE EXTENSION IF NOT EXISTS postgis"
    echo "PostGIS cluster '$name' on 127.0.0.1:$port (data in $data)"
    ;;
stop)
    [[ -f "$data/PG_VERSION" ]] && as_owner "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null || true
    ;;
*)
    echo "usage: pg.sh start NAME PORT | stop NAME" >&2; exit 2 ;;
esac
