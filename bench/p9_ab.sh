#!/usr/bin/env bash
# Interleaved A/B of p9_bench rows across frozen builds: runs `p9_bench --benchmark_filter=FILTER`
# of each build in turn, ROUNDS times, and prints per row the median wall time per iteration
# (µs) with its range, a column per build. Interleaving matters: this machine's speed drifts
# by 10-40% over minutes, so back-to-back blocks mislead.
#   bench/p9_ab.sh FILTER ROUNDS DIR...
# Each DIR holds bench/p9_bench and gofer/gofer (copies of bazel-bin built -c opt), since
# p9_bench starts the gofer found beside it.
set -euo pipefail
filter=${1:?usage: bench/p9_ab.sh FILTER ROUNDS DIR...}; rounds=${2:?}; shift 2
[ $# -ge 1 ] || { echo "usage: bench/p9_ab.sh FILTER ROUNDS DIR..." >&2; exit 2; }
out=$(mktemp -d /tmp/p9_ab.XXXXXX)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for i in $(seq $#); do
    dir=${!i}
    (cd /tmp && "$dir/bench/p9_bench" --benchmark_filter="$filter" --benchmark_min_time=0.2 \
      --benchmark_format=json 2>/dev/null > "$out/$i.$r.json")
  done
done
python3 - "$out" "$@" <<'PY'
import collections, glob, json, statistics, sys
out, dirs = sys.argv[1], sys.argv[2:]
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for i, _ in enumerate(dirs, 1):
    for f in glob.glob(f"{out}/{i}.*.json"):
        for r in json.load(open(f))["benchmarks"]:
            if not r.get("error_occurred"):
                rows[r["name"].removesuffix("/real_time")][i].append(r["real_time"] / 1e3)
print("%-48s" % "benchmark (µs)" + "".join("%24s" % d.rstrip("/").split("/")[-1] for d in dirs))
for name, cols in rows.items():
    cells = ["%.1f [%.1f-%.1f]" % (statistics.median(v), min(v), max(v)) if (v := cols[i]) else "-"
             for i in range(1, len(dirs) + 1)]
    print("%-48s" % name + "".join("%24s" % c for c in cells))
PY
