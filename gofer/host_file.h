// HostFile: a p9::File backed by a host file, reached safely from an attach point.
//
// Each HostFile holds an O_PATH|O_NOFOLLOW fd for its inode. Walks go one validated name at a
// time with openat(fd, name, O_PATH|O_NOFOLLOW); a symlink is never followed (walking through
// one gives ENOTDIR). Opening re-opens the *inode* through /proc/self/fd/N, so a rename or a
// swap of the name after the walk cannot redirect the open elsewhere. Operations on names
// (create, mkdir, unlink, rename, ...) are *at() calls on the directory's fd.
//
// The opened fd serves reads, writes, fstat and ftruncate, so a file unlinked while open keeps
// working as POSIX says. With the fd-donation extension the server hands a dup of the opened
// fd to the sandbox.
//
// FIFOs are opened with O_NONBLOCK so that an open never blocks a gofer thread; afterwards the
// flag is restored to what the client asked for (reads through 9P may then block a server
// thread, as the client asked; with fd donation the sandbox does its FIFO I/O on the donated fd).
//
// Read-only attach points refuse every mutation with EROFS.
//
// Thread-safety: all methods may be called concurrently; mu_ guards the open state and the
// (parent, name) location, which Rename updates.
#ifndef GOFER_HOST_FILE_H_
#define GOFER_HOST_FILE_H_

#include <sys/stat.h>

#include <memory>
#include <mutex>
#include <string>

#include "gofer/attach_point.h"
#include "p9/file.h"

namespace gofer {

class HostFile : public p9::File {
 public:
  // `fd` is an O_PATH fd of the file; `parent` an O_PATH fd of the directory it was reached
  // from under `name` (invalid for the root). `uid` is the attaching user's (kNoUid: none).
  // O_PATH fds are shared, never duplicated: by the clones of a fid (Walk of no names) and,
  // as the parent fd, by every child walked from a directory. A fid then costs the gofer one
  // host fd per distinct file, not two per fid, which bounds what a sandbox that caches many
  // dentries can pin.
  using SharedFd = std::shared_ptr<const p9::UniqueFd>;
  HostFile(std::shared_ptr<AttachPoint> ap, SharedFd fd, const struct stat& st, SharedFd parent,
           std::string name, uint32_t uid);

  p9::Result<p9::WalkResult> Walk(std::span<const std::string> names) override;
  p9::Result<p9::Rgetattr> GetAttr(uint64_t request_mask) override;
  p9::Result<void> SetAttr(const p9::Tsetattr& attr) override;
  // Regular files, directories and symlinks never block an open or a read for long.
  bool MayBlock() const override {
    return type_ != S_IFREG && type_ != S_IFDIR && type_ != S_IFLNK;
  }
  p9::Result<p9::OpenResult> Open(uint32_t flags) override;
  p9::Result<size_t> ReadAt(std::span<char> dst, uint64_t offset) override;
  // Regular files only: a FIFO or device read has no offset to splice from and may block.
  p9::Result<size_t> SpliceRead(int pipe_fd, size_t count, uint64_t offset) override;
  p9::Result<size_t> WriteAt(p9::Bytes src, uint64_t offset) override;
  p9::Result<std::vector<p9::Dirent>> Readdir(uint64_t offset, uint32_t count) override;
  // Opens the directory afresh ("." from the O_PATH fd) for the one listing.
  p9::Result<std::vector<p9::Dirent>> ReaddirUnopened(uint64_t offset, uint32_t count) override;
  // The same, entries with their statx (relative to the directory, never following a
  // symlink): every one with `all`, else subdirectories and entries of unknown type; ".",
  // ".." and entries gone meanwhile carry none.
  p9::Result<std::vector<p9::DirentAttr>> ReaddirAttr(uint64_t offset, uint32_t count,
                                                      bool all) override;
  p9::Result<p9::CreateResult> Create(const std::string& name, uint32_t flags, uint32_t mode,
                                      uint32_t gid) override;
  p9::Result<p9::Qid> Mkdir(const std::string& name, uint32_t mode, uint32_t gid) override;
  p9::Result<p9::Qid> Symlink(const std::string& name, const std::string& target,
                              uint32_t gid) override;
  p9::Result<p9::Qid> Mknod(const std::string& name, uint32_t mode, uint32_t major,
                            uint32_t minor, uint32_t gid) override;
  p9::Result<void> Link(p9::File& target, const std::string& name) override;
  p9::Result<void> Rename(p9::File& newdir, const std::string& name) override;
  p9::Result<void> RenameAt(const std::string& oldname, p9::File& newdir,
                            const std::string& newname) override;
  p9::Result<void> UnlinkAt(const std::string& name, uint32_t flags) override;
  p9::Result<void> Remove() override;
  p9::Result<std::string> Readlink() override;
  p9::Result<void> Fsync(bool datasync) override;
  p9::Result<p9::Rstatfs> StatFs() override;
  p9::Result<uint8_t> Lock(const p9::Tlock& req) override;
  p9::Result<p9::Rgetlock> GetLock(const p9::Tgetlock& req) override;
  p9::Result<std::string> GetXattr(const std::string& name) override;
  p9::Result<std::string> ListXattr() override;
  p9::Result<void> SetXattr(const std::string& name, const std::string& value,
                            uint32_t flags) override;
  p9::Result<void> RemoveXattr(const std::string& name) override;

  int path_fd() const { return fd_->get(); }

 private:
  p9::Result<void> CheckWritable() const;
  // The opened fd, or -1.
  int open_fd() const;
  // "/proc/self/fd/N" for the O_PATH fd: re-opens the same inode.
  std::string ProcPath() const;
  // Creates the HostFile for `name` in this directory after a create-like call.
  p9::Result<std::unique_ptr<HostFile>> Child(const std::string& name, p9::UniqueFd fd);
  // chown of a new child to the attaching user and `gid` (only when we may).
  // After mkdir, symlink or mknod made `name` (of S_IFMT `type`): its qid, and (root gofer)
  // the chown of a new child to the attaching user and `gid`, through an O_PATH fd of what
  // the name names now, and only if that still looks made just now (see the .cc): a file
  // renamed in under the name meanwhile keeps its owner.
  p9::Result<p9::Qid> Made(const std::string& name, mode_t type, uint32_t gid);
  // (Root gofer) gives the new file `fd` holds (its fstat `st`) to the attaching user and
  // `gid`, through the fd, unless it has them already.
  void GiveNew(int fd, const struct stat& st, uint32_t gid);
  // Entries of the opened directory `fd` after cookie `offset` (seeks there first unless
  // `fresh` and offset 0), at most about `count` bytes in wire form, each entry counting
  // `extra` bytes more than its dirent (Rreaddirattr's attributes).
  p9::Result<std::vector<p9::Dirent>> ReadEntries(int fd, uint64_t offset, uint32_t count,
                                                  bool fresh, size_t extra);
  static p9::Rgetattr ToRgetattr(QidMap& qids, const struct statx& sx);
  // Verifies that (parent_, name_) still names this inode. ESTALE if not.
  p9::Result<void> CheckLocation() const;  // REQUIRES: mu_ held.

  const std::shared_ptr<AttachPoint> ap_;
  const SharedFd fd_;      // O_PATH|O_NOFOLLOW. Never null.
  const mode_t type_;      // S_IFMT bits.
  const dev_t dev_;        // Of the file (its entries' qid paths are per device).
  const p9::Qid qid_;
  const uint32_t uid_;

  mutable std::mutex mu_;
  p9::UniqueFd open_;          // Guarded by mu_ (set once by Open/Create).
  uint32_t open_flags_ = 0;    // Guarded by mu_.
  SharedFd parent_;            // Guarded by mu_. O_PATH of the containing directory; null at the root.
  std::string name_;           // Guarded by mu_.
  std::mutex dir_mu_;          // Serializes lseek+getdents64 on the opened directory.
};

}  // namespace gofer

#endif  // GOFER_HOST_FILE_H_
