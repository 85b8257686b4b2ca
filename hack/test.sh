#!/usr/bin/env bash
# Runs every test: installs what is missing (Debian packages, cargo-nextest), checks
# formatting, builds every target (benchmarks included) and runs the whole suite:
# unit tests, the storage suite on memory / embedded / a real etcd, the 3-member etcd
# failover test and the SIGKILL durability test. Nothing skips: a test that needs etcd
# or kubectl fails when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash hack/install-deps.sh
# Stock kubectl (and the kubectl.1.NN beside it) comes with the machine, not from apt.
command -v kubectl >/dev/null || { echo "test.sh: kubectl must be on PATH" >&2; exit 1; }

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== build (all targets)"
cargo build --workspace --all-targets --locked

echo "== tests"
cargo nextest run --workspace --no-fail-fast --locked "$@"
