// Mounts and the mount namespace, and path resolution across them.
//
// A Mount places a file system's root dentry over a mount point (a dentry of the parent
// mount). Resolution steps into the topmost mount on each dentry it reaches (mounts shadow
// what is below them), and ".." at a mount's root continues from its mount point, so ".."
// crosses mount boundaries as on Linux; ".." at the namespace root stays there.
//
// Locking: MountNamespace::mu_ guards the mount table; it is never held while calling into a
// file system.
#ifndef SENTRY_VFS_MOUNT_H_
#define SENTRY_VFS_MOUNT_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sentry/vfs/dentry.h"
#include "sentry/vfs/inode.h"

namespace sentry::vfs {

// Symlinks followed in one resolution before ELOOP (Linux's MAXSYMLINKS).
inline constexpr int kMaxSymlinks = 40;

struct MountFlags {
  bool read_only = false;
  bool noatime = false;
};

struct Mount {
  std::shared_ptr<Filesystem> fs;
  std::shared_ptr<Dentry> root;
  MountFlags flags;
  std::string source;  // Device name for /proc/mounts ("9pfs-/", "none", ...).
  // Where it is mounted (null for the namespace root). Pins the mount point dentry.
  std::shared_ptr<Mount> parent;
  std::shared_ptr<Dentry> mountpoint;
  uint64_t id = 0;  // Reported as st_dev.
};

// A location: a dentry as seen through a mount.
struct VirtualDentry {
  std::shared_ptr<Mount> mount;
  std::shared_ptr<Dentry> dentry;
  bool operator==(const VirtualDentry& o) const {
    return mount == o.mount && dentry == o.dentry;
  }
};

struct MountInfo {
  std::string path;
  std::string type;
  std::string source;
  MountFlags flags;
};

class MountNamespace {
 public:
  static Result<std::shared_ptr<MountNamespace>> Create(std::shared_ptr<Filesystem> root_fs,
                                                       MountFlags flags, std::string source);

  VirtualDentry root() const { return root_; }

  // Mounts `fs` over the directory `where`. ENOTDIR if it is not a directory.
  Result<std::shared_ptr<Mount>> MountAt(const VirtualDentry& where, std::shared_ptr<Filesystem> fs,
                                         MountFlags flags, std::string source);

  // Resolves `path` from `start` (absolute paths from the root). The last component is
  // followed if it is a symlink and `follow_last`. A trailing '/' requires a directory.
  Result<VirtualDentry> Resolve(const VirtualDentry& start, std::string_view path,
                                bool follow_last = true);
  // Resolves all but the last component; returns the parent directory and the last name
  // ("." or ".." possible; "" for "/").
  Result<std::pair<VirtualDentry, std::string>> ResolveParent(const VirtualDentry& start,
                                                              std::string_view path);

  // The topmost mount on (mount, dentry), if any.
  std::shared_ptr<Mount> MountedOn(const Mount* m, const Dentry* d) const;
  bool IsMountPoint(const VirtualDentry& vd) const { return MountedOn(vd.mount.get(), vd.dentry.get()) != nullptr; }
  // The absolute path of a location.
  std::string PathOf(const VirtualDentry& vd) const;
  std::vector<MountInfo> Mounts() const;
  // Every mount, in mount order (the root first).
  std::vector<std::shared_ptr<Mount>> AllMounts() const;

 private:
  MountNamespace() = default;
  VirtualDentry Enter(VirtualDentry vd) const;   // Steps into mounts on vd.
  VirtualDentry Parent(const VirtualDentry& vd) const;  // "..".
  Result<VirtualDentry> Walk(VirtualDentry cur, std::string_view path, bool follow_last,
                             int* symlinks);

  VirtualDentry root_;
  mutable std::mutex mu_;
  // (parent mount, mount point dentry) -> mounts there, in mount order (last is on top).
  std::map<std::pair<const Mount*, const Dentry*>, std::vector<std::shared_ptr<Mount>>>
      table_;                                   // Guarded by mu_.
  std::vector<std::shared_ptr<Mount>> all_;     // Guarded by mu_. In mount order.
  uint64_t next_id_ = 1;                        // Guarded by mu_.
};

}  // namespace sentry::vfs

#endif  // SENTRY_VFS_MOUNT_H_
