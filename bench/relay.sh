#!/usr/bin/env bash
# Relay benchmark (issues 4 and 16).
#
# Separate processes on this machine: the simulated provider pacing every
# channel at 8 Mbit/s, `tunerpool serve`, `barecast` (the bare broadcast
# server of crates/loadgen: one upstream per channel, the relay's 32 KiB
# chunks to every viewer through a tokio broadcast, nothing else), and
# `loadgen` as the viewers.
# Scenarios, each run against tunerpool and then, the same loadgen command,
# against barecast (same provider, its own account), so every figure has a
# same-run reference and the ratio tunerpool ÷ bare:
#   one    — VIEWERS viewers of one channel (joining a running channel)
#   fifty  — VIEWERS viewers spread over 50 channels
#   big    — BIG viewers spread over 50 channels (only if BIG is given)
# and, tunerpool only:
#   cold   — 50 viewers, each starting a cold channel, vs the same 50 straight
#            from the provider (the upstream's own time to first byte)
# For each, loadgen's JSON report plus the server's CPU seconds (utime+stime
# from /proc) over the scenario and its peak RSS (VmHWM, over the process's
# life so far), the provider's CPU and how busy the whole machine was (all
# processes: the machine may be shared); at the end one summary table of the paired scenarios, with
# the time to first byte of viewers joining a running channel apart from
# that of the viewers asking before their channel ran (its cold start: tunerpool
# waits for a keyframe there, barecast for its first full chunk).
#
# Usage: bench/relay.sh [VIEWERS] [SECONDS] [BIG]   (default 1000 20, no big)
#   BIG may also come from BENCH_BIG, e.g. BENCH_BIG=3000 bench/relay.sh 1000 20
# BENCH_BIN_DIR=dir: use the release binaries already built there (tunerpool,
# fakeprovider, loadgen, barecast; e.g. two builds to compare, each with its
# own CARGO_TARGET_DIR) instead of building.
# BENCH_CLIENT=raw (the default) or reqwest: loadgen's HTTP client for the
# paired scenarios. raw reads each socket into one buffer per thread and costs
# the load generator half the CPU of reqwest and ~20 MB instead of ~1.2 GB at
# 2000 viewers, which decides whether this one machine delivers the rate at
# all (BENCHMARKS.md, "2000 and 3000 viewers: the load generator was the limit").
# BENCH_KEEP=dir: keep loadgen's reports (one row per viewer) there.
# BENCH_SCENARIOS="one fifty big cold" (the default): which scenarios run, e.g.
# BENCH_SCENARIOS=big to repeat only the big pair (BENCH_REPEAT=n times, one
# summary row pair each).
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${1:-1000}
SECS=${2:-20}
BIG=${3:-${BENCH_BIG:-}}
LG_CLIENT=${BENCH_CLIENT:-raw}
FP_PORT=${BENCH_FP_PORT:-19577}
TP_PORT=${BENCH_TP_PORT:-19578}
BARE_PORT=${BENCH_BARE_PORT:-19579}

# Every viewer is a socket in loadgen and in the server it watches: each
# process needs the largest scenario's viewers plus headroom.
most=$VIEWERS
if [ -n "$BIG" ] && [ "$BIG" -gt "$most" ]; then most=$BIG; fi
need=$((most + 1024))
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  echo "relay.sh: $most viewers need about $need open files, the limit is $(ulimit -n) (hard $(ulimit -Hn))" >&2
  exit 1
fi

if [ -n "${BENCH_BIN_DIR:-}" ]; then
  bin=$BENCH_BIN_DIR
else
  cargo build --release -q -p tunerpool -p fakeprovider -p loadgen
  bin=${CARGO_TARGET_DIR:-target}/release
fi
TP=$bin/tunerpool
FP=$bin/fakeprovider
LG=$bin/loadgen
BARE=$bin/barecast
for b in "$TP" "$FP" "$LG" "$BARE"; do
  [ -x "$b" ] || { echo "relay.sh: no binary $b" >&2; exit 1; }
done
work=$(mktemp -d)
tp_pid='' fp_pid='' bare_pid=''
cleanup() {
  for p in $tp_pid $bare_pid $fp_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp "$work"/*.json "$BENCH_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Two accounts of 60 connections: tunerpool's and barecast's, so the provider
# counts each one's upstream connections apart.
$FP --listen 127.0.0.1:$FP_PORT --accounts bench:bench:60,bare:bare:60 --channels 60 --categories 3 --vod 0 --series 0 \
  --bitrate-bps 8000000 >"$work/fp.log" 2>&1 &
fp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$FP_PORT/_control/counters" >/dev/null 2>&1 && break; sleep 0.1; done
$TP provider add --data-dir "$work/data" --name bench --kind xtream --url "http://127.0.0.1:$FP_PORT" \
  --username bench --password bench >/dev/null
# Streams need a login: the viewers are one downstream user with no limit of its own.
TUNERPOOL_USER_PASSWORD=viewer $TP user add --data-dir "$work/data" --username viewer --max-connections 0 >/dev/null
$TP serve --data-dir "$work/data" --listen 127.0.0.1:$TP_PORT --log-level warn >"$work/tp.log" 2>&1 &
tp_pid=$!
$BARE --listen 127.0.0.1:$BARE_PORT --upstream-template "http://127.0.0.1:$FP_PORT/live/bare/bare/{channel}.ts" \
  >"$work/bare.log" 2>&1 &
bare_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$TP_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$BARE_PORT/_stats" >/dev/null 2>&1 && break; sleep 0.1; done
# One login first, so the viewers' logins are cache hits rather than a burst of argon2 checks.
curl -fs "http://127.0.0.1:$TP_PORT/player_api.php?username=viewer&password=viewer" >/dev/null

cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
rss_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# The whole machine's busy and total CPU ticks (all processes, all cores), to
# show how much else ran during a scenario on a shared machine.
# Two words: busy ticks, total ticks (passed unquoted).
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
# barecast's count of chunks its lagging viewers skipped.
bare_skipped() { curl -fs "http://127.0.0.1:$BARE_PORT/_stats" | awk '$1 == "chunks_skipped" {print $2}'; }
# tunerpool's count of slow viewers' jumps to the live edge (its answer to barecast's skips).
tp_jumps() {
  curl -fs -H "Authorization: Bearer $(cat "$work/data/admin-token")" "http://127.0.0.1:$TP_PORT/metrics" |
    awk '$1 ~ /^tunerpool_viewer_jumps(_total)?$/ {print $2; found=1} END {if (!found) print 0}'
}

run() { # name, server label (tunerpool|bare), server pid, loadgen args...
  local name=$1 label=$2 pid=$3; shift 3
  local before skipped_before=0
  [ "$label" = bare ] && skipped_before=$(bare_skipped)
  [ "$label" = tunerpool ] && skipped_before=$(tp_jumps)
  before=$(cpu_s "$pid")
  local fp_before machine_before; fp_before=$(cpu_s "$fp_pid"); machine_before=$(machine_ticks)
  $LG "$@" --client "$LG_CLIENT" -q --report "$work/$name.json" >/dev/null
  local after skipped='' fp_after machine_after
  after=$(cpu_s "$pid")
  fp_after=$(cpu_s "$fp_pid"); machine_after=$(machine_ticks)
  [ "$label" = bare ] && skipped=$(($(bare_skipped) - skipped_before))
  [ "$label" = tunerpool ] && skipped=$(($(tp_jumps) - skipped_before))
  python3 - "$work/$name.json" "$name" "$label" "$before" "$after" "$(rss_mb "$pid")" "$skipped" \
    "$fp_before" "$fp_after" $machine_before $machine_after <<'PY'
import json, sys
path, name, label, before, after, rss, skipped, fp_before, fp_after = sys.argv[1:10]
mb_busy, mb_total, ma_busy, ma_total = map(float, sys.argv[10:14])
r = json.load(open(path))
cpu = float(after) - float(before); wall = r["totals"]["wall_s"]
fp_cpu = float(fp_after) - float(fp_before)
machine = 100 * (ma_busy - mb_busy) / (ma_total - mb_total)  # % of all cores
# The server's figures go next to loadgen's report, for the summary.
r["server"] = {"label": label, "cpu_s": cpu, "cpu_percent": 100 * cpu / wall, "peak_rss_mb": float(rss),
               # a lagging viewer's losses: the bare server's chunks skipped, tunerpool's jumps to the live edge
               "lagging": int(skipped) if skipped else None,
               "provider_cpu_percent": 100 * fp_cpu / wall, "machine_busy_percent": machine}
json.dump(r, open(path, "w"))
t, d, f, g, ts = r["totals"], r["delivered_mbps"], r["ttfb_us"], r["longest_gap_ms"], r["ts"]
print(f"## {name}: {t['clients']} clients, ok {t['ok']}, failed {t['failed']} {t['failed_by_reason']}")
print(f"  delivered Mbit/s per viewer: min {d['min']:.2f} p1 {d['p1']:.2f} p10 {d['p10']:.2f} p50 {d['p50']:.2f}")
print(f"  aggregate {t['aggregate_mbps']:.0f} Mbit/s; peak streaming {t['peak_streaming']}")
print(f"  TTFB ms: p50 {f['p50']/1000:.1f} p90 {f['p90']/1000:.1f} p99 {f['p99']/1000:.1f} max {f['max']/1000:.1f}")
print(f"  longest gap ms: p50 {g['p50']:.0f} p99 {g['p99']:.0f} max {g['max']:.0f}")
print(f"  TS: sync errors {ts['sync_errors']}, continuity errors {ts['continuity_errors']} in {ts['clients_with_continuity_errors']} clients")
print(f"  {label} CPU {cpu:.1f} s over {wall:.1f} s = {100*cpu/wall:.0f}% of one core; peak RSS {rss} MB"
      + (f"; {'chunks skipped' if label == 'bare' else 'jumps to the live edge'} by lagging viewers {skipped}" if skipped else ""))
print(f"  loadgen CPU {r['loadgen']['cpu_percent_of_one_core']:.0f}% of one core, peak RSS {r['loadgen']['peak_rss_mib']:.0f} MB")
print(f"  provider CPU {100 * fp_cpu / wall:.0f}% of one core; the whole machine {machine:.0f}% busy (all processes, all cores)")
PY
}

# One row per client in the reports, so the summary can tell a join to a
# running channel from the viewers that asked before their channel ran (its cold start).
pair() { # scenario name, loadgen args (without the URL)...
  local name=$1; shift
  set -- "$@" --per-client
  run "$name" tunerpool "$tp_pid" --url-template "http://127.0.0.1:$TP_PORT/live/viewer/viewer/{channel}.ts" "$@"
  sleep 5
  run "$name-bare" bare "$bare_pid" --url-template "http://127.0.0.1:$BARE_PORT/live/viewer/viewer/{channel}.ts" "$@"
  sleep 5
  scenarios+=("$name")
}

echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); viewers: $VIEWERS${BIG:+ (big: $BIG)};" \
  "reading time per viewer: ${SECS}s; 8 Mbit/s per channel"
# Before any viewer: what the scenarios' peak RSS adds to it is the sessions' buffers and the viewers.
echo "tunerpool RSS before any viewer: $(awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$tp_pid/status") MB"
scenarios=()
want=" ${BENCH_SCENARIOS:-one fifty big cold} "
repeat=${BENCH_REPEAT:-1}
wants() { [[ $want == *" $1 "* ]]; }
for i in $(seq "$repeat"); do
  suffix=''; [ "$repeat" -gt 1 ] && suffix=-$i
  if wants one; then pair "one$suffix" --channels 1 --clients "$VIEWERS" --ramp 10s --duration "${SECS}s"; fi
  if wants fifty; then pair "fifty$suffix" --channel-range 1-50 --clients "$VIEWERS" --ramp 10s --duration "${SECS}s"; fi
  if [ -n "$BIG" ] && wants big; then
    pair "big$suffix" --channel-range 1-50 --clients "$BIG" --ramp 10s --duration "${SECS}s"
  fi
done
if wants cold; then
  # Both cold rows through reqwest: the simulated provider's answer is chunked, which the raw client
  # does not read, and the two rows compare times to first byte, so they use the same client.
  LG_CLIENT=reqwest run cold tunerpool "$tp_pid" --url-template "http://127.0.0.1:$TP_PORT/live/viewer/viewer/{channel}.ts" \
    --channel-range 11-60 --clients 50 --ramp 5s --duration 3s
  LG_CLIENT=reqwest run cold-upstream tunerpool "$tp_pid" --url-template "http://127.0.0.1:$FP_PORT/live/bench/bench/{channel}.ts" \
    --channel-range 11-60 --clients 50 --ramp 5s --duration 3s
fi
echo "provider connections: $(curl -fs http://127.0.0.1:$FP_PORT/_control/counters)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# The servers' warnings and errors, if any (only those: tunerpool's log also
# holds the admin token it generated for this throwaway data dir; barecast
# logs nothing but its address and failed upstreams).
for log in tp:'WARN|ERROR' bare:'^barecast: channel'; do
  file=$work/${log%%:*}.log pattern=${log#*:}
  n=$(grep -cE "$pattern" "$file" || true)
  if [ "$n" -gt 0 ]; then
    echo "${log%%:*}.log: $n warnings or errors, the last 5:"; grep -E "$pattern" "$file" | tail -n 5 | cut -c1-300
  fi
done

echo
echo "## Summary: tunerpool and the bare broadcast server in the same run"
python3 - "$work" "${scenarios[@]}" <<'PY'
import json, math, sys
work, names = sys.argv[1], sys.argv[2:]

def pct(values, p):  # nearest rank, like loadgen's report
    v = sorted(values)
    return f"{v[max(0, math.ceil(p * len(v) / 100) - 1)] / 1000:.1f}" if v else "—"

def ttfb_split(r):
    """TTFB of viewers joining a running channel, and of those that asked before their channel ran: its
    first viewer and any that came before that viewer's first byte (they wait for the same cold start)."""
    running = {}  # channel -> ms after the run start when any of its viewers first got a byte
    for c in r["clients"]:
        if c["ttfb_us"] is not None:
            at = c["start_offset_ms"] + c["ttfb_us"] / 1000
            running[c["channel"]] = min(at, running.get(c["channel"], at))
    done = [c for c in r["clients"] if c["ttfb_us"] is not None]
    starting = [c for c in done if c["start_offset_ms"] < running[c["channel"]]]
    ids = {c["id"] for c in starting}
    join = [c["ttfb_us"] for c in done if c["id"] not in ids]
    cold = [c["ttfb_us"] for c in starting]
    return join, cold

print("| scenario | server | viewers ok | delivered Mbit/s min / p1 | join TTFB p50 / p99 ms | TTFB of viewers asking before their channel ran, p50 / max ms "
      "| CPU % of one core | peak RSS MB | lagging viewers' chunks skipped (bare) / jumps (tunerpool) | loadgen CPU % | machine busy % of all cores |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    tp, bare = (json.load(open(f"{work}/{n}{s}.json")) for s in ("", "-bare"))
    chans = len(tp["config"]["clients_per_channel"])
    scenario = f"{tp['totals']['clients']} viewers, {chans} channel{'' if chans == 1 else 's'}"
    for label, r in (("tunerpool", tp), ("bare", bare)):
        t, d, s = r["totals"], r["delivered_mbps"], r["server"]
        join, cold = ttfb_split(r)
        skipped = "—" if s["lagging"] is None else s["lagging"]
        print(f"| {scenario if label == 'tunerpool' else ''} | {label} | {t['ok']}/{t['clients']} "
              f"| {d['min']:.2f} / {d['p1']:.2f} | {pct(join, 50)} / {pct(join, 99)} "
              f"| {pct(cold, 50)} / {pct(cold, 100)} "
              f"| {s['cpu_percent']:.0f} | {s['peak_rss_mb']:.0f} | {skipped} "
              f"| {r['loadgen']['cpu_percent_of_one_core']:.0f} | {s['machine_busy_percent']:.0f} |")
    def ratio(key):
        a, b = tp["server"][key], bare["server"][key]
        return f"**{a / b:.2f}×**" if b else "—"
    print(f"| | tunerpool ÷ bare | | | | | {ratio('cpu_percent')} | {ratio('peak_rss_mb')} | | | |")
PY
