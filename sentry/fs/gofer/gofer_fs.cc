#include "sentry/fs/gofer/gofer_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "glog/logging.h"
#include "p9/client_file.h"
#include "sentry/fs/gofer/page_cache.h"

namespace sentry::fs {

using p9::ClientFile;
using p9::Errno;
using p9::Result;
using vfs::Attr;
using vfs::DirEntry;
using vfs::Inode;
using vfs::OpenFile;
using vfs::SetAttrRequest;

struct GoferFs::Shared {
  std::unique_ptr<p9::Client> client;
  CachePolicy cache;
  bool CachesAttrs() const {
    return cache == CachePolicy::kFscache || cache == CachePolicy::kFscacheWritethrough;
  }
  // Counts changes made through this file system (attributes, data, names). A directory's
  // listing describes its entries as they were when it was read; its attributes stand for
  // an entry only while nothing has changed since (GoferInode::Lookup).
  std::atomic<uint64_t> epoch{0};
  void Mutated() { epoch.fetch_add(1, std::memory_order_relaxed); }
  uint64_t Epoch() const { return epoch.load(std::memory_order_relaxed); }
};

namespace {

Attr ToAttr(const p9::Rgetattr& r) {
  Attr a;
  a.ino = r.qid.path;
  a.mode = r.mode;
  a.uid = r.uid;
  a.gid = r.gid;
  a.nlink = r.nlink;
  a.rdev = r.rdev;
  a.size = r.size;
  a.blksize = r.blksize;
  a.blocks = r.blocks;
  a.atime = {static_cast<time_t>(r.atime_sec), static_cast<long>(r.atime_nsec)};
  a.mtime = {static_cast<time_t>(r.mtime_sec), static_cast<long>(r.mtime_nsec)};
  a.ctime = {static_cast<time_t>(r.ctime_sec), static_cast<long>(r.ctime_nsec)};
  return a;
}

class GoferInode;

// An opened clone of an inode's fid. Under the fscache policies, data goes through the
// inode's page cache (shared by its opens) and this file's handle is the backend.
class GoferFile : public OpenFile {
 public:
  // regular: a regular file, read and written with several requests in flight
  // (Client::ReadFull, WriteFull).
  GoferFile(std::shared_ptr<GoferInode> inode, std::shared_ptr<GoferFs::Shared> shared,
            ClientFile fid, std::shared_ptr<PageCache> cache, int flags, bool regular)
      : inode_(std::move(inode)),
        shared_(std::move(shared)),
        fid_(std::move(fid)),
        cache_(std::move(cache)),
        flags_(flags),
        regular_(regular) {}
  ~GoferFile() override;

  Result<size_t> ReadAt(std::span<char> dst, uint64_t offset) override {
    if (cache_) return cache_->Read(dst, offset, BackendRead(), fid_.donated_fd() < 0);
    return DirectRead(dst, offset);
  }
  Result<size_t> WriteAt(std::span<const char> src, uint64_t offset) override;
  Result<std::vector<DirEntry>> Readdir(uint64_t offset) override {
    P9_ASSIGN_OR_RETURN(std::vector<p9::Dirent> ents,
                        fid_.Readdir(offset, shared_->client->msize()));
    std::vector<DirEntry> out;
    out.reserve(ents.size());
    for (auto& e : ents) out.push_back(DirEntry{std::move(e.name), e.qid.path, e.type, e.offset});
    return out;
  }
  Result<void> Fsync() override {
    if (cache_ && writable()) P9_RETURN_IF_ERROR(cache_->Flush(BackendWrite()));
    if (int fd = fid_.donated_fd(); fd >= 0) {
      if (fsync(fd) != 0) return p9::LastErrno();
      return p9::Ok();
    }
    return fid_.Fsync();
  }
  Result<void> Flush() override {
    if (cache_ && writable()) return cache_->Flush(BackendWrite());
    return p9::Ok();
  }
  std::optional<HostExtent> ReadableHostExtent(uint64_t offset, size_t len) override {
    int fd = fid_.donated_fd();
    if (fd < 0) return std::nullopt;
    if (!cache_) return HostExtent{fd, len};  // The host's end of file is the end.
    std::optional<size_t> clean = cache_->CleanExtent(offset, len);
    if (!clean.has_value()) return std::nullopt;
    return HostExtent{fd, *clean};
  }
  std::optional<HostIo> HostIoFile() const override;
  Result<void> StartHostIo() override;

 private:
  bool writable() const { return (flags_ & O_ACCMODE) != O_RDONLY; }
  Result<size_t> DirectRead(std::span<char> dst, uint64_t offset);
  Result<void> DirectWrite(std::span<const char> src, uint64_t offset);
  PageCache::ReadFn BackendRead() {
    return [this](std::span<char> d, uint64_t o) { return DirectRead(d, o); };
  }
  PageCache::WriteFn BackendWrite() {
    return [this](std::span<const char> s, uint64_t o) { return DirectWrite(s, o); };
  }

  std::shared_ptr<GoferInode> inode_;
  std::shared_ptr<GoferFs::Shared> shared_;  // Before fid_: the client outlives the clunk.
  ClientFile fid_;
  std::shared_ptr<PageCache> cache_;  // Null unless an fscache policy.
  const int flags_;                   // As the caller opened it.
  const bool regular_;
  bool host_io_ = false;              // StartHostIo() was called (by the opener, once).
};

// A snapshot of a directory's entries (fscache: directory contents are cached per inode).
class ListingFile : public OpenFile {
 public:
  explicit ListingFile(std::shared_ptr<const std::vector<DirEntry>> ents) : ents_(std::move(ents)) {}
  Result<size_t> ReadAt(std::span<char>, uint64_t) override { return Errno(EISDIR); }
  Result<size_t> WriteAt(std::span<const char>, uint64_t) override { return Errno(EISDIR); }
  Result<std::vector<DirEntry>> Readdir(uint64_t offset) override {
    std::vector<DirEntry> out;
    for (size_t i = offset; i < ents_->size(); ++i) out.push_back((*ents_)[i]);
    return out;
  }

 private:
  std::shared_ptr<const std::vector<DirEntry>> ents_;
};

// A 9p inode: walked (it holds a fid), or, under the attribute-caching policies, unwalked:
// known from its directory's listing (Treaddirattr), which gave its attributes. An unwalked
// inode costs the gofer nothing (no fid, no host fd) and gets a fid only when something
// needs one (Fid(): a walk from its parent). Every change goes through this
// sandbox under those policies, so the (parent, name) it was listed under stays its own:
// a rename walks the moved entry first (Settle), an unlink or a replacement marks it stale.
class GoferInode : public Inode {
 public:
  // Walked: `fid` names it.
  GoferInode(std::shared_ptr<GoferFs::Shared> shared, ClientFile fid, p9::Qid qid)
      : shared_(std::move(shared)), fid_(std::move(fid)), qid_(qid) {}
  // Unwalked: entry `name` of `parent`'s listing, with the attributes it gave.
  GoferInode(std::shared_ptr<GoferFs::Shared> shared, std::shared_ptr<GoferInode> parent,
             std::string name, p9::Qid qid, const Attr& attr)
      : shared_(std::move(shared)),
        parent_(std::move(parent)),
        name_(std::move(name)),
        qid_(qid),
        attr_(attr) {}

  const p9::Qid& qid() const { return qid_; }

  // This inode's fid, walked now if it has none yet: one name from its parent, which its
  // parent's listing left walked. The pointer stays valid while the inode lives.
  Result<const ClientFile*> Fid() {
    std::lock_guard l(fid_mu_);
    if (fid_.valid()) return &fid_;
    if (stale_) return Errno(ESTALE);
    P9_ASSIGN_OR_RETURN(const ClientFile* parent, parent_->Fid());  // Child to parent.
    P9_ASSIGN_OR_RETURN(auto walked, WalkName(*parent, name_));
    // The name must still be the file listed (nothing else changes this tree).
    if (walked.second.path != qid_.path) return Errno(ESTALE);
    fid_ = std::move(walked.first);
    return &fid_;
  }
  // Twalk of `name` from `dir` to a new fid, and the qid it reached.
  static Result<std::pair<ClientFile, p9::Qid>> WalkName(const ClientFile& dir,
                                                         const std::string& name) {
    p9::Client& c = dir.client();
    p9::Fid nf = c.NewFid();
    auto r = c.Call(p9::Twalk{dir.fid(), nf, {name}});
    if (!r.has_value() || r->wqids.size() != 1) {
      c.ReleaseFid(nf);
      return r.has_value() ? Errno(ENOENT) : r.error();
    }
    return std::make_pair(ClientFile(c, nf), r->wqids[0]);
  }
  // This directory's entries (Treaddirattr), its subdirectories with their attributes. An
  // unwalked directory is listed from its parent, and the listing leaves it walked: its own
  // entries then list one name away.
  Result<std::vector<p9::DirentAttr>> ListAttr() {
    std::unique_lock l(fid_mu_);
    if (fid_.valid()) {
      l.unlock();  // fid_ never changes once valid.
      P9_ASSIGN_OR_RETURN(ClientFile::AttrListing r, fid_.ListAttr());
      return std::move(r.entries);
    }
    if (stale_) return Errno(ESTALE);
    P9_ASSIGN_OR_RETURN(const ClientFile* parent, parent_->Fid());
    P9_ASSIGN_OR_RETURN(ClientFile::AttrListing r, parent->ListAttr({name_}, 0, /*keep=*/true));
    if (r.qid.path != qid_.path) return Errno(ESTALE);  // See Fid().
    fid_ = std::move(r.dir);
    return std::move(r.entries);
  }
  // Its name went away (unlinked, or replaced by a rename) while it was unwalked: it can
  // never be walked now.
  void Stale() {
    std::lock_guard l(fid_mu_);
    if (!fid_.valid()) stale_ = true;
  }
  // Before entry `name` here is renamed away: an unwalked inode listed under it is walked,
  // so that it stops depending on the name. Before it is unlinked or replaced: stale.
  Result<void> Settle(const std::string& name, bool moving) {
    std::shared_ptr<GoferInode> child;
    {
      std::lock_guard l(mu_);
      auto it = unwalked_.find(name);
      if (it == unwalked_.end()) return p9::Ok();
      child = it->second.lock();
      unwalked_.erase(it);
    }
    if (!child) return p9::Ok();
    if (!moving) {
      child->Stale();
      return p9::Ok();
    }
    P9_ASSIGN_OR_RETURN(const ClientFile* f, child->Fid());
    (void)f;
    return p9::Ok();
  }
  void InvalidateAttrs() {
    std::lock_guard l(mu_);
    attr_.reset();
  }
  // Before a change of entry `name` in this directory: forgets the cached listing, what is
  // known of `name`, and the directory's attributes, which it returns for Touched().
  std::optional<Attr> Changed(const std::string& name) {
    shared_->Mutated();
    std::lock_guard l(mu_);
    std::optional<Attr> before = std::move(attr_);
    attr_.reset();
    listing_.reset();
    negative_.erase(name);
    if (names_) uncertain_.insert(name);
    return before;
  }
  // After that change succeeded: the attributes it had, moved as a local file system moves
  // a directory's (mtime and ctime to now; nlink by `subdirs` where it counts subdirectories),
  // so the next stat (the kernel asks after every create) needs no round trip. The size of a
  // directory is file-system specific and stays as it was. A failed change skips this: the
  // attributes stay forgotten and are asked for next time.
  void Touched(std::optional<Attr> before, int subdirs = 0) {
    if (!before || !shared_->CachesAttrs()) return;
    clock_gettime(CLOCK_REALTIME, &before->mtime);
    before->ctime = before->mtime;
    if (before->nlink >= 2) before->nlink += subdirs;  // btrfs & co. keep directories at 1.
    std::lock_guard l(mu_);
    if (!attr_) attr_ = std::move(before);
  }
  // Host I/O (GoferFile::StartHostIo): the kernel reads and writes the data on the host fd,
  // unseen by us. While a writable such file is open, GetAttr takes size and times from the
  // host; when it closes they are taken once more and the page cache restarts at the host's
  // size (it holds nothing dirty: the file was flushed when host I/O started).
  void HostIoStarted(bool writable, int fd) {
    if (!writable) return;
    shared_->Mutated();
    std::lock_guard l(mu_);
    host_writers_.push_back(fd);
  }
  void HostIoEnded(bool writable, int fd) {
    if (!writable) return;
    shared_->Mutated();
    struct stat st;
    bool known = fstat(fd, &st) == 0;
    std::lock_guard l(mu_);
    host_writers_.erase(std::find(host_writers_.begin(), host_writers_.end(), fd));
    if (!known) {
      attr_.reset();
      pages_.reset();
      return;
    }
    if (attr_) FromHost(*attr_, st);
    if (pages_) pages_->Reset(static_cast<uint64_t>(st.st_size));
  }
  // What of `a` the host changes by writing: size, blocks, times (and, for completeness,
  // what fstat reports alongside). The inode number stays the qid's.
  static void FromHost(Attr& a, const struct stat& st) {
    a.mode = st.st_mode;
    a.nlink = st.st_nlink;
    a.uid = st.st_uid;
    a.gid = st.st_gid;
    a.size = static_cast<uint64_t>(st.st_size);
    a.blocks = static_cast<uint64_t>(st.st_blocks);
    a.atime = st.st_atim;
    a.mtime = st.st_mtim;
    a.ctime = st.st_ctim;
  }

  // A file written through this sandbox: its times move now (size comes from the pages).
  void Wrote() {
    shared_->Mutated();
    if (!shared_->CachesAttrs()) return InvalidateAttrs();
    std::lock_guard l(mu_);
    if (!attr_) return;
    clock_gettime(CLOCK_REALTIME, &attr_->mtime);
    attr_->ctime = attr_->mtime;
  }

  Result<Attr> GetAttr() override {
    std::shared_ptr<PageCache> pc;
    {
      std::lock_guard l(mu_);
      // Host I/O may be writing: the host's size and times are the truth (fstat holds no
      // lock the writers need; mu_ keeps the fd open).
      const bool host = !host_writers_.empty();
      if (!host) pc = pages_;
      if (shared_->CachesAttrs() && attr_) {
        Attr a = *attr_;
        if (host) {
          struct stat st;
          if (fstat(host_writers_.front(), &st) != 0) return p9::LastErrno();
          FromHost(a, st);
          attr_ = a;
        } else if (pc) {
          a.size = pc->size();  // Authoritative while it may hold dirty data.
        }
        return a;
      }
    }
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    P9_ASSIGN_OR_RETURN(p9::Rgetattr r, fid->GetAttr(p9::getattr::kBasic));
    Attr a = ToAttr(r);
    if (shared_->CachesAttrs()) {
      std::lock_guard l(mu_);
      attr_ = a;
    }
    if (pc) a.size = pc->size();
    return a;
  }

  // The page cache of a regular file under an fscache policy, created at first open.
  Result<std::shared_ptr<PageCache>> Pages() {
    {
      std::lock_guard l(mu_);
      if (pages_) return pages_;
    }
    P9_ASSIGN_OR_RETURN(Attr a, GetAttr());  // Cached, under the policies that have pages.
    std::lock_guard l(mu_);
    if (!pages_) pages_ = std::make_shared<PageCache>(a.size);
    return pages_;
  }

  Result<void> SetAttr(const SetAttrRequest& req) override {
    namespace sa = p9::setattr;
    p9::Tsetattr t;
    if (req.mask & SetAttrRequest::kMode) t.valid |= sa::kMode, t.mode = req.mode;
    if (req.mask & SetAttrRequest::kUid) t.valid |= sa::kUid, t.uid = req.uid;
    if (req.mask & SetAttrRequest::kGid) t.valid |= sa::kGid, t.gid = req.gid;
    if (req.mask & SetAttrRequest::kSize) t.valid |= sa::kSize, t.size = req.size;
    if (req.mask & SetAttrRequest::kAtime) {
      t.valid |= sa::kAtime | sa::kAtimeSet;
      t.atime_sec = req.atime.tv_sec;
      t.atime_nsec = req.atime.tv_nsec;
    }
    if (req.mask & SetAttrRequest::kAtimeNow) t.valid |= sa::kAtime;
    if (req.mask & SetAttrRequest::kMtime) {
      t.valid |= sa::kMtime | sa::kMtimeSet;
      t.mtime_sec = req.mtime.tv_sec;
      t.mtime_nsec = req.mtime.tv_nsec;
    }
    if (req.mask & SetAttrRequest::kMtimeNow) t.valid |= sa::kMtime;
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    shared_->Mutated();
    std::optional<Attr> before;
    {
      std::lock_guard l(mu_);
      before = std::exchange(attr_, std::nullopt);
    }
    P9_RETURN_IF_ERROR(fid->SetAttr(t));
    std::lock_guard l(mu_);
    if (req.mask & SetAttrRequest::kSize) {
      if (pages_) pages_->Truncate(req.size);
    } else if (before.has_value() && shared_->CachesAttrs()) {
      // Nothing but us changes this file (exclusive access): the new attributes follow from
      // the old ones as the host computes them, so the caller's stat costs no Tgetattr.
      attr_ = Applied(*before, req);
    }
    return p9::Ok();
  }

  // `a` after `req` (no size change), as Linux applies a setattr.
  static Attr Applied(Attr a, const SetAttrRequest& req) {
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    bool owner = ((req.mask & SetAttrRequest::kUid) && req.uid != a.uid) ||
                 ((req.mask & SetAttrRequest::kGid) && req.gid != a.gid);
    if (req.mask & SetAttrRequest::kUid) a.uid = req.uid;
    if (req.mask & SetAttrRequest::kGid) a.gid = req.gid;
    if (owner && !S_ISDIR(a.mode)) {
      // chown drops set-user-ID, and set-group-ID where group execution is on.
      a.mode &= ~static_cast<uint32_t>(S_ISUID);
      if (a.mode & S_IXGRP) a.mode &= ~static_cast<uint32_t>(S_ISGID);
    }
    if (req.mask & SetAttrRequest::kMode) a.mode = (a.mode & S_IFMT) | (req.mode & 07777);
    if (req.mask & SetAttrRequest::kAtime) a.atime = req.atime;
    if (req.mask & SetAttrRequest::kAtimeNow) a.atime = now;
    if (req.mask & SetAttrRequest::kMtime) a.mtime = req.mtime;
    if (req.mask & SetAttrRequest::kMtimeNow) a.mtime = now;
    a.ctime = now;
    return a;
  }

  Result<std::unique_ptr<OpenFile>> Open(int flags) override {
    uint32_t f = static_cast<uint32_t>(flags) & ~static_cast<uint32_t>(O_CLOEXEC | O_NOCTTY);
    std::shared_ptr<PageCache> pc;
    P9_ASSIGN_OR_RETURN(Attr a, GetAttr());
    if (shared_->CachesAttrs() && S_ISDIR(a.mode)) {
      std::shared_ptr<const std::vector<DirEntry>> listing;
      {
        std::lock_guard l(mu_);
        listing = listing_;
      }
      if (!listing) {
        std::shared_ptr<const Known> known;
        const uint64_t epoch = shared_->Epoch();
        if (shared_->client->extended()) {
          // Our dialect lists a directory without opening it, walked or not (then the
          // listing walks it), and says what each subdirectory is.
          P9_ASSIGN_OR_RETURN(std::vector<p9::DirentAttr> ents, ListAttr());
          std::tie(listing, known) = FromAttrListing(std::move(ents));
        } else {
          P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
          P9_ASSIGN_OR_RETURN(ClientFile clone, fid->Walk({}));
          P9_RETURN_IF_ERROR(clone.Open(f));
          P9_ASSIGN_OR_RETURN(listing, ListAll(clone));
        }
        std::lock_guard l(mu_);
        listing_ = listing;
        known_ = known;
        known_epoch_ = epoch;
        // Names changed meanwhile stay uncertain until looked up.
        names_.emplace();
        for (const DirEntry& e : *listing) names_->insert(e.name);
      }
      return std::unique_ptr<OpenFile>(std::make_unique<ListingFile>(listing));
    }
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    P9_ASSIGN_OR_RETURN(ClientFile clone, fid->Walk({}));
    if (shared_->CachesAttrs() && S_ISREG(a.mode)) {
      P9_ASSIGN_OR_RETURN(pc, Pages());
      f = PageCacheBackendFlags(f);
      if (flags & O_TRUNC) {
        std::lock_guard l(mu_);
        pages_->Truncate(0);
      }
    }
    P9_RETURN_IF_ERROR(clone.Open(f));
    if (flags & O_TRUNC) {
      shared_->Mutated();
      InvalidateAttrs();
    }
    return std::unique_ptr<OpenFile>(std::make_unique<GoferFile>(
        std::static_pointer_cast<GoferInode>(shared_from_this()), shared_, std::move(clone), pc,
        flags, S_ISREG(a.mode)));
  }

  Result<std::string> Readlink() override {
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    return fid->Readlink();
  }

  // The cache does appends itself and needs to read pages it partially writes: the backend
  // is opened read-write, never O_APPEND (pwrite on O_APPEND would ignore offsets).
  static uint32_t PageCacheBackendFlags(uint32_t f) {
    f &= ~static_cast<uint32_t>(O_APPEND);
    if ((f & O_ACCMODE) == O_WRONLY) f = (f & ~O_ACCMODE) | O_RDWR;
    return f;
  }

  // What a Treaddirattr listing said of each entry with attributes: by name.
  struct KnownEntry {
    p9::Qid qid;
    Attr attr;
  };
  using Known = std::map<std::string, KnownEntry>;
  // A Treaddirattr listing as the listing (cookies 1..n; inode numbers from the entries'
  // attributes where they have some: a mount point's are those of what is mounted, as a
  // walk and a stat see it) and what it says of each entry.
  static std::pair<std::shared_ptr<const std::vector<DirEntry>>, std::shared_ptr<const Known>>
  FromAttrListing(std::vector<p9::DirentAttr> ents) {
    auto all = std::make_shared<std::vector<DirEntry>>();
    auto known = std::make_shared<Known>();
    all->reserve(ents.size());
    for (auto& e : ents) {
      const bool has = (e.attr.valid & p9::getattr::kBasic) == p9::getattr::kBasic;
      uint64_t ino = has ? e.attr.qid.path : e.dirent.qid.path;
      if (has) known->emplace(e.dirent.name, KnownEntry{e.attr.qid, ToAttr(e.attr)});
      all->push_back(DirEntry{std::move(e.dirent.name), ino, e.dirent.type, all->size() + 1});
    }
    return {std::move(all), std::move(known)};
  }

  // Every entry of the directory `dir` (p9's ReaddirAll), with cookies 1..n.
  static Result<std::shared_ptr<const std::vector<DirEntry>>> ListAll(const ClientFile& dir) {
    P9_ASSIGN_OR_RETURN(std::vector<p9::Dirent> ents, dir.ReaddirAll());
    auto all = std::make_shared<std::vector<DirEntry>>();
    all->reserve(ents.size());
    for (auto& e : ents) {
      all->push_back(DirEntry{std::move(e.name), e.qid.path, e.type, all->size() + 1});
    }
    return std::shared_ptr<const std::vector<DirEntry>>(std::move(all));
  }

  // Walks `name` and returns the new inode. Where attributes are cached and our dialect is
  // spoken, the walk brings them along (Twalkgetattr): one round trip per lookup, not two.
  Result<std::shared_ptr<GoferInode>> WalkChild(const std::string& name) {
    p9::Client& c = *shared_->client;
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    if (shared_->CachesAttrs() && c.extended()) {
      P9_ASSIGN_OR_RETURN(auto r, fid->WalkGetAttr({name}));
      auto child = std::make_shared<GoferInode>(shared_, std::move(r.first), r.second.qid);
      child->attr_ = ToAttr(r.second);
      return child;
    }
    P9_ASSIGN_OR_RETURN(auto walked, WalkName(*fid, name));
    return std::make_shared<GoferInode>(shared_, std::move(walked.first), walked.second);
  }

  Result<std::shared_ptr<Inode>> Lookup(const std::string& name) override {
    if (shared_->CachesAttrs()) {
      std::lock_guard l(mu_);
      if (negative_.contains(name)) return Errno(ENOENT);
      // Every name here is known (and this one was not touched since): absent, no walk.
      if (names_ && !names_->contains(name) && !uncertain_.contains(name)) return Errno(ENOENT);
      // Listed with its attributes, and nothing changed since: known without a walk. (A
      // change since, even through an inode gone meanwhile, may have made them stale.)
      if (known_ && known_epoch_ == shared_->Epoch() && !uncertain_.contains(name)) {
        if (auto it = known_->find(name); it != known_->end()) {
          auto child = std::make_shared<GoferInode>(
              shared_, std::static_pointer_cast<GoferInode>(shared_from_this()), name,
              it->second.qid, it->second.attr);
          Remember(name, child);
          return std::shared_ptr<Inode>(child);
        }
      }
    }
    auto child = WalkChild(name);
    if (shared_->CachesAttrs() && (child.has_value() || child.error() == Errno(ENOENT))) {
      std::lock_guard l(mu_);
      if (!child.has_value()) negative_.insert(name);
      if (names_) {
        if (child.has_value()) {
          names_->insert(name);
        } else {
          names_->erase(name);
        }
        uncertain_.erase(name);
      }
    }
    if (!child.has_value()) return child.error();
    return std::shared_ptr<Inode>(*child);
  }
  // Records unwalked child `child` under `name` (for Settle). REQUIRES: mu_ held.
  void Remember(const std::string& name, const std::shared_ptr<GoferInode>& child) {
    if (unwalked_.size() >= 2 * unwalked_live_hint_ + 64) {
      std::erase_if(unwalked_, [](const auto& kv) { return kv.second.expired(); });
      unwalked_live_hint_ = unwalked_.size();
    }
    unwalked_[name] = child;
  }

  // A directory this sandbox just made: empty, so its names are known.
  void KnownEmpty() {
    if (!shared_->CachesAttrs()) return;
    std::lock_guard l(mu_);
    names_.emplace();
  }

  // The inode of `name`, just created here by us.
  Result<std::shared_ptr<Inode>> Created(const std::string& name) {
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> c, Lookup(name));
    static_cast<GoferInode&>(*c).KnownWithoutCapabilities();
    return c;
  }

  bool CacheLookups() const override { return shared_->CachesAttrs(); }

  // remote_revalidating / none: the cached child is still valid if the name still walks to
  // the same file (qid path) on the host.
  bool Revalidate(const std::string& name, Inode& child) override {
    auto* c = dynamic_cast<GoferInode*>(&child);
    if (c == nullptr) return false;
    auto fid = Fid();
    if (!fid.has_value()) return false;
    auto walked = WalkName(**fid, name);  // Its fid is clunked on the way out.
    return walked.has_value() && walked->second.path == c->qid_.path;
  }

  Result<std::shared_ptr<Inode>> Mknod(const std::string& name, uint32_t mode, uint64_t rdev,
                                       uint32_t uid, uint32_t gid) override {
    (void)uid;
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    auto before = Changed(name);
    if ((mode & S_IFMT) == S_IFREG) {
      P9_ASSIGN_OR_RETURN(ClientFile clone, fid->Walk({}));
      P9_RETURN_IF_ERROR(clone.Create(name, p9::open_flags::kRdOnly, mode & 07777, gid));
    } else {
      P9_RETURN_IF_ERROR(fid->Mknod(name, mode, major(rdev), minor(rdev), gid));
    }
    Touched(std::move(before));
    return Created(name);
  }

  // Tlcreate on a clone of this directory's fid leaves the clone as the opened new file, so
  // create-and-open is Twalk, Tlcreate and the Twalkgetattr of the new name.
  Result<CreatedFile> Create(const std::string& name, uint32_t mode, int flags, uint32_t uid,
                             uint32_t gid) override {
    (void)uid;
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    auto before = Changed(name);
    uint32_t f = static_cast<uint32_t>(flags) & ~static_cast<uint32_t>(O_CLOEXEC | O_NOCTTY);
    if (shared_->CachesAttrs()) f = PageCacheBackendFlags(f);
    P9_ASSIGN_OR_RETURN(ClientFile clone, fid->Walk({}));
    P9_RETURN_IF_ERROR(clone.Create(name, f, mode & 07777, gid));
    Touched(std::move(before));
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, Created(name));
    auto child = std::static_pointer_cast<GoferInode>(inode);
    std::shared_ptr<PageCache> pc;
    if (shared_->CachesAttrs()) {
      P9_ASSIGN_OR_RETURN(pc, child->Pages());
    }
    return CreatedFile{inode, std::make_unique<GoferFile>(child, shared_, std::move(clone), pc,
                                                          flags, /*regular=*/true)};
  }

  Result<std::shared_ptr<Inode>> Mkdir(const std::string& name, uint32_t mode, uint32_t uid,
                                       uint32_t gid) override {
    (void)uid;
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    auto before = Changed(name);
    P9_RETURN_IF_ERROR(fid->Mkdir(name, mode, gid));
    Touched(std::move(before), +1);
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> dir, Created(name));
    static_cast<GoferInode&>(*dir).KnownEmpty();
    return dir;
  }

  Result<std::shared_ptr<Inode>> Symlink(const std::string& name, const std::string& target,
                                         uint32_t uid, uint32_t gid) override {
    (void)uid;
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    auto before = Changed(name);
    P9_RETURN_IF_ERROR(fid->Symlink(name, target, gid));
    Touched(std::move(before));
    return Created(name);
  }

  Result<void> Link(const std::string& name, Inode& target) override {
    auto* t = dynamic_cast<GoferInode*>(&target);
    if (t == nullptr || t->shared_ != shared_) return Errno(EXDEV);
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    P9_ASSIGN_OR_RETURN(const ClientFile* tfid, t->Fid());
    auto before = Changed(name);
    t->InvalidateAttrs();
    P9_RETURN_IF_ERROR(fid->Link(*tfid, name));
    Touched(std::move(before));
    return p9::Ok();
  }

  Result<void> Unlink(const std::string& name, bool dir) override {
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    auto before = Changed(name);
    P9_RETURN_IF_ERROR(Settle(name, false));
    auto r = fid->UnlinkAt(name, dir ? p9::kAtRemoveDir : 0);
    if (!r.has_value() && r.error() == Errno(EOPNOTSUPP)) {
      // Servers without Tunlinkat (diod): walk and Tremove, as Linux does.
      P9_ASSIGN_OR_RETURN(ClientFile f, fid->Walk({name}));
      P9_ASSIGN_OR_RETURN(p9::Rgetattr a, f.GetAttr(p9::getattr::kMode));
      if (dir != S_ISDIR(a.mode)) return Errno(dir ? ENOTDIR : EISDIR);
      r = f.Remove();
    }
    if (r.has_value()) Touched(std::move(before), dir ? -1 : 0);
    return r;
  }

  Result<void> Rename(const std::string& oldname, Inode& newdir,
                      const std::string& newname) override {
    auto* d = dynamic_cast<GoferInode*>(&newdir);
    if (d == nullptr || d->shared_ != shared_) return Errno(EXDEV);
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    P9_ASSIGN_OR_RETURN(const ClientFile* dfid, d->Fid());
    // The moved entry keeps its inode under the new name: it must not need the old one.
    P9_RETURN_IF_ERROR(Settle(oldname, true));
    Changed(oldname);
    d->Changed(newname);
    P9_RETURN_IF_ERROR(d->Settle(newname, false));
    auto r = fid->RenameAt(oldname, *dfid, newname);
    if (r.has_value() || r.error() != Errno(EOPNOTSUPP)) return r;
    P9_ASSIGN_OR_RETURN(ClientFile f, fid->Walk({oldname}));
    return f.Rename(*dfid, newname);
  }

  Result<vfs::FsStat> StatFs() override {
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    P9_ASSIGN_OR_RETURN(p9::Rstatfs s, fid->StatFs());
    vfs::FsStat o;
    o.type = s.type;
    o.bsize = s.bsize;
    o.blocks = s.blocks;
    o.bfree = s.bfree;
    o.bavail = s.bavail;
    o.files = s.files;
    o.ffree = s.ffree;
    o.namelen = s.namelen;
    return o;
  }

  // Under attribute caching, xattrs are cached per name (values and absences): the kernel
  // asks for security.capability before every write and chown.
  Result<std::string> GetXattr(const std::string& name) override {
    if (shared_->CachesAttrs()) {
      std::lock_guard l(mu_);
      auto it = xattrs_.find(name);
      if (it != xattrs_.end()) {
        if (!it->second.has_value()) return Errno(ENODATA);
        return *it->second;
      }
    }
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    auto r = fid->GetXattr(name);
    if (shared_->CachesAttrs() && (r.has_value() || r.error() == Errno(ENODATA))) {
      std::lock_guard l(mu_);
      if (xattrs_.size() < kMaxCachedXattrs) {
        xattrs_[name] = r.has_value() ? std::optional<std::string>(*r) : std::nullopt;
      }
    }
    return r;
  }
  Result<std::vector<std::string>> ListXattr() override {
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    return fid->ListXattr();
  }
  Result<void> SetXattr(const std::string& name, const std::string& value, int flags) override {
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    shared_->Mutated();  // The ctime moves.
    ForgetXattr(name);
    return fid->SetXattr(name, value, static_cast<uint32_t>(flags));
  }
  Result<void> RemoveXattr(const std::string& name) override {
    P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
    shared_->Mutated();
    ForgetXattr(name);
    return fid->RemoveXattr(name);
  }
  void ForgetXattr(const std::string& name) {
    std::lock_guard l(mu_);
    xattrs_.erase(name);
  }
  // A file this sandbox just created has no file capabilities (creation never sets them).
  void KnownWithoutCapabilities() {
    if (!shared_->CachesAttrs()) return;
    std::lock_guard l(mu_);
    xattrs_["security.capability"] = std::nullopt;
  }

 private:
  friend class GoferFile;
  const std::shared_ptr<GoferFs::Shared> shared_;  // Before fid_: outlives the clunk.
  // Unwalked inodes: the directory listed and the name it was listed under (null/empty
  // for inodes walked from the start). Immutable; they hold the parent alive.
  const std::shared_ptr<GoferInode> parent_;
  const std::string name_;
  std::mutex fid_mu_;  // Taken before the parent's fid_mu_, never after.
  ClientFile fid_;     // Guarded by fid_mu_; once valid, never changes. Walked, never opened.
  bool stale_ = false;  // Guarded by fid_mu_. Unwalked and its name gone: no walk will do.
  const p9::Qid qid_;
  std::mutex mu_;
  std::optional<Attr> attr_;  // Guarded by mu_. Only with an attribute-caching policy.
  std::shared_ptr<PageCache> pages_;  // Guarded by mu_. fscache policies, regular files.
  std::vector<int> host_writers_;     // Guarded by mu_. See HostIoStarted.
  // fscache policies, directories: the listing and the names known not to exist.
  std::shared_ptr<const std::vector<DirEntry>> listing_;  // Guarded by mu_.
  std::set<std::string> negative_;                        // Guarded by mu_.
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

GoferFile::~GoferFile() {
  // Close writes back what this file may have left dirty; an error here has no caller to
  // report to (close(2) through FUSE calls Flush first), so it is logged.
  if (cache_ && writable()) {
    auto r = cache_->Flush(BackendWrite());
    if (!r.has_value()) LOG(ERROR) << "9p: write-back on close failed: " << r.error();
  }
  if (host_io_) inode_->HostIoEnded(writable(), fid_.donated_fd());
}

std::optional<OpenFile::HostIo> GoferFile::HostIoFile() const {
  int fd = fid_.donated_fd();
  if (fd < 0) return std::nullopt;
  return HostIo{fd, inode_.get()};
}

Result<void> GoferFile::StartHostIo() {
  if (host_io_ || fid_.donated_fd() < 0) return Errno(EINVAL);
  // Data written in the sandbox and not yet on the host would be invisible to host I/O;
  // writing it back needs a writable backend, which a read-only open does not have.
  if (cache_ && cache_->dirty()) {
    if (!writable()) return Errno(EBUSY);
    P9_RETURN_IF_ERROR(cache_->Flush(BackendWrite()));
  }
  host_io_ = true;
  inode_->HostIoStarted(writable(), fid_.donated_fd());
  return p9::Ok();
}

Result<size_t> GoferFile::DirectRead(std::span<char> dst, uint64_t offset) {
  int fd = fid_.donated_fd();
  // A regular file by Tread: all of it but at the end of the file, in about one round trip.
  if (fd < 0 && regular_) return fid_.ReadFullAt(dst, offset);
  size_t done = 0;
  while (done < dst.size()) {
    size_t n;
    if (fd >= 0) {
      ssize_t r = pread(fd, dst.data() + done, dst.size() - done,
                        static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        if (done > 0) break;
        return p9::LastErrno();
      }
      n = static_cast<size_t>(r);
    } else {
      P9_ASSIGN_OR_RETURN(n, fid_.ReadAt(dst.subspan(done), offset + done));
    }
    if (n == 0) break;
    done += n;
  }
  return done;
}

Result<void> GoferFile::DirectWrite(std::span<const char> src, uint64_t offset) {
  int fd = fid_.donated_fd();
  size_t done = 0;
  while (done < src.size()) {
    size_t n;
    if (fd >= 0) {
      ssize_t r = pwrite(fd, src.data() + done, src.size() - done,
                         static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return p9::LastErrno();
      }
      n = static_cast<size_t>(r);
    } else if (regular_ && !(flags_ & O_APPEND)) {
      // Several Twrites in flight (Client::WriteFull): about one round trip in all.
      P9_ASSIGN_OR_RETURN(n, fid_.WriteFullAt(p9::Bytes(src.data() + done, src.size() - done),
                                              offset + done));
    } else {
      P9_ASSIGN_OR_RETURN(n, fid_.WriteAt(p9::Bytes(src.data() + done, src.size() - done),
                                          offset + done));
    }
    if (n == 0) return Errno(EIO);
    done += n;
  }
  return p9::Ok();
}

Result<size_t> GoferFile::WriteAt(std::span<const char> src, uint64_t offset) {
  inode_->Wrote();
  if (cache_) {
    if (flags_ & O_APPEND) offset = cache_->size();
    bool through = shared_->cache == CachePolicy::kFscacheWritethrough;
    return cache_->Write(src, offset, BackendRead(), BackendWrite(), through);
  }
  P9_RETURN_IF_ERROR(DirectWrite(src, offset));
  return src.size();
}

}  // namespace

CachePolicy GoferFs::cache() const { return shared_->cache; }
bool GoferFs::fd_donation() const { return shared_->client->fd_donation(); }

Result<std::shared_ptr<GoferFs>> GoferFs::Mount(const std::string& data, std::string* error) {
  P9_ASSIGN_OR_RETURN(GoferMountOptions o, ParseGoferMountOptions(data, error));
  if (fcntl(o.rfd, F_GETFD) < 0) {
    if (error) *error = "9p mount: rfdno=" + std::to_string(o.rfd) + " is not an open fd";
    return Errno(EBADF);
  }
  auto fs = Create(p9::UniqueFd(o.rfd), o);
  if (!fs.has_value() && error && error->empty()) {
    *error = std::string("9p mount: cannot attach: ") + fs.error().name();
  }
  return fs;
}

Result<std::shared_ptr<GoferFs>> GoferFs::Create(p9::UniqueFd sock,
                                                 const GoferMountOptions& opts) {
  auto shared = std::make_shared<Shared>();
  shared->cache = opts.cache;
  P9_ASSIGN_OR_RETURN(shared->client, p9::Client::Create(std::move(sock), opts.msize));
  shared->client->set_spin(std::chrono::microseconds(opts.spin_us));
  P9_ASSIGN_OR_RETURN(ClientFile root, ClientFile::Attach(*shared->client, opts.aname));
  P9_ASSIGN_OR_RETURN(p9::Rgetattr a, root.GetAttr(p9::getattr::kBasic));
  auto fs = std::shared_ptr<GoferFs>(new GoferFs());
  fs->shared_ = shared;
  fs->root_ = std::make_shared<GoferInode>(shared, std::move(root), a.qid);
  return fs;
}

}  // namespace sentry::fs
