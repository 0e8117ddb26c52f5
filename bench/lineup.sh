#!/usr/bin/env bash
# Lineup matching benchmark (issue 11).
#
# Two simulated providers of N live streams each (default 50 000), half of
# them overlapping: A lists "Channel 1".."Channel N" with tvg-ids; B lists
# "UK: CHANNEL {N/2+1}".."UK: CHANNEL {N/2+N} HD" under other stream ids and
# without tvg-ids, so its first half can only join A's channels by
# normalized name. Each run adds both, into a fresh data dir, with the real
# `tunerpool provider add` (download, parse, write, match, in one sync) and
# reports wall time and peak RSS (GNU time's %M) of that process, the sync's
# own duration, and what the lineup did (joined / created).
#
# The 200 000-entry import with matching on is bench/import.sh; the lineup
# listings (get.php, get_live_streams) are bench/outputs.sh.
#
# Usage: bench/lineup.sh [N] [RUNS]   (default 50000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000}
RUNS=${2:-3}
PA=${BENCH_PORT_A:-19577}
PB=${BENCH_PORT_B:-19578}
T=${CARGO_TARGET_DIR:-target}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }

cargo build --release -q -p tunerpool -p fakeprovider
TP=$T/release/tunerpool
FP=$T/release/fakeprovider
work=$(mktemp -d)
trap 'kill $a_pid $b_pid 2>/dev/null || true; rm -rf "$work"' EXIT

$FP --listen 127.0.0.1:$PA --accounts a:a:2 --channels "$N" --categories 50 --vod 0 --series 0 >"$work/a.log" 2>&1 &
a_pid=$!
$FP --listen 127.0.0.1:$PB --accounts b:b:2 --channels "$N" --categories 50 --vod 0 --series 0 \
  --name-template 'UK: CHANNEL {i} HD' --name-offset $((N / 2)) --id-offset 10000000 --no-epg-ids >"$work/b.log" 2>&1 &
b_pid=$!
for port in $PA $PB; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/_control/counters" >/dev/null 2>&1 && break; sleep 0.1; done
done

num() { grep -o "\"$1\": [0-9]*" "$work/out.json" | head -1 | grep -o '[0-9]*$'; }
measure() { # label, data dir, command...
  local label=$1 dir=$2; shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" --data-dir "$dir" >"$work/out.json" 2>"$work/err" \
    || { cat "$work/err" >&2; exit 1; }
  read -r secs rss_kb <"$work/time"
  printf '| %s | %s | %s s | %s ms | %s | %s | %d MB | %s |\n' "$label" "$(num live)" "$secs" "$(num duration_ms)" \
    "$(num joined)" "$(num created)" $((rss_kb / 1024)) "$(cut -d' ' -f1 /proc/loadavg)"
}

echo "machine: $(nproc) cores, $(uname -sr); $N live streams per provider, $((N / 2)) overlapping"
echo
echo "| sync | streams | wall (process) | sync | joined | created | peak RSS | load |"
echo "|---|---|---|---|---|---|---|---|"
for run in $(seq "$RUNS"); do
  measure "A, first (every stream a new channel)" "$work/d$run" \
    $TP provider add --name A --kind xtream --url "http://127.0.0.1:$PA" --username a --password a
  measure "B, first (half join A's channels by name)" "$work/d$run" \
    $TP provider add --name B --kind xtream --url "http://127.0.0.1:$PB" --username b --password b
  measure "B, re-sync (all attached)" "$work/d$run" $TP provider sync B
done
