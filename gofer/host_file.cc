#include "gofer/host_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "glog/logging.h"

namespace gofer {

using p9::Errno;
using p9::LastErrno;
using p9::Result;
using p9::UniqueFd;

namespace {

// The server validates names; a backend that can be handed a hostile name re-checks anyway,
// since this is the last line before the host file system.
bool SafeName(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos;
}

Result<struct stat> StatFd(int fd) {
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return LastErrno();
  return st;
}

Result<UniqueFd> OpenPath(int dirfd, const std::string& name) {
  if (!SafeName(name)) return Errno(EINVAL);
  int fd = ::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return LastErrno();
  return UniqueFd(fd);
}

Result<UniqueFd> Dup(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return LastErrno();
  return UniqueFd(d);
}

// Host open(2) flags for a Tlopen/Tlcreate request. The 9P2000.L values equal Linux's on
// the ABIs we build for; creation and path-resolution flags are ours to decide, not the
// client's.
int HostOpenFlags(uint32_t flags) {
  using namespace p9::open_flags;
  uint32_t keep = kAccMode | kTrunc | kAppend | kNonBlock | kDsync | kDirect | kLargeFile |
                  kNoAtime | kSync | kDirectory;
  int f = static_cast<int>(flags & keep);
  if ((f & O_ACCMODE) == O_ACCMODE) f &= ~O_ACCMODE;  // 3 is not a real access mode here.
  return f | O_CLOEXEC | O_NOCTTY;
}

bool WantsWrite(uint32_t flags) {
  uint32_t acc = flags & p9::open_flags::kAccMode;
  return acc == p9::open_flags::kWrOnly || acc == p9::open_flags::kRdWr ||
         (flags & p9::open_flags::kTrunc);
}

std::string ProcFdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// chmod and utimes of the inode an O_PATH fd names. fchmodat2 (Linux 6.6) and utimensat's
// AT_EMPTY_PATH take the fd itself, at a third of the cost of resolving /proc/self/fd/N
// (1.2-1.5 us against 3.6-3.7 here; tar x sets both on every file). Kernels without them
// refuse (ENOSYS, EINVAL) and get the magic link, which reaches the same inode; the first
// refusal is remembered.
constexpr long kSysFchmodat2 = 452;  // Not in glibc 2.36's headers; the same on every ABI.
std::atomic<bool> fd_chmod_refused{false};
std::atomic<bool> fd_utimens_refused{false};

bool Refused(std::atomic<bool>& flag) {
  if (errno != ENOSYS && errno != EINVAL) return false;
  flag.store(true, std::memory_order_relaxed);
  return true;
}

int ChmodFd(int fd, mode_t mode) {
  if (!fd_chmod_refused.load(std::memory_order_relaxed)) {
    if (syscall(kSysFchmodat2, fd, "", mode, AT_EMPTY_PATH) == 0) return 0;
    if (!Refused(fd_chmod_refused)) return -1;
  }
  return chmod(ProcFdPath(fd).c_str(), mode);
}

int UtimensFd(int fd, const struct timespec ts[2]) {
  if (!fd_utimens_refused.load(std::memory_order_relaxed)) {
    if (utimensat(fd, "", ts, AT_EMPTY_PATH) == 0) return 0;
    if (!Refused(fd_utimens_refused)) return -1;
  }
  return utimensat(AT_FDCWD, ProcFdPath(fd).c_str(), ts, 0);
}

}  // namespace

HostFile::HostFile(std::shared_ptr<AttachPoint> ap, SharedFd fd, const struct stat& st,
                   SharedFd parent, std::string name, uint32_t uid)
    : ap_(std::move(ap)),
      fd_(std::move(fd)),
      type_(st.st_mode & S_IFMT),
      dev_(st.st_dev),
      qid_(MakeQid(ap_->qids(), st)),
      uid_(uid),
      parent_(std::move(parent)),
      name_(std::move(name)) {}

Result<void> HostFile::CheckWritable() const {
  if (ap_->read_only()) return Errno(EROFS);
  return p9::Ok();
}

int HostFile::open_fd() const {
  std::lock_guard l(mu_);
  return open_.get();
}

std::string HostFile::ProcPath() const { return ProcFdPath(fd_->get()); }

Result<p9::WalkResult> HostFile::Walk(std::span<const std::string> names) {
  p9::WalkResult w;
  if (names.empty()) {
    P9_ASSIGN_OR_RETURN(struct stat st, StatFd(fd_->get()));
    SharedFd parent;
    std::string name;
    {
      std::lock_guard l(mu_);
      parent = parent_;
      name = name_;
    }
    w.file = std::make_unique<HostFile>(ap_, fd_, st, std::move(parent), name, uid_);
    return w;
  }
  SharedFd parent;
  SharedFd cur = fd_;
  struct stat st;
  for (size_t i = 0; i < names.size(); ++i) {
    // openat on a non-directory O_PATH fd fails with ENOTDIR: a symlink is never crossed.
    auto next = OpenPath(cur->get(), names[i]);
    if (!next.has_value()) {
      if (i == 0) return next.error();
      w.qids.shrink_to_fit();
      return w;  // Partial walk.
    }
    auto s = StatFd(next->get());
    if (!s.has_value()) {
      if (i == 0) return s.error();
      return w;
    }
    // The previous component becomes the parent: shared with other fids holding it.
    parent = i == 0 ? std::move(cur) : ap_->InternDir(st, std::move(cur));
    st = *s;
    w.qids.push_back(MakeQid(ap_->qids(), st));
    cur = std::make_shared<const UniqueFd>(std::move(*next));
  }
  w.file = std::make_unique<HostFile>(ap_, std::move(cur), st, std::move(parent), names.back(),
                                      uid_);
  return w;
}

// The attributes in `sx` as Rgetattr says them (gen and data_version have no host source,
// so they are never claimed valid).
p9::Rgetattr HostFile::ToRgetattr(QidMap& qids, const struct statx& sx) {
  struct stat st {};
  st.st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  st.st_ino = sx.stx_ino;
  st.st_mode = sx.stx_mode;
  p9::Rgetattr r;
  r.valid = p9::getattr::kBasic;
  r.qid = MakeQid(qids, st);
  r.mode = sx.stx_mode;
  r.uid = sx.stx_uid;
  r.gid = sx.stx_gid;
  r.nlink = sx.stx_nlink;
  r.rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
  r.size = sx.stx_size;
  r.blksize = sx.stx_blksize;
  r.blocks = sx.stx_blocks;
  r.atime_sec = sx.stx_atime.tv_sec;
  r.atime_nsec = sx.stx_atime.tv_nsec;
  r.mtime_sec = sx.stx_mtime.tv_sec;
  r.mtime_nsec = sx.stx_mtime.tv_nsec;
  r.ctime_sec = sx.stx_ctime.tv_sec;
  r.ctime_nsec = sx.stx_ctime.tv_nsec;
  if (sx.stx_mask & STATX_BTIME) {
    r.valid |= p9::getattr::kBtime;
    r.btime_sec = sx.stx_btime.tv_sec;
    r.btime_nsec = sx.stx_btime.tv_nsec;
  }
  return r;
}

Result<p9::Rgetattr> HostFile::GetAttr(uint64_t request_mask) {
  // statx gives everything in kBasic plus btime in one call.
  unsigned want = STATX_BASIC_STATS;
  if (request_mask & p9::getattr::kBtime) want |= STATX_BTIME;
  struct statx sx;
  int ofd = open_fd();
  // The opened fd still works after unlink; the O_PATH fd does too, but prefer the open one.
  int fd = ofd >= 0 ? ofd : fd_->get();
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, want, &sx) != 0) return LastErrno();
  return ToRgetattr(ap_->qids(), sx);
}

Result<void> HostFile::SetAttr(const p9::Tsetattr& a) {
  namespace sa = p9::setattr;
  if (a.valid & ~(sa::kMode | sa::kUid | sa::kGid | sa::kSize | sa::kAtime | sa::kMtime |
                  sa::kCtime | sa::kAtimeSet | sa::kMtimeSet)) {
    return Errno(EINVAL);
  }
  if ((a.valid & ~sa::kCtime) == 0) return p9::Ok();  // ctime alone: nothing to set.
  P9_RETURN_IF_ERROR(CheckWritable());
  if (a.valid & (sa::kUid | sa::kGid)) {
    uid_t uid = (a.valid & sa::kUid) ? a.uid : static_cast<uid_t>(-1);
    gid_t gid = (a.valid & sa::kGid) ? a.gid : static_cast<gid_t>(-1);
    if (fchownat(fd_->get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return LastErrno();
    }
  }
  if (a.valid & sa::kMode) {
    if (type_ == S_IFLNK) return Errno(EOPNOTSUPP);  // Linux has no lchmod.
    // Of this inode (not whatever the name is now).
    if (ChmodFd(fd_->get(), a.mode & 07777) != 0) return LastErrno();
  }
  if (a.valid & sa::kSize) {
    if (type_ == S_IFDIR) return Errno(EISDIR);
    if (type_ != S_IFREG) return Errno(EINVAL);
    int ofd = -1;
    {
      std::lock_guard l(mu_);
      uint32_t acc = open_flags_ & p9::open_flags::kAccMode;
      if (open_.valid() && acc != p9::open_flags::kRdOnly) ofd = open_.get();
    }
    if (ofd >= 0) {
      // Works for a file that was unlinked while open.
      if (ftruncate(ofd, static_cast<off_t>(a.size)) != 0) return LastErrno();
    } else {
      int fd = ::open(ProcPath().c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      if (fd < 0) return LastErrno();
      UniqueFd wfd(fd);
      if (ftruncate(fd, static_cast<off_t>(a.size)) != 0) return LastErrno();
    }
  }
  if (a.valid & (sa::kAtime | sa::kMtime)) {
    struct timespec ts[2];
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_OMIT;
    if (a.valid & sa::kAtime) {
      if (a.valid & sa::kAtimeSet) {
        ts[0] = {static_cast<time_t>(a.atime_sec), static_cast<long>(a.atime_nsec)};
      } else {
        ts[0].tv_nsec = UTIME_NOW;
      }
    }
    if (a.valid & sa::kMtime) {
      if (a.valid & sa::kMtimeSet) {
        ts[1] = {static_cast<time_t>(a.mtime_sec), static_cast<long>(a.mtime_nsec)};
      } else {
        ts[1].tv_nsec = UTIME_NOW;
      }
    }
    int rc;
    if (type_ == S_IFLNK) {
      std::lock_guard l(mu_);
      if (!(parent_ != nullptr)) return Errno(EINVAL);
      P9_RETURN_IF_ERROR(CheckLocation());
      rc = utimensat(parent_->get(), name_.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    } else {
      rc = UtimensFd(fd_->get(), ts);
    }
    if (rc != 0) return LastErrno();
  }
  return p9::Ok();
}

Result<p9::OpenResult> HostFile::Open(uint32_t flags) {
  if (type_ == S_IFLNK) return Errno(ELOOP);
  if (type_ == S_IFSOCK) return Errno(ENXIO);
  if (WantsWrite(flags)) {
    P9_RETURN_IF_ERROR(CheckWritable());
    if (type_ == S_IFDIR) return Errno(EISDIR);
  }
  int hflags = HostOpenFlags(flags);
  bool fifo = type_ == S_IFIFO;
  int fd = ::open(ProcPath().c_str(), hflags | (fifo ? O_NONBLOCK : 0));
  if (fd < 0) return LastErrno();
  UniqueFd ofd(fd);
  if (fifo && !(hflags & O_NONBLOCK)) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  p9::OpenResult r;
  r.qid = qid_;
  if (type_ == S_IFREG || type_ == S_IFDIR || fifo) {
    auto d = Dup(fd);
    if (d.has_value()) r.donate = std::move(*d);
  }
  std::lock_guard l(mu_);
  if (open_.valid()) return Errno(EINVAL);
  open_ = std::move(ofd);
  open_flags_ = flags;
  return r;
}

Result<size_t> HostFile::ReadAt(std::span<char> dst, uint64_t offset) {
  int fd = open_fd();
  if (fd < 0) return Errno(EBADF);
  for (;;) {
    ssize_t n = (type_ == S_IFREG || type_ == S_IFBLK)
                    ? ::pread(fd, dst.data(), dst.size(), static_cast<off_t>(offset))
                    : ::read(fd, dst.data(), dst.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return LastErrno();
  }
}

Result<size_t> HostFile::SpliceRead(int pipe_fd, size_t count, uint64_t offset) {
  int fd = open_fd();
  if (fd < 0) return Errno(EBADF);
  if (type_ != S_IFREG) return Errno(ENOSYS);
  for (;;) {
    loff_t off = static_cast<loff_t>(offset);
    ssize_t n = ::splice(fd, &off, pipe_fd, nullptr, count, SPLICE_F_NONBLOCK);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return LastErrno();
  }
}

Result<size_t> HostFile::WriteAt(p9::Bytes src, uint64_t offset) {
  int fd = open_fd();
  if (fd < 0) return Errno(EBADF);
  if (ap_->read_only()) return Errno(EROFS);
  for (;;) {
    // pwrite on an O_APPEND fd appends on Linux, as O_APPEND asks.
    ssize_t n = (type_ == S_IFREG || type_ == S_IFBLK)
                    ? ::pwrite(fd, src.data(), src.size(), static_cast<off_t>(offset))
                    : ::write(fd, src.data(), src.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return LastErrno();
  }
}

Result<std::vector<p9::Dirent>> HostFile::Readdir(uint64_t offset, uint32_t count) {
  int fd = open_fd();
  if (fd < 0) return Errno(EBADF);
  if (type_ != S_IFDIR) return Errno(ENOTDIR);
  std::lock_guard l(dir_mu_);
  return ReadEntries(fd, offset, count, false, 0);
}

Result<std::vector<p9::Dirent>> HostFile::ReaddirUnopened(uint64_t offset, uint32_t count) {
  if (type_ != S_IFDIR) return Errno(ENOTDIR);
  // The same inode as the O_PATH fd, with the same permission check as an open.
  int fd = ::openat(fd_->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return LastErrno();
  UniqueFd owned(fd);
  return ReadEntries(fd, offset, count, true, 0);
}

Result<std::vector<p9::DirentAttr>> HostFile::ReaddirAttr(uint64_t offset, uint32_t count,
                                                          bool all) {
  if (type_ != S_IFDIR) return Errno(ENOTDIR);
  int fd = ::openat(fd_->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return LastErrno();
  UniqueFd owned(fd);
  P9_ASSIGN_OR_RETURN(std::vector<p9::Dirent> ents,
                      ReadEntries(fd, offset, count, true, p9::kRgetattrSize));
  std::vector<p9::DirentAttr> out(ents.size());
  for (size_t i = 0; i < ents.size(); ++i) {
    out[i].dirent = std::move(ents[i]);
    const std::string& name = out[i].dirent.name;
    // "." and ".." carry no attributes: ".." of the attach root lies outside the tree.
    if (name == "." || name == "..") continue;
    const uint8_t type = out[i].dirent.type;
    if (!all && type != DT_DIR && type != DT_UNKNOWN) continue;
    // Relative to the directory, never following a symlink or crossing into an automount.
    struct statx sx;
    if (statx(fd, name.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS,
              &sx) == 0) {
      out[i].attr = ToRgetattr(ap_->qids(), sx);
    }  // Else gone meanwhile: valid stays 0.
  }
  return out;
}

Result<std::vector<p9::Dirent>> HostFile::ReadEntries(int fd, uint64_t offset, uint32_t count,
                                                      bool fresh, size_t extra) {
  // Cookies are the host's d_off values: stable across calls, as getdents64 defines them.
  if ((!fresh || offset != 0) && lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    return LastErrno();
  }
  std::vector<p9::Dirent> out;
  size_t used = 0;
  alignas(8) char buf[16384];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n < 0) return LastErrno();
    if (n == 0) return out;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + pos);
      pos += d->d_reclen;
      p9::Dirent e;
      e.name = d->d_name;
      e.offset = static_cast<uint64_t>(d->d_off);
      e.type = d->d_type;
      e.qid.type = d->d_type == DT_DIR   ? p9::kQtDir
                   : d->d_type == DT_LNK ? p9::kQtSymlink
                                         : p9::kQtFile;
      e.qid.path = ap_->qids().Path(dev_, d->d_ino);
      size_t sz = p9::DirentSize(e) + extra;
      if (used + sz > count && !out.empty()) {
        // Does not fit: the caller resumes at the previous entry's cookie.
        return out;
      }
      used += sz;
      out.push_back(std::move(e));
    }
  }
}

Result<p9::Qid> HostFile::Made(const std::string& name, mode_t type, uint32_t gid) {
  int fd = ::openat(fd_->get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return LastErrno();
  UniqueFd pfd(fd);
  P9_ASSIGN_OR_RETURN(struct stat st, StatFd(fd));
  // What a creation leaves: the type made, owned by us, one link (a directory: empty, so
  // at most 2, btrfs says 1). Anything else was renamed in under the name meanwhile (a
  // hard link to a file elsewhere, a directory of the tree): it keeps its owner.
  const bool fresh = (st.st_mode & S_IFMT) == type && st.st_uid == geteuid() &&
                     (type == S_IFDIR ? st.st_nlink <= 2 : st.st_nlink == 1);
  if (fresh) {
    GiveNew(fd, st, gid);
  } else if (geteuid() == 0) {
    LOG(WARNING) << "gofer: " << name << " was replaced as it was made; not chowned";
  }
  return MakeQid(ap_->qids(), st);  // The qid is of (dev, ino), which a chown keeps.
}

void HostFile::GiveNew(int fd, const struct stat& st, uint32_t gid) {
  if (geteuid() != 0) return;  // Unprivileged gofer: files belong to us.
  uid_t uid = uid_ == p9::kNoUid ? static_cast<uid_t>(-1) : uid_;
  gid_t g = gid == p9::kNoUid ? static_cast<gid_t>(-1) : gid;
  if ((uid == static_cast<uid_t>(-1) || uid == st.st_uid) &&
      (g == static_cast<gid_t>(-1) || g == st.st_gid)) {
    return;  // Already so (a root sandbox's files): no chown, no ctime change.
  }
  // Of the inode `fd` holds (a symlink itself, under O_PATH|O_NOFOLLOW), not of a name.
  if (fchownat(fd, "", uid, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    PLOG(WARNING) << "gofer: chown of a new file";
  }
}

Result<std::unique_ptr<HostFile>> HostFile::Child(const std::string& name, UniqueFd fd) {
  P9_ASSIGN_OR_RETURN(struct stat st, StatFd(fd.get()));
  return std::make_unique<HostFile>(ap_, std::make_shared<const UniqueFd>(std::move(fd)), st, fd_,
                                    name, uid_);
}

Result<p9::CreateResult> HostFile::Create(const std::string& name, uint32_t flags,
                                          uint32_t mode, uint32_t gid) {
  if (!SafeName(name)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  if (type_ != S_IFDIR) return Errno(ENOTDIR);
  int hflags = HostOpenFlags(flags) & ~O_DIRECTORY;
  int fd = ::openat(fd_->get(), name.c_str(), hflags | O_CREAT | O_EXCL | O_NOFOLLOW,
                    mode & 07777);
  if (fd < 0) return LastErrno();
  UniqueFd ofd(fd);
  // Of the file made, through its fd: a name may be swapped meanwhile.
  P9_ASSIGN_OR_RETURN(struct stat made, StatFd(fd));
  GiveNew(fd, made, gid);
  // The O_PATH fd for the new file comes from the opened one: same inode, no second lookup.
  int pfd = ::open(ProcFdPath(fd).c_str(), O_PATH | O_CLOEXEC);
  if (pfd < 0) return LastErrno();
  P9_ASSIGN_OR_RETURN(std::unique_ptr<HostFile> child, Child(name, UniqueFd(pfd)));
  p9::CreateResult r;
  r.qid = child->qid_;
  auto d = Dup(fd);
  if (d.has_value()) r.donate = std::move(*d);
  {
    std::lock_guard l(child->mu_);
    child->open_ = std::move(ofd);
    child->open_flags_ = flags;
  }
  r.file = std::move(child);
  return r;
}

Result<p9::Qid> HostFile::Mkdir(const std::string& name, uint32_t mode, uint32_t gid) {
  if (!SafeName(name)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  if (mkdirat(fd_->get(), name.c_str(), mode & 07777) != 0) return LastErrno();
  return Made(name, S_IFDIR, gid);
}

Result<p9::Qid> HostFile::Symlink(const std::string& name, const std::string& target,
                                  uint32_t gid) {
  if (!SafeName(name)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  // The target is stored, never followed by the gofer.
  if (symlinkat(target.c_str(), fd_->get(), name.c_str()) != 0) return LastErrno();
  return Made(name, S_IFLNK, gid);
}

Result<p9::Qid> HostFile::Mknod(const std::string& name, uint32_t mode, uint32_t major,
                                uint32_t minor, uint32_t gid) {
  if (!SafeName(name)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  mode_t type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK && type != 0) {
    return Errno(EINVAL);
  }
  if (type == S_IFREG || type == 0) {
    // A regular file is made opened, as Tlcreate makes one: its fd names the file made.
    int fd = ::openat(fd_->get(), name.c_str(),
                      O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
                      mode & 07777);
    if (fd < 0) return LastErrno();
    UniqueFd ofd(fd);
    P9_ASSIGN_OR_RETURN(struct stat st, StatFd(fd));
    GiveNew(fd, st, gid);
    return MakeQid(ap_->qids(), st);  // The qid is of (dev, ino), which a chown keeps.
  }
  if (mknodat(fd_->get(), name.c_str(), mode, makedev(major, minor)) != 0) return LastErrno();
  return Made(name, type, gid);
}

Result<void> HostFile::Link(p9::File& target, const std::string& name) {
  if (!SafeName(name)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  auto* t = dynamic_cast<HostFile*>(&target);
  if (t == nullptr || t->ap_ != ap_) return Errno(EXDEV);
  if (t->type_ == S_IFDIR) return Errno(EPERM);
  // Links the inode the target fid holds, not whatever its name points at now.
  if (linkat(t->fd_->get(), "", fd_->get(), name.c_str(), AT_EMPTY_PATH) != 0) {
    if (errno != ENOENT && errno != EPERM) return LastErrno();
    // Without CAP_DAC_READ_SEARCH AT_EMPTY_PATH fails; the magic link does the same.
    if (linkat(AT_FDCWD, t->ProcPath().c_str(), fd_->get(), name.c_str(), AT_SYMLINK_FOLLOW) !=
        0) {
      return LastErrno();
    }
  }
  return p9::Ok();
}

Result<void> HostFile::CheckLocation() const {
  if (!(parent_ != nullptr)) return Errno(EBUSY);  // The attach root has no name to act on.
  struct stat now, self;
  if (fstatat(parent_->get(), name_.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Errno(ESTALE) : LastErrno();
  }
  if (fstatat(fd_->get(), "", &self, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return LastErrno();
  }
  if (now.st_dev != self.st_dev || now.st_ino != self.st_ino) return Errno(ESTALE);
  return p9::Ok();
}

Result<void> HostFile::Rename(p9::File& newdir, const std::string& name) {
  if (!SafeName(name)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  auto* d = dynamic_cast<HostFile*>(&newdir);
  if (d == nullptr || d->ap_ != ap_) return Errno(EXDEV);
  SharedFd newparent = d->fd_;
  std::lock_guard l(mu_);
  P9_RETURN_IF_ERROR(CheckLocation());
  if (renameat(parent_->get(), name_.c_str(), d->fd_->get(), name.c_str()) != 0) {
    return LastErrno();
  }
  parent_ = std::move(newparent);
  name_ = name;
  return p9::Ok();
}

Result<void> HostFile::RenameAt(const std::string& oldname, p9::File& newdir,
                                const std::string& newname) {
  if (!SafeName(oldname) || !SafeName(newname)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  auto* d = dynamic_cast<HostFile*>(&newdir);
  if (d == nullptr || d->ap_ != ap_) return Errno(EXDEV);
  if (renameat(fd_->get(), oldname.c_str(), d->fd_->get(), newname.c_str()) != 0) {
    return LastErrno();
  }
  return p9::Ok();
}

Result<void> HostFile::UnlinkAt(const std::string& name, uint32_t flags) {
  if (!SafeName(name)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(CheckWritable());
  int hflags = (flags & p9::kAtRemoveDir) ? AT_REMOVEDIR : 0;
  if (unlinkat(fd_->get(), name.c_str(), hflags) != 0) return LastErrno();
  return p9::Ok();
}

Result<void> HostFile::Remove() {
  P9_RETURN_IF_ERROR(CheckWritable());
  std::lock_guard l(mu_);
  P9_RETURN_IF_ERROR(CheckLocation());
  if (unlinkat(parent_->get(), name_.c_str(), type_ == S_IFDIR ? AT_REMOVEDIR : 0) != 0) {
    return LastErrno();
  }
  return p9::Ok();
}

Result<std::string> HostFile::Readlink() {
  if (type_ != S_IFLNK) return Errno(EINVAL);
  std::string buf(PATH_MAX, '\0');
  ssize_t n = readlinkat(fd_->get(), "", buf.data(), buf.size());
  if (n < 0) return LastErrno();
  buf.resize(static_cast<size_t>(n));
  return buf;
}

Result<void> HostFile::Fsync(bool datasync) {
  int fd = open_fd();
  if (fd < 0) return Errno(EBADF);
  if ((datasync ? fdatasync(fd) : fsync(fd)) != 0) return LastErrno();
  return p9::Ok();
}

Result<p9::Rstatfs> HostFile::StatFs() {
  struct statfs s;
  if (fstatfs(fd_->get(), &s) != 0) return LastErrno();
  p9::Rstatfs r;
  r.type = static_cast<uint32_t>(s.f_type);
  r.bsize = static_cast<uint32_t>(s.f_bsize);
  r.blocks = s.f_blocks;
  r.bfree = s.f_bfree;
  r.bavail = s.f_bavail;
  r.files = s.f_files;
  r.ffree = s.f_ffree;
  uint64_t fsid;
  std::memcpy(&fsid, &s.f_fsid, sizeof(fsid));
  r.fsid = fsid;
  r.namelen = static_cast<uint32_t>(s.f_namelen);
  return r;
}

namespace {

Result<short> HostLockType(uint8_t type) {
  switch (type) {
    case p9::lock::kTypeRdLck:
      return static_cast<short>(F_RDLCK);
    case p9::lock::kTypeWrLck:
      return static_cast<short>(F_WRLCK);
    case p9::lock::kTypeUnLck:
      return static_cast<short>(F_UNLCK);
  }
  return Errno(EINVAL);
}

// The struct flock for a byte range of a 9P lock request.
Result<struct flock> HostLock(uint8_t type, uint64_t start, uint64_t length) {
  P9_ASSIGN_OR_RETURN(short t, HostLockType(type));
  struct flock fl {};
  fl.l_type = t;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(start);
  fl.l_len = static_cast<off_t>(length);  // 0: to the end of the file, as in 9P.
  return fl;
}

}  // namespace

Result<uint8_t> HostFile::Lock(const p9::Tlock& req) {
  int fd = open_fd();
  if (fd < 0) return Errno(EBADF);
  P9_ASSIGN_OR_RETURN(struct flock fl, HostLock(req.type, req.start, req.length));
  // Never wait in the gofer: a contended blocking lock answers "blocked" and the client
  // retries, as Linux's v9fs does.
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    if (errno == EAGAIN || errno == EACCES) return p9::lock::kStatusBlocked;
    return LastErrno();
  }
  return p9::lock::kStatusSuccess;
}

Result<p9::Rgetlock> HostFile::GetLock(const p9::Tgetlock& req) {
  int fd = open_fd();
  if (fd < 0) return Errno(EBADF);
  P9_ASSIGN_OR_RETURN(struct flock fl, HostLock(req.type, req.start, req.length));
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return LastErrno();
  p9::Rgetlock r;
  r.type = fl.l_type == F_RDLCK   ? p9::lock::kTypeRdLck
           : fl.l_type == F_WRLCK ? p9::lock::kTypeWrLck
                                  : p9::lock::kTypeUnLck;
  r.start = static_cast<uint64_t>(fl.l_start);
  r.length = static_cast<uint64_t>(fl.l_len);
  r.proc_id = static_cast<uint32_t>(fl.l_pid);
  r.client_id = req.client_id;
  return r;
}

// Xattrs go through the magic link (this inode, whatever its name). Symlinks cannot carry
// user xattrs on Linux; we do not offer any on them.
Result<std::string> HostFile::GetXattr(const std::string& name) {
  if (type_ == S_IFLNK) return Errno(ENODATA);
  std::string buf(p9::kMaxXattrSize, '\0');
  ssize_t n = getxattr(ProcPath().c_str(), name.c_str(), buf.data(), buf.size());
  if (n < 0) return errno == ERANGE ? Errno(E2BIG) : LastErrno();
  buf.resize(static_cast<size_t>(n));
  return buf;
}

Result<std::string> HostFile::ListXattr() {
  if (type_ == S_IFLNK) return std::string();
  std::string buf(p9::kMaxXattrSize, '\0');
  ssize_t n = listxattr(ProcPath().c_str(), buf.data(), buf.size());
  if (n < 0) return errno == ERANGE ? Errno(E2BIG) : LastErrno();
  buf.resize(static_cast<size_t>(n));
  return buf;
}

Result<void> HostFile::SetXattr(const std::string& name, const std::string& value,
                                uint32_t flags) {
  P9_RETURN_IF_ERROR(CheckWritable());
  if (type_ == S_IFLNK) return Errno(EPERM);
  int hflags = 0;
  if (flags & p9::kXattrCreate) hflags |= XATTR_CREATE;
  if (flags & p9::kXattrReplace) hflags |= XATTR_REPLACE;
  if (setxattr(ProcPath().c_str(), name.c_str(), value.data(), value.size(), hflags) != 0) {
    return LastErrno();
  }
  return p9::Ok();
}

Result<void> HostFile::RemoveXattr(const std::string& name) {
  P9_RETURN_IF_ERROR(CheckWritable());
  if (type_ == S_IFLNK) return Errno(EPERM);
  if (removexattr(ProcPath().c_str(), name.c_str()) != 0) return LastErrno();
  return p9::Ok();
}

}  // namespace gofer
