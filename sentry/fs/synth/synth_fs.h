// SynthFs: small read-only file systems built in code (proc, sysfs, devtmpfs, devpts and the
// read-only "mount-point tree" of the submount overlay). Nodes are directories, files whose
// contents come from a function (evaluated at open), symlinks, and character devices whose
// reads and writes are handled in code (/dev/null, zero, full, random...).
//
// Structure is fixed after construction (no locking needed to read it); content functions
// must be thread-safe.
#ifndef SENTRY_FS_SYNTH_SYNTH_FS_H_
#define SENTRY_FS_SYNTH_SYNTH_FS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sentry/vfs/inode.h"

namespace sentry::fs {

struct SynthNode {
  uint32_t mode = S_IFDIR | 0555;
  uint64_t rdev = 0;
  std::string target;                           // Symlinks.
  std::function<std::string()> content;         // Regular files.
  // Character devices: reads fill dst and return a count; writes return a count or an errno.
  std::function<p9::Result<size_t>(std::span<char>)> dev_read;
  std::function<p9::Result<size_t>(std::span<const char>)> dev_write;
  std::map<std::string, std::shared_ptr<SynthNode>> children;  // Directories.

  // Builders. Each returns the added child.
  std::shared_ptr<SynthNode> Dir(const std::string& name, uint32_t perm = 0555);
  std::shared_ptr<SynthNode> File(const std::string& name, std::function<std::string()> content,
                                  uint32_t perm = 0444);
  std::shared_ptr<SynthNode> Link(const std::string& name, const std::string& target);
  std::shared_ptr<SynthNode> CharDev(const std::string& name, uint32_t major, uint32_t minor,
                                     uint32_t perm,
                                     std::function<p9::Result<size_t>(std::span<char>)> rd,
                                     std::function<p9::Result<size_t>(std::span<const char>)> wr);
  // Creates every directory along "a/b/c" (absolute or relative).
  std::shared_ptr<SynthNode> MkdirAll(const std::string& path, uint32_t perm = 0555);
};

class SynthFs : public vfs::Filesystem {
 public:
  SynthFs(std::string type, std::shared_ptr<SynthNode> root);
  std::string type() const override { return type_; }
  std::shared_ptr<vfs::Inode> root() override { return root_; }

 private:
  std::string type_;
  std::shared_ptr<vfs::Inode> root_;
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_SYNTH_SYNTH_FS_H_
