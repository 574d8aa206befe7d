#include "sentry/vfs/vfs.h"

namespace sentry::vfs {
namespace {

Result<void> Writable(const VirtualDentry& vd) {
  if (vd.mount->flags.read_only) return Errno(EROFS);
  return p9::Ok();
}

// A name to create: "." and ".." always exist.
Result<void> CreatableName(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return Errno(EEXIST);
  return p9::Ok();
}

bool WantsWrite(int flags) {
  int acc = flags & O_ACCMODE;
  return acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC);
}

}  // namespace

Result<size_t> FileHandle::WriteAt(std::span<const char> src, uint64_t off) {
  if ((flags & O_ACCMODE) == O_RDONLY) return Errno(EBADF);
  return file->WriteAt(src, off);
}

Result<Attr> Vfs::Stat(const VirtualDentry& cwd, std::string_view path, bool follow) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, follow));
  return StatAt(vd);
}

Result<Attr> Vfs::StatAt(const VirtualDentry& vd) {
  P9_ASSIGN_OR_RETURN(Attr a, vd.dentry->inode()->GetAttr());
  a.dev = vd.mount->id;
  return a;
}

Result<std::unique_ptr<FileHandle>> Vfs::Open(const VirtualDentry& cwd, std::string_view path,
                                              int flags, uint32_t mode, uint32_t uid,
                                              uint32_t gid) {
  VirtualDentry vd;
  if (flags & O_CREAT) {
    P9_ASSIGN_OR_RETURN(auto pn, ns_->ResolveParent(cwd, path));
    auto& [parent, name] = pn;
    if (name.empty() || name == "." || name == "..") return Errno(EISDIR);
    auto existing = ns_->Resolve(parent, name, !(flags & O_NOFOLLOW) && !(flags & O_EXCL));
    if (existing.has_value()) {
      if (flags & O_EXCL) return Errno(EEXIST);
      vd = *existing;
    } else if (existing.error() == Errno(ENOENT)) {
      P9_RETURN_IF_ERROR(Writable(parent));
      flags &= ~O_TRUNC;  // Just created: empty.
      int oflags = flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW);
      if (!(flags & O_DIRECTORY)) {
        // Created and opened in one step (OpenAt's checks all hold for a new regular file).
        P9_ASSIGN_OR_RETURN(Inode::CreatedFile c,
                            parent.dentry->inode()->Create(name, mode & 07777, oflags, uid, gid));
        auto h = std::make_unique<FileHandle>();
        h->at = VirtualDentry{parent.mount, parent.dentry->AddChild(name, c.inode, S_IFREG)};
        h->file = std::move(c.file);
        h->flags = oflags;
        return h;
      }
      P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode,
                          parent.dentry->inode()->Mknod(name, S_IFREG | (mode & 07777), 0, uid, gid));
      vd = VirtualDentry{parent.mount, parent.dentry->AddChild(name, inode, S_IFREG)};
    } else {
      return existing.error();
    }
  } else {
    P9_ASSIGN_OR_RETURN(vd, ns_->Resolve(cwd, path, !(flags & O_NOFOLLOW)));
  }
  return OpenAt(vd, flags);
}

Result<std::unique_ptr<FileHandle>> Vfs::OpenAt(const VirtualDentry& vd, int flags) {
  if (vd.dentry->type() == S_IFLNK) return Errno(ELOOP);  // O_NOFOLLOW on a symlink.
  if ((flags & O_DIRECTORY) && !vd.dentry->is_dir()) return Errno(ENOTDIR);
  if (vd.dentry->is_dir() && WantsWrite(flags)) return Errno(EISDIR);
  if (WantsWrite(flags) && vd.dentry->type() == S_IFREG) P9_RETURN_IF_ERROR(Writable(vd));
  int oflags = flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW);
  P9_ASSIGN_OR_RETURN(std::unique_ptr<OpenFile> f, vd.dentry->inode()->Open(oflags));
  auto h = std::make_unique<FileHandle>();
  h->at = vd;
  h->file = std::move(f);
  h->flags = oflags;
  return h;
}

Result<VirtualDentry> Vfs::Mkdir(const VirtualDentry& cwd, std::string_view path,
                                 uint32_t mode, uint32_t uid, uint32_t gid) {
  P9_ASSIGN_OR_RETURN(auto pn, ns_->ResolveParent(cwd, path));
  auto& [parent, name] = pn;
  P9_RETURN_IF_ERROR(CreatableName(name));
  P9_RETURN_IF_ERROR(Writable(parent));
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode,
                      parent.dentry->inode()->Mkdir(name, mode & 07777, uid, gid));
  return VirtualDentry{parent.mount, parent.dentry->AddChild(name, inode, S_IFDIR)};
}

Result<VirtualDentry> Vfs::Mknod(const VirtualDentry& cwd, std::string_view path,
                                 uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid) {
  P9_ASSIGN_OR_RETURN(auto pn, ns_->ResolveParent(cwd, path));
  auto& [parent, name] = pn;
  P9_RETURN_IF_ERROR(CreatableName(name));
  P9_RETURN_IF_ERROR(Writable(parent));
  if ((mode & S_IFMT) == 0) mode |= S_IFREG;
  if ((mode & S_IFMT) == S_IFDIR || (mode & S_IFMT) == S_IFLNK) return Errno(EINVAL);
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode,
                      parent.dentry->inode()->Mknod(name, mode, rdev, uid, gid));
  return VirtualDentry{parent.mount, parent.dentry->AddChild(name, inode, mode & S_IFMT)};
}

Result<VirtualDentry> Vfs::Symlink(const VirtualDentry& cwd, std::string_view target,
                                   std::string_view linkpath, uint32_t uid, uint32_t gid) {
  if (target.empty()) return Errno(ENOENT);
  P9_ASSIGN_OR_RETURN(auto pn, ns_->ResolveParent(cwd, linkpath));
  auto& [parent, name] = pn;
  P9_RETURN_IF_ERROR(CreatableName(name));
  P9_RETURN_IF_ERROR(Writable(parent));
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode,
                      parent.dentry->inode()->Symlink(name, std::string(target), uid, gid));
  return VirtualDentry{parent.mount, parent.dentry->AddChild(name, inode, S_IFLNK)};
}

Result<std::string> Vfs::Readlink(const VirtualDentry& cwd, std::string_view path) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, false));
  return ReadlinkAt(vd);
}

Result<std::string> Vfs::ReadlinkAt(const VirtualDentry& vd) {
  if (vd.dentry->type() != S_IFLNK) return Errno(EINVAL);
  return vd.dentry->inode()->Readlink();
}

Result<void> Vfs::Link(const VirtualDentry& cwd, std::string_view oldpath,
                       std::string_view newpath) {
  P9_ASSIGN_OR_RETURN(VirtualDentry old, ns_->Resolve(cwd, oldpath, false));
  if (old.dentry->is_dir()) return Errno(EPERM);
  P9_ASSIGN_OR_RETURN(auto pn, ns_->ResolveParent(cwd, newpath));
  P9_RETURN_IF_ERROR(LinkAt(old, pn.first, pn.second));
  return p9::Ok();
}

Result<VirtualDentry> Vfs::LinkAt(const VirtualDentry& old, const VirtualDentry& parent,
                         const std::string& name) {
  if (old.dentry->is_dir()) return Errno(EPERM);
  P9_RETURN_IF_ERROR(CreatableName(name));
  if (parent.mount != old.mount) return Errno(EXDEV);
  P9_RETURN_IF_ERROR(Writable(parent));
  P9_RETURN_IF_ERROR(parent.dentry->inode()->Link(name, *old.dentry->inode()));
  return VirtualDentry{parent.mount,
                       parent.dentry->AddChild(name, old.dentry->inode(), old.dentry->type())};
}

Result<void> Vfs::Rename(const VirtualDentry& cwd, std::string_view oldpath,
                         std::string_view newpath) {
  P9_ASSIGN_OR_RETURN(auto op, ns_->ResolveParent(cwd, oldpath));
  P9_ASSIGN_OR_RETURN(auto np, ns_->ResolveParent(cwd, newpath));
  return RenameAt(op.first, op.second, np.first, np.second);
}

Result<void> Vfs::RenameAt(const VirtualDentry& oldparent, const std::string& oldname,
                           const VirtualDentry& newparent, const std::string& newname) {
  if (oldname.empty() || oldname == "." || oldname == ".." || newname.empty() ||
      newname == "." || newname == "..") {
    return Errno(oldname.empty() || newname.empty() ? EBUSY : EINVAL);
  }
  if (oldparent.mount != newparent.mount) return Errno(EXDEV);
  P9_RETURN_IF_ERROR(Writable(oldparent));
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Dentry> src, oldparent.dentry->Child(oldname));
  if (ns_->IsMountPoint(VirtualDentry{oldparent.mount, src})) return Errno(EBUSY);
  auto dst = newparent.dentry->Child(newname);
  if (dst.has_value()) {
    if (*dst == src) return p9::Ok();  // Same file: rename(2) does nothing.
    if (ns_->IsMountPoint(VirtualDentry{newparent.mount, *dst})) return Errno(EBUSY);
  }
  // A directory cannot move below itself.
  if (src->is_dir() && newparent.dentry->IsDescendantOf(*src)) return Errno(EINVAL);
  P9_RETURN_IF_ERROR(
      oldparent.dentry->inode()->Rename(oldname, *newparent.dentry->inode(), newname));
  oldparent.dentry->Moved(oldname, *newparent.dentry, newname);
  return p9::Ok();
}

Result<void> Vfs::Unlink(const VirtualDentry& cwd, std::string_view path) {
  P9_ASSIGN_OR_RETURN(auto pn, ns_->ResolveParent(cwd, path));
  auto& [parent, name] = pn;
  if (name.empty() || name == "." || name == "..") return Errno(EISDIR);
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Dentry> d, parent.dentry->Child(name));
  if (d->is_dir()) return Errno(EISDIR);
  if (ns_->IsMountPoint(VirtualDentry{parent.mount, d})) return Errno(EBUSY);
  P9_RETURN_IF_ERROR(Writable(parent));
  P9_RETURN_IF_ERROR(parent.dentry->inode()->Unlink(name, false));
  parent.dentry->Forget(name);
  return p9::Ok();
}

Result<void> Vfs::Rmdir(const VirtualDentry& cwd, std::string_view path) {
  P9_ASSIGN_OR_RETURN(auto pn, ns_->ResolveParent(cwd, path));
  auto& [parent, name] = pn;
  if (name == ".") return Errno(EINVAL);
  if (name == "..") return Errno(ENOTEMPTY);
  if (name.empty()) return Errno(EBUSY);
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Dentry> d, parent.dentry->Child(name));
  if (!d->is_dir()) return Errno(ENOTDIR);
  if (ns_->IsMountPoint(VirtualDentry{parent.mount, d})) return Errno(EBUSY);
  P9_RETURN_IF_ERROR(Writable(parent));
  P9_RETURN_IF_ERROR(parent.dentry->inode()->Unlink(name, true));
  parent.dentry->Forget(name);
  return p9::Ok();
}

Result<void> Vfs::SetAttr(const VirtualDentry& cwd, std::string_view path,
                          const SetAttrRequest& req, bool follow) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, follow));
  return SetAttrAt(vd, req);
}

Result<void> Vfs::SetAttrAt(const VirtualDentry& vd, const SetAttrRequest& req) {
  P9_RETURN_IF_ERROR(Writable(vd));
  if ((req.mask & SetAttrRequest::kSize) && vd.dentry->is_dir()) return Errno(EISDIR);
  return vd.dentry->inode()->SetAttr(req);
}

Result<void> Vfs::Truncate(const VirtualDentry& cwd, std::string_view path, uint64_t size) {
  SetAttrRequest r;
  r.mask = SetAttrRequest::kSize;
  r.size = size;
  return SetAttr(cwd, path, r);
}

Result<FsStat> Vfs::StatFs(const VirtualDentry& cwd, std::string_view path) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, true));
  return StatFsAt(vd);
}

Result<FsStat> Vfs::StatFsAt(const VirtualDentry& vd) { return vd.dentry->inode()->StatFs(); }

Result<std::vector<DirEntry>> Vfs::ListDir(const VirtualDentry& cwd, std::string_view path) {
  P9_ASSIGN_OR_RETURN(auto h, Open(cwd, path, O_RDONLY | O_DIRECTORY));
  std::vector<DirEntry> all;
  uint64_t off = 0;
  for (;;) {
    P9_ASSIGN_OR_RETURN(std::vector<DirEntry> ents, h->file->Readdir(off));
    if (ents.empty()) return all;
    off = ents.back().offset;
    for (auto& e : ents) all.push_back(std::move(e));
  }
}

Result<std::string> Vfs::GetXattr(const VirtualDentry& cwd, std::string_view path,
                                  const std::string& name) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, true));
  return GetXattrAt(vd, name);
}

Result<std::string> Vfs::GetXattrAt(const VirtualDentry& vd, const std::string& name) {
  return vd.dentry->inode()->GetXattr(name);
}

Result<std::vector<std::string>> Vfs::ListXattr(const VirtualDentry& cwd, std::string_view path) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, true));
  return ListXattrAt(vd);
}

Result<std::vector<std::string>> Vfs::ListXattrAt(const VirtualDentry& vd) {
  return vd.dentry->inode()->ListXattr();
}

Result<void> Vfs::SetXattr(const VirtualDentry& cwd, std::string_view path,
                           const std::string& name, const std::string& value, int flags) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, true));
  return SetXattrAt(vd, name, value, flags);
}

Result<void> Vfs::SetXattrAt(const VirtualDentry& vd, const std::string& name,
                             const std::string& value, int flags) {
  P9_RETURN_IF_ERROR(Writable(vd));
  return vd.dentry->inode()->SetXattr(name, value, flags);
}

Result<void> Vfs::RemoveXattr(const VirtualDentry& cwd, std::string_view path,
                              const std::string& name) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(cwd, path, true));
  return RemoveXattrAt(vd, name);
}

Result<void> Vfs::RemoveXattrAt(const VirtualDentry& vd, const std::string& name) {
  P9_RETURN_IF_ERROR(Writable(vd));
  return vd.dentry->inode()->RemoveXattr(name);
}

Result<void> Vfs::MountAt(std::string_view path, std::shared_ptr<Filesystem> fs,
                          MountFlags flags, std::string source) {
  P9_ASSIGN_OR_RETURN(VirtualDentry vd, ns_->Resolve(root(), path, true));
  P9_RETURN_IF_ERROR(ns_->MountAt(vd, std::move(fs), flags, std::move(source)));
  return p9::Ok();
}

}  // namespace sentry::vfs
