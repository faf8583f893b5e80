#!/usr/bin/env bash
# The whole test suite: builds the binaries the harness starts, then runs
# every test against SQLite and again against Postgres. Needs NATS with
# JetStream on 127.0.0.1:4222 (TEST_NATS_URL), PostgreSQL on 127.0.0.1:5432
# (TEST_POSTGRES_URL) and nginx.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --workspace --bins
for database in sqlite postgres; do
    echo "=== tests against $database ==="
    TEST_DATABASE=$database cargo nextest run --workspace --no-fail-fast
done
