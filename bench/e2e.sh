#!/usr/bin/env bash
# End-to-end workloads through the sandbox against native and the usual alternatives, on the
# same tree in the same run:
#   native   plain processes
#   runsc    our sandbox (runsc do, exclusive file access: FUSE -> sentry -> 9P -> gofer)
#   bwrap    bubblewrap namespaces (no file server: the host's own mounts)
#   proot    ptrace path translation
#   bindfs   a plain FUSE passthrough of the same directories
# Workloads: find over /usr; tar extract of a 10,000-file archive into a rw directory, and
# into a tmpfs (for runsc the sandbox's own /tmp: FUSE and the sentry with no gofer, the
# floor of our frontend; for the others the same tmpfs work tree as before); sequential read
# of a 1 GiB file; writing and reading back 1 GiB in that tmpfs (1 MiB blocks); 4 KiB
# random reads (fio, psync, 5 s). Each cell is the median of three runs.
#   bench/e2e.sh BINDIR [RESULTS.md]    BINDIR holds runsc, gofer and sandbox (bazel-bin tree)
set -euo pipefail
bin=${1:?usage: bench/e2e.sh BAZEL_BIN [OUT.md]}
out=${2:-/dev/stdout}
runsc=("$bin/sentry/runsc/runsc" --gofer="$bin/gofer/gofer" --sandbox="$bin/sentry/sandbox/sandbox")

# The work tree lives in tmpfs: on these VMs the virtual disk's write-back makes tar x onto
# ext4 vary tenfold between runs, and the file system stack is what is measured here.
W=$(mktemp -d /dev/shm/p9fs-e2e.XXXXXX)
B=$W/bindfs
cleanup() {
  umount "$B/usr" 2>/dev/null || true
  umount "$B/w" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/data" "$W/out" "$W/gen" "$B/usr" "$B/w"
# The 10,000-file archive: 100 directories of 100 small files.
for d in $(seq 1 100); do
  mkdir -p "$W/gen/d$d"
  for f in $(seq 1 100); do echo "file $d/$f" > "$W/gen/d$d/f$f"; done
done
tar cf "$W/data/10k.tar" -C "$W/gen" .
rm -rf "$W/gen"
dd if=/dev/zero of="$W/data/big" bs=1M count=1024 status=none
cat "$W/data/big" > /dev/null  # Cached: every runner reads from the page cache.

bindfs -o ro /usr "$B/usr"
bindfs "$W" "$B/w"

# Each workload with placeholders @USR@ (where /usr is) and @W@ (the work tree).
declare -A work=(
  [find_usr]='find @USR@ > /dev/null'
  [tar_x_10k]='rm -rf @W@/out/x && mkdir @W@/out/x && tar xf @W@/data/10k.tar -C @W@/out/x'
  [tar_x_10k_tmpfs]='rm -rf @T@/x && mkdir -p @T@/x && tar xf @W@/data/10k.tar -C @T@/x'
  [seq_read_1g]='cat @W@/data/big > /dev/null'
  [tmpfs_write_read_1g]='mkdir -p @T@ && dd if=/dev/zero of=@T@/big bs=1M count=1024 status=none && cat @T@/big > /dev/null && rm @T@/big'
  [fio_randread_4k]='fio --name=r --filename=@W@/data/big --rw=randread --bs=4k --size=1G --runtime=5 --time_based --ioengine=psync --output-format=terse --terse-version=3 | cut -d";" -f8'
)
order=(find_usr tar_x_10k tar_x_10k_tmpfs seq_read_1g tmpfs_write_read_1g fio_randread_4k)
runners=(native runsc bwrap proot bindfs)

run() {  # runner workload -> prints "seconds" (or IOPS for fio)
  local r=$1 cmd=${work[$2]} usr=/usr w=$W t=$W/out/t
  if [ "$r" = bindfs ]; then usr=$B/usr; w=$B/w; t=$B/w/out/t; fi
  if [ "$r" = runsc ]; then w=/w; t=/tmp/t; fi  # The sandbox has its own /dev: bound elsewhere.
  cmd=${cmd//@USR@/$usr}
  cmd=${cmd//@W@/$w}
  cmd=${cmd//@T@/$t}
  local t0 t1 o
  t0=$(date +%s.%N)
  case $r in
    native) o=$(sh -c "$cmd") ;;
    runsc) o=$("${runsc[@]}" do --bind="$W:/w" -- sh -c "$cmd") ;;
    bwrap) o=$(bwrap --ro-bind / / --dev /dev --proc /proc --bind "$W" "$W" -- sh -c "$cmd") ;;
    proot) o=$(proot sh -c "$cmd") ;;
    bindfs) o=$(sh -c "$cmd") ;;
  esac
  t1=$(date +%s.%N)
  if [ "$2" = fio_randread_4k ]; then echo "$o"; else echo "$t1 - $t0" | bc -l | xargs printf '%.2f'; fi
}

{
  header="| workload"
  for r in "${runners[@]}"; do header+=" | $r"; done
  echo "$header | runsc/native |"
  echo "|---|---|---|---|---|---|---|"
  for w in "${order[@]}"; do
    declare -A res=()
    run native "$w" >/dev/null 2>&1 || true  # Warm caches: no runner pays for the first touch.
    line="| $w"
    for r in "${runners[@]}"; do
      # The median of three runs: single runs on this shared VM vary by 10-40%.
      res[$r]=$(for i in 1 2 3; do run "$r" "$w" 2>/dev/null || echo fail; echo; done |
                grep -v '^$' | sort -g | sed -n 2p)
      line+=" | ${res[$r]}"
    done
    ratio=$(echo "${res[runsc]} / ${res[native]}" | bc -l 2>/dev/null | xargs printf '%.2f' 2>/dev/null || echo -)
    echo "$line | ${ratio}x |"
  done
  echo
  echo "Seconds (lower is better), except fio_randread_4k: read IOPS (higher is better)."
  echo "Each cell: the median of three runs."
} | tee "$out"
