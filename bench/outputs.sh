#!/usr/bin/env bash
# Client outputs benchmark (issue 5).
#
# A 200 000-channel Xtream catalog (the simulated provider, imported with the
# real `tunerpool provider add`), a downstream user, and `tunerpool serve`
# as a separate process. For each output — the M3U playlist (get.php) and
# the Xtream `get_live_streams` list — curl downloads the whole body over
# loopback and reports time to first byte, time to last byte and size; the
# server's peak RSS (VmHWM from /proc) is read before and after. The server
# is restarted for every measurement, so each peak is that request's own,
# and its CPU time (utime+stime from /proc) is reported with the machine's
# load average (other work on the same cores stretches the wall time);
# and a login before it warms the password cache (what a player's earlier
# requests do), so the figure is the listing itself.
#
# Usage: [BENCH_BIN_DIR=dir] bench/outputs.sh [ENTRIES] [RUNS]   (default 200000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-3}
FP_PORT=${BENCH_FP_PORT:-19677}
TP_PORT=${BENCH_TP_PORT:-19678}
T=${CARGO_TARGET_DIR:-target}

# BENCH_BIN_DIR: prebuilt release binaries (tunerpool, fakeprovider) to
# measure instead of building, e.g. a copy of another branch's to compare in
# the same session.
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  TP=$BENCH_BIN_DIR/tunerpool
  FP=$BENCH_BIN_DIR/fakeprovider
else
  cargo build --release -q -p tunerpool -p fakeprovider
  TP=$T/release/tunerpool
  FP=$T/release/fakeprovider
fi
work=$(mktemp -d)
tp_pid=
cleanup() { kill $tp_pid "$fp_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

$FP --listen 127.0.0.1:$FP_PORT --accounts bench:bench:2 --channels "$N" --categories 50 --vod 0 --series 0 \
  >"$work/fp.log" 2>&1 &
fp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$FP_PORT/_control/counters" >/dev/null 2>&1 && break; sleep 0.1; done
$TP provider add --data-dir "$work/data" --name bench --kind xtream --url "http://127.0.0.1:$FP_PORT" \
  --username bench --password bench >/dev/null
TUNERPOOL_USER_PASSWORD=viewer $TP user add --data-dir "$work/data" --username viewer >/dev/null
# The provider is not needed any more: keep the two cores for the server.
kill "$fp_pid"; wait "$fp_pid" 2>/dev/null || true

# One start of the server before measuring: the first start after an import
# builds the materialized live listing (issue 16) in the background, which
# every later start finds ready; measured here is the listing itself.
$TP serve --data-dir "$work/data" --listen 127.0.0.1:$TP_PORT --log-level warn >"$work/tp.log" 2>&1 &
tp_pid=$!
sleep "${BENCH_WARMUP_SECONDS:-8}"
kill $tp_pid; wait $tp_pid 2>/dev/null || true
tp_pid=

hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$1/status"; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }

measure() { # label, path
  $TP serve --data-dir "$work/data" --listen 127.0.0.1:$TP_PORT --log-level warn >"$work/tp.log" 2>&1 &
  tp_pid=$!
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$TP_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  curl -fs "http://127.0.0.1:$TP_PORT/player_api.php?username=viewer&password=viewer" >/dev/null
  local before after cpu0 cpu1
  before=$(hwm $tp_pid)
  cpu0=$(cpu_ms $tp_pid)
  read -r ttfb total size < <(curl -fs -o /dev/null -w '%{time_starttransfer} %{time_total} %{size_download}\n' \
    "http://127.0.0.1:$TP_PORT$2")
  after=$(hwm $tp_pid)
  cpu1=$(cpu_ms $tp_pid)
  printf '| %s | %d ms | %d ms | %d ms | %d MB | %d MB | %d MB | %s |\n' "$1" "$(echo "$ttfb * 1000 / 1" | bc)" \
    "$(echo "$total * 1000 / 1" | bc)" $((cpu1 - cpu0)) $((size / 1000000)) "$before" "$after" \
    "$(cut -d' ' -f1 /proc/loadavg)"
  kill $tp_pid; wait $tp_pid 2>/dev/null || true
  tp_pid=
}

echo "machine: $(nproc) cores, $(uname -sr); entries: $N"
echo
echo "| output | first byte | last byte | server CPU | body | RSS before | peak RSS | load |"
echo "|---|---|---|---|---|---|---|---|"
for _ in $(seq "$RUNS"); do
  measure "M3U (get.php, m3u_plus)" "/get.php?username=viewer&password=viewer&type=m3u_plus&output=ts"
  measure "Xtream get_live_streams" "/player_api.php?username=viewer&password=viewer&action=get_live_streams"
done
