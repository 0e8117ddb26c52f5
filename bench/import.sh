#!/usr/bin/env bash
# Catalog import benchmark (issue: foundation).
#
# Imports a generated 200 000-entry Xtream catalog (live streams served by
# the simulated provider over loopback) and a 200 000-entry M3U playlist (a
# file written from the simulated provider's get.php), each into a fresh
# data dir, with the real `tunerpool provider add` command. Reports wall
# time and peak RSS (GNU time's %M) of that tunerpool process, and the
# sync's own duration. A second `provider sync` measures a re-sync in which
# every row already exists (the steady state of the 12 h schedule).
#
# Each scenario runs RUNS times (default 3), each first sync into a new data dir.
# Since the lineup (issue 11) a first sync also makes every stream a lineup
# channel (matching is on, as by default; there is nothing to join): the
# "lineup channels created" column. The process's CPU time and the machine's
# 1-minute load average are shown too: with other work on the two cores the
# wall time stretches while the CPU time stays.
#
# Usage: bench/import.sh [ENTRIES] [RUNS]   (default 200000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-3}
PORT=${BENCH_PORT:-19477}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }

cargo build --release -q -p tunerpool -p fakeprovider
T=${CARGO_TARGET_DIR:-target}
TP=$T/release/tunerpool
FP=$T/release/fakeprovider
work=$(mktemp -d)
trap 'kill $fp_pid 2>/dev/null || true; rm -rf "$work"' EXIT

$FP --listen 127.0.0.1:$PORT --accounts bench:bench:2 --channels "$N" --categories 50 --vod 0 --series 0 \
  >"$work/fp.log" 2>&1 &
fp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/_control/counters" >/dev/null 2>&1 && break; sleep 0.1; done

measure() { # label, data dir, command...
  local label=$1 dir=$2; shift 2
  /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" --data-dir "$dir" >"$work/out.json" 2>"$work/err" \
    || { cat "$work/err" >&2; exit 1; }
  read -r secs rss_kb user sys <"$work/time"
  local sync_ms entries created
  sync_ms=$(grep -o '"duration_ms": [0-9]*' "$work/out.json" | grep -o '[0-9]*$')
  entries=$(grep -o '"live": [0-9]*' "$work/out.json" | grep -o '[0-9]*$')
  created=$(grep -o '"created": [0-9]*' "$work/out.json" | grep -o '[0-9]*$')
  printf '| %s | %s | %s | %s s | %s ms | %s s | %d MB | %s |\n' "$label" "$entries" "$created" "$secs" "$sync_ms" \
    "$(echo "$user + $sys" | bc)" $((rss_kb / 1024)) "$(cut -d' ' -f1 /proc/loadavg)"
}

curl -fs "http://127.0.0.1:$PORT/get.php?username=bench&password=bench&type=m3u_plus&output=ts" -o "$work/big.m3u"
echo "machine: $(nproc) cores, $(uname -sr); entries: $N; M3U file: $(du -h "$work/big.m3u" | cut -f1)"
echo
echo "| import | entries | lineup channels created | wall (process) | sync | CPU (user+sys) | peak RSS | load |"
echo "|---|---|---|---|---|---|---|---|"
for run in $(seq "$RUNS"); do
  measure "Xtream, first sync (player_api over loopback)" "$work/x$run" \
    $TP provider add --name bench --kind xtream --url "http://127.0.0.1:$PORT" --username bench --password bench
  measure "Xtream, re-sync (all rows exist)" "$work/x$run" $TP provider sync bench
done
for run in $(seq "$RUNS"); do
  measure "M3U file, first sync" "$work/m$run" $TP provider add --name bench --kind m3u --url "$work/big.m3u"
  measure "M3U file, re-sync (all rows exist)" "$work/m$run" $TP provider sync bench
done
