// GoferInode, a 9p inode: walked (it holds a fid) or, under the attribute-caching policies,
// known from its directory's listing until something needs its fid.
#ifndef SENTRY_FS_GOFER_GOFER_INODE_H_
#define SENTRY_FS_GOFER_GOFER_INODE_H_

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "p9/client_file.h"
#include "p9/messages.h"
#include "p9/p9.h"
#include "p9/result.h"
#include "sentry/fs/gofer/gofer_fs.h"
#include "sentry/fs/gofer/page_cache.h"
#include "sentry/vfs/inode.h"
#include "sentry/vfs/types.h"

namespace sentry::fs {

// A 9p inode: walked (it holds a fid), or, under the attribute-caching policies, unwalked:
// known from its directory's listing (Treaddirattr), which gave its attributes. An unwalked
// inode costs the gofer nothing (no fid, no host fd) and gets a fid only when something
// needs one (Fid(): a walk from its parent). Every change goes through this
// sandbox under those policies, so the (parent, name) it was listed under stays its own:
// a rename walks the moved entry first (Settle), an unlink or a replacement marks it stale.
class GoferInode : public vfs::Inode {
 public:
  // Walked: `fid` names it.
  GoferInode(std::shared_ptr<GoferFs::Shared> shared, p9::ClientFile fid, p9::Qid qid)
      : shared_(std::move(shared)), fid_(std::move(fid)), qid_(qid) {}
  // Unwalked: entry `name` of `parent`'s listing, with the attributes it gave.
  GoferInode(std::shared_ptr<GoferFs::Shared> shared, std::shared_ptr<GoferInode> parent,
             std::string name, p9::Qid qid, const vfs::Attr& attr)
      : shared_(std::move(shared)),
        parent_(std::move(parent)),
        name_(std::move(name)),
        qid_(qid),
        attr_(attr) {}

  const p9::Qid& qid() const { return qid_; }

  // This inode's fid, walked now if it has none yet: one name from its parent, which its
  // parent's listing left walked. The pointer stays valid while the inode lives.
  p9::Result<const p9::ClientFile*> Fid();
  // Twalk of `name` from `dir` to a new fid, and the qid it reached.
  static p9::Result<std::pair<p9::ClientFile, p9::Qid>> WalkName(const p9::ClientFile& dir,
                                                                 const std::string& name);
  // This directory's entries (Treaddirattr), its subdirectories with their attributes. An
  // unwalked directory is listed from its parent, and the listing leaves it walked: its own
  // entries then list one name away; or its listing was sent ahead (ListingPrefetch) and is
  // taken. `epoch`: in, the file system's epoch before the call; out, the epoch the
  // entries' attributes stand for (older, for a listing sent ahead).
  p9::Result<std::vector<p9::DirentAttr>> ListAttr(uint64_t& epoch);
  // Its name went away (unlinked, or replaced by a rename) while it was unwalked: it can
  // never be walked now.
  void Stale();
  // Before entry `name` here is renamed away: an unwalked inode listed under it is walked,
  // so that it stops depending on the name. Before it is unlinked or replaced: stale.
  p9::Result<void> Settle(const std::string& name, bool moving);
  void InvalidateAttrs();
  // Before a change of entry `name` in this directory: forgets the cached listing, what is
  // known of `name`, and the directory's attributes, which it returns for Touched().
  std::optional<vfs::Attr> Changed(const std::string& name);
  // After that change succeeded: the attributes it had, moved as a local file system moves
  // a directory's (mtime and ctime to now; nlink by `subdirs` where it counts subdirectories),
  // so the next stat (the kernel asks after every create) needs no round trip. The size of a
  // directory is file-system specific and stays as it was. A failed change skips this: the
  // attributes stay forgotten and are asked for next time.
  void Touched(std::optional<vfs::Attr> before, int subdirs = 0);
  // Host I/O (GoferFile::StartHostIo): the kernel reads and writes the data on the host fd,
  // unseen by us. While a writable such file is open, GetAttr takes size and times from the
  // host; when it closes they are taken once more and the page cache restarts at the host's
  // size (it holds nothing dirty: the file was flushed when host I/O started).
  void HostIoStarted(bool writable, int fd);
  void HostIoEnded(bool writable, int fd);
  // What of `a` the host changes by writing: size, blocks, times (and, for completeness,
  // what fstat reports alongside). The inode number stays the qid's.
  static void FromHost(vfs::Attr& a, const struct stat& st);

  // A file written through this sandbox: its times move now (size comes from the pages).
  void Wrote();

  p9::Result<vfs::Attr> GetAttr() override;

  // The page cache of a regular file under an fscache policy, created at first open.
  p9::Result<std::shared_ptr<PageCache>> Pages();

  p9::Result<void> SetAttr(const vfs::SetAttrRequest& req) override;

  // `a` after `req` (no size change), as Linux applies a setattr.
  static vfs::Attr Applied(vfs::Attr a, const vfs::SetAttrRequest& req);

  p9::Result<std::unique_ptr<vfs::OpenFile>> Open(int flags) override;

  p9::Result<std::string> Readlink() override;

  // The cache does appends itself and needs to read pages it partially writes: the backend
  // is opened read-write, never O_APPEND (pwrite on O_APPEND would ignore offsets).
  static uint32_t PageCacheBackendFlags(uint32_t f);

  // What a Treaddirattr listing said of each entry with attributes: by name.
  struct KnownEntry {
    p9::Qid qid;
    vfs::Attr attr;
  };
  using Known = std::map<std::string, KnownEntry>;
  // A Treaddirattr listing as the listing (cookies 1..n; inode numbers from the entries'
  // attributes where they have some: a mount point's are those of what is mounted, as a
  // walk and a stat see it) and what it says of each entry.
  static std::pair<std::shared_ptr<const std::vector<vfs::DirEntry>>, std::shared_ptr<const Known>>
  FromAttrListing(std::vector<p9::DirentAttr> ents);

  // Every entry of the directory `dir` (p9's ReaddirAll), with cookies 1..n.
  static p9::Result<std::shared_ptr<const std::vector<vfs::DirEntry>>> ListAll(
      const p9::ClientFile& dir);

  // Walks `name` and returns the new inode. Where attributes are cached and our dialect is
  // spoken, the walk brings them along (Twalkgetattr): one round trip per lookup, not two.
  p9::Result<std::shared_ptr<GoferInode>> WalkChild(const std::string& name);

  p9::Result<std::shared_ptr<vfs::Inode>> Lookup(const std::string& name) override;
  // What a walk (or a create) of `name` here found: it exists or it does not.
  void Found(const std::string& name, bool exists);
  // Records unwalked child `child` under `name` (for Settle). REQUIRES: mu_ held.
  void Remember(const std::string& name, const std::shared_ptr<GoferInode>& child);

  // A directory this sandbox just made: empty, so its names are known.
  void KnownEmpty();

  // The inode of `name`, just created here by us.
  p9::Result<std::shared_ptr<vfs::Inode>> Created(const std::string& name);
  // The same from a Tlcreateat's reply (its walked fid and attributes), without a walk.
  std::shared_ptr<GoferInode> Created(const std::string& name, p9::ClientFile::CreatedAt& c);

  bool CacheLookups() const override;

  // remote_revalidating / none: the cached child is still valid if the name still walks to
  // the same file (qid path) on the host.
  bool Revalidate(const std::string& name, vfs::Inode& child) override;

  p9::Result<std::shared_ptr<vfs::Inode>> Mknod(const std::string& name, uint32_t mode,
                                                uint64_t rdev, uint32_t uid, uint32_t gid) override;

  // In our dialect one Tlcreateat, which leaves the new file opened and walked, with its
  // attributes. Elsewhere Tlcreate on a clone of this directory's fid, which leaves the clone
  // as the opened new file: create-and-open is Twalk, Tlcreate and a walk of the new name.
  p9::Result<CreatedFile> Create(const std::string& name, uint32_t mode, int flags, uint32_t uid,
                                 uint32_t gid) override;

  p9::Result<std::shared_ptr<vfs::Inode>> Mkdir(const std::string& name, uint32_t mode,
                                                uint32_t uid, uint32_t gid) override;

  p9::Result<std::shared_ptr<vfs::Inode>> Symlink(const std::string& name,
                                                  const std::string& target, uint32_t uid,
                                                  uint32_t gid) override;

  p9::Result<void> Link(const std::string& name, vfs::Inode& target) override;

  p9::Result<void> Unlink(const std::string& name, bool dir) override;

  p9::Result<void> Rename(const std::string& oldname, vfs::Inode& newdir,
                          const std::string& newname) override;

  p9::Result<vfs::FsStat> StatFs() override;

  // Under attribute caching, xattrs are cached per name (values and absences): the kernel
  // asks for security.capability before every write and chown.
  p9::Result<std::string> GetXattr(const std::string& name) override;
  p9::Result<std::vector<std::string>> ListXattr() override;
  p9::Result<void> SetXattr(const std::string& name, const std::string& value, int flags) override;
  p9::Result<void> RemoveXattr(const std::string& name) override;
  void ForgetXattr(const std::string& name);
  // A file this sandbox just created has no file capabilities (creation never sets them).
  void KnownWithoutCapabilities();

 private:
  friend class GoferFile;
  const std::shared_ptr<GoferFs::Shared> shared_;  // Before fid_: outlives the clunk.
  // Unwalked inodes: the directory listed and the name it was listed under (null/empty
  // for inodes walked from the start). Immutable; they hold the parent alive.
  const std::shared_ptr<GoferInode> parent_;
  const std::string name_;
  std::mutex fid_mu_;   // Taken before the parent's fid_mu_, never after.
  p9::ClientFile fid_;  // Guarded by fid_mu_; once valid, never changes. Walked, never opened.
  bool stale_ = false;  // Guarded by fid_mu_. Unwalked and its name gone: no walk will do.
  const p9::Qid qid_;
  std::mutex mu_;
  std::optional<vfs::Attr> attr_;  // Guarded by mu_. Only with an attribute-caching policy.
  std::shared_ptr<PageCache> pages_;  // Guarded by mu_. fscache policies, regular files.
  std::vector<int> host_writers_;     // Guarded by mu_. See HostIoStarted.
  // fscache policies, directories: the listing and the names known not to exist.
  std::shared_ptr<const std::vector<vfs::DirEntry>> listing_;  // Guarded by mu_.
  std::set<std::string> negative_;                             // Guarded by mu_.
  // fscache policies, directories: every name in it, when known (listed, or made empty by
  // us), except those in uncertain_ (changed since; a lookup settles each).
  std::optional<std::set<std::string>> names_;  // Guarded by mu_.
  std::set<std::string> uncertain_;             // Guarded by mu_.
  // Attribute-caching policies, directories listed with Treaddirattr: the entries' attributes
  // as the listing gave them, usable while the file system's epoch is still known_epoch_;
  // and the unwalked children made from them, by name (Settle).
  std::shared_ptr<const Known> known_;                           // Guarded by mu_.
  uint64_t known_epoch_ = 0;                                     // Guarded by mu_.
  std::map<std::string, std::weak_ptr<GoferInode>> unwalked_;    // Guarded by mu_.
  size_t unwalked_live_hint_ = 0;                                // Guarded by mu_.
  // Attribute-caching policies: xattr values by name, nullopt where known absent.
  static constexpr size_t kMaxCachedXattrs = 64;
  std::map<std::string, std::optional<std::string>> xattrs_;  // Guarded by mu_.
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_GOFER_INODE_H_
