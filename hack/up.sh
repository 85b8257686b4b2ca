#!/usr/bin/env bash
# Installs what is missing, builds rkube and runs `rkube up`: a single-node cluster on
# the embedded store, in the foreground (Ctrl-C stops it). Extra arguments go to
# `rkube up` (see `rkube up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-deps.sh
cargo build --release --locked -p rkube
exec target/release/rkube up "$@"
