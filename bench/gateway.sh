#!/usr/bin/env bash
# The gateway benchmark: builds the release binaries, then runs `bench_gateway` (the load
# generator, in crates/server/examples) with the arguments given. It starts the mock upstream,
# nginx as the reference proxy, the bare stacks and Keyplane itself. How to read the figures,
# and every run so far: docs/benchmarks.md, "Gateway".
#
#   bench/gateway.sh --duration 10 --rates 1000,5000 --rounds 3 --timeline
#   bench/gateway.sh --rates "" --modes plain --rounds 5 --duration 4   # maxima only
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null; then
  echo "nginx, the reference proxy, is not installed: apt-get install nginx" >&2
  exit 1
fi
cargo build --release -p keyplane-cli -p keyplane-mock-upstream -p keyplane-server --bins \
  --example bench_gateway --example bare_proxy
exec target/release/examples/bench_gateway "$@"
