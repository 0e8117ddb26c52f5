#!/usr/bin/env bash
# Cold join (issue 10, finding 8): the first viewer of a channel starts at the
# PAT, the PMT and a keyframe. What that adds to its time to first byte,
# against the upstream's own time to its first keyframe: for each of N
# channels nobody watches, one request straight to the simulated provider
# and one through the gateway, started at the same instant (same live point).
# Both run in one process (crates/http/examples/cold_join.rs), release build.
#
# Usage: bench/cold_join.sh [CHANNELS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD)"
cargo run --release -q -p tunerpool-http --example cold_join -- "${1:-30}"
