#!/bin/sh
# Builds the guest for the Linux-kernel 9p client test into $OUT (default
# /tmp/p9fs-kernel9p): an ELF vmlinux (PVH boot avoids slow in-guest decompression) and a
# busybox initramfs with the 9p, 9pnet and virtio-net modules and our init. Rebuilt only
# when the kernel or init changes.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/p9fs-kernel9p}
K=${K:-$(ls /lib/modules | sort -V | tail -1)}
[ -n "$K" ] && [ -f "/boot/vmlinuz-$K" ] || { echo "build-initramfs: no kernel in /boot" >&2; exit 77; }
stamp="$K $(cat "$HERE/init" "$0" | md5sum | cut -d' ' -f1)"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$stamp" ] && [ -f "$OUT/vmlinux" ]; then exit 0; fi
rm -rf "$OUT"; mkdir -p "$OUT"
R=$OUT/rootfs
mkdir -p "$R/bin" "$R/lib/modules" "$R/proc" "$R/sys" "$R/dev" "$R/mnt" "$R/tmp"
cp /bin/busybox "$R/bin/busybox"
M=/lib/modules/$K/kernel
# Dependencies first: insmod does not resolve them.
MODS="fs/netfs/netfs fs/fscache/fscache net/9p/9pnet net/9p/9pnet_fd fs/9p/9p
      drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev
      drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci
      net/core/failover drivers/net/net_failover drivers/net/virtio_net"
order=""
for m in $MODS; do
  f=$M/$m.ko
  [ -f "$f" ] || f=$f.xz
  [ -f "$f" ] || { echo "build-initramfs: (built in or absent) $m" >&2; continue; }
  name=$(basename "$m")
  case $f in *.xz) xz -dc "$f" > "$R/lib/modules/$name.ko" ;; *) cp "$f" "$R/lib/modules/$name.ko" ;; esac
  order="$order $name"
done
echo "$order" > "$R/lib/modules/order"
cp "$HERE/init" "$R/init"
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initramfs.cpio.gz"
# The ELF payload of the bzImage: find the xz stream and decompress it.
off=$(grep -abo "$(printf '\3757zXZ\000')" "/boot/vmlinuz-$K" | head -1 | cut -d: -f1)
tail -c +$((off + 1)) "/boot/vmlinuz-$K" | xz -dc 2>/dev/null > "$OUT/vmlinux" || true
file "$OUT/vmlinux" | grep -q ELF || { echo "build-initramfs: could not extract vmlinux" >&2; exit 1; }
echo "$stamp" > "$OUT/stamp"
