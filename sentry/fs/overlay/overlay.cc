#include "sentry/fs/overlay/overlay.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <mutex>
#include <set>

namespace sentry::fs {

using p9::Errno;
using p9::Result;
using vfs::Attr;
using vfs::DirEntry;
using vfs::Inode;
using vfs::OpenFile;
using vfs::SetAttrRequest;

struct OverlayFs::State {
  // Serializes every structural change (copy-up, whiteouts, creation, rename) and the
  // child caches. Held across calls into the layers, which take only their own locks.
  std::recursive_mutex mu;
  std::shared_ptr<Inode> upper_root;
  // kSubmounts: the upper holds no whiteouts or opaque markers (set once at creation).
  bool markers = true;
};

namespace {

constexpr char kRootFileName[] = "overlay-root-file";

bool IsWhiteout(const Attr& a) { return (a.mode & S_IFMT) == S_IFCHR && a.rdev == 0; }

bool IsOpaque(Inode& dir) {
  auto v = dir.GetXattr(kOpaqueXattr);
  return v.has_value() && *v == "y";
}

bool Hidden(const std::string& xattr) { return xattr.starts_with("trusted.overlay."); }

// Every entry of a directory inode, through an open file.
Result<std::vector<DirEntry>> ListAll(Inode& dir) {
  P9_ASSIGN_OR_RETURN(std::unique_ptr<OpenFile> f, dir.Open(O_RDONLY | O_DIRECTORY));
  std::vector<DirEntry> all;
  uint64_t off = 0;
  for (;;) {
    P9_ASSIGN_OR_RETURN(std::vector<DirEntry> ents, f->Readdir(off));
    if (ents.empty()) return all;
    off = ents.back().offset;
    for (auto& e : ents) {
      if (e.name != "." && e.name != "..") all.push_back(std::move(e));
    }
  }
}

class OvInode;

// A merged, snapshotted directory listing (cookies are positions in the snapshot).
class OvDirFile : public OpenFile {
 public:
  explicit OvDirFile(std::vector<DirEntry> ents) : ents_(std::move(ents)) {}
  Result<size_t> ReadAt(std::span<char>, uint64_t) override { return Errno(EISDIR); }
  Result<size_t> WriteAt(std::span<const char>, uint64_t) override { return Errno(EISDIR); }
  Result<std::vector<DirEntry>> Readdir(uint64_t offset) override {
    std::vector<DirEntry> out;
    for (size_t i = offset; i < ents_.size(); ++i) out.push_back(ents_[i]);
    return out;
  }

 private:
  std::vector<DirEntry> ents_;
};

class OvInode : public Inode {
 public:
  OvInode(std::shared_ptr<OverlayFs::State> st, std::shared_ptr<OvInode> parent, std::string name,
          std::shared_ptr<Inode> upper, std::shared_ptr<Inode> lower, uint32_t type, uint64_t ino)
      : st_(std::move(st)),
        parent_(std::move(parent)),
        name_(std::move(name)),
        upper_(std::move(upper)),
        lower_(std::move(lower)),
        type_(type),
        ino_(ino) {}

  bool is_dir() const { return type_ == S_IFDIR; }

  Result<Attr> GetAttr() override {
    std::shared_ptr<Inode> layer;
    {
      std::lock_guard l(st_->mu);
      layer = upper_ ? upper_ : lower_;
    }
    P9_ASSIGN_OR_RETURN(Attr a, layer->GetAttr());
    a.ino = ino_;  // Stable across copy-up.
    return a;
  }

  Result<void> SetAttr(const SetAttrRequest& req) override {
    std::lock_guard l(st_->mu);
    P9_RETURN_IF_ERROR(CopyUp());
    return upper_->SetAttr(req);
  }

  Result<std::unique_ptr<OpenFile>> Open(int flags) override {
    std::lock_guard l(st_->mu);
    if (is_dir()) {
      P9_ASSIGN_OR_RETURN(std::vector<DirEntry> ents, Merged());
      std::vector<DirEntry> all;
      all.push_back(DirEntry{".", ino_, 4, 1});
      all.push_back(DirEntry{"..", parent_ ? parent_->ino_ : ino_, 4, 2});
      for (auto& e : ents) all.push_back(std::move(e));
      for (size_t i = 0; i < all.size(); ++i) all[i].offset = i + 1;
      return std::unique_ptr<OpenFile>(std::make_unique<OvDirFile>(std::move(all)));
    }
    int acc = flags & O_ACCMODE;
    if (acc != O_RDONLY || (flags & O_TRUNC)) P9_RETURN_IF_ERROR(CopyUp());
    return (upper_ ? upper_ : lower_)->Open(flags);
  }

  Result<std::string> Readlink() override {
    std::lock_guard l(st_->mu);
    return (upper_ ? upper_ : lower_)->Readlink();
  }

  Result<std::shared_ptr<Inode>> Lookup(const std::string& name) override {
    std::lock_guard l(st_->mu);
    P9_ASSIGN_OR_RETURN(std::shared_ptr<OvInode> c, Child(name));
    return std::shared_ptr<Inode>(c);
  }

  Result<std::shared_ptr<Inode>> Mknod(const std::string& name, uint32_t mode, uint64_t rdev,
                                       uint32_t uid, uint32_t gid) override {
    std::lock_guard l(st_->mu);
    P9_ASSIGN_OR_RETURN(bool was_whiteout, PrepareCreate(name));
    (void)was_whiteout;
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> u, upper_->Mknod(name, mode, rdev, uid, gid));
    return Adopt(name, u);
  }

  Result<std::shared_ptr<Inode>> Mkdir(const std::string& name, uint32_t mode, uint32_t uid,
                                       uint32_t gid) override {
    std::lock_guard l(st_->mu);
    P9_ASSIGN_OR_RETURN(bool was_whiteout, PrepareCreate(name));
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> u, upper_->Mkdir(name, mode, uid, gid));
    // A directory re-created where a lower one was deleted must not show its old contents.
    if (was_whiteout) P9_RETURN_IF_ERROR(u->SetXattr(kOpaqueXattr, "y", 0));
    return Adopt(name, u);
  }

  Result<std::shared_ptr<Inode>> Symlink(const std::string& name, const std::string& target,
                                         uint32_t uid, uint32_t gid) override {
    std::lock_guard l(st_->mu);
    P9_RETURN_IF_ERROR(PrepareCreate(name));
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> u, upper_->Symlink(name, target, uid, gid));
    return Adopt(name, u);
  }

  Result<void> Link(const std::string& name, Inode& target) override {
    auto* t = dynamic_cast<OvInode*>(&target);
    if (t == nullptr || t->st_ != st_) return Errno(EXDEV);
    std::lock_guard l(st_->mu);
    P9_RETURN_IF_ERROR(t->CopyUp());
    P9_RETURN_IF_ERROR(PrepareCreate(name));
    P9_RETURN_IF_ERROR(upper_->Link(name, *t->upper_));
    children_[name] = std::static_pointer_cast<OvInode>(t->shared_from_this());
    return p9::Ok();
  }

  Result<void> Unlink(const std::string& name, bool dir) override {
    std::lock_guard l(st_->mu);
    P9_ASSIGN_OR_RETURN(std::shared_ptr<OvInode> c, Child(name));
    if (dir && !c->is_dir()) return Errno(ENOTDIR);
    if (!dir && c->is_dir()) return Errno(EISDIR);
    if (dir) {
      P9_ASSIGN_OR_RETURN(std::vector<DirEntry> ents, c->Merged());
      if (!ents.empty()) return Errno(ENOTEMPTY);
    }
    P9_ASSIGN_OR_RETURN(bool hide, LowerShows(name));
    P9_RETURN_IF_ERROR(CopyUp());
    if (c->upper_) {
      if (dir) P9_RETURN_IF_ERROR(c->ClearWhiteouts());
      P9_RETURN_IF_ERROR(upper_->Unlink(name, dir));
    }
    if (hide) P9_RETURN_IF_ERROR(MakeWhiteout(name));
    children_.erase(name);
    return p9::Ok();
  }

  Result<void> Rename(const std::string& oldname, Inode& newdir_i,
                      const std::string& newname) override {
    auto* nd = dynamic_cast<OvInode*>(&newdir_i);
    if (nd == nullptr || nd->st_ != st_) return Errno(EXDEV);
    std::lock_guard l(st_->mu);
    P9_ASSIGN_OR_RETURN(std::shared_ptr<OvInode> src, Child(oldname));
    if (src->is_dir() && src->lower_) return Errno(EXDEV);  // No redirect_dir.
    auto dst = nd->Child(newname);
    bool dst_had_lower = false;
    if (dst.has_value()) {
      if (dst->get() == src.get()) return p9::Ok();
      if (src->is_dir() && !(*dst)->is_dir()) return Errno(ENOTDIR);
      if (!src->is_dir() && (*dst)->is_dir()) return Errno(EISDIR);
      if ((*dst)->is_dir()) {
        P9_ASSIGN_OR_RETURN(std::vector<DirEntry> ents, (*dst)->Merged());
        if (!ents.empty()) return Errno(ENOTEMPTY);
        if ((*dst)->upper_) P9_RETURN_IF_ERROR((*dst)->ClearWhiteouts());
      }
      dst_had_lower = (*dst)->lower_ != nullptr;
    } else if (dst.error() != Errno(ENOENT)) {
      return dst.error();
    }
    P9_ASSIGN_OR_RETURN(bool hide, LowerShows(oldname));
    P9_RETURN_IF_ERROR(src->CopyUp());
    P9_RETURN_IF_ERROR(nd->CopyUp());
    P9_RETURN_IF_ERROR(nd->RemoveWhiteout(newname));
    P9_RETURN_IF_ERROR(upper_->Rename(oldname, *nd->upper_, newname));
    if (src->is_dir() && dst_had_lower && st_->markers) {
      P9_RETURN_IF_ERROR(src->upper_->SetXattr(kOpaqueXattr, "y", 0));
    }
    if (hide) P9_RETURN_IF_ERROR(MakeWhiteout(oldname));
    children_.erase(oldname);
    nd->children_.erase(newname);
    src->parent_ = std::static_pointer_cast<OvInode>(nd->shared_from_this());
    src->name_ = newname;
    nd->children_[newname] = src;
    return p9::Ok();
  }

  Result<vfs::FsStat> StatFs() override {
    std::lock_guard l(st_->mu);
    return (upper_ ? upper_ : lower_)->StatFs();
  }

  Result<std::string> GetXattr(const std::string& name) override {
    if (Hidden(name)) return Errno(ENODATA);
    std::lock_guard l(st_->mu);
    return (upper_ ? upper_ : lower_)->GetXattr(name);
  }
  Result<std::vector<std::string>> ListXattr() override {
    std::lock_guard l(st_->mu);
    P9_ASSIGN_OR_RETURN(std::vector<std::string> all, (upper_ ? upper_ : lower_)->ListXattr());
    std::vector<std::string> out;
    for (auto& n : all) {
      if (!Hidden(n)) out.push_back(std::move(n));
    }
    return out;
  }
  Result<void> SetXattr(const std::string& name, const std::string& value, int flags) override {
    if (Hidden(name)) return Errno(EPERM);
    std::lock_guard l(st_->mu);
    P9_RETURN_IF_ERROR(CopyUp());
    return upper_->SetXattr(name, value, flags);
  }
  Result<void> RemoveXattr(const std::string& name) override {
    if (Hidden(name)) return Errno(EPERM);
    std::lock_guard l(st_->mu);
    P9_RETURN_IF_ERROR(CopyUp());
    return upper_->RemoveXattr(name);
  }

  // ---- Layer logic. REQUIRES: st_->mu held for all of these. -------------------------------

  // Copies this inode (and its parents first) into the upper layer, once.
  Result<void> CopyUp() {
    if (upper_) return p9::Ok();
    std::shared_ptr<Inode> pu;
    std::string name = name_;
    if (!parent_) {
      // The root of an overlay over a single file: its copy lives in the upper root.
      pu = st_->upper_root;
      name = kRootFileName;
    } else {
      P9_RETURN_IF_ERROR(parent_->CopyUp());
      pu = parent_->upper_;
    }
    P9_ASSIGN_OR_RETURN(Attr a, lower_->GetAttr());
    std::shared_ptr<Inode> u;
    switch (a.mode & S_IFMT) {
      case S_IFDIR: {
        P9_ASSIGN_OR_RETURN(u, pu->Mkdir(name, a.mode & 07777, a.uid, a.gid));
        break;
      }
      case S_IFLNK: {
        P9_ASSIGN_OR_RETURN(std::string target, lower_->Readlink());
        P9_ASSIGN_OR_RETURN(u, pu->Symlink(name, target, a.uid, a.gid));
        break;
      }
      case S_IFREG: {
        P9_ASSIGN_OR_RETURN(u, pu->Mknod(name, a.mode, 0, a.uid, a.gid));
        P9_RETURN_IF_ERROR(CopyData(*lower_, *u));
        break;
      }
      default: {
        P9_ASSIGN_OR_RETURN(u, pu->Mknod(name, a.mode, a.rdev, a.uid, a.gid));
      }
    }
    SetAttrRequest r;
    r.mask = SetAttrRequest::kUid | SetAttrRequest::kGid | SetAttrRequest::kAtime |
             SetAttrRequest::kMtime;
    if ((a.mode & S_IFMT) != S_IFLNK) r.mask |= SetAttrRequest::kMode;
    r.mode = a.mode & 07777;
    r.uid = a.uid;
    r.gid = a.gid;
    r.atime = a.atime;
    r.mtime = a.mtime;
    P9_RETURN_IF_ERROR(u->SetAttr(r));
    auto names = lower_->ListXattr();
    if (names.has_value()) {
      for (const auto& n : *names) {
        if (Hidden(n)) continue;
        auto v = lower_->GetXattr(n);
        if (v.has_value()) (void)u->SetXattr(n, *v, 0);
      }
    }
    upper_ = std::move(u);
    return p9::Ok();
  }

  static Result<void> CopyData(Inode& from, Inode& to) {
    P9_ASSIGN_OR_RETURN(std::unique_ptr<OpenFile> in, from.Open(O_RDONLY));
    P9_ASSIGN_OR_RETURN(std::unique_ptr<OpenFile> out, to.Open(O_WRONLY));
    std::vector<char> buf(1 << 16);
    for (uint64_t off = 0;;) {
      P9_ASSIGN_OR_RETURN(size_t n, in->ReadAt(buf, off));
      if (n == 0) return p9::Ok();
      P9_RETURN_IF_ERROR(out->WriteAt(std::span<const char>(buf.data(), n), off));
      off += n;
    }
  }

  // True when both layers let their lookups be cached (e.g. not 9P remote_revalidating).
  bool LayersCache() const {
    return (!upper_ || upper_->CacheLookups()) && (!lower_ || lower_->CacheLookups());
  }

  // The child `name` in the merged view. Cached per directory; when a layer revalidates its
  // names (a shared 9P tree), the cached child is kept only if the layers still resolve the
  // name to the same files.
  Result<std::shared_ptr<OvInode>> Child(const std::string& name) {
    if (!is_dir()) return Errno(ENOTDIR);
    std::shared_ptr<OvInode> cached;
    auto it = children_.find(name);
    if (it != children_.end()) cached = it->second.lock();
    if (cached && LayersCache()) return cached;
    auto fresh = Resolve(name);
    if (!fresh.has_value()) {
      if (fresh.error() == Errno(ENOENT)) children_.erase(name);
      return fresh.error();
    }
    if (cached && SameLayers(*cached, **fresh)) return cached;
    children_[name] = *fresh;
    return *fresh;
  }

  static bool SameLayers(OvInode& a, OvInode& b) {
    auto ino = [](const std::shared_ptr<Inode>& i) -> int64_t {
      if (!i) return -1;
      auto at = i->GetAttr();
      return at.has_value() ? static_cast<int64_t>(at->ino) : -2;
    };
    return a.type_ == b.type_ && ino(a.upper_) == ino(b.upper_) && ino(a.lower_) == ino(b.lower_);
  }

  bool CacheLookups() const override { return LayersCache(); }
  bool Revalidate(const std::string& name, Inode& child) override {
    std::lock_guard l(st_->mu);
    auto c = Child(name);
    return c.has_value() && c->get() == &child;
  }

  // Looks `name` up in the layers (no cache).
  Result<std::shared_ptr<OvInode>> Resolve(const std::string& name) {
    std::shared_ptr<Inode> u, lo;
    bool opaque = false;
    if (upper_) {
      auto r = upper_->Lookup(name);
      if (r.has_value()) {
        P9_ASSIGN_OR_RETURN(Attr a, (*r)->GetAttr());
        if (st_->markers && IsWhiteout(a)) return Errno(ENOENT);
        u = *r;
        opaque = (a.mode & S_IFMT) != S_IFDIR || (st_->markers && IsOpaque(*u));
      } else if (r.error() != Errno(ENOENT)) {
        return r.error();
      }
      if (st_->markers && IsOpaque(*upper_)) opaque = true;
    }
    if (lower_ && !opaque) {
      auto r = lower_->Lookup(name);
      if (r.has_value()) {
        lo = *r;
      } else if (r.error() != Errno(ENOENT)) {
        return r.error();
      }
    }
    if (!u && !lo) return Errno(ENOENT);
    P9_ASSIGN_OR_RETURN(Attr la, (lo ? lo : u)->GetAttr());
    uint32_t type = la.mode & S_IFMT;
    if (u && lo) {
      P9_ASSIGN_OR_RETURN(Attr ua, u->GetAttr());
      // Only two directories merge; otherwise the upper one hides the lower.
      if ((ua.mode & S_IFMT) != S_IFDIR || type != S_IFDIR) lo = nullptr;
      type = ua.mode & S_IFMT;
      if (!lo) la = ua;
    }
    return std::make_shared<OvInode>(st_, std::static_pointer_cast<OvInode>(shared_from_this()),
                                     name, u, lo, type, la.ino);
  }

  Result<std::shared_ptr<Inode>> Adopt(const std::string& name, std::shared_ptr<Inode> u) {
    P9_ASSIGN_OR_RETURN(Attr a, u->GetAttr());
    auto c = std::make_shared<OvInode>(st_, std::static_pointer_cast<OvInode>(shared_from_this()),
                                       name, u, nullptr, a.mode & S_IFMT, a.ino);
    children_[name] = c;
    return std::shared_ptr<Inode>(c);
  }

  // Before creating `name` here: EEXIST if visible; copies this directory up and removes a
  // whiteout in the way. Returns whether there was one.
  Result<bool> PrepareCreate(const std::string& name) {
    auto existing = Child(name);
    if (existing.has_value()) return Errno(EEXIST);
    if (existing.error() != Errno(ENOENT)) return existing.error();
    P9_RETURN_IF_ERROR(CopyUp());
    if (!st_->markers) return false;
    auto r = upper_->Lookup(name);
    if (!r.has_value()) return false;
    P9_RETURN_IF_ERROR(upper_->Unlink(name, false));  // Only a whiteout can be there.
    return true;
  }

  Result<void> RemoveWhiteout(const std::string& name) {
    if (!st_->markers) return p9::Ok();
    auto r = upper_->Lookup(name);
    if (!r.has_value()) return p9::Ok();
    P9_ASSIGN_OR_RETURN(Attr a, (*r)->GetAttr());
    if (IsWhiteout(a)) return upper_->Unlink(name, false);
    return p9::Ok();
  }

  // kSubmounts writes none: the lower name is a mount point and shows again.
  // Whether a lower entry `name` shows through this directory, so that removing or moving
  // the name must leave a whiteout. Asked of the lower layer, not of the child's inode: a
  // copied-up non-directory resolves from the upper layer alone (Resolve), so an inode made
  // after the first was forgotten has no lower_ even though a lower file is there.
  Result<bool> LowerShows(const std::string& name) {
    if (!st_->markers || !lower_) return false;  // No whiteouts to make.
    if (upper_ && IsOpaque(*upper_)) return false;
    auto r = lower_->Lookup(name);
    if (r.has_value()) return true;
    if (r.error() == Errno(ENOENT)) return false;
    return r.error();
  }

  Result<void> MakeWhiteout(const std::string& name) {
    if (!st_->markers) return p9::Ok();
    P9_RETURN_IF_ERROR(upper_->Mknod(name, S_IFCHR, 0, 0, 0));
    return p9::Ok();
  }

  // Removes the whiteouts in this (otherwise empty) upper directory so it can be removed.
  Result<void> ClearWhiteouts() {
    if (!st_->markers) return p9::Ok();
    P9_ASSIGN_OR_RETURN(std::vector<DirEntry> ents, ListAll(*upper_));
    for (auto& e : ents) P9_RETURN_IF_ERROR(upper_->Unlink(e.name, false));
    return p9::Ok();
  }

  // The merged entries, without "." and "..": upper ones (minus whiteouts), then lower ones
  // not shadowed or whited out (unless this directory is opaque).
  Result<std::vector<DirEntry>> Merged() {
    std::vector<DirEntry> out;
    std::set<std::string> seen;
    bool opaque = false;
    if (upper_) {
      P9_ASSIGN_OR_RETURN(std::vector<DirEntry> ups, ListAll(*upper_));
      for (auto& e : ups) {
        seen.insert(e.name);
        if (st_->markers && e.type == 2 /* DT_CHR */) {
          auto c = upper_->Lookup(e.name);
          if (c.has_value()) {
            auto a = (*c)->GetAttr();
            if (a.has_value() && IsWhiteout(*a)) continue;
          }
        }
        out.push_back(std::move(e));
      }
      opaque = st_->markers && IsOpaque(*upper_);
    }
    if (lower_ && !opaque) {
      P9_ASSIGN_OR_RETURN(std::vector<DirEntry> lows, ListAll(*lower_));
      for (auto& e : lows) {
        if (!seen.contains(e.name)) out.push_back(std::move(e));
      }
    }
    return out;
  }

  const std::shared_ptr<OverlayFs::State> st_;
  std::shared_ptr<OvInode> parent_;  // Guarded by st_->mu. Null at the root.
  std::string name_;                 // Guarded by st_->mu.
  std::shared_ptr<Inode> upper_;     // Guarded by st_->mu. Set once, by copy-up or creation.
  const std::shared_ptr<Inode> lower_;
  const uint32_t type_;
  const uint64_t ino_;
  std::map<std::string, std::weak_ptr<OvInode>> children_;  // Guarded by st_->mu.
};

}  // namespace

Result<std::shared_ptr<OverlayFs>> OverlayFs::Create(std::shared_ptr<vfs::Filesystem> upper,
                                                     std::shared_ptr<vfs::Filesystem> lower,
                                                     Kind kind) {
  const bool adopt_lower_root_attrs = kind == Kind::kCopyUp;
  auto st = std::make_shared<State>();
  st->markers = kind == Kind::kCopyUp;
  st->upper_root = upper->root();
  P9_ASSIGN_OR_RETURN(Attr ua, st->upper_root->GetAttr());
  if ((ua.mode & S_IFMT) != S_IFDIR) return Errno(ENOTDIR);
  P9_ASSIGN_OR_RETURN(Attr la, lower->root()->GetAttr());
  bool dir = (la.mode & S_IFMT) == S_IFDIR;
  auto fs = std::shared_ptr<OverlayFs>(new OverlayFs());
  fs->upper_ = upper;
  fs->lower_ = lower;
  fs->state_ = st;
  if (dir && adopt_lower_root_attrs) {
    // The upper root takes the lower root's attributes, so the merged root looks like it.
    SetAttrRequest r;
    r.mask = SetAttrRequest::kMode | SetAttrRequest::kUid | SetAttrRequest::kGid;
    r.mode = la.mode & 07777;
    r.uid = la.uid;
    r.gid = la.gid;
    P9_RETURN_IF_ERROR(st->upper_root->SetAttr(r));
  }
  fs->root_ = std::make_shared<OvInode>(st, nullptr, "", dir ? st->upper_root : nullptr,
                                        lower->root(), la.mode & S_IFMT,
                                        adopt_lower_root_attrs ? la.ino : ua.ino);
  return fs;
}

}  // namespace sentry::fs
