// Plain types of the sentry VFS: attributes, attribute changes, directory entries.
#ifndef SENTRY_VFS_TYPES_H_
#define SENTRY_VFS_TYPES_H_

#include <sys/stat.h>
#include <time.h>

#include <cstdint>
#include <string>

namespace sentry::vfs {

// What stat(2) reports.
struct Attr {
  uint64_t ino = 0;
  uint64_t dev = 0;
  uint32_t mode = 0;  // Type and permission bits.
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 1;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blksize = 4096;
  uint64_t blocks = 0;
  timespec atime{};
  timespec mtime{};
  timespec ctime{};
};

// A change of attributes (setattr): only the fields named in `mask` apply.
struct SetAttrRequest {
  enum : uint32_t {
    kMode = 1 << 0,
    kUid = 1 << 1,
    kGid = 1 << 2,
    kSize = 1 << 3,
    kAtime = 1 << 4,     // Set atime to `atime`...
    kMtime = 1 << 5,     // ...mtime to `mtime`...
    kAtimeNow = 1 << 6,  // ...or to the current time.
    kMtimeNow = 1 << 7,
  };
  uint32_t mask = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  timespec atime{};
  timespec mtime{};
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint8_t type = 0;     // DT_*.
  uint64_t offset = 0;  // Cookie to continue after this entry.
};

struct FsStat {
  uint64_t type = 0;
  uint64_t bsize = 4096;
  uint64_t blocks = 0;
  uint64_t bfree = 0;
  uint64_t bavail = 0;
  uint64_t files = 0;
  uint64_t ffree = 0;
  uint64_t namelen = 255;
};

inline uint8_t DirentType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 4;    // DT_DIR
    case S_IFREG: return 8;    // DT_REG
    case S_IFLNK: return 10;   // DT_LNK
    case S_IFIFO: return 1;    // DT_FIFO
    case S_IFSOCK: return 12;  // DT_SOCK
    case S_IFCHR: return 2;    // DT_CHR
    case S_IFBLK: return 6;    // DT_BLK
  }
  return 0;
}

inline timespec Now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

}  // namespace sentry::vfs

#endif  // SENTRY_VFS_TYPES_H_
