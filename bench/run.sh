#!/usr/bin/env bash
# Every benchmark, one command: builds -c opt, runs p9_bench (floors, our gofer, diod) and
# the end-to-end comparison, prints the tables, writes docs/throughput.png and
# docs/latency.png. Run on a quiet machine; results vary run to run (compare within a run).
#   bench/run.sh [--quick]     --quick: shorter p9_bench runs, no end-to-end
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/host-features.sh
trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT
targets=(//bench:p9_bench //sentry/runsc:runsc //gofer:gofer //sentry/sandbox:sandbox)
bazel build -c opt "${targets[@]}" >/dev/null 2>&1 || bazel build -c opt "${targets[@]}"
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
out=$(mktemp -d /tmp/p9fs-bench.XXXXXX)
min_time=0.5
[ "${1:-}" = --quick ] && min_time=0.1
(cd /tmp && "$bin/bench/p9_bench" --benchmark_min_time=$min_time \
  --benchmark_out="$out/p9_bench.json" --benchmark_out_format=json)
python3 bench/plot.py "$out/p9_bench.json" docs
echo "plots: docs/throughput.png docs/latency.png; raw: $out/p9_bench.json"
[ "${1:-}" = --quick ] && exit 0
bench/e2e.sh "$bin" "$out/e2e.md"
