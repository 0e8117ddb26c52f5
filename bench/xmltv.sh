#!/usr/bin/env bash
# XMLTV merge benchmark (issue 5): is memory flat in the size of the guide?
#
# 1. Generates synthetic guides of SIZES megabytes (default 10 and 100) with
#    the `xmltv_bench` example of tunerpool-formats: CHANNELS channels
#    (default 4200, the same for every size, so that only the guide grows;
#    CHANNELS=per-mb makes it 42 per MB, so that the catalog grows too), as
#    many programmes per channel as make up the size, with titles,
#    sub-titles, descriptions in several scripts, entities and seven
#    different timezone offsets.
# 2. Library: merges each guide the way the gateway does (3 channels in 4
#    taken, half of those under another id; two passes over the file) into a
#    file, under GNU time: wall time and peak RSS of that process.
# 3. End to end: for each size, a fresh data dir with an M3U provider whose
#    playlist has those 3 in 4 channels, the guide put in place as its stored
#    guide, `tunerpool serve`, then `curl /epg.xml` and `/epg.xml.gz` to
#    /dev/null. Reports each request's time and size, and the server's peak
#    RSS (VmHWM) after serving both.
#
# Usage: [CHANNELS=4200|per-mb] bench/xmltv.sh [SIZES...]   (default: 10 100)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-10 100}")
read -r -a SIZES <<<"${SIZES[*]}"
PORT=${BENCH_PORT:-19478}
CHANNELS=${CHANNELS:-4200}
channels_for() { if [ "$CHANNELS" = per-mb ]; then echo $(($1 * 42)); else echo "$CHANNELS"; fi; }
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }

cargo build --release -q -p tunerpool
cargo build --release -q -p tunerpool-formats --example xmltv_bench
TARGET=${CARGO_TARGET_DIR:-target}
TP=$TARGET/release/tunerpool
XB=$TARGET/release/examples/xmltv_bench
work=$(mktemp -d)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

echo "machine: $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg); channels: $CHANNELS"
echo
echo "Library merge (xmltv_bench merge: 2 passes, output to a file):"
echo
echo "| guide | channels in / out | programmes out | wall | throughput | peak RSS |"
echo "|---|---|---|---|---|---|"
for mb in "${SIZES[@]}"; do
  $XB generate "$work/g$mb.xml" "$mb" "$(channels_for "$mb")"
  size=$(stat -c %s "$work/g$mb.xml")
  chans=$(grep -c '<channel ' "$work/g$mb.xml")
  /usr/bin/time -f '%e %M' -o "$work/time" $XB merge "$work/o$mb.xml" "$(channels_for "$mb")" "$work/g$mb.xml" \
    >"$work/merge.json"
  read -r secs rss_kb <"$work/time"
  out_ch=$(grep -o '"channels": [0-9]*' "$work/merge.json" | grep -o '[0-9]*$')
  out_pr=$(grep -o '"programmes": [0-9]*' "$work/merge.json" | grep -o '[0-9]*$')
  printf '| %d MB | %d / %d | %d | %s s | %d MB/s | %.1f MB |\n' $((size / 1000000)) "$chans" "$out_ch" "$out_pr" \
    "$secs" "$(awk -v b="$size" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? b / 1e6 / s : 0) }')" \
    "$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')"
  rm -f "$work/o$mb.xml"
done

hwm() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# /epg.xml is the admin's (a player's guide is /xmltv.php with its user's login).
TOKEN=bench-admin-token-$(date +%s%N)
fetch() { # url -> "seconds bytes"
  curl -fsS -H "Authorization: Bearer $TOKEN" -o /dev/null -w '%{time_total} %{size_download}\n' "$1"
}

echo
echo "End to end (tunerpool serve, one M3U provider, curl over loopback):"
echo
echo "| guide | request | time | size | server peak RSS before → after |"
echo "|---|---|---|---|---|"
for mb in "${SIZES[@]}"; do
  data="$work/data$mb"
  $TP provider add --data-dir "$data" --name bench --kind m3u --url "$work/g$mb.xml.m3u" >/dev/null 2>"$work/add.log" \
    || { cat "$work/add.log" >&2; exit 1; }
  mkdir -p "$data/epg"
  cp "$work/g$mb.xml" "$data/epg/provider-1.xml"
  TUNERPOOL_ADMIN_TOKEN=$TOKEN $TP serve --listen "127.0.0.1:$PORT" --data-dir "$data" --log-level warn \
    >"$work/serve.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  before=$(hwm "$server_pid")
  read -r t1 b1 < <(fetch "http://127.0.0.1:$PORT/epg.xml")
  read -r t2 b2 < <(fetch "http://127.0.0.1:$PORT/epg.xml.gz")
  after=$(hwm "$server_pid")
  size=$(($(stat -c %s "$work/g$mb.xml") / 1000000))
  printf '| %d MB | /epg.xml | %.2f s | %d MB | %s MB → %s MB |\n' "$size" "$t1" $((b1 / 1000000)) "$before" "$after"
  printf '| %d MB | /epg.xml.gz | %.2f s | %.1f MB | |\n' "$size" "$t2" "$(awk -v b="$b2" 'BEGIN { printf "%.1f", b / 1e6 }')"
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  rm -rf "$data"
done
