// ToAttr: a Tgetattr reply (or a Treaddirattr entry's attributes) as a vfs::Attr.
#include "sentry/fs/gofer/gofer_shared.h"

#include <ctime>

namespace sentry::fs {

using vfs::Attr;

Attr ToAttr(const p9::Rgetattr& r) {
  Attr a;
  a.ino = r.qid.path;
  a.mode = r.mode;
  a.uid = r.uid;
  a.gid = r.gid;
  a.nlink = r.nlink;
  a.rdev = r.rdev;
  a.size = r.size;
  a.blksize = r.blksize;
  a.blocks = r.blocks;
  a.atime = {static_cast<time_t>(r.atime_sec), static_cast<long>(r.atime_nsec)};
  a.mtime = {static_cast<time_t>(r.mtime_sec), static_cast<long>(r.mtime_nsec)};
  a.ctime = {static_cast<time_t>(r.ctime_sec), static_cast<long>(r.ctime_nsec)};
  return a;
}

}  // namespace sentry::fs
