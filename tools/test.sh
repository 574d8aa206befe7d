#!/usr/bin/env bash
# The README's test command: installs what is missing, runs every Bazel test, and prints
# "N passed, N failed" counted from the GoogleTest XML of this run's test targets.
#   tools/test.sh                      all tests, all again under ASan+UBSan (CI_SKIP_ASAN=1
#                                      skips that), then each fuzzer for $FUZZ_SECONDS (30)
#   tools/test.sh --config=asan        all tests under ASan+UBSan
#   tools/test.sh //p9/...             a subset (target patterns and bazel flags pass through)
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
tools/host-features.sh
trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT
# Convenience links left by another output base (an older tools/fuzz.sh made them) would be
# loaded as packages by //...; every build makes its own again.
find . -maxdepth 1 -name 'bazel-*' -type l -delete

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
full=0
[ ${#flags[@]} -eq 0 ] && [ "${targets[*]}" = "//..." ] && full=1
# The whole suite also runs once more under ASan+UBSan (unless CI_SKIP_ASAN=1), and fuzzes
# each libFuzzer target briefly (clang, its own output base).
arc=0
if [ $full -eq 1 ] && [ "${CI_SKIP_ASAN:-0}" != 1 ]; then
  alog=$(mktemp)
  bazel test --config=asan --test_output=errors --keep_going -- //... 2>&1 | tee "$alog"
  arc=${PIPESTATUS[0]}
  atestlogs=$(bazel info --config=asan bazel-testlogs 2>/dev/null)
fi
fuzz=()
if [ $full -eq 1 ]; then
  fuzzlog=$(mktemp)
  tools/fuzz.sh "${FUZZ_SECONDS:-30}" 2>&1 | tee "$fuzzlog"
  fuzz=(--fuzz-log "$fuzzlog")
fi
line=$(python3 tools/count_tests.py --bazel-log "$log" --testlogs "$testlogs" "${fuzz[@]}" $tests)
count_rc=$?
if [ -n "${alog:-}" ]; then
  echo "plain: $line"
  aline=$(python3 tools/count_tests.py --bazel-log "$alog" --testlogs "$atestlogs" $tests)
  [ $? -eq 0 ] || count_rc=1
  echo "asan+ubsan: $aline"
  # One line for CI: both runs together.
  line=$(python3 - "$line" "$aline" <<'PY'
import re, sys
tot = {"passed": 0, "failed": 0, "skipped": 0}
for l in sys.argv[1:]:
    for n, k in re.findall(r"(\d+) (passed|failed|skipped)", l):
        tot[k] += int(n)
out = f"{tot['passed']} passed, {tot['failed']} failed"
if tot["skipped"]:
    out += f", {tot['skipped']} skipped"
print(out)
PY
)
fi
echo "$line"
rm -f "$log" "${alog:-}" "${fuzzlog:-}"
[ $rc -eq 0 ] && [ $arc -eq 0 ] && [ $count_rc -eq 0 ] && exit 0
exit 1
