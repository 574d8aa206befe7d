#include "sentry/vfs/mount.h"

#include <vector>

namespace sentry::vfs {

Result<std::shared_ptr<MountNamespace>> MountNamespace::Create(
    std::shared_ptr<Filesystem> root_fs, MountFlags flags, std::string source) {
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Dentry> root, Dentry::MakeRoot(root_fs->root()));
  if (!root->is_dir()) return Errno(ENOTDIR);
  std::shared_ptr<MountNamespace> ns(new MountNamespace());
  auto m = std::make_shared<Mount>();
  m->fs = std::move(root_fs);
  m->root = root;
  m->flags = flags;
  m->source = std::move(source);
  m->id = ns->next_id_++;
  ns->root_ = VirtualDentry{m, root};
  ns->all_.push_back(m);
  return ns;
}

Result<std::shared_ptr<Mount>> MountNamespace::MountAt(const VirtualDentry& where,
                                                       std::shared_ptr<Filesystem> fs,
                                                       MountFlags flags, std::string source) {
  if (!where.dentry->is_dir()) {
    // Bind-mounting a file over a file is allowed (e.g. /etc/hostname).
    P9_ASSIGN_OR_RETURN(Attr a, fs->root()->GetAttr());
    if ((a.mode & S_IFMT) == S_IFDIR) return Errno(ENOTDIR);
  }
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Dentry> root, Dentry::MakeRoot(fs->root()));
  if (where.dentry->is_dir() != root->is_dir()) return Errno(where.dentry->is_dir() ? ENOTDIR : EISDIR);
  auto m = std::make_shared<Mount>();
  m->fs = std::move(fs);
  m->root = std::move(root);
  m->flags = flags;
  m->source = std::move(source);
  m->parent = where.mount;
  m->mountpoint = where.dentry;
  std::lock_guard l(mu_);
  m->id = next_id_++;
  table_[{where.mount.get(), where.dentry.get()}].push_back(m);
  all_.push_back(m);
  return m;
}

std::shared_ptr<Mount> MountNamespace::MountedOn(const Mount* m, const Dentry* d) const {
  std::lock_guard l(mu_);
  auto it = table_.find({m, d});
  if (it == table_.end() || it->second.empty()) return nullptr;
  return it->second.back();
}

VirtualDentry MountNamespace::Enter(VirtualDentry vd) const {
  // Mounts can stack: a mount's root may itself be covered.
  for (;;) {
    auto m = MountedOn(vd.mount.get(), vd.dentry.get());
    if (!m) return vd;
    vd = VirtualDentry{m, m->root};
  }
}

VirtualDentry MountNamespace::Parent(const VirtualDentry& vd) const {
  VirtualDentry cur = vd;
  if (cur == root_) return cur;
  // At a mount's root, ".." is taken from the mount point in the parent mount.
  while (cur.dentry == cur.mount->root && cur.mount->parent) {
    cur = VirtualDentry{cur.mount->parent, cur.mount->mountpoint};
    if (cur == root_) return cur;
  }
  auto p = cur.dentry->parent();
  if (!p) return cur;  // A file system root not mounted anywhere: stay.
  return Enter(VirtualDentry{cur.mount, p});
}

namespace {

// Splits into components, dropping empty ones and ".".
std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view c = path.substr(pos, end - pos);
    if (!c.empty() && c != ".") out.emplace_back(c);
    pos = end + 1;
  }
  return out;
}

}  // namespace

Result<VirtualDentry> MountNamespace::Walk(VirtualDentry cur, std::string_view path,
                                           bool follow_last, int* symlinks) {
  if (path.empty()) return Errno(ENOENT);
  if (path.front() == '/') cur = root_;
  bool trailing_slash = path.back() == '/';
  if (trailing_slash) follow_last = true;
  std::vector<std::string> comps = Components(path);
  for (size_t i = 0; i < comps.size(); ++i) {
    const std::string& c = comps[i];
    bool last = i + 1 == comps.size();
    if (!cur.dentry->is_dir()) return Errno(ENOTDIR);
    if (c == "..") {
      cur = Parent(cur);
      continue;
    }
    if (c.size() > 255) return Errno(ENAMETOOLONG);
    // A mount point is the sandbox's own configuration: it is kept without revalidation, so
    // what is mounted there stays reachable whatever happens to the tree below it (a host
    // change, a dead gofer).
    std::shared_ptr<Dentry> child = cur.dentry->Cached(c);
    if (!child || !MountedOn(cur.mount.get(), child.get())) {
      P9_ASSIGN_OR_RETURN(child, cur.dentry->Child(c));
    }
    VirtualDentry next = Enter(VirtualDentry{cur.mount, child});
    if (next.dentry->type() == S_IFLNK && (!last || follow_last)) {
      if (++*symlinks > kMaxSymlinks) return Errno(ELOOP);
      P9_ASSIGN_OR_RETURN(std::string target, next.dentry->inode()->Readlink());
      if (target.empty()) return Errno(ENOENT);
      // Continue with the target followed by the rest of the path, from the link's directory.
      std::string rest = target;
      for (size_t j = i + 1; j < comps.size(); ++j) rest += "/" + comps[j];
      if (trailing_slash) rest += "/";
      return Walk(cur, rest, follow_last, symlinks);
    }
    cur = next;
  }
  if (trailing_slash && !cur.dentry->is_dir()) return Errno(ENOTDIR);
  return cur;
}

Result<VirtualDentry> MountNamespace::Resolve(const VirtualDentry& start, std::string_view path,
                                              bool follow_last) {
  int symlinks = 0;
  VirtualDentry from = start.mount ? start : root_;
  if (from == root_ || path.starts_with("/")) {
    // Enter anything mounted over the root itself.
    from = path.starts_with("/") ? Enter(root_) : Enter(from);
  }
  return Walk(from, path, follow_last, &symlinks);
}

Result<std::pair<VirtualDentry, std::string>> MountNamespace::ResolveParent(
    const VirtualDentry& start, std::string_view path) {
  if (path.empty()) return Errno(ENOENT);
  std::string p(path);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  std::string dir, name;
  if (slash == std::string::npos) {
    dir = ".";
    name = p;
  } else {
    dir = slash == 0 ? "/" : p.substr(0, slash);
    name = p.substr(slash + 1);
  }
  if (p == "/") name = "";
  P9_ASSIGN_OR_RETURN(VirtualDentry parent, Resolve(start, dir, true));
  if (!parent.dentry->is_dir()) return Errno(ENOTDIR);
  if (name.size() > 255) return Errno(ENAMETOOLONG);
  return std::make_pair(parent, name);
}

std::string MountNamespace::PathOf(const VirtualDentry& vd) const {
  std::vector<std::string> parts;
  VirtualDentry cur = vd;
  for (int guard = 0; guard < 4096; ++guard) {
    if (cur == root_) break;
    if (cur.dentry == cur.mount->root) {
      if (!cur.mount->parent) break;
      cur = VirtualDentry{cur.mount->parent, cur.mount->mountpoint};
      continue;
    }
    parts.push_back(cur.dentry->name());
    auto p = cur.dentry->parent();
    if (!p) break;
    cur.dentry = p;
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += "/" + *it;
  return out.empty() ? "/" : out;
}

std::vector<std::shared_ptr<Mount>> MountNamespace::AllMounts() const {
  std::lock_guard l(mu_);
  return all_;
}

std::vector<MountInfo> MountNamespace::Mounts() const {
  std::vector<std::shared_ptr<Mount>> all;
  {
    std::lock_guard l(mu_);
    all = all_;
  }
  std::vector<MountInfo> out;
  for (auto& m : all) {
    std::string path = m->parent ? PathOf(VirtualDentry{m->parent, m->mountpoint}) : "/";
    out.push_back(MountInfo{path, m->fs->type(), m->source, m->flags});
  }
  return out;
}

}  // namespace sentry::vfs
