#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a bounded time on a
# copy of its seed corpus. Findings (crash-*, timeout-*, leak-*) land in the output directory.
#   tools/fuzz.sh [SECONDS] [TARGET...]    default 60 s each; targets: decoder server client
#   FUZZ_OUT=DIR tools/fuzz.sh ...         where findings and the grown corpora go
# Prints one line per target ("fuzz decoder: ok, 68450 runs in 60 s" or "... FOUND ...") and
# exits non-zero if anything was found. The build uses its own Bazel output base, so the gcc
# build's cache is untouched.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || exit 1
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decoder server client)
# One output base per checkout (Bazel ties an output base to its workspace).
base=${FUZZ_OUTPUT_BASE:-$HOME/.cache/p9fs-fuzz-bazel/$(pwd | md5sum | cut -c1-12)}
out=${FUZZ_OUT:-$(mktemp -d /tmp/p9fs-fuzz-out.XXXXXX)}
mkdir -p "$out"
bz=(bazel --output_base="$base")
trap '"${bz[@]}" shutdown >/dev/null 2>&1 || true' EXIT
# No convenience symlinks from this output base: bazel-bin & co. and bazel-<dir> would then
# point into it, and the next build in the main output base would load packages through
# the foreign bazel-<dir> link (only bazel-main is in .bazelignore) and fail.
nolinks=--symlink_prefix=/
labels=()
for t in "${targets[@]}"; do labels+=("//tests/fuzz:${t}_fuzzer"); done
if ! "${bz[@]}" build --config=fuzz "$nolinks" "${labels[@]}" >"$out/build.log" 2>&1; then
  tail -30 "$out/build.log"
  for t in "${targets[@]}"; do echo "fuzz $t: FAILED to build"; done
  exit 1
fi
bin=$("${bz[@]}" info --config=fuzz "$nolinks" bazel-bin 2>/dev/null)
bad=0
for t in "${targets[@]}"; do
  corpus="$out/corpus-$t"
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
  log="$out/$t.log"
  (cd "$out" && "$bin/tests/fuzz/${t}_fuzzer" -max_total_time="$secs" -timeout=60 \
     -artifact_prefix="$out/$t-" -print_final_stats=1 "$corpus" >"$log" 2>&1)
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  found=$(ls "$out" | grep -E "^$t-(crash|timeout|leak|oom)-" | head -3 | tr '\n' ' ')
  if [ $rc -eq 0 ] && [ -z "$found" ]; then
    echo "fuzz $t: ok, ${runs:-?} runs in $secs s"
  else
    echo "fuzz $t: FOUND (rc $rc) ${found}- see $log"
    grep -E "ERROR|SUMMARY" "$log" | head -5
    bad=1
  fi
done
exit $bad
