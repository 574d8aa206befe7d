#include "sentry/fs/synth/synth_fs.h"

#include <fcntl.h>
#include <sys/sysmacros.h>

#include <atomic>
#include <cstring>
#include <sstream>

namespace sentry::fs {

using p9::Errno;
using p9::Result;
using vfs::Attr;
using vfs::DirEntry;

std::shared_ptr<SynthNode> SynthNode::Dir(const std::string& name, uint32_t perm) {
  auto& c = children[name];
  if (!c) {
    c = std::make_shared<SynthNode>();
    c->mode = S_IFDIR | perm;
  }
  return c;
}

std::shared_ptr<SynthNode> SynthNode::File(const std::string& name,
                                           std::function<std::string()> content, uint32_t perm) {
  auto c = std::make_shared<SynthNode>();
  c->mode = S_IFREG | perm;
  c->content = std::move(content);
  children[name] = c;
  return c;
}

std::shared_ptr<SynthNode> SynthNode::Link(const std::string& name, const std::string& target) {
  auto c = std::make_shared<SynthNode>();
  c->mode = S_IFLNK | 0777;
  c->target = target;
  children[name] = c;
  return c;
}

std::shared_ptr<SynthNode> SynthNode::CharDev(
    const std::string& name, uint32_t major, uint32_t minor, uint32_t perm,
    std::function<Result<size_t>(std::span<char>)> rd,
    std::function<Result<size_t>(std::span<const char>)> wr) {
  auto c = std::make_shared<SynthNode>();
  c->mode = S_IFCHR | perm;
  c->rdev = makedev(major, minor);
  c->dev_read = std::move(rd);
  c->dev_write = std::move(wr);
  children[name] = c;
  return c;
}

std::shared_ptr<SynthNode> SynthNode::MkdirAll(const std::string& path, uint32_t perm) {
  std::shared_ptr<SynthNode> cur;
  SynthNode* at = this;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == ".") continue;
    cur = at->Dir(part, perm);
    at = cur.get();
  }
  return cur;
}

namespace {

std::atomic<uint64_t> next_ino{1};

class SynthInode;

class SynthFile : public vfs::OpenFile {
 public:
  SynthFile(std::shared_ptr<SynthNode> n, std::shared_ptr<SynthInode> dir)
      : n_(std::move(n)), dir_(std::move(dir)) {
    if (S_ISREG(n_->mode) && n_->content) data_ = n_->content();  // Snapshot at open.
  }
  Result<size_t> ReadAt(std::span<char> dst, uint64_t off) override {
    if (S_ISDIR(n_->mode)) return Errno(EISDIR);
    if (S_ISCHR(n_->mode)) {
      if (!n_->dev_read) return Errno(EINVAL);
      return n_->dev_read(dst);
    }
    if (off >= data_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(dst.size(), data_.size() - off);
    std::memcpy(dst.data(), data_.data() + off, n);
    return n;
  }
  Result<size_t> WriteAt(std::span<const char> src, uint64_t) override {
    if (S_ISCHR(n_->mode) && n_->dev_write) return n_->dev_write(src);
    return Errno(S_ISDIR(n_->mode) ? EISDIR : EACCES);
  }
  Result<std::vector<DirEntry>> Readdir(uint64_t offset) override;

 private:
  std::shared_ptr<SynthNode> n_;
  std::shared_ptr<SynthInode> dir_;
  std::string data_;
};

class SynthInode : public vfs::Inode {
 public:
  // `parent_ino` is for ".." only: children must not own their parent (the parent's cache
  // owns them).
  SynthInode(std::shared_ptr<SynthNode> n, uint64_t parent_ino)
      : n_(std::move(n)), ino_(next_ino++), parent_ino_(parent_ino ? parent_ino : ino_) {}

  Result<Attr> GetAttr() override {
    Attr a;
    a.ino = ino_;
    a.mode = n_->mode;
    a.nlink = S_ISDIR(n_->mode) ? 2 : 1;
    a.rdev = n_->rdev;
    if (S_ISLNK(n_->mode)) a.size = n_->target.size();
    a.atime = a.mtime = a.ctime = start_;
    return a;
  }
  Result<void> SetAttr(const vfs::SetAttrRequest&) override { return Errno(EPERM); }
  Result<std::unique_ptr<vfs::OpenFile>> Open(int flags) override {
    int acc = flags & O_ACCMODE;
    if (S_ISREG(n_->mode) && (acc != O_RDONLY || (flags & O_TRUNC))) return Errno(EACCES);
    if (S_ISLNK(n_->mode)) return Errno(ELOOP);
    return std::unique_ptr<vfs::OpenFile>(std::make_unique<SynthFile>(
        n_, std::static_pointer_cast<SynthInode>(shared_from_this())));
  }
  Result<std::string> Readlink() override {
    if (!S_ISLNK(n_->mode)) return Errno(EINVAL);
    return n_->target;
  }
  Result<std::shared_ptr<vfs::Inode>> Lookup(const std::string& name) override {
    if (!S_ISDIR(n_->mode)) return Errno(ENOTDIR);
    auto it = n_->children.find(name);
    if (it == n_->children.end()) return Errno(ENOENT);
    std::lock_guard l(mu_);
    auto& cached = cache_[name];
    if (!cached) {
      cached = std::make_shared<SynthInode>(it->second, ino_);
    }
    return std::shared_ptr<vfs::Inode>(cached);
  }
  // Everything else is a mutation of a read-only tree.
  Result<std::shared_ptr<vfs::Inode>> Mknod(const std::string&, uint32_t, uint64_t, uint32_t,
                                            uint32_t) override { return Errno(EROFS); }
  Result<std::shared_ptr<vfs::Inode>> Mkdir(const std::string&, uint32_t, uint32_t,
                                            uint32_t) override { return Errno(EROFS); }
  Result<std::shared_ptr<vfs::Inode>> Symlink(const std::string&, const std::string&, uint32_t,
                                              uint32_t) override { return Errno(EROFS); }
  Result<void> Link(const std::string&, vfs::Inode&) override { return Errno(EROFS); }
  Result<void> Unlink(const std::string&, bool) override { return Errno(EROFS); }
  Result<void> Rename(const std::string&, vfs::Inode&, const std::string&) override {
    return Errno(EROFS);
  }

  std::vector<DirEntry> List() {
    std::vector<DirEntry> out;
    out.push_back(DirEntry{".", ino_, 4, 1});
    out.push_back(DirEntry{"..", parent_ino_, 4, 2});
    for (auto& [name, child] : n_->children) {
      auto i = Lookup(name);
      out.push_back(DirEntry{name, i.has_value() ? static_cast<SynthInode&>(**i).ino_ : 0,
                             vfs::DirentType(child->mode), out.size() + 1});
    }
    return out;
  }

 private:
  std::shared_ptr<SynthNode> n_;
  const uint64_t ino_;
  const uint64_t parent_ino_;
  const timespec start_ = vfs::Now();
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<SynthInode>> cache_;  // Guarded by mu_.
};

Result<std::vector<DirEntry>> SynthFile::Readdir(uint64_t offset) {
  if (!S_ISDIR(n_->mode)) return Errno(ENOTDIR);
  std::vector<DirEntry> all = dir_->List();
  std::vector<DirEntry> out;
  for (auto& e : all) {
    if (e.offset > offset) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

SynthFs::SynthFs(std::string type, std::shared_ptr<SynthNode> root)
    : type_(std::move(type)), root_(std::make_shared<SynthInode>(std::move(root), 0)) {}

}  // namespace sentry::fs
