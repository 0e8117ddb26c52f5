#!/usr/bin/env bash
# Transcoding benchmark (issue 14): 1 channel × 1 profile × VIEWERS viewers.
#
# Separate processes on this machine: the simulated provider (the 720p25
# H.264 sample at its own ~1.8 Mbit/s), `tunerpool serve`, and `loadgen` as
# the viewers. Scenarios, one after the other:
#   plain — VIEWERS viewers of the channel as it comes (the reference)
#   h264-480p — VIEWERS viewers of the channel with ?profile=h264-480p: one
#               ffmpeg (libx264 veryfast) shared by all of them
# For each: loadgen's report, tunerpool's CPU seconds and peak RSS, and the
# ffmpeg child's own CPU (utime+stime from /proc, read just before it exits).
#
# Usage: bench/transcode.sh [VIEWERS] [SECONDS]   (default 100 30)
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${1:-100}
SECS=${2:-30}
FP_PORT=${BENCH_FP_PORT:-19587}
TP_PORT=${BENCH_TP_PORT:-19588}
command -v ffmpeg >/dev/null || { echo "ffmpeg is required" >&2; exit 1; }
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  bin=$BENCH_BIN_DIR
else
  cargo build --release -q -p tunerpool -p fakeprovider -p loadgen
  bin=${CARGO_TARGET_DIR:-target}/release
fi
TP=$bin/tunerpool FP=$bin/fakeprovider LG=$bin/loadgen
work=$(mktemp -d)
cleanup() { kill "$tp_pid" "$fp_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

$FP --listen 127.0.0.1:$FP_PORT --accounts bench:bench:4 --channels 4 --categories 1 --vod 0 --series 0 \
  >"$work/fp.log" 2>&1 &
fp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$FP_PORT/_control/counters" >/dev/null 2>&1 && break; sleep 0.1; done
$TP provider add --data-dir "$work/data" --name bench --kind xtream --url "http://127.0.0.1:$FP_PORT" \
  --username bench --password bench >/dev/null
TUNERPOOL_USER_PASSWORD=viewer $TP user add --data-dir "$work/data" --username viewer --max-connections 0 >/dev/null
TUNERPOOL_RELAY_LINGER=0s $TP serve --data-dir "$work/data" --listen 127.0.0.1:$TP_PORT --log-level warn \
  >"$work/tp.log" 2>&1 &
tp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$TP_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$TP_PORT/player_api.php?username=viewer&password=viewer" >/dev/null

cpu_of() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mb() { awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$tp_pid/status"; }

run() { # name, query
  local name=$1 query=$2
  local before; before=$(cpu_of "$tp_pid")
  $LG --url-template "http://127.0.0.1:$TP_PORT/live/viewer/viewer/{channel}.ts$query" --channels 1 \
    --clients "$VIEWERS" --ramp 5s --duration "${SECS}s" -q --report "$work/$name.json" >/dev/null &
  local lg=$!
  # ffmpeg's CPU: sampled every second while it runs (the last sample is within a second of its end).
  local ff_cpu=0 ff
  while kill -0 "$lg" 2>/dev/null; do
    ff=$(pgrep -P "$tp_pid" ffmpeg || true)
    if [ -n "$ff" ]; then ff_cpu=$(cpu_of "$ff"); fi
    sleep 1
  done
  wait "$lg"
  local after; after=$(cpu_of "$tp_pid")
  python3 - "$work/$name.json" "$name" "$before" "$after" "$(rss_mb)" "$ff_cpu" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); name = sys.argv[2]
cpu = float(sys.argv[4]) - float(sys.argv[3]); wall = r["totals"]["wall_s"]; ff = float(sys.argv[6])
t, d, f = r["totals"], r["delivered_mbps"], r["ttfb_us"]
print(f"## {name}: {t['clients']} clients, ok {t['ok']}, failed {t['failed']} {t['failed_by_reason']}")
print(f"  delivered Mbit/s per viewer: min {d['min']:.2f} p10 {d['p10']:.2f} p50 {d['p50']:.2f}")
print(f"  TTFB ms: p50 {f['p50']/1000:.1f} p99 {f['p99']/1000:.1f} max {f['max']/1000:.1f}")
print(f"  tunerpool CPU {cpu:.1f} s over {wall:.1f} s = {100*cpu/wall:.0f}% of one core; peak RSS {sys.argv[5]} MB")
if ff > 0:
    print(f"  ffmpeg CPU {ff:.1f} s = {100*ff/wall:.0f}% of one core (its own process)")
print(f"  loadgen CPU {r['loadgen']['cpu_percent_of_one_core']:.0f}% of one core")
PY
}

echo "machine: $(nproc) cores; viewers: $VIEWERS; ${SECS}s each"
run plain ""
sleep 3
run h264-480p "?profile=h264-480p"
echo "provider connections: $(curl -fs http://127.0.0.1:$FP_PORT/_control/counters | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_opened"])')"
