#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz: 9P2000.L frames built by hand from the spec.

  tests/fuzz/make_seeds.py     (rewrites tests/fuzz/corpus/{decoder,server,client})

The server fuzzer's session already has fid 0 attached to the tree root (a, d/, d/b, d/e/,
and d/up, a symlink leaving the tree), so its seeds are operation sequences on fid 0.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def s(x):
    b = x.encode()
    return struct.pack("<H", len(b)) + b


def frame(typ, tag, body):
    return struct.pack("<IBH", 7 + len(body), typ, tag) + body


def walk(tag, fid, newfid, *names):
    return frame(110, tag, struct.pack("<IIH", fid, newfid, len(names)) + b"".join(s(n) for n in names))


def walkgetattr(tag, fid, newfid, *names):
    return frame(130, tag, struct.pack("<IIQH", fid, newfid, 0x7ff, len(names)) + b"".join(s(n) for n in names))


def readdirattr(tag, fid, newfid, flags, off, n, *names):
    return frame(132, tag, struct.pack("<IIIH", fid, newfid, flags, len(names)) + b"".join(s(x) for x in names) + struct.pack("<QI", off, n))


def lopen(tag, fid, flags): return frame(12, tag, struct.pack("<II", fid, flags))
def read(tag, fid, off, n): return frame(116, tag, struct.pack("<IQI", fid, off, n))
def write(tag, fid, off, data): return frame(118, tag, struct.pack("<IQI", fid, off, len(data)) + data)
def readdir(tag, fid, off, n): return frame(40, tag, struct.pack("<IQI", fid, off, n))
def getattr_(tag, fid): return frame(24, tag, struct.pack("<IQ", fid, 0x3fff))
def clunk(tag, fid): return frame(120, tag, struct.pack("<I", fid))
def flush(tag, old): return frame(108, tag, struct.pack("<H", old))
def lcreateat(tag, dfid, newfid, pathfid, name, flags, mode): return frame(134, tag, struct.pack("<III", dfid, newfid, pathfid) + s(name) + struct.pack("<III", flags, mode, 0))
def walkopen(tag, fid, newfid, flags, *names): return frame(136, tag, struct.pack("<IIIH", fid, newfid, flags, len(names)) + b"".join(s(n) for n in names))
def lcreate(tag, fid, name, flags, mode): return frame(14, tag, struct.pack("<I", fid) + s(name) + struct.pack("<III", flags, mode, 0))
def mkdir(tag, dfid, name): return frame(72, tag, struct.pack("<I", dfid) + s(name) + struct.pack("<II", 0o755, 0))
def symlink(tag, fid, name, target): return frame(16, tag, struct.pack("<I", fid) + s(name) + s(target) + struct.pack("<I", 0))
def unlinkat(tag, dfid, name, flags): return frame(76, tag, struct.pack("<I", dfid) + s(name) + struct.pack("<I", flags))
def renameat(tag, ofid, oname, nfid, nname): return frame(74, tag, struct.pack("<I", ofid) + s(oname) + struct.pack("<I", nfid) + s(nname))
def setattr_(tag, fid, valid, mode, size): return frame(26, tag, struct.pack("<IIIIIQQQQQ", fid, valid, mode, 0, 0, size, 0, 0, 0, 0))
def xattrwalk(tag, fid, newfid, name): return frame(30, tag, struct.pack("<II", fid, newfid) + s(name))
def xattrcreate(tag, fid, name, size): return frame(32, tag, struct.pack("<I", fid) + s(name) + struct.pack("<QI", size, 0))
def statfs(tag, fid): return frame(8, tag, struct.pack("<I", fid))
def readlink(tag, fid): return frame(22, tag, struct.pack("<I", fid))
def lock(tag, fid): return frame(52, tag, struct.pack("<IBIQQI", fid, 1, 0, 0, 0, 1) + s("c"))


SERVER = {
    "read_file": walk(2, 0, 1, "a") + lopen(3, 1, 0) + read(4, 1, 0, 100) + clunk(5, 1),
    "list_dir": walk(2, 0, 1, "d") + lopen(3, 1, 0o200000) + readdir(4, 1, 0, 4096) + readdir(5, 1, 0, 40),
    "list_unopened": walk(2, 0, 1, "d") + readdir(3, 1, 0, 4096),
    "readdirattr": readdirattr(2, 0, 0xFFFFFFFF, 1, 0, 4096) + readdirattr(3, 0, 1, 0, 0, 300, "d") + readdirattr(4, 1, 2, 0, 0, 4096) + readdirattr(5, 0, 3, 0, 0, 4096, "d", "up") + readdirattr(6, 0, 0, 0, 0, 4096, "..") + getattr_(7, 1),
    "walkgetattr": walkgetattr(2, 0, 1, "d", "e") + getattr_(3, 1) + walkgetattr(4, 0, 5, "d", "up", "x"),
    "create_write": lcreate(2, 0, "n", 2 | 0o100, 0o644) + write(3, 0, 0, b"hello") + read(4, 0, 0, 10),
    "lcreateat": lcreateat(2, 0, 1, 2, "n", 2, 0o644) + write(3, 1, 0, b"hi") + getattr_(4, 2) + lopen(5, 2, 0) + lcreateat(6, 0, 3, 3, "m", 2, 0o644) + lcreateat(7, 0, 4, 0xFFFFFFFF, "n", 2, 0o644) + lcreateat(8, 2, 5, 6, "x", 0, 0o644) + lcreateat(9, 0, 0, 6, "y", 0, 0o644),
    "walkopen": walkopen(2, 0, 1, 0, "a") + read(3, 1, 0, 10) + walkopen(4, 1, 2, 0) + walkopen(5, 0, 3, 0, "d", "missing") + walkopen(6, 0, 0, 0) + walkopen(7, 0, 4, 0o200000, "d", "e") + readdir(8, 4, 0, 4096) + walkopen(9, 0, 5, 0, "d", "up"),
    "create_in_clone": walk(2, 0, 1) + lcreate(3, 1, "n", 2 | 0o100, 0o644) + write(4, 1, 5, b"x" * 64) + clunk(5, 1),
    "mkdir_symlink": mkdir(2, 0, "m") + symlink(3, 0, "s", "/etc/passwd") + walk(4, 0, 1, "s") + readlink(5, 1) + lopen(6, 1, 0),
    "escape": walk(2, 0, 1, "d", "up") + lopen(3, 1, 0) + walk(4, 0, 2, "..") + walk(5, 0, 3, "d", "..", "a"),
    "rename_unlink": renameat(2, 0, "a", 0, "z") + unlinkat(3, 0, "z", 0) + unlinkat(4, 0, "d", 0x200),
    "setattr": walk(2, 0, 1, "a") + setattr_(3, 1, 0x1 | 0x8, 0o4777, 3) + getattr_(4, 1),
    "xattr": walk(2, 0, 1) + xattrcreate(3, 1, "user.k", 3) + write(4, 1, 0, b"abc") + clunk(5, 1) + xattrwalk(6, 0, 2, "user.k") + read(7, 2, 0, 10),
    "flush_reuse": walk(2, 0, 1, "a") + lopen(3, 1, 0) + read(4, 1, 0, 1 << 20) + flush(5, 4) + read(4, 1, 0, 1) + read(4, 1, 0, 1),
    "misc": statfs(2, 0) + lock(3, 0) + getattr_(4, 99) + clunk(5, 0) + getattr_(6, 0),
    "bad_frames": struct.pack("<IBH", 3, 110, 1) + struct.pack("<IBH", 1 << 30, 100, 2) + b"\x00" * 8,
}


def qid(t=0x80, v=0, path=1): return struct.pack("<BIQ", t, v, path)
def rversion(msize=65536, v="9P2000.L.cxx.4"): return frame(101, 0xFFFF, struct.pack("<I", msize) + s(v))
def rattach(tag): return frame(105, tag, qid())
def rwalk(tag, n): return frame(111, tag, struct.pack("<H", n) + b"".join(qid(0, 0, i + 2) for i in range(n)))
def rgetattr(tag): return frame(25, tag, struct.pack("<Q", 0x7ff) + qid() + struct.pack("<III", 0o40755, 0, 0) + struct.pack("<" + "Q" * 15, *([1] * 15)))
def rlerror(tag, e): return frame(7, tag, struct.pack("<I", e))
def rclunk(tag): return frame(121, tag, b"")
def rread(tag, data): return frame(117, tag, struct.pack("<I", len(data)) + data)
def rreaddirattr(tag): return frame(133, tag, qid() + struct.pack("<I", 25 + 153) + qid(0, 0, 9) + struct.pack("<QB", 1, 8) + s("f") + struct.pack("<Q", 0x7ff) + qid(0, 0, 9) + struct.pack("<III", 0o100644, 0, 0) + struct.pack("<" + "Q" * 15, *([1] * 15)))
def rreaddir(tag): return frame(41, tag, struct.pack("<I", 24 + 1) + qid(0, 0, 9) + struct.pack("<QB", 1, 8) + s("f")[:2] + b"f")


# The client fuzzer's input is the server's side of the conversation: Rversion first (tag
# NOTAG), then replies for the client's low tags in whatever order.
CLIENT = {
    "attach_only": rversion() + rattach(0),
    "plain_version": rversion(8192, "9P2000.L") + rattach(0) + rlerror(1, 2),
    "walks": rversion() + rattach(0) + rattach(1) + rattach(2) + rwalk(3, 2) + rgetattr(4) + rlerror(5, 2),
    "read": rversion() + rattach(0) + rwalk(1, 2) + frame(13, 2, qid(0) + struct.pack("<I", 0)) + rread(3, b"hello"),
    "readdirattr": rversion() + rattach(0) + rreaddirattr(1) + rreaddirattr(2) + rlerror(3, 20),
    "readdir_clunk": rversion() + rattach(0) + rreaddir(1) + rclunk(2) + rclunk(3),
    "wrong_tag": rversion() + rattach(7) + rgetattr(0),
    "garbage": rversion() + b"\x05\x00\x00\x00\x01\x00\x00" + rattach(0),
}


def main():
    for kind, seeds in (("server", SERVER), ("client", CLIENT)):
        os.makedirs(os.path.join(HERE, "corpus", kind), exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(HERE, "corpus", kind, name), "wb") as f:
                f.write(data)
    # The decoder takes one whole frame: every frame above, one file each.
    n = 0
    for data in SERVER.values():
        off = 0
        while off + 7 <= len(data):
            size = struct.unpack_from("<I", data, off)[0]
            if size < 7 or off + size > len(data):
                break
            with open(os.path.join(HERE, "corpus", "decoder", "f%03d" % n), "wb") as f:
                f.write(data[off:off + size])
            n += 1
            off += size


if __name__ == "__main__":
    main()
