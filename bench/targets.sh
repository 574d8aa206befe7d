#!/usr/bin/env bash
# Issue 7's ratio targets, measured in ROUNDS runs of just the p9_bench rows they compare,
# and judged per run (bench/targets.py): one number from one run is not a verdict on this
# machine, whose speed drifts by tens of percent over minutes.
#   bench/targets.sh [ROUNDS]      (default 5; about a minute per round)
# Run on a quiet machine (no build, no other benchmark). Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
tools/install-deps.sh
tools/host-features.sh
trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT
bazel build -c opt //bench:p9_bench //gofer:gofer >/dev/null 2>&1 ||
  bazel build -c opt //bench:p9_bench //gofer:gofer
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
out=$(mktemp -d /tmp/p9fs-targets.XXXXXX)
M=1048576
filter="^(floor/socketpair_bulk/($M|$((4 * M)))|floor/socketpair_rtt64(_process)?/|"
filter+="9p/(ours|diod)(-spin)?/read(_pipelined)?/($((64 * 1024))|$M|$((4 * M)))/|"
filter+="9p/ours/donated_read/[0-9]+/$M/|9p/ours(-spin)?/getattr_pinned/|"
filter+="9p/(ours|diod)(-spin)?/concurrent_getattr/)"
for r in $(seq "$rounds"); do
  # Random order within a round, so no row always runs just after the same other.
  (cd /tmp && "$bin/bench/p9_bench" --benchmark_filter="$filter" --benchmark_min_time=0.3 \
    --benchmark_enable_random_interleaving=true --benchmark_format=json \
    2>/dev/null >"$out/round$r.json")
  echo "round $r of $rounds done" >&2
done
python3 bench/targets.py "$out"/round*.json
echo "raw: $out" >&2
