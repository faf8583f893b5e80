#!/usr/bin/env bash
# The whole test suite, on Debian or Ubuntu with Rust: installs and starts
# what the tests need when it is missing (PostgreSQL, NATS with JetStream,
# nginx, cargo-nextest, a Python venv with matrix-nio, another with Synapse,
# matrix-js-sdk from npm), builds the binaries the harness starts, then runs every test against
# SQLite and again against Postgres.
#
#   TEST_NATS_URL     (default nats://127.0.0.1:4222)   a NATS with JetStream to use instead
#   TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432)
#   HS_PYTHON         a Python with tests/clients/requirements.txt; default: a venv in ~/.cache
#   HS_NODE_MODULES   where matrix-js-sdk is installed; default: tests/clients/node_modules
#   HS_SYNAPSE_PYTHON a Python with matrix-synapse (the federation peer); default: a venv in ~/.cache
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" \
        || { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; }
}

command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx-light
command -v curl >/dev/null || apt_install curl

if [ -z "${TEST_POSTGRES_URL:-}" ]; then
    command -v pg_isready >/dev/null || apt_install postgresql
    if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
        for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
    fi
fi
if [ -z "${TEST_NATS_URL:-}" ] && ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || apt_install nats-server
    as_root mkdir -p /var/lib/nats-server
    as_root start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server || echo /usr/sbin/nats-server)" \
        -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server
    for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.2; done
fi

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

# The matrix-nio scenarios (tests/tests/nio_client.rs, real_clients.rs) need a
# Python with matrix-nio: a venv outside the repository, reused between runs.
if [ -z "${HS_PYTHON:-}" ]; then
    venv=$HOME/.cache/homeserver-venv
    command -v python3 >/dev/null || apt_install python3
    if [ ! -x "$venv/bin/pip" ]; then
        # A venv without pip is what a failed `python3 -m venv` leaves (no python3-venv).
        rm -rf "$venv"
        python3 -m venv "$venv" || { apt_install python3-venv && rm -rf "$venv" && python3 -m venv "$venv"; }
    fi
    "$venv/bin/pip" install -q -r tests/clients/requirements.txt
    export HS_PYTHON=$venv/bin/python
fi

# The federation scenarios with Synapse as the peer (tests/tests/federation_synapse.rs)
# need matrix-synapse from PyPI: a venv of its own outside the repository.
if [ -z "${HS_SYNAPSE_PYTHON:-}" ]; then
    synapse_venv=$HOME/.cache/synapse-venv
    if [ ! -x "$synapse_venv/bin/pip" ]; then
        rm -rf "$synapse_venv"
        python3 -m venv "$synapse_venv" || { apt_install python3-venv && rm -rf "$synapse_venv" && python3 -m venv "$synapse_venv"; }
    fi
    "$synapse_venv/bin/python" -c "import synapse" 2>/dev/null || "$synapse_venv/bin/pip" install -q "matrix-synapse==1.163.*"
    export HS_SYNAPSE_PYTHON=$synapse_venv/bin/python
fi

# The matrix-js-sdk scenario (tests/tests/real_clients.rs) needs Node 20 or
# newer and the packages of tests/clients/package-lock.json.
if [ -z "${HS_NODE_MODULES:-}" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$node_major" -lt 20 ]; then
        echo "Node $(node --version) is too old for matrix-js-sdk; install Node 20 or newer" >&2
        exit 1
    fi
    [ -d tests/clients/node_modules/matrix-js-sdk ] || (cd tests/clients && npm ci --no-audit --no-fund)
fi

cargo build --workspace --bins
for database in sqlite postgres; do
    echo "=== tests against $database ==="
    TEST_DATABASE=$database cargo nextest run --workspace --no-fail-fast
done
