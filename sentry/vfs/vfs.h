// The file operations a kernel frontend (FUSE) needs, by path, on a mount namespace.
// Errors are POSIX errnos. Paths are resolved from `cwd` (relative) or the root.
//
// Permission checks are left to the frontend (FUSE default_permissions) and the gofer; the
// VFS enforces what belongs to it: read-only mounts (EROFS), mount points (EBUSY), rename
// and link constraints (EXDEV, EINVAL, EISDIR/ENOTDIR, ENOTEMPTY from the file system).
#ifndef SENTRY_VFS_VFS_H_
#define SENTRY_VFS_VFS_H_

#include <fcntl.h>

#include <memory>
#include <string>
#include <vector>

#include "sentry/vfs/mount.h"

namespace sentry::vfs {

// An open file with where it was opened.
struct FileHandle {
  VirtualDentry at;
  std::unique_ptr<OpenFile> file;
  int flags = 0;
  Result<size_t> ReadAt(std::span<char> dst, uint64_t off) { return file->ReadAt(dst, off); }
  Result<size_t> WriteAt(std::span<const char> src, uint64_t off);
};

class Vfs {
 public:
  explicit Vfs(std::shared_ptr<MountNamespace> ns) : ns_(std::move(ns)) {}
  MountNamespace& ns() { return *ns_; }
  VirtualDentry root() const { return ns_->root(); }

  Result<Attr> Stat(const VirtualDentry& cwd, std::string_view path, bool follow = true);
  Result<std::unique_ptr<FileHandle>> Open(const VirtualDentry& cwd, std::string_view path,
                                           int flags, uint32_t mode = 0644, uint32_t uid = 0,
                                           uint32_t gid = 0);
  // Mkdir, Mknod and Symlink return the new dentry. A dentry lives only while someone holds
  // it (the parent keeps a weak reference), so a caller that answers with the new file (the
  // FUSE server's entry reply) must use this one: resolving the name again would look the
  // file up afresh and lose what the file system knows of a file it just made.
  Result<VirtualDentry> Mkdir(const VirtualDentry& cwd, std::string_view path, uint32_t mode,
                              uint32_t uid = 0, uint32_t gid = 0);
  Result<VirtualDentry> Mknod(const VirtualDentry& cwd, std::string_view path, uint32_t mode,
                              uint64_t rdev, uint32_t uid = 0, uint32_t gid = 0);
  Result<VirtualDentry> Symlink(const VirtualDentry& cwd, std::string_view target,
                                std::string_view linkpath, uint32_t uid = 0, uint32_t gid = 0);
  Result<std::string> Readlink(const VirtualDentry& cwd, std::string_view path);
  Result<void> Link(const VirtualDentry& cwd, std::string_view oldpath, std::string_view newpath);
  Result<void> Rename(const VirtualDentry& cwd, std::string_view oldpath,
                      std::string_view newpath);
  Result<void> Unlink(const VirtualDentry& cwd, std::string_view path);
  Result<void> Rmdir(const VirtualDentry& cwd, std::string_view path);
  Result<void> SetAttr(const VirtualDentry& cwd, std::string_view path,
                       const SetAttrRequest& req, bool follow = true);
  Result<void> Truncate(const VirtualDentry& cwd, std::string_view path, uint64_t size);
  Result<FsStat> StatFs(const VirtualDentry& cwd, std::string_view path);
  // Every entry of a directory (with "." and ".." first).
  Result<std::vector<DirEntry>> ListDir(const VirtualDentry& cwd, std::string_view path);
  Result<std::string> GetXattr(const VirtualDentry& cwd, std::string_view path,
                               const std::string& name);
  Result<std::vector<std::string>> ListXattr(const VirtualDentry& cwd, std::string_view path);
  Result<void> SetXattr(const VirtualDentry& cwd, std::string_view path, const std::string& name,
                        const std::string& value, int flags);
  Result<void> RemoveXattr(const VirtualDentry& cwd, std::string_view path,
                           const std::string& name);
  // The same operations on a location already resolved, for a frontend that keeps its own
  // handles on dentries (FUSE node ids). The location may be unlinked (a file still open).
  Result<Attr> StatAt(const VirtualDentry& vd);
  Result<std::unique_ptr<FileHandle>> OpenAt(const VirtualDentry& vd, int flags);
  Result<void> SetAttrAt(const VirtualDentry& vd, const SetAttrRequest& req);
  Result<std::string> ReadlinkAt(const VirtualDentry& vd);
  Result<FsStat> StatFsAt(const VirtualDentry& vd);
  // Returns the new name's dentry (see Mkdir).
  Result<VirtualDentry> LinkAt(const VirtualDentry& old, const VirtualDentry& newparent,
                               const std::string& newname);
  Result<void> RenameAt(const VirtualDentry& oldparent, const std::string& oldname,
                        const VirtualDentry& newparent, const std::string& newname);
  Result<std::string> GetXattrAt(const VirtualDentry& vd, const std::string& name);
  Result<std::vector<std::string>> ListXattrAt(const VirtualDentry& vd);
  Result<void> SetXattrAt(const VirtualDentry& vd, const std::string& name,
                          const std::string& value, int flags);
  Result<void> RemoveXattrAt(const VirtualDentry& vd, const std::string& name);

  // Mounts `fs` at `path` (which must exist).
  Result<void> MountAt(std::string_view path, std::shared_ptr<Filesystem> fs, MountFlags flags,
                       std::string source);

 private:
  std::shared_ptr<MountNamespace> ns_;
};

}  // namespace sentry::vfs

#endif  // SENTRY_VFS_VFS_H_
