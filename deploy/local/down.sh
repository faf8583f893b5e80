#!/usr/bin/env bash
# Stops exactly what up.sh started for CONFIG: nginx and every component
# instance, by the pid files in the run directory.
#
#   deploy/local/down.sh CONFIG
set -uo pipefail

config=${1:?usage: down.sh CONFIG}
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${HS_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}
run_dir=${HS_RUN_DIR:-$("$bin/homeserver" config-value --config "$config" global.data_dir)/polylith}
[ -d "$run_dir" ] || exit 0

# nginx first, so no request reaches a component that is stopping.
nginx_pid=$(cat "$run_dir/nginx.pid" 2>/dev/null)
[ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null

# SIGTERM lets each instance finish and ack the work in hand.
pids=()
for file in "$run_dir"/*.pid; do
    [ -f "$file" ] || continue
    [ "$(basename "$file")" = nginx.pid ] && continue
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
done
for _ in $(seq 1 300); do
    alive=0
    for pid in "${pids[@]}" $nginx_pid; do
        kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
done
for pid in "${pids[@]}" $nginx_pid; do
    kill -KILL "$pid" 2>/dev/null
done
rm -f "$run_dir"/*.pid "$run_dir"/*.addr
exit 0
