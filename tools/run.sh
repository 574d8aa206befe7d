#!/usr/bin/env bash
# The README's main job: a real program in a sandbox whose files are served by the gofer.
#   tools/run.sh                 a shell one-liner: writes under /tmp (the sandbox's own tmpfs),
#                                lists and changes a bind-mounted demo directory, shows that /
#                                is read-only, and the host side of the change afterwards
#   tools/run.sh -- CMD ARGS...  CMD in the sandbox instead (host / read-only, cwd bound rw)
# Builds with Bazel first (installing Debian packages if missing); needs root (namespaces,
# FUSE). runsc itself: bazel-bin/sentry/runsc/runsc --help.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/host-features.sh
trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT
targets=(//sentry/runsc:runsc //gofer:gofer //sentry/sandbox:sandbox)
bazel build -c opt "${targets[@]}" >/dev/null 2>&1 || bazel build -c opt "${targets[@]}"
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
bazel shutdown >/dev/null 2>&1 || true
runsc=("$bin/sentry/runsc/runsc" --gofer="$bin/gofer/gofer" --sandbox="$bin/sentry/sandbox/sandbox")

if [ "${1:-}" = "--" ]; then
  shift
  exec "${runsc[@]}" do --bind="$PWD:$PWD" -- "$@"
fi

demo=$(mktemp -d /tmp/p9fs-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
echo "hello from the host" > "$demo/hello.txt"
mkdir "$demo/docs" && cp README.md "$demo/docs/"

echo "== runsc do --bind=$demo:/data --cwd=/data -- sh -c '...'"
set +e
"${runsc[@]}" do --bind="$demo:/data" --cwd=/data -- sh -c '
  echo "in the sandbox: $(uname -sr), pid $$, hostname $(hostname)"
  echo "scratch" > /tmp/scratch && echo "/tmp is ours: $(cat /tmp/scratch)"
  echo "-- ls -la /data (a bind mount served by the gofer)"; ls -la /data
  cat /data/hello.txt
  echo "written in the sandbox at $(date -u +%FT%TZ)" > /data/from-sandbox.txt
  echo "-- the root is the host /, read-only:"; touch /etc/sandbox-was-here 2>&1
  echo "-- python3 and find work too: $(python3 -c "print(sum(range(10)))") $(find /usr/share/doc -maxdepth 1 | wc -l) entries"'
rc=$?
set -e
echo "== sandbox exited with $rc; on the host, $demo now holds:"
ls -l "$demo"
cat "$demo/from-sandbox.txt"
[ ! -e /etc/sandbox-was-here ] && echo "== and /etc/sandbox-was-here does not exist on the host"
exit $rc
