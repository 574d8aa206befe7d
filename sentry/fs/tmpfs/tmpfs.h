// tmpfs: a file system in memory (also the upper layer of overlays and the "mount-point
// tree" of the submount overlay).
//
// Locking: one mutex per file system guards every inode's metadata and names; operations
// are short and never call out while holding it. A regular file's bytes are its FileData's
// (file_data.h), read and written without that mutex.
#ifndef SENTRY_FS_TMPFS_TMPFS_H_
#define SENTRY_FS_TMPFS_TMPFS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "sentry/vfs/inode.h"

namespace sentry::fs {

struct TmpfsOptions {
  uint32_t mode = 01777;  // Of the root directory.
  uint32_t uid = 0;
  uint32_t gid = 0;
  // How many regular files may keep their bytes in a memfd (file_data.h: the kernel can
  // then do their I/O itself), within the process's budget; the rest keep them in memory.
  // 0 for an overlay's upper layer, whose files the FUSE frontend never passes through.
  size_t memfd_files = SIZE_MAX;
};

// Parses "mode=0755,uid=0,gid=0". Any other option, a malformed value or an "a=b=c" entry
// is EINVAL (with `error` set to a message naming it).
p9::Result<TmpfsOptions> ParseTmpfsOptions(const std::string& data, std::string* error);

class Tmpfs : public vfs::Filesystem {
 public:
  explicit Tmpfs(TmpfsOptions opts = {});
  ~Tmpfs() override;
  std::string type() const override { return "tmpfs"; }
  std::shared_ptr<vfs::Inode> root() override;
  // Files whose bytes are in a memfd now (TmpfsOptions::memfd_files).
  size_t memfd_files() const;

  struct State;  // Shared by the inodes; see tmpfs.cc.

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<vfs::Inode> root_;
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_TMPFS_TMPFS_H_
