#!/usr/bin/env bash
# Installs the system packages rkube's build, tests and cluster need (Debian 12).
# Idempotent and quick when everything is present: apt-get runs only for what is missing.
set -euo pipefail

packages=(
  protobuf-compiler   # protoc, for etcd-client's gRPC code generation
  libprotobuf-dev     # google/protobuf/*.proto, imported by etcd's protos
  etcd-server         # real etcd for the etcd storage backend and its tests
  etcd-client         # etcdctl, handy for poking at a test cluster
  openssl             # certificates for the etcd TLS tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts etcd as a service on install; rkube's tests start their own on random ports.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
