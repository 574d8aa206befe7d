#!/usr/bin/env bash
# The Linux kernel's 9p client against our gofer: boots a small qemu (TCG) guest whose init
# mounts the gofer (--listen tcp) at /mnt and runs tools/kernel9p/guest-test.sh there.
#   tools/kernel9p-test.sh [--gofer PATH] [--xml FILE] [--keep]
# Exit 0 when every guest check passed, 1 on a failure, 77 when qemu or a kernel is missing.
# --xml writes one JUnit <testcase> per guest check (for tools/count_tests.py).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
gofer=""; xml=""; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --gofer) gofer=$2; shift 2 ;;
    --xml) xml=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "kernel9p-test: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v qemu-system-x86_64 >/dev/null || { echo "kernel9p-test: qemu-system-x86_64 missing (tools/install-deps.sh installs it)" >&2; exit 77; }
ls /boot/vmlinuz-* >/dev/null 2>&1 || { echo "kernel9p-test: no kernel in /boot (linux-image-amd64)" >&2; exit 77; }
if [ -z "$gofer" ]; then
  (cd "$HERE/.." && bazel build //gofer:gofer >&2) || exit 1
  gofer=$(cd "$HERE/.." && bazel info bazel-bin)/gofer/gofer
fi
cache=${KERNEL9P_CACHE:-/tmp/p9fs-kernel9p}
OUT=$cache "$HERE/kernel9p/build-initramfs.sh" || exit $?

work=$(mktemp -d /tmp/kernel9p.XXXXXX)
root=$work/export
mkdir -p "$root"
cp "$HERE/kernel9p/guest-test.sh" "$root/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$gofer" --root="$root" --listen="tcp:127.0.0.1:$port" 2>"$work/gofer.log" &
gpid=$!
cleanup() {
  kill "$gpid" 2>/dev/null; wait "$gpid" 2>/dev/null
  [ $keep = 1 ] && echo "kernel9p-test: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
  sleep 0.05
done

start=$(date +%s)
timeout 300 qemu-system-x86_64 -accel tcg -m 512 -smp 2 -nographic -no-reboot -nodefaults \
  -serial stdio -kernel "$cache/vmlinux" -initrd "$cache/initramfs.cpio.gz" \
  -nic user,model=virtio-net-pci \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 p9port=$port p9aname=$root p9msize=262144" \
  </dev/null >"$work/console.log" 2>&1
qrc=$?
secs=$(( $(date +%s) - start ))
tr -d '\r' < "$work/console.log" | grep -E '^(PASS|FAIL|SKIP|RESULT|GUEST)' | sed 's/^/  /'

# The host side of the guest's last write.
host_ok=1
[ "$(cat "$root/kt/from-guest.txt" 2>/dev/null)" = "written by the Linux 9p client" ] || host_ok=0
[ $host_ok = 1 ] && echo "  PASS host_sees_guest_write" || echo "  FAIL host_sees_guest_write"

if [ -n "$xml" ]; then
  python3 - "$work/console.log" "$xml" "$host_ok" "$qrc" <<'PY'
import sys, xml.sax.saxutils as su
log, out, host_ok, qrc = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
cases = []
result_seen = False
for line in open(log, errors="replace").read().replace("\r", "").splitlines():
    if line.startswith("PASS "):
        cases.append((line[5:].strip(), None))
    elif line.startswith("FAIL "):
        name, _, why = line[5:].partition(":")
        cases.append((name.strip(), why.strip() or "failed"))
    elif line.startswith("SKIP "):
        cases.append((line[5:].partition(":")[0].strip(), "SKIP"))
    elif line.startswith("RESULT "):
        result_seen = True
cases.append(("host_sees_guest_write", None if host_ok else "host file missing or wrong"))
if not result_seen:
    cases.append(("guest_completed", f"no RESULT line (qemu exit {qrc}): boot, mount or hang"))
with open(out, "w") as f:
    fails = sum(1 for _, w in cases if w and w != "SKIP")
    f.write(f'<?xml version="1.0"?>\n<testsuites><testsuite name="kernel9p" tests="{len(cases)}" failures="{fails}">\n')
    for name, why in cases:
        n = su.quoteattr(name)
        if why is None:
            f.write(f'<testcase classname="kernel9p" name={n}/>\n')
        elif why == "SKIP":
            f.write(f'<testcase classname="kernel9p" name={n}><skipped/></testcase>\n')
        else:
            f.write(f'<testcase classname="kernel9p" name={n}><failure message={su.quoteattr(why)}/></testcase>\n')
    f.write("</testsuite></testsuites>\n")
PY
fi
echo "kernel9p-test: guest ran ${secs}s (qemu exit $qrc)"
if grep -q '^RESULT .* 0 failed' <(tr -d '\r' < "$work/console.log") && [ $host_ok = 1 ]; then
  exit 0
fi
echo "kernel9p-test: FAILED; console tail:" >&2
tail -20 "$work/console.log" >&2
echo "kernel9p-test: gofer log tail:" >&2
tail -20 "$work/gofer.log" >&2
exit 1
