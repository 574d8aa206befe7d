// Dentries: the names of inodes in a file system tree, cached for path resolution.
//
// Ownership: a child holds its parent (shared_ptr), a parent holds its children weakly, so a
// dentry lives while anything below it, an open file, a cwd or a mount uses it; unused
// subtrees disappear on their own. Mount points are pinned by their Mount.
//
// Locking: mu_ guards parent_, name_, children_ and dead_ of one dentry. A thread never holds
// two dentries' locks at once.
#ifndef SENTRY_VFS_DENTRY_H_
#define SENTRY_VFS_DENTRY_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "sentry/vfs/inode.h"

namespace sentry::vfs {

class Dentry : public std::enable_shared_from_this<Dentry> {
 public:
  // `type` is the inode's S_IFMT bits (an inode never changes type).
  Dentry(std::shared_ptr<Inode> inode, uint32_t type, std::shared_ptr<Dentry> parent,
         std::string name);
  static Result<std::shared_ptr<Dentry>> MakeRoot(std::shared_ptr<Inode> inode);

  const std::shared_ptr<Inode>& inode() const { return inode_; }
  uint32_t type() const { return type_; }
  bool is_dir() const { return type_ == S_IFDIR; }
  std::shared_ptr<Dentry> parent() const;  // Null at a file system root.
  std::string name() const;

  // The child `name`: from the cache when the directory allows (or revalidates) it, else
  // looked up in the file system.
  Result<std::shared_ptr<Dentry>> Child(const std::string& name);
  // The cached child `name`, without asking the file system; null if none.
  std::shared_ptr<Dentry> Cached(const std::string& name) const;
  // Records a child just created by the VFS.
  std::shared_ptr<Dentry> AddChild(const std::string& name, std::shared_ptr<Inode> inode,
                                   uint32_t type);
  // Forgets the cached child `name` (after unlink, or when it went stale).
  void Forget(const std::string& name);
  // After a rename of `oldname` here to `newname` in `newdir`: move the cached dentry.
  void Moved(const std::string& oldname, Dentry& newdir, const std::string& newname);
  // True if this dentry is `other` or below it.
  bool IsDescendantOf(const Dentry& other) const;

 private:
  const std::shared_ptr<Inode> inode_;
  const uint32_t type_;
  mutable std::mutex mu_;
  std::shared_ptr<Dentry> parent_;                         // Guarded by mu_.
  std::string name_;                                       // Guarded by mu_.
  std::map<std::string, std::weak_ptr<Dentry>> children_;  // Guarded by mu_.
};

}  // namespace sentry::vfs

#endif  // SENTRY_VFS_DENTRY_H_
