#!/usr/bin/env bash
# Starts the polylith on this machine: every component as its own process
# (two instances each of clientapi and syncapi by default), and nginx in
# front, routing by path. The last line of output is the base URL.
#
#   deploy/local/up.sh CONFIG
#
# The config must name a NATS server (global.nats.url); its database may be
# Postgres or per-component SQLite files. nginx listens on the config's
# client_listen and federation_listen (one address for both when they are
# equal), serving HTTPS on federation_listen with the config's
# tls_certificate_path and tls_private_key_path when they are set; components
# listen on free loopback ports, plain HTTP.
#
# Environment:
#   HS_BIN_DIR    where the component binaries are (default: build them with
#                 `cargo build --release` and use target/release)
#   HS_RUN_DIR    where pids and logs go (default: <data_dir>/polylith)
#   HS_INSTANCES  instances per component
#                 (default: "userapi=1 roomserver=1 syncapi=2 federationsender=1 federationreceiver=1 clientapi=2")
set -euo pipefail

config=${1:?usage: up.sh CONFIG}
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ -z "${HS_BIN_DIR:-}" ]; then
    (cd "$repo" && cargo build --release --bins -q)
    HS_BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/release
fi
bin=$HS_BIN_DIR
value() { "$bin/homeserver" config-value --config "$config" "$1"; }

run_dir=${HS_RUN_DIR:-$(value global.data_dir)/polylith}
if [ -n "$(value global.nats.url)" ]; then :; else
    echo "up.sh: the polylith needs global.nats.url (a NATS server with JetStream)" >&2
    exit 2
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "up.sh: nginx is not installed (apt install nginx-light)" >&2; exit 2; }

if ls "$run_dir"/*.pid >/dev/null 2>&1; then
    echo "up.sh: $run_dir has pid files; run down.sh $1 first" >&2
    exit 2
fi
mkdir -p "$run_dir/nginx-tmp"
echo "$config" > "$run_dir/config"

# A free loopback port, below the kernel's ephemeral range: a port there may
# be the local end of an outgoing connection, which a probe cannot see.
ephemeral_low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local port=$((26000 + RANDOM % (ephemeral_low - 26000)))
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    echo "$port"
}

wait_healthy() { # name url pid
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$2/health" 2>/dev/null; then return 0; fi
        if ! kill -0 "$3" 2>/dev/null; then
            echo "up.sh: $1 exited at start; its log:" >&2
            tail -n 20 "$run_dir/$1.log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "up.sh: $1 did not become healthy; see $run_dir/$1.log" >&2
    return 1
}

instances=${HS_INSTANCES:-"userapi=1 roomserver=1 syncapi=2 federationsender=1 federationreceiver=1 clientapi=2"}
declare -A servers
failed=0
for entry in $instances; do
    component=${entry%%=*}
    count=${entry#*=}
    for i in $(seq 1 "$count"); do
        name="$component-$i"
        # Another process may take the port between probe and bind: try another.
        for attempt in 1 2 3; do
            port=$(free_port)
            "$bin/$component" --config "$config" --listen "127.0.0.1:$port" </dev/null >"$run_dir/$name.log" 2>&1 &
            pid=$!
            echo "$pid" > "$run_dir/$name.pid"
            echo "127.0.0.1:$port" > "$run_dir/$name.addr"
            if wait_healthy "$name" "http://127.0.0.1:$port" "$pid"; then break; fi
            if [ "$attempt" = 3 ] || ! grep -q "Address already in use" "$run_dir/$name.log"; then
                failed=1
                break 3
            fi
        done
        servers[$component]+="        server 127.0.0.1:$port max_fails=1 fail_timeout=2s;"$'\n'
    done
done
if [ "$failed" = 1 ]; then
    "$here/down.sh" "$config" >/dev/null 2>&1 || true
    exit 1
fi

client_listen=$(value global.client_listen)
federation_listen=$(value global.federation_listen)
tls_cert=$(value global.tls_certificate_path)
tls_key=$(value global.tls_private_key_path)
max_body=$(value global.max_request_bytes)
ssl= tls_lines= scheme=http
if [ -n "$tls_cert" ]; then
    ssl=" ssl"
    # The versions rustls serves in the monolith.
    tls_lines="        ssl_certificate \"$tls_cert\";"$'\n'"        ssl_certificate_key \"$tls_key\";"$'\n'"        ssl_protocols TLSv1.2 TLSv1.3;"$'\n'
fi
if [ "$client_listen" = "$federation_listen" ]; then
    # nginx refuses an address twice: one listen serves both APIs, over TLS
    # when there is a certificate.
    listen_lines="        listen $federation_listen$ssl;"$'\n'
    [ -n "$ssl" ] && scheme=https
else
    listen_lines="        listen $client_listen;"$'\n'"        listen $federation_listen$ssl;"$'\n'
fi
awk -v run="$run_dir" -v mb="$max_body" -v l="$listen_lines" -v t="$tls_lines" \
    -v c="${servers[clientapi]:-}" -v s="${servers[syncapi]:-}" -v f="${servers[federationreceiver]:-}" '
    { gsub("@RUN_DIR@", run); gsub("@MAX_BODY@", mb) }
    /@LISTEN@/ { printf "%s", l; next }
    /@TLS@/ { printf "%s", t; next }
    /@CLIENTAPI_SERVERS@/ { printf "%s", c; next }
    /@SYNCAPI_SERVERS@/ { printf "%s", s; next }
    /@FEDERATIONRECEIVER_SERVERS@/ { printf "%s", f; next }
    { print }' "$here/nginx.conf.template" > "$run_dir/nginx.conf"
if ! "$nginx_bin" -p "$run_dir" -c "$run_dir/nginx.conf" 2>"$run_dir/nginx-start.log"; then
    cat "$run_dir/nginx-start.log" >&2
    "$here/down.sh" "$config" >/dev/null 2>&1 || true
    exit 1
fi
for _ in $(seq 1 50); do
    # -k: this asks whether our nginx is up, not whether its certificate is
    # trusted here (it may come from a private CA).
    curl -fsSk -o /dev/null "$scheme://$client_listen/health" 2>/dev/null && break
    sleep 0.1
done
echo "$scheme://$client_listen"
