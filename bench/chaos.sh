#!/usr/bin/env bash
# Reliability harness, full run (issue 10): R1 storm, R2 churn, R3 kill -9, R4 faults,
# R5 slow viewer, R6 fuzz, S1 security — the release build of the real tunerpool binary
# against fakeprovider, a redis-server it starts itself, and load, all on this machine.
# Prints each scenario's table, and writes the same figures as JSON (with date and commit)
# to target/chaos/full-<date>.json. Exit status 1 if any target was missed.
#
# Usage: bench/chaos.sh [SCENARIOS]   e.g. bench/chaos.sh R1,R4   (default: all)
# Needs redis-server on the PATH. Takes about half an hour (R4 watches a stream that is cut
# every 10 s for 10 minutes; R2 is 3000 actions). CHAOS_SEED changes the random choices.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
command -v redis-server >/dev/null || { echo "redis-server is required (apt-get install redis-server)" >&2; exit 2; }

cargo build --release -q -p tunerpool -p chaos
only=()
if [ $# -gt 0 ]; then only=(--only "$1"); fi
out=target/chaos
mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
json="$out/full-$stamp.json"
echo "chaos full run: $stamp, commit $commit, $(nproc) cores"
status=0
target/release/chaos --scale full "${only[@]}" --json >"$json.tmp" || status=$?
python3 - "$json.tmp" "$json" "$stamp" "$commit" <<'PY'
import json, sys
reports = json.load(open(sys.argv[1]))
json.dump({"date": sys.argv[3], "commit": sys.argv[4], "scenarios": reports}, open(sys.argv[2], "w"), indent=1)
md = [f"Full run {sys.argv[3]}, commit {sys.argv[4]} (`bench/chaos.sh`, release build).", ""]
for r in reports:
    print(f"\n{r['id']} {r['title']} ({r['elapsed_s']} s)")
    settings = ", ".join(f"{k}={v}" for k, v in r["params"])
    print("  settings: " + settings)
    md += [f"### {r['id']} {r['title']}", "", f"{r['elapsed_s']} s; {settings}", "",
           "| figure | value | target | |", "|---|---|---|---|"]
    for f in r["figures"]:
        verdict = {True: "ok  ", False: "FAIL", None: "    "}[f["pass"]]
        target = f" (target {f['target']})" if f["target"] else ""
        value = f["value"] if isinstance(f["value"], str) else json.dumps(f["value"], ensure_ascii=False)
        print(f"  {verdict} {f['name']}: {value}{target}")
        cell = value.replace("|", "\\|")
        md.append(f"| {f['name']} | {cell} | {f['target'] or ''} | {verdict.strip()} |")
    md.append("")
open(sys.argv[2][:-5] + ".md", "w").write("\n".join(md))
PY
rm -f "$json.tmp"
echo
echo "figures: $json (and the same as Markdown tables: ${json%.json}.md)"
exit $status
