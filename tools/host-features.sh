#!/usr/bin/env bash
# Turns on the kernel features the sandbox uses where the kernel has them and they are off,
# saying what it changed. Run by the README's commands (tools/run.sh, tools/test.sh) and
# bench/run.sh; needs root. Without them everything still works, only slower.
#  - FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING): the fuse module ships it off
#    (parameter enable_uring). The sandbox then takes FUSE requests through per-CPU rings
#    (sentry/fuse/uring_queues.h) instead of /dev/fuse reads and writes.
set -uo pipefail
p=/sys/module/fuse/parameters/enable_uring
if [ -w "$p" ] && [ "$(cat "$p")" != Y ]; then
  if echo Y > "$p" 2>/dev/null; then
    echo "host-features: turned on FUSE over io_uring ($p)" >&2
  fi
fi
exit 0
