#!/usr/bin/env bash
# The README's main job. Until the sandbox exists (issues 4-6) it shows the gofer at work:
# it serves DIR (default: a fresh demo tree) over 9P2000.L on a unix socket and drives it
# with our client: lists it, writes a file through 9P, reads it back, and shows the host
# side of the change.
#   tools/run.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT
bazel build -c opt //gofer:gofer //tools:p9 >/dev/null 2>&1 || bazel build -c opt //gofer:gofer //tools:p9
bin=$(bazel info -c opt bazel-bin 2>/dev/null)

work=$(mktemp -d /tmp/p9fs-run.XXXXXX)
dir=${1:-}
if [ -z "$dir" ]; then
  dir="$work/tree"
  mkdir -p "$dir/docs"
  echo "hello from the host" > "$dir/hello.txt"
  cp README.md "$dir/docs/"
  ln -s hello.txt "$dir/link-to-hello"
  ln -s / "$dir/escape-attempt"
fi
[ -d "$dir" ] || { echo "run.sh: $dir is not a directory" >&2; exit 1; }
sock="$work/gofer.sock"

"$bin/gofer/gofer" --root="$dir" --listen="unix:$sock" 2>"$work/gofer.log" &
gofer=$!
cleanup() { kill "$gofer" 2>/dev/null || true; wait "$gofer" 2>/dev/null || true; rm -rf "$work"; bazel shutdown >/dev/null 2>&1 || true; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "run.sh: gofer did not start:" >&2; cat "$work/gofer.log" >&2; exit 1; }

p9() { "$bin/tools/p9" --addr="unix:$sock" "$@"; }
echo "== ls -l / over 9P (gofer serving $dir)"
p9 ls -l /
echo "== write /written-by-9p.txt through 9P, read it back"
date -u +"written at %FT%TZ through the gofer" | p9 put written-by-9p.txt
p9 cat written-by-9p.txt
echo "== the host sees it: $dir/written-by-9p.txt"
cat "$dir/written-by-9p.txt"
echo "== a symlink to / is never followed by the gofer:"
p9 ls escape-attempt 2>&1 || true
p9 statfs
