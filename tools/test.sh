#!/usr/bin/env bash
# The README's test command: installs what is missing, runs every Bazel test, and prints
# "N passed, N failed" counted from the GoogleTest XML of this run's test targets.
#   tools/test.sh                      all tests, then each fuzzer for $FUZZ_SECONDS (30)
#   tools/test.sh --config=asan        all tests under ASan+UBSan
#   tools/test.sh //p9/...             a subset (target patterns and bazel flags pass through)
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT

flags=(); targets=()
for a in "$@"; do
  case "$a" in
    -*) flags+=("$a") ;;
    *) targets+=("$a") ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(//...)

log=$(mktemp)
bazel test "${flags[@]}" --test_output=errors --keep_going -- "${targets[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
tests=$(bazel query "tests(set(${targets[*]}))" 2>/dev/null)
testlogs=$(bazel info "${flags[@]}" bazel-testlogs 2>/dev/null)
# The whole suite also fuzzes each libFuzzer target briefly (clang, its own output base).
fuzz=()
if [ ${#flags[@]} -eq 0 ] && [ "${targets[*]}" = "//..." ]; then
  fuzzlog=$(mktemp)
  tools/fuzz.sh "${FUZZ_SECONDS:-30}" 2>&1 | tee "$fuzzlog"
  fuzz=(--fuzz-log "$fuzzlog")
fi
python3 tools/count_tests.py --bazel-log "$log" --testlogs "$testlogs" "${fuzz[@]}" $tests
count_rc=$?
rm -f "$log" "${fuzzlog:-}"
[ $rc -eq 0 ] && [ $count_rc -eq 0 ] && exit 0
exit 1
