// What a file system implements for the VFS: inodes, open files, the file system itself.
//
// Names passed to directory operations are single components, already checked by the VFS
// (non-empty, not "." or "..", no '/'). Inodes are shared_ptr-owned: the dentry cache, open
// files and in-flight operations hold references; an unlinked inode lives while referenced.
// Every method may be called concurrently; each implementation documents its locking.
#ifndef SENTRY_VFS_INODE_H_
#define SENTRY_VFS_INODE_H_

#include <sys/stat.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "p9/result.h"
#include "sentry/vfs/types.h"

namespace sentry::vfs {

using p9::Errno;
using p9::Result;

class Inode;

// An open file (what a file descriptor refers to).
class OpenFile {
 public:
  virtual ~OpenFile() = default;
  virtual Result<size_t> ReadAt(std::span<char> dst, uint64_t offset) = 0;
  virtual Result<size_t> WriteAt(std::span<const char> src, uint64_t offset) = 0;
  // Directory entries after cookie `offset` (0: from the start), in a stable order.
  virtual Result<std::vector<DirEntry>> Readdir(uint64_t offset) { (void)offset; return Errno(ENOTDIR); }
  virtual Result<void> Fsync() { return p9::Ok(); }
  // What close(2) owes: writes back data the file system holds for this file (a write-back
  // cache), so that the next opener and the host see it, without asking for durability.
  virtual Result<void> Flush() { return p9::Ok(); }
  // Whether Flush may have work to do for this open file (it holds writes back). If not,
  // a close need not reach the file system at all (the FUSE frontend then tells the kernel
  // not to send FLUSH).
  virtual bool FlushWritesBack() const { return false; }
  // Where the file system can name a host fd that holds bytes [offset, offset+len) exactly as
  // ReadAt would return them now (9P with fd donation and nothing newer held in the sandbox):
  // the fd and how many bytes of the range to take from it (fewer at the cached end of file).
  // A caller may then splice from the fd instead of copying through ReadAt. nullopt: use
  // ReadAt. The fd stays owned by the file and valid while it is open.
  struct HostExtent {
    int fd;
    size_t len;
  };
  virtual std::optional<HostExtent> ReadableHostExtent(uint64_t offset, size_t len) {
    (void)offset, (void)len;
    return std::nullopt;
  }
  // Host I/O (FUSE passthrough): a host fd on which the kernel may do all of this file's
  // reads and writes itself, and the inode whose data that is (the caller checks it is the
  // inode it opened: an overlay hands out its layers' files). nullopt: none. The fd stays
  // owned by the file and valid while it is open.
  struct HostIo {
    int fd;
    const Inode* inode;
  };
  virtual std::optional<HostIo> HostIoFile() const { return std::nullopt; }
  // From now until this file is closed its data is read and written on HostIoFile()'s fd,
  // not through ReadAt/WriteAt. The file system writes back what it holds for the file and
  // keeps what it caches coherent with I/O it does not see (size and times come from the
  // host while such a writable file is open). Only after HostIoFile() gave an fd.
  virtual Result<void> StartHostIo() { return Errno(EOPNOTSUPP); }
};

class Inode : public std::enable_shared_from_this<Inode> {
 public:
  virtual ~Inode() = default;

  virtual Result<Attr> GetAttr() = 0;
  virtual Result<void> SetAttr(const SetAttrRequest& req) = 0;
  // `flags` are open(2) flags minus O_CREAT/O_EXCL (the VFS handles those).
  virtual Result<std::unique_ptr<OpenFile>> Open(int flags) = 0;
  virtual Result<std::string> Readlink() { return Errno(EINVAL); }

  // Directory operations (ENOTDIR by default).
  virtual Result<std::shared_ptr<Inode>> Lookup(const std::string& name) {
    (void)name;
    return Errno(ENOTDIR);
  }
  // Creates regular file `name` and opens it with `flags` (open(2) flags without O_CREAT,
  // O_EXCL and O_TRUNC). The default is Mknod then Open; a file system that can create an
  // opened file at once (9P's Tlcreate) overrides it to save the second step.
  struct CreatedFile {
    std::shared_ptr<Inode> inode;
    std::unique_ptr<OpenFile> file;
  };
  virtual Result<CreatedFile> Create(const std::string& name, uint32_t mode, int flags,
                                     uint32_t uid, uint32_t gid) {
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, Mknod(name, S_IFREG | mode, 0, uid, gid));
    P9_ASSIGN_OR_RETURN(std::unique_ptr<OpenFile> file, inode->Open(flags));
    return CreatedFile{std::move(inode), std::move(file)};
  }
  // Creates a regular file, fifo, socket or device (mode has the type).
  virtual Result<std::shared_ptr<Inode>> Mknod(const std::string& name, uint32_t mode,
                                               uint64_t rdev, uint32_t uid, uint32_t gid) {
    (void)name, (void)mode, (void)rdev, (void)uid, (void)gid;
    return Errno(ENOTDIR);
  }
  virtual Result<std::shared_ptr<Inode>> Mkdir(const std::string& name, uint32_t mode,
                                               uint32_t uid, uint32_t gid) {
    (void)name, (void)mode, (void)uid, (void)gid;
    return Errno(ENOTDIR);
  }
  virtual Result<std::shared_ptr<Inode>> Symlink(const std::string& name,
                                                 const std::string& target, uint32_t uid,
                                                 uint32_t gid) {
    (void)name, (void)target, (void)uid, (void)gid;
    return Errno(ENOTDIR);
  }
  virtual Result<void> Link(const std::string& name, Inode& target) {
    (void)name, (void)target;
    return Errno(ENOTDIR);
  }
  // Removes a non-directory (EISDIR) or, with `dir`, an empty directory (ENOTDIR/ENOTEMPTY).
  virtual Result<void> Unlink(const std::string& name, bool dir) {
    (void)name, (void)dir;
    return Errno(ENOTDIR);
  }
  // Moves `oldname` here to `newname` in `newdir` (same file system), replacing a compatible
  // target as rename(2) does.
  virtual Result<void> Rename(const std::string& oldname, Inode& newdir,
                              const std::string& newname) {
    (void)oldname, (void)newdir, (void)newname;
    return Errno(ENOTDIR);
  }

  virtual Result<FsStat> StatFs() { return FsStat{}; }

  virtual Result<std::string> GetXattr(const std::string& name) {
    (void)name;
    return Errno(ENODATA);
  }
  virtual Result<std::vector<std::string>> ListXattr() { return std::vector<std::string>{}; }
  virtual Result<void> SetXattr(const std::string& name, const std::string& value, int flags) {
    (void)name, (void)value, (void)flags;
    return Errno(EOPNOTSUPP);
  }
  virtual Result<void> RemoveXattr(const std::string& name) {
    (void)name;
    return Errno(ENODATA);
  }

  // Dentry cache policy for lookups through this directory: true if a cached child may be
  // used without asking the file system again (every change goes through this VFS).
  virtual bool CacheLookups() const { return true; }
  // For file systems that do not cache: is the cached child `child` (named `name`) still what
  // `name` refers to? (remote_revalidating asks the gofer.)
  virtual bool Revalidate(const std::string& name, Inode& child) {
    (void)name, (void)child;
    return true;
  }
};

// A mounted file system's type-independent face.
class Filesystem {
 public:
  virtual ~Filesystem() = default;
  virtual std::string type() const = 0;  // "tmpfs", "9p", ...
  virtual std::shared_ptr<Inode> root() = 0;
};

}  // namespace sentry::vfs

#endif  // SENTRY_VFS_INODE_H_
