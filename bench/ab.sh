#!/usr/bin/env bash
# Interleaved A/B of one workload through two builds of the sandbox: runs it with build A,
# then B, ROUNDS times, and prints each time and the medians. Interleaving matters here:
# this machine's speed drifts by 10-40% over minutes, so back-to-back blocks mislead.
#   bench/ab.sh DIR_A DIR_B ROUNDS 'shell command'
# DIR_A/DIR_B hold runsc, gofer and sandbox (e.g. copies of bazel-bin built -c opt at two
# commits). The work tree W (env, default /dev/shm/p9fs-ab) is bound at /w.
# URING_AB=1: A runs with the kernel's FUSE over io_uring off, B with it on (the fuse
# module's enable_uring; give the same build twice). It is left on afterwards.
set -euo pipefail
uring=/sys/module/fuse/parameters/enable_uring
a=${1:?usage: bench/ab.sh DIR_A DIR_B ROUNDS CMD}; b=${2:?}; rounds=${3:?}; cmd=${4:?}
W=${W:-/dev/shm/p9fs-ab}
mkdir -p "$W"
declare -A times=([A]="" [B]="")
for i in $(seq 1 "$rounds"); do
  for v in A B; do
    dir=$a; [ $v = B ] && dir=$b
    if [ "${URING_AB:-0}" = 1 ]; then
      if [ $v = A ]; then echo N > "$uring"; else echo Y > "$uring"; fi
    fi
    t0=$(date +%s.%N)
    "$dir/runsc" --gofer="$dir/gofer" --sandbox="$dir/sandbox" do --bind="$W:/w" -- sh -c "$cmd" >/dev/null
    t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc -l | xargs printf '%.3f')
    echo "round $i $v $t"
    times[$v]+="$t "
  done
done
for v in A B; do
  echo "$v median: $(echo ${times[$v]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
done
