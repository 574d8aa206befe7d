#include "sentry/vfs/dentry.h"

namespace sentry::vfs {

Dentry::Dentry(std::shared_ptr<Inode> inode, uint32_t type, std::shared_ptr<Dentry> parent,
               std::string name)
    : inode_(std::move(inode)), type_(type), parent_(std::move(parent)), name_(std::move(name)) {}

Result<std::shared_ptr<Dentry>> Dentry::MakeRoot(std::shared_ptr<Inode> inode) {
  P9_ASSIGN_OR_RETURN(Attr a, inode->GetAttr());
  return std::make_shared<Dentry>(std::move(inode), a.mode & S_IFMT, nullptr, "");
}

std::shared_ptr<Dentry> Dentry::parent() const {
  std::lock_guard l(mu_);
  return parent_;
}

std::string Dentry::name() const {
  std::lock_guard l(mu_);
  return name_;
}

std::shared_ptr<Dentry> Dentry::Cached(const std::string& name) const {
  std::lock_guard l(mu_);
  auto it = children_.find(name);
  return it == children_.end() ? nullptr : it->second.lock();
}

Result<std::shared_ptr<Dentry>> Dentry::Child(const std::string& name) {
  std::shared_ptr<Dentry> cached;
  {
    std::lock_guard l(mu_);
    auto it = children_.find(name);
    if (it != children_.end()) cached = it->second.lock();
  }
  if (cached) {
    if (inode_->CacheLookups() || inode_->Revalidate(name, *cached->inode())) return cached;
    Forget(name);
  }
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, inode_->Lookup(name));
  P9_ASSIGN_OR_RETURN(Attr a, inode->GetAttr());
  return AddChild(name, std::move(inode), a.mode & S_IFMT);
}

std::shared_ptr<Dentry> Dentry::AddChild(const std::string& name, std::shared_ptr<Inode> inode,
                                         uint32_t type) {
  auto d = std::make_shared<Dentry>(std::move(inode), type, shared_from_this(), name);
  std::lock_guard l(mu_);
  children_[name] = d;
  return d;
}

void Dentry::Forget(const std::string& name) {
  std::lock_guard l(mu_);
  children_.erase(name);
}

void Dentry::Moved(const std::string& oldname, Dentry& newdir, const std::string& newname) {
  std::shared_ptr<Dentry> moved;
  {
    std::lock_guard l(mu_);
    auto it = children_.find(oldname);
    if (it != children_.end()) moved = it->second.lock();
    children_.erase(oldname);
  }
  newdir.Forget(newname);  // A replaced target is no longer reachable by that name.
  if (!moved) return;
  {
    std::lock_guard l(moved->mu_);
    moved->parent_ = newdir.shared_from_this();
    moved->name_ = newname;
  }
  std::lock_guard l(newdir.mu_);
  newdir.children_[newname] = moved;
}

bool Dentry::IsDescendantOf(const Dentry& other) const {
  std::shared_ptr<const Dentry> cur = shared_from_this();
  while (cur) {
    if (cur.get() == &other) return true;
    cur = cur->parent();
  }
  return false;
}

}  // namespace sentry::vfs
