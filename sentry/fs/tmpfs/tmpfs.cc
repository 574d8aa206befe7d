#include "sentry/fs/tmpfs/tmpfs.h"

#include <fcntl.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include "sentry/fs/tmpfs/file_data.h"

namespace sentry::fs {

using p9::Errno;
using p9::Result;
using vfs::Attr;
using vfs::DirEntry;
using vfs::Inode;
using vfs::OpenFile;
using vfs::SetAttrRequest;

struct Tmpfs::State {
  std::mutex mu;
  uint64_t next_ino = 1;  // Guarded by mu.
  uint64_t dev = 0;
  std::shared_ptr<MemfdBudget> memfds;
};

namespace {

timespec Later(const timespec& a, const timespec& b) {
  return (a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec) ? a : b;
}

// One inode of any type. Fields guarded by state->mu.
class TmpInode : public Inode {
 public:
  struct Entry {
    std::shared_ptr<TmpInode> inode;
    uint64_t cookie;
  };

  TmpInode(std::shared_ptr<Tmpfs::State> s, uint32_t mode, uint32_t uid, uint32_t gid)
      : s_(std::move(s)) {
    attr_.mode = mode;
    attr_.uid = uid;
    attr_.gid = gid;
    attr_.nlink = (mode & S_IFMT) == S_IFDIR ? 2 : 1;
    attr_.atime = attr_.mtime = attr_.ctime = vfs::Now();
    attr_.ino = s_->next_ino++;  // Callers hold s_->mu or are constructing the fs.
    attr_.dev = s_->dev;
    if (type() == S_IFREG) data_ = std::make_unique<FileData>(s_->memfds);
  }

  uint32_t type() const { return attr_.mode & S_IFMT; }

  Result<Attr> GetAttr() override {
    std::lock_guard l(s_->mu);
    Attr a = attr_;
    if (type() == S_IFLNK) a.size = target_.size();
    if (type() == S_IFDIR) a.size = 4096;
    a.blocks = (a.size + 511) / 512;
    if (type() == S_IFREG) {
      auto st = data_->GetStat();
      if (!st.has_value()) return st.error();
      a.size = st->size;
      a.blocks = st->blocks;
      if (st->mtime.has_value()) {  // In a memfd, which the kernel may have written.
        a.atime = *st->atime;
        a.mtime = *st->mtime;
        a.ctime = Later(attr_.ctime, *st->ctime);
      }
    }
    return a;
  }

  Result<void> SetAttr(const SetAttrRequest& r) override {
    std::lock_guard l(s_->mu);
    timespec now = vfs::Now();
    if (r.mask & SetAttrRequest::kSize) {
      if (type() == S_IFDIR) return Errno(EISDIR);
      if (type() != S_IFREG) return Errno(EINVAL);
      P9_RETURN_IF_ERROR(data_->Truncate(r.size));
      attr_.mtime = now;
    }
    if (r.mask & SetAttrRequest::kMode) attr_.mode = type() | (r.mode & 07777);
    if (r.mask & SetAttrRequest::kUid) attr_.uid = r.uid;
    if (r.mask & SetAttrRequest::kGid) attr_.gid = r.gid;
    if (r.mask & SetAttrRequest::kAtime) attr_.atime = r.atime;
    if (r.mask & SetAttrRequest::kAtimeNow) attr_.atime = now;
    if (r.mask & SetAttrRequest::kMtime) attr_.mtime = r.mtime;
    if (r.mask & SetAttrRequest::kMtimeNow) attr_.mtime = now;
    if (type() == S_IFREG && (r.mask & (SetAttrRequest::kAtime | SetAttrRequest::kAtimeNow |
                                        SetAttrRequest::kMtime | SetAttrRequest::kMtimeNow))) {
      auto pick = [&](uint32_t set, uint32_t set_now, const timespec& t) {
        if (r.mask & set) return t;
        return timespec{0, (r.mask & set_now) ? UTIME_NOW : UTIME_OMIT};
      };
      P9_RETURN_IF_ERROR(
          data_->SetTimes(pick(SetAttrRequest::kAtime, SetAttrRequest::kAtimeNow, r.atime),
                          pick(SetAttrRequest::kMtime, SetAttrRequest::kMtimeNow, r.mtime)));
    }
    attr_.ctime = now;
    return p9::Ok();
  }

  Result<std::unique_ptr<OpenFile>> Open(int flags) override;

  Result<std::string> Readlink() override {
    std::lock_guard l(s_->mu);
    if (type() != S_IFLNK) return Errno(EINVAL);
    return target_;
  }

  Result<std::shared_ptr<Inode>> Lookup(const std::string& name) override {
    std::lock_guard l(s_->mu);
    if (type() != S_IFDIR) return Errno(ENOTDIR);
    auto it = children_.find(name);
    if (it == children_.end()) return Errno(ENOENT);
    return std::shared_ptr<Inode>(it->second.inode);
  }

  // REQUIRES: s_->mu held.
  Result<void> AddLocked(const std::string& name, std::shared_ptr<TmpInode> child) {
    if (type() != S_IFDIR) return Errno(ENOTDIR);
    if (dead_) return Errno(ENOENT);
    if (children_.contains(name)) return Errno(EEXIST);
    if (child->type() == S_IFDIR) {
      ++attr_.nlink;
      child->parent_ = this;
    }
    children_[name] = Entry{std::move(child), next_cookie_++};
    attr_.mtime = attr_.ctime = vfs::Now();
    return p9::Ok();
  }

  Result<std::shared_ptr<Inode>> Make(const std::string& name, uint32_t mode, uint32_t uid,
                                      uint32_t gid, const std::string* target, uint64_t rdev) {
    std::lock_guard l(s_->mu);
    if (type() != S_IFDIR) return Errno(ENOTDIR);
    if (children_.contains(name)) return Errno(EEXIST);
    auto child = std::make_shared<TmpInode>(s_, mode, uid, gid);
    if (target) child->target_ = *target;
    child->attr_.rdev = rdev;
    P9_RETURN_IF_ERROR(AddLocked(name, child));
    return std::shared_ptr<Inode>(child);
  }

  Result<std::shared_ptr<Inode>> Mknod(const std::string& name, uint32_t mode, uint64_t rdev,
                                       uint32_t uid, uint32_t gid) override {
    return Make(name, mode, uid, gid, nullptr, rdev);
  }
  Result<std::shared_ptr<Inode>> Mkdir(const std::string& name, uint32_t mode, uint32_t uid,
                                       uint32_t gid) override {
    return Make(name, S_IFDIR | (mode & 07777), uid, gid, nullptr, 0);
  }
  Result<std::shared_ptr<Inode>> Symlink(const std::string& name, const std::string& target,
                                         uint32_t uid, uint32_t gid) override {
    return Make(name, S_IFLNK | 0777, uid, gid, &target, 0);
  }

  Result<void> Link(const std::string& name, Inode& target) override {
    auto* t = dynamic_cast<TmpInode*>(&target);
    if (t == nullptr || t->s_ != s_) return Errno(EXDEV);
    std::lock_guard l(s_->mu);
    if (t->type() == S_IFDIR) return Errno(EPERM);
    if (t->attr_.nlink == 0) return Errno(ENOENT);
    P9_RETURN_IF_ERROR(AddLocked(name, std::static_pointer_cast<TmpInode>(t->shared_from_this())));
    ++t->attr_.nlink;
    t->attr_.ctime = vfs::Now();
    return p9::Ok();
  }

  // REQUIRES: s_->mu held. Drops a child's link from this directory.
  void DropLocked(std::map<std::string, Entry>::iterator it) {
    TmpInode& c = *it->second.inode;
    if (c.type() == S_IFDIR) {
      --attr_.nlink;
      c.attr_.nlink = 0;
      c.dead_ = true;
      c.parent_ = nullptr;
    } else {
      --c.attr_.nlink;
    }
    c.attr_.ctime = vfs::Now();
    children_.erase(it);
    attr_.mtime = attr_.ctime = vfs::Now();
  }

  Result<void> Unlink(const std::string& name, bool dir) override {
    std::lock_guard l(s_->mu);
    if (type() != S_IFDIR) return Errno(ENOTDIR);
    auto it = children_.find(name);
    if (it == children_.end()) return Errno(ENOENT);
    TmpInode& c = *it->second.inode;
    if (dir && c.type() != S_IFDIR) return Errno(ENOTDIR);
    if (!dir && c.type() == S_IFDIR) return Errno(EISDIR);
    if (dir && !c.children_.empty()) return Errno(ENOTEMPTY);
    DropLocked(it);
    return p9::Ok();
  }

  Result<void> Rename(const std::string& oldname, Inode& newdir_i,
                      const std::string& newname) override {
    auto* newdir = dynamic_cast<TmpInode*>(&newdir_i);
    if (newdir == nullptr || newdir->s_ != s_) return Errno(EXDEV);
    std::lock_guard l(s_->mu);
    if (type() != S_IFDIR || newdir->type() != S_IFDIR) return Errno(ENOTDIR);
    auto it = children_.find(oldname);
    if (it == children_.end()) return Errno(ENOENT);
    std::shared_ptr<TmpInode> src = it->second.inode;
    if (src->type() == S_IFDIR) {
      for (TmpInode* p = newdir; p != nullptr; p = p->parent_) {
        if (p == src.get()) return Errno(EINVAL);  // Into its own subtree.
      }
    }
    auto dit = newdir->children_.find(newname);
    if (dit != newdir->children_.end()) {
      TmpInode& dst = *dit->second.inode;
      if (&dst == src.get()) return p9::Ok();
      if (src->type() == S_IFDIR && dst.type() != S_IFDIR) return Errno(ENOTDIR);
      if (src->type() != S_IFDIR && dst.type() == S_IFDIR) return Errno(EISDIR);
      if (dst.type() == S_IFDIR && !dst.children_.empty()) return Errno(ENOTEMPTY);
      newdir->DropLocked(dit);
    }
    // Detach from here without dropping the link count, attach there.
    if (src->type() == S_IFDIR) --attr_.nlink;
    children_.erase(oldname);
    attr_.mtime = attr_.ctime = vfs::Now();
    if (src->type() == S_IFDIR) {
      ++newdir->attr_.nlink;
      src->parent_ = newdir;
    }
    newdir->children_[newname] = Entry{src, newdir->next_cookie_++};
    newdir->attr_.mtime = newdir->attr_.ctime = vfs::Now();
    src->attr_.ctime = vfs::Now();
    return p9::Ok();
  }

  Result<vfs::FsStat> StatFs() override {
    vfs::FsStat s;
    s.type = 0x01021994;  // TMPFS_MAGIC
    return s;
  }

  Result<std::string> GetXattr(const std::string& name) override {
    std::lock_guard l(s_->mu);
    auto it = xattrs_.find(name);
    if (it == xattrs_.end()) return Errno(ENODATA);
    return it->second;
  }
  Result<std::vector<std::string>> ListXattr() override {
    std::lock_guard l(s_->mu);
    std::vector<std::string> out;
    for (auto& [k, v] : xattrs_) out.push_back(k);
    return out;
  }
  Result<void> SetXattr(const std::string& name, const std::string& value, int flags) override {
    if (name.empty() || name.size() > 255) return Errno(ERANGE);
    if (value.size() > 65536) return Errno(E2BIG);
    std::lock_guard l(s_->mu);
    bool exists = xattrs_.contains(name);
    if ((flags & XATTR_CREATE) && exists) return Errno(EEXIST);
    if ((flags & XATTR_REPLACE) && !exists) return Errno(ENODATA);
    xattrs_[name] = value;
    attr_.ctime = vfs::Now();
    return p9::Ok();
  }
  Result<void> RemoveXattr(const std::string& name) override {
    std::lock_guard l(s_->mu);
    if (!xattrs_.erase(name)) return Errno(ENODATA);
    return p9::Ok();
  }

  // Data access for open files (regular files only). REQUIRES: s_->mu not held. In a
  // memfd, the memfd keeps the times; in memory, the inode.
  Result<size_t> Read(std::span<char> dst, uint64_t off) {
    P9_ASSIGN_OR_RETURN(size_t n, data_->Read(dst, off));
    if (data_->memfd() < 0) {
      std::lock_guard l(s_->mu);
      attr_.atime = vfs::Now();
    }
    return n;
  }
  Result<size_t> Write(std::span<const char> src, uint64_t off, bool append) {
    P9_ASSIGN_OR_RETURN(size_t n, data_->Write(src, off, append));
    if (data_->memfd() < 0) {
      std::lock_guard l(s_->mu);
      attr_.mtime = attr_.ctime = vfs::Now();
    }
    return n;
  }
  int memfd() const { return data_ ? data_->memfd() : -1; }
  // A regular file's open ends (TmpFile's destructor).
  void Closed() {
    std::lock_guard l(s_->mu);
    --opens_;
  }
  Result<std::vector<DirEntry>> List(uint64_t offset) {
    std::lock_guard l(s_->mu);
    if (dead_) return std::vector<DirEntry>{};
    std::vector<DirEntry> out;
    if (offset < 1) out.push_back(DirEntry{".", attr_.ino, 4, 1});
    if (offset < 2) out.push_back(DirEntry{"..", parent_ ? parent_->attr_.ino : attr_.ino, 4, 2});
    // Cookies only grow, so "after offset" is stable across inserts and removals.
    std::vector<std::pair<uint64_t, const std::string*>> rest;
    for (auto& [name, e] : children_) {
      if (e.cookie > offset) rest.push_back({e.cookie, &name});
    }
    std::sort(rest.begin(), rest.end());
    for (auto& [cookie, name] : rest) {
      const TmpInode& c = *children_.at(*name).inode;
      out.push_back(DirEntry{*name, c.attr_.ino, vfs::DirentType(c.attr_.mode), cookie});
    }
    return out;
  }

 private:
  std::shared_ptr<Tmpfs::State> s_;
  Attr attr_;
  std::unique_ptr<FileData> data_;         // Regular files.
  int opens_ = 0;                          // Regular files: TmpFiles alive.
  std::string target_;                     // Symlinks.
  std::map<std::string, Entry> children_;  // Directories.
  uint64_t next_cookie_ = 3;               // 1 and 2 are "." and "..".
  TmpInode* parent_ = nullptr;             // Directories: for ".." and the subtree check.
  bool dead_ = false;                      // A removed directory: no new entries.
  std::map<std::string, std::string> xattrs_;
};

class TmpFile : public OpenFile {
 public:
  TmpFile(std::shared_ptr<TmpInode> inode, int flags) : inode_(std::move(inode)), flags_(flags) {}
  ~TmpFile() override {
    if (inode_->type() == S_IFREG) inode_->Closed();
  }
  Result<size_t> ReadAt(std::span<char> dst, uint64_t off) override {
    if (inode_->type() != S_IFREG) return Errno(EISDIR);
    return inode_->Read(dst, off);
  }
  Result<size_t> WriteAt(std::span<const char> src, uint64_t off) override {
    if (inode_->type() != S_IFREG) return Errno(EISDIR);
    return inode_->Write(src, off, flags_ & O_APPEND);
  }
  Result<std::vector<DirEntry>> Readdir(uint64_t offset) override {
    if (inode_->type() != S_IFDIR) return Errno(ENOTDIR);
    auto all = inode_->List(offset);
    return all;
  }
  // A file whose bytes are in a memfd: the kernel may do its I/O there itself.
  std::optional<HostIo> HostIoFile() const override {
    int fd = inode_->memfd();
    if (fd < 0) return std::nullopt;
    return HostIo{fd, inode_.get()};
  }
  // Nothing to write back or to keep coherent: the memfd holds the bytes, size and times.
  Result<void> StartHostIo() override {
    if (inode_->memfd() < 0) return Errno(EOPNOTSUPP);
    return p9::Ok();
  }

 private:
  std::shared_ptr<TmpInode> inode_;
  int flags_;
};

Result<std::unique_ptr<OpenFile>> TmpInode::Open(int flags) {
  uint32_t t = type();
  if (t != S_IFREG && t != S_IFDIR) return Errno(ENXIO);  // Special files: the frontend's job.
  if (t == S_IFREG) {
    std::lock_guard l(s_->mu);
    if (flags & O_TRUNC) {
      P9_RETURN_IF_ERROR(data_->Truncate(0));
      attr_.mtime = attr_.ctime = vfs::Now();
    }
    // From the first open on, the bytes are in a memfd if one can be had (else they stay in
    // memory, and this open is served through ReadAt/WriteAt). Only when no other open
    // exists: the kernel refuses (EIO) a passthrough open of an inode that has opens using
    // its page cache, and every open before the move was one.
    if (opens_ == 0) data_->ToMemfd(attr_.atime, attr_.mtime);
    ++opens_;
  }
  return std::unique_ptr<OpenFile>(std::make_unique<TmpFile>(
      std::static_pointer_cast<TmpInode>(shared_from_this()), flags));
}

}  // namespace

Result<TmpfsOptions> ParseTmpfsOptions(const std::string& data, std::string* error) {
  TmpfsOptions o;
  std::stringstream ss(data);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos || item.find('=', eq + 1) != std::string::npos) {
      if (error) *error = "tmpfs: malformed option '" + item + "'";
      return Errno(EINVAL);
    }
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    if (k != "mode" && k != "uid" && k != "gid") {
      if (error) *error = "tmpfs: unknown option '" + k + "'";
      return Errno(EINVAL);
    }
    int base = k == "mode" ? 8 : 10;
    char* end = nullptr;
    errno = 0;
    unsigned long n = v.empty() ? 0 : std::strtoul(v.c_str(), &end, base);
    if (v.empty() || errno != 0 || *end != '\0' || n > 0xffffffffu || (k == "mode" && n > 07777)) {
      if (error) *error = "tmpfs: bad value in '" + item + "'";
      return Errno(EINVAL);
    }
    if (k == "mode") {
      o.mode = static_cast<uint32_t>(n);
    } else if (k == "uid") {
      o.uid = static_cast<uint32_t>(n);
    } else if (k == "gid") {
      o.gid = static_cast<uint32_t>(n);
    } else {
      if (error) *error = "tmpfs: unknown option '" + k + "'";
      return Errno(EINVAL);
    }
  }
  return o;
}

Tmpfs::Tmpfs(TmpfsOptions opts) : state_(std::make_shared<State>()) {
  static std::atomic<uint64_t> next_dev{1};
  state_->dev = next_dev++;
  state_->memfds = std::make_shared<MemfdBudget>(opts.memfd_files);
  std::lock_guard l(state_->mu);
  root_ = std::make_shared<TmpInode>(state_, S_IFDIR | (opts.mode & 07777), opts.uid, opts.gid);
}

Tmpfs::~Tmpfs() = default;

std::shared_ptr<vfs::Inode> Tmpfs::root() { return root_; }

size_t Tmpfs::memfd_files() const { return state_->memfds->used(); }

}  // namespace sentry::fs
