#!/usr/bin/env bash
# Relay benchmark (issue: relay).
#
# Separate processes on this machine: the simulated provider pacing every
# channel at 8 Mbit/s, `tunerpool serve`, and `loadgen` as the viewers.
# Scenarios:
#   one    — VIEWERS viewers of one channel (joining a running channel)
#   fifty  — VIEWERS viewers spread over 50 channels
#   cold   — 50 viewers, each starting a cold channel, vs the same 50 straight
#            from the provider (the upstream's own time to first byte)
# For each, loadgen's JSON report plus tunerpool's CPU seconds (utime+stime
# from /proc) and peak RSS (VmHWM) over the scenario.
#
# Usage: bench/relay.sh [VIEWERS] [SECONDS]   (default 1000 20)
# BENCH_BIN_DIR=dir: use the release binaries already built there (e.g. two
# builds to compare, each with its own CARGO_TARGET_DIR) instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${1:-1000}
SECS=${2:-20}
FP_PORT=${BENCH_FP_PORT:-19577}
TP_PORT=${BENCH_TP_PORT:-19578}
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

if [ -n "${BENCH_BIN_DIR:-}" ]; then
  bin=$BENCH_BIN_DIR
else
  cargo build --release -q -p tunerpool -p fakeprovider -p loadgen
  bin=${CARGO_TARGET_DIR:-target}/release
fi
TP=$bin/tunerpool
FP=$bin/fakeprovider
LG=$bin/loadgen
work=$(mktemp -d)
cleanup() { kill "$tp_pid" "$fp_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

$FP --listen 127.0.0.1:$FP_PORT --accounts bench:bench:60 --channels 60 --categories 3 --vod 0 --series 0 \
  --bitrate-bps 8000000 >"$work/fp.log" 2>&1 &
fp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$FP_PORT/_control/counters" >/dev/null 2>&1 && break; sleep 0.1; done
$TP provider add --data-dir "$work/data" --name bench --kind xtream --url "http://127.0.0.1:$FP_PORT" \
  --username bench --password bench >/dev/null
# Streams need a login: the viewers are one downstream user with no limit of its own.
TUNERPOOL_USER_PASSWORD=viewer $TP user add --data-dir "$work/data" --username viewer --max-connections 0 >/dev/null
$TP serve --data-dir "$work/data" --listen 127.0.0.1:$TP_PORT --log-level warn >"$work/tp.log" 2>&1 &
tp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$TP_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# One login first, so the viewers' logins are cache hits rather than a burst of argon2 checks.
curl -fs "http://127.0.0.1:$TP_PORT/player_api.php?username=viewer&password=viewer" >/dev/null

cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$tp_pid/stat"; }
rss_mb() { awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$tp_pid/status"; }

run() { # name, loadgen args...
  local name=$1; shift
  local before; before=$(cpu_s)
  $LG "$@" -q --report "$work/$name.json" >/dev/null
  local after; after=$(cpu_s)
  python3 - "$work/$name.json" "$name" "$before" "$after" "$(rss_mb)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); name = sys.argv[2]
cpu = float(sys.argv[4]) - float(sys.argv[3]); wall = r["totals"]["wall_s"]
t, d, f, g, ts = r["totals"], r["delivered_mbps"], r["ttfb_us"], r["longest_gap_ms"], r["ts"]
print(f"## {name}: {t['clients']} clients, ok {t['ok']}, failed {t['failed']} {t['failed_by_reason']}")
print(f"  delivered Mbit/s per viewer: min {d['min']:.2f} p1 {d['p1']:.2f} p10 {d['p10']:.2f} p50 {d['p50']:.2f}")
print(f"  aggregate {t['aggregate_mbps']:.0f} Mbit/s; peak streaming {t['peak_streaming']}")
print(f"  TTFB ms: p50 {f['p50']/1000:.1f} p90 {f['p90']/1000:.1f} p99 {f['p99']/1000:.1f} max {f['max']/1000:.1f}")
print(f"  longest gap ms: p50 {g['p50']:.0f} p99 {g['p99']:.0f} max {g['max']:.0f}")
print(f"  TS: sync errors {ts['sync_errors']}, continuity errors {ts['continuity_errors']} in {ts['clients_with_continuity_errors']} clients")
print(f"  tunerpool CPU {cpu:.1f} s over {wall:.1f} s = {100*cpu/wall:.0f}% of one core; peak RSS {sys.argv[5]} MB")
print(f"  loadgen CPU {r['loadgen']['cpu_percent_of_one_core']:.0f}% of one core, peak RSS {r['loadgen']['peak_rss_mib']:.0f} MB")
PY
}

echo "machine: $(nproc) cores; viewers: $VIEWERS; reading time per viewer: ${SECS}s; 8 Mbit/s per channel"
# Before any viewer: what the scenarios' peak RSS adds to it is the sessions' buffers and the viewers.
echo "tunerpool RSS before any viewer: $(awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$tp_pid/status") MB"
run one --url-template "http://127.0.0.1:$TP_PORT/live/viewer/viewer/{channel}.ts" --channels 1 \
  --clients "$VIEWERS" --ramp 10s --duration "${SECS}s"
sleep 5
run fifty --url-template "http://127.0.0.1:$TP_PORT/live/viewer/viewer/{channel}.ts" --channel-range 1-50 \
  --clients "$VIEWERS" --ramp 10s --duration "${SECS}s"
sleep 5
run cold --url-template "http://127.0.0.1:$TP_PORT/live/viewer/viewer/{channel}.ts" --channel-range 11-60 \
  --clients 50 --ramp 5s --duration 3s
run cold-upstream --url-template "http://127.0.0.1:$FP_PORT/live/bench/bench/{channel}.ts" --channel-range 11-60 \
  --clients 50 --ramp 5s --duration 3s
echo "provider connections: $(curl -fs http://127.0.0.1:$FP_PORT/_control/counters)"
