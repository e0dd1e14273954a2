#!/usr/bin/env bash
# The multi-node run on one machine (issue 17): nginx in front of two gunicorn web nodes, two
# classifier workers and one task worker on a throwaway PostGIS, under a bounded locust load
# of photo uploads and map/Open311 reads, with a web node and a classifier worker killed
# (kill -9, restarted as systemd would) and PostgreSQL restarted once; then every accepted
# upload is checked. Prints throughput, p50/p95/p99 per request type, the errors and PASS/FAIL
# (exit 1). Not part of `make test`. Loopback only; about 5 minutes; everything it starts is
# stopped and its data removed on exit, however it exits.
#   bash deploy/dev/cluster.sh [cluster_load.py options, e.g. --users 6]     (make cluster)
# The summary is kept in .local/cluster/ (and the logs, when the run fails).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
py=.venv/bin/python

bash deploy/dev/system-deps.sh --cluster
[[ -x $py ]] || { echo "No $py: run 'make venv' first." >&2; exit 1; }
$py -c "import locust" 2>/dev/null || $py -m pip install -q -e '.[cluster]'

name="cluster-$$"  # its own PostGIS cluster (deploy/dev/pg.sh), never the demo's or the tests'
work="$(mktemp -d /tmp/civic-cluster.XXXXXX)"
pg_port="$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
keep="$root/.local/cluster"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The driver stops what it started; whatever outlived it (a crash, Ctrl-C) goes here, by
    # process group: the driver's own first, then each process it started. Never our own group.
    local own
    own="$(ps -o pgid= -p $$ | tr -d ' ')"
    if [[ -f $work/pgids ]]; then
        while read -r pgid; do
            [[ $pgid != "$own" ]] && { kill -KILL -- "-$pgid" 2>/dev/null || true; }
        done <"$work/pgids"
    fi
    bash deploy/dev/pg.sh stop "$name" || true
    local data="$root/.local/pg-$name"
    [[ -e $data ]] && rm -rf "$(readlink -f "$data")" "$data"
    rm -rf "$keep/logs"  # an earlier failed run's
    if [[ $rc -ne 0 && -d $work/logs ]]; then
        mkdir -p "$keep" && cp -r "$work/logs" "$keep/logs"
        echo "logs of the failed run: $keep/logs" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash deploy/dev/pg.sh start "$name" "$pg_port"
# The driver bounds each phase itself; `timeout` bounds the whole run if something hangs. In the
# background with `wait`, so Ctrl-C reaches the trap at once (bash runs a trap only after a
# foreground command ends, and `timeout` keeps the driver out of the terminal's signals).
timeout --signal=TERM --kill-after=20 480 \
    "$py" deploy/dev/cluster_load.py --work "$work" --pg-name "$name" --pg-port "$pg_port" --report "$keep" "$@" &
wait $!
