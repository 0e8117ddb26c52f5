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
# The same imports run on each store backend in BENCH_BACKENDS (default
# "sqlite postgres"): SQLite is the file in each run's data dir; PostgreSQL
# is a server this script starts (initdb into a temp dir, a free port, as the
# `postgres` user when run as root; durable defaults: fsync and synchronous
# commit on) with a fresh database per run, given as store.url.
#
# BENCH_TUNERPOOL=path runs that tunerpool binary instead of this checkout's
# (to compare two builds in one session; an older one knows only SQLite).
#
# Usage: bench/import.sh [ENTRIES] [RUNS]   (default 200000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-3}
PORT=${BENCH_PORT:-19477}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }

if [ -n "${BENCH_TUNERPOOL:-}" ]; then cargo build --release -q -p fakeprovider
else cargo build --release -q -p tunerpool -p fakeprovider; fi
T=${CARGO_TARGET_DIR:-target}
TP=${BENCH_TUNERPOOL:-$T/release/tunerpool}
FP=$T/release/fakeprovider
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
work=$(mktemp -d)
pg_pid=
pg=$(mktemp -d)   # its own: the server's user must reach it
trap 'kill $fp_pid 2>/dev/null || true; [ -z "$pg_pid" ] || kill -INT $pg_pid 2>/dev/null; sleep 1; rm -rf "$work" "$pg"' EXIT

$FP --listen 127.0.0.1:$PORT --accounts bench:bench:2 --channels "$N" --categories 50 --vod 0 --series 0 \
  >"$work/fp.log" 2>&1 &
fp_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/_control/counters" >/dev/null 2>&1 && break; sleep 0.1; done

pg_bin() { # the PostgreSQL binary on PATH, else Debian's newest
  command -v "$1" 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}
start_postgres() {
  local initdb postgres as=() pg_port
  initdb=$(pg_bin initdb); postgres=$(pg_bin postgres)
  [ -n "$initdb" ] && [ -n "$postgres" ] || { echo "needs PostgreSQL: apt-get install -y postgresql" >&2; exit 1; }
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$pg"; as=(runuser -u postgres --); fi
  "${as[@]}" "$initdb" -D "$pg/data" -A trust -U tunerpool -E UTF8 >"$work/pg-init.log" 2>&1 \
    || { cat "$work/pg-init.log" >&2; exit 1; }
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$postgres" -D "$pg/data" -p "$pg_port" -k "$pg" -c listen_addresses=127.0.0.1 \
    >"$work/pg.log" 2>&1 &
  for _ in $(seq 100); do
    [ "$(sed -n 8p "$pg/data/postmaster.pid" 2>/dev/null | tr -d ' ')" = ready ] && break; sleep 0.1
  done
  pg_pid=$(head -n 1 "$pg/data/postmaster.pid")
  PG_BASE="postgres://tunerpool@127.0.0.1:$pg_port"
  echo "PostgreSQL: $("$postgres" --version), defaults (fsync on, synchronous_commit on), shared_buffers $(psql "$PG_BASE/postgres" -Atc 'SHOW shared_buffers')"
}
# A fresh store for one run: nothing for SQLite (the data dir's file), a new database for PostgreSQL.
store_url() { # backend, name
  case $1 in
    sqlite) echo "" ;;
    postgres) psql -q "$PG_BASE/postgres" -c "CREATE DATABASE $2" >/dev/null; echo "$PG_BASE/$2" ;;
  esac
}

measure() { # label, data dir, command...
  local label=$1 dir=$2; shift 2
  env ${STORE_URL:+TUNERPOOL_STORE_URL=$STORE_URL} \
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
case " $BACKENDS " in *" postgres "*) start_postgres ;; esac
echo
echo "| store | import | entries | lineup channels created | wall (process) | sync | CPU (user+sys) | peak RSS | load |"
echo "|---|---|---|---|---|---|---|---|---|"
for backend in $BACKENDS; do
  for run in $(seq "$RUNS"); do
    STORE_URL=$(store_url "$backend" "x$run")
    measure "$backend | Xtream, first sync (player_api over loopback)" "$work/$backend-x$run" \
      $TP provider add --name bench --kind xtream --url "http://127.0.0.1:$PORT" --username bench --password bench
    measure "$backend | Xtream, re-sync (all rows exist)" "$work/$backend-x$run" $TP provider sync bench
  done
  for run in $(seq "$RUNS"); do
    STORE_URL=$(store_url "$backend" "m$run")
    measure "$backend | M3U file, first sync" "$work/$backend-m$run" $TP provider add --name bench --kind m3u --url "$work/big.m3u"
    measure "$backend | M3U file, re-sync (all rows exist)" "$work/$backend-m$run" $TP provider sync bench
  done
done
