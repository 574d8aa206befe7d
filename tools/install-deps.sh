#!/usr/bin/env bash
# Installs every Debian package the project needs, only when something is missing.
set -euo pipefail
PKGS=(
  bazel-bootstrap g++ python3
  libboost-dev libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev
  libgtest-dev libgmock-dev libbenchmark-dev libfuse3-dev fuse3 libseccomp-dev
  diod
  qemu-system-x86 linux-image-amd64 busybox-static cpio xz-utils file
  bindfs bubblewrap proot fio gnuplot-nox bc
  clang-14 libclang-rt-14-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
