// GoferInode's methods: walks, listings, attribute and xattr caching, and the directory
// operations, each a 9P request or two on the inode's fid.
#include "sentry/fs/gofer/gofer_inode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <tuple>

#include "sentry/fs/gofer/gofer_file.h"
#include "sentry/fs/gofer/gofer_shared.h"

namespace sentry::fs {

using p9::ClientFile;
using p9::Errno;
using p9::Result;
using vfs::Attr;
using vfs::DirEntry;
using vfs::Inode;
using vfs::OpenFile;
using vfs::SetAttrRequest;

Result<const ClientFile*> GoferInode::Fid() {
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

Result<std::pair<ClientFile, p9::Qid>> GoferInode::WalkName(const ClientFile& dir,
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

Result<std::vector<p9::DirentAttr>> GoferInode::ListAttr(uint64_t& epoch) {
  std::unique_lock l(fid_mu_);
  // Sent ahead (only for inodes listed under a parent, parent_): taken, or asked again
  // below if it failed or found another directory under the name (cannot happen here, see
  // Fid()), as if nothing had been sent.
  std::optional<ClientFile::AttrListing> ahead;
  if (parent_ && shared_->prefetch && !stale_) {
    if (auto t = shared_->prefetch->Take(parent_.get(), name_, qid_.path)) {
      auto r = t->listing.Finish();
      if (r.has_value() && r->qid.path == qid_.path) {
        ahead = std::move(*r);
        epoch = t->epoch;
      }
    }
  }
  if (fid_.valid()) {
    l.unlock();  // fid_ never changes once valid.
    if (ahead) return std::move(ahead->entries);  // Its fid is not needed: clunked.
    P9_ASSIGN_OR_RETURN(ClientFile::AttrListing r, fid_.ListAttr());
    return std::move(r.entries);
  }
  if (stale_) return Errno(ESTALE);
  if (ahead) {
    fid_ = std::move(ahead->dir);
    return std::move(ahead->entries);
  }
  P9_ASSIGN_OR_RETURN(const ClientFile* parent, parent_->Fid());
  P9_ASSIGN_OR_RETURN(ClientFile::AttrListing r, parent->ListAttr({name_}, 0, /*keep=*/true));
  if (r.qid.path != qid_.path) return Errno(ESTALE);  // See Fid().
  fid_ = std::move(r.dir);
  return std::move(r.entries);
}

void GoferInode::Stale() {
  std::lock_guard l(fid_mu_);
  if (!fid_.valid()) stale_ = true;
}

Result<void> GoferInode::Settle(const std::string& name, bool moving) {
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

void GoferInode::InvalidateAttrs() {
  std::lock_guard l(mu_);
  attr_.reset();
}

std::optional<Attr> GoferInode::Changed(const std::string& name) {
  shared_->Mutated();
  // What was sent ahead of this directory's listing, and of entry `name`'s.
  if (shared_->prefetch) {
    shared_->prefetch->Forget(qid_.path);
    shared_->prefetch->ForgetEntry(this, name);
  }
  std::lock_guard l(mu_);
  std::optional<Attr> before = std::move(attr_);
  attr_.reset();
  listing_.reset();
  negative_.erase(name);
  if (names_) uncertain_.insert(name);
  return before;
}

void GoferInode::Touched(std::optional<Attr> before, int subdirs) {
  if (!before || !shared_->CachesAttrs()) return;
  clock_gettime(CLOCK_REALTIME, &before->mtime);
  before->ctime = before->mtime;
  if (before->nlink >= 2) before->nlink += subdirs;  // btrfs & co. keep directories at 1.
  std::lock_guard l(mu_);
  if (!attr_) attr_ = std::move(before);
}

void GoferInode::HostIoStarted(bool writable, int fd) {
  if (!writable) return;
  shared_->Mutated();
  std::lock_guard l(mu_);
  host_writers_.push_back(fd);
}

void GoferInode::HostIoEnded(bool writable, int fd) {
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

void GoferInode::FromHost(Attr& a, const struct stat& st) {
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

void GoferInode::Wrote() {
  shared_->Mutated();
  if (!shared_->CachesAttrs()) return InvalidateAttrs();
  std::lock_guard l(mu_);
  if (!attr_) return;
  clock_gettime(CLOCK_REALTIME, &attr_->mtime);
  attr_->ctime = attr_->mtime;
}

Result<Attr> GoferInode::GetAttr() {
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

Result<std::shared_ptr<PageCache>> GoferInode::Pages() {
  {
    std::lock_guard l(mu_);
    if (pages_) return pages_;
  }
  P9_ASSIGN_OR_RETURN(Attr a, GetAttr());  // Cached, under the policies that have pages.
  std::lock_guard l(mu_);
  if (!pages_) pages_ = std::make_shared<PageCache>(a.size);
  return pages_;
}

Result<void> GoferInode::SetAttr(const SetAttrRequest& req) {
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

Attr GoferInode::Applied(Attr a, const SetAttrRequest& req) {
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

Result<std::unique_ptr<OpenFile>> GoferInode::Open(int flags) {
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
      uint64_t epoch = shared_->Epoch();
      if (shared_->client->Has(p9::Dialect::kReaddirAttr)) {
        // Our dialect lists a directory without opening it, walked or not (then the
        // listing walks it), and says what each subdirectory is.
        P9_ASSIGN_OR_RETURN(std::vector<p9::DirentAttr> ents, ListAttr(epoch));
        // Reached through its parent's listing and now listed: a tree walker, who lists
        // the subdirectories next.
        if (parent_ && shared_->prefetch) {
          std::vector<ListingPrefetch::Subdir> subdirs;
          for (const p9::DirentAttr& e : ents) {
            if ((e.attr.valid & p9::getattr::kBasic) == p9::getattr::kBasic &&
                S_ISDIR(e.attr.mode)) {
              subdirs.push_back({e.dirent.name, e.attr.qid.path});
            }
          }
          shared_->prefetch->Listed(std::static_pointer_cast<GoferInode>(shared_from_this()),
                                    std::move(subdirs), shared_->Epoch());
        }
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
  if (shared_->CachesAttrs() && S_ISREG(a.mode)) {
    P9_ASSIGN_OR_RETURN(pc, Pages());
    f = PageCacheBackendFlags(f);
    if (flags & O_TRUNC) {
      std::lock_guard l(mu_);
      pages_->Truncate(0);
    }
  }
  // The inode's fid stays walked, never opened: an open is of a clone. In our dialect the
  // clone and its Tlopen are one round trip (Twalkopen).
  ClientFile clone;
  if (shared_->client->Has(p9::Dialect::kFusedOpen)) {
    P9_ASSIGN_OR_RETURN(auto opened, fid->WalkOpen({}, f));
    clone = std::move(opened.first);
  } else {
    P9_ASSIGN_OR_RETURN(clone, fid->Walk({}));
    P9_RETURN_IF_ERROR(clone.Open(f));
  }
  if (flags & O_TRUNC) {
    shared_->Mutated();
    InvalidateAttrs();
  }
  return std::unique_ptr<OpenFile>(std::make_unique<GoferFile>(
      std::static_pointer_cast<GoferInode>(shared_from_this()), shared_, std::move(clone), pc,
      flags, S_ISREG(a.mode)));
}

Result<std::string> GoferInode::Readlink() {
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  return fid->Readlink();
}

uint32_t GoferInode::PageCacheBackendFlags(uint32_t f) {
  f &= ~static_cast<uint32_t>(O_APPEND);
  if ((f & O_ACCMODE) == O_WRONLY) f = (f & ~O_ACCMODE) | O_RDWR;
  return f;
}

std::pair<std::shared_ptr<const std::vector<DirEntry>>, std::shared_ptr<const GoferInode::Known>>
GoferInode::FromAttrListing(std::vector<p9::DirentAttr> ents) {
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

Result<std::shared_ptr<const std::vector<DirEntry>>> GoferInode::ListAll(const ClientFile& dir) {
  P9_ASSIGN_OR_RETURN(std::vector<p9::Dirent> ents, dir.ReaddirAll());
  auto all = std::make_shared<std::vector<DirEntry>>();
  all->reserve(ents.size());
  for (auto& e : ents) {
    all->push_back(DirEntry{std::move(e.name), e.qid.path, e.type, all->size() + 1});
  }
  return std::shared_ptr<const std::vector<DirEntry>>(std::move(all));
}

Result<std::shared_ptr<GoferInode>> GoferInode::WalkChild(const std::string& name) {
  p9::Client& c = *shared_->client;
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  if (shared_->CachesAttrs() && c.Has(p9::Dialect::kWalkGetattr)) {
    P9_ASSIGN_OR_RETURN(auto r, fid->WalkGetAttr({name}));
    auto child = std::make_shared<GoferInode>(shared_, std::move(r.first), r.second.qid);
    child->attr_ = ToAttr(r.second);
    return child;
  }
  P9_ASSIGN_OR_RETURN(auto walked, WalkName(*fid, name));
  return std::make_shared<GoferInode>(shared_, std::move(walked.first), walked.second);
}

Result<std::shared_ptr<Inode>> GoferInode::Lookup(const std::string& name) {
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
  if (child.has_value() || child.error() == Errno(ENOENT)) Found(name, child.has_value());
  if (!child.has_value()) return child.error();
  return std::shared_ptr<Inode>(*child);
}

void GoferInode::Found(const std::string& name, bool exists) {
  if (!shared_->CachesAttrs()) return;
  std::lock_guard l(mu_);
  if (!exists) negative_.insert(name);
  if (names_) {
    if (exists) {
      names_->insert(name);
    } else {
      names_->erase(name);
    }
    uncertain_.erase(name);
  }
}

void GoferInode::Remember(const std::string& name, const std::shared_ptr<GoferInode>& child) {
  if (unwalked_.size() >= 2 * unwalked_live_hint_ + 64) {
    std::erase_if(unwalked_, [](const auto& kv) { return kv.second.expired(); });
    unwalked_live_hint_ = unwalked_.size();
  }
  unwalked_[name] = child;
}

void GoferInode::KnownEmpty() {
  if (!shared_->CachesAttrs()) return;
  std::lock_guard l(mu_);
  names_.emplace();
}

Result<std::shared_ptr<Inode>> GoferInode::Created(const std::string& name) {
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> c, Lookup(name));
  static_cast<GoferInode&>(*c).KnownWithoutCapabilities();
  return c;
}

std::shared_ptr<GoferInode> GoferInode::Created(const std::string& name,
                                                ClientFile::CreatedAt& c) {
  auto child = std::make_shared<GoferInode>(shared_, std::move(c.walked), c.qid);
  if (shared_->CachesAttrs() && (c.attr.valid & p9::getattr::kBasic) == p9::getattr::kBasic) {
    child->attr_ = ToAttr(c.attr);
  }
  Found(name, true);
  child->KnownWithoutCapabilities();
  return child;
}

bool GoferInode::CacheLookups() const { return shared_->CachesAttrs(); }

bool GoferInode::Revalidate(const std::string& name, Inode& child) {
  auto* c = dynamic_cast<GoferInode*>(&child);
  if (c == nullptr) return false;
  auto fid = Fid();
  if (!fid.has_value()) return false;
  auto walked = WalkName(**fid, name);  // Its fid is clunked on the way out.
  return walked.has_value() && walked->second.path == c->qid_.path;
}

Result<std::shared_ptr<Inode>> GoferInode::Mknod(const std::string& name, uint32_t mode,
                                                 uint64_t rdev, uint32_t uid, uint32_t gid) {
  (void)uid;
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  auto before = Changed(name);
  if ((mode & S_IFMT) == S_IFREG && shared_->client->Has(p9::Dialect::kFusedOpen)) {
    // One round trip; the opened fid is clunked without waiting.
    P9_ASSIGN_OR_RETURN(ClientFile::CreatedAt c,
                        fid->CreateAt(name, p9::open_flags::kRdOnly, mode & 07777, gid));
    Touched(std::move(before));
    return std::shared_ptr<Inode>(Created(name, c));
  }
  if ((mode & S_IFMT) == S_IFREG) {
    P9_ASSIGN_OR_RETURN(ClientFile clone, fid->Walk({}));
    P9_RETURN_IF_ERROR(clone.Create(name, p9::open_flags::kRdOnly, mode & 07777, gid));
  } else {
    P9_RETURN_IF_ERROR(fid->Mknod(name, mode, major(rdev), minor(rdev), gid));
  }
  Touched(std::move(before));
  return Created(name);
}

Result<Inode::CreatedFile> GoferInode::Create(const std::string& name, uint32_t mode, int flags,
                                              uint32_t uid, uint32_t gid) {
  (void)uid;
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  auto before = Changed(name);
  uint32_t f = static_cast<uint32_t>(flags) & ~static_cast<uint32_t>(O_CLOEXEC | O_NOCTTY);
  if (shared_->CachesAttrs()) f = PageCacheBackendFlags(f);
  ClientFile opened;
  std::shared_ptr<GoferInode> child;
  if (shared_->client->Has(p9::Dialect::kFusedOpen)) {
    // One round trip: the file created, opened, walked (for the inode) and its attributes.
    P9_ASSIGN_OR_RETURN(ClientFile::CreatedAt c, fid->CreateAt(name, f, mode & 07777, gid));
    Touched(std::move(before));
    opened = std::move(c.opened);
    child = Created(name, c);
  } else {
    P9_ASSIGN_OR_RETURN(opened, fid->Walk({}));
    P9_RETURN_IF_ERROR(opened.Create(name, f, mode & 07777, gid));
    Touched(std::move(before));
    P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, Created(name));
    child = std::static_pointer_cast<GoferInode>(inode);
  }
  std::shared_ptr<PageCache> pc;
  if (shared_->CachesAttrs()) {
    P9_ASSIGN_OR_RETURN(pc, child->Pages());
  }
  return CreatedFile{child, std::make_unique<GoferFile>(child, shared_, std::move(opened), pc,
                                                        flags, /*regular=*/true)};
}

Result<std::shared_ptr<Inode>> GoferInode::Mkdir(const std::string& name, uint32_t mode,
                                                 uint32_t uid, uint32_t gid) {
  (void)uid;
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  auto before = Changed(name);
  P9_RETURN_IF_ERROR(fid->Mkdir(name, mode, gid));
  Touched(std::move(before), +1);
  P9_ASSIGN_OR_RETURN(std::shared_ptr<Inode> dir, Created(name));
  static_cast<GoferInode&>(*dir).KnownEmpty();
  return dir;
}

Result<std::shared_ptr<Inode>> GoferInode::Symlink(const std::string& name,
                                                   const std::string& target, uint32_t uid,
                                                   uint32_t gid) {
  (void)uid;
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  auto before = Changed(name);
  P9_RETURN_IF_ERROR(fid->Symlink(name, target, gid));
  Touched(std::move(before));
  return Created(name);
}

Result<void> GoferInode::Link(const std::string& name, Inode& target) {
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

Result<void> GoferInode::Unlink(const std::string& name, bool dir) {
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

Result<void> GoferInode::Rename(const std::string& oldname, Inode& newdir,
                                const std::string& newname) {
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

Result<vfs::FsStat> GoferInode::StatFs() {
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

Result<std::string> GoferInode::GetXattr(const std::string& name) {
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

Result<std::vector<std::string>> GoferInode::ListXattr() {
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  return fid->ListXattr();
}

Result<void> GoferInode::SetXattr(const std::string& name, const std::string& value, int flags) {
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  shared_->Mutated();  // The ctime moves.
  ForgetXattr(name);
  return fid->SetXattr(name, value, static_cast<uint32_t>(flags));
}

Result<void> GoferInode::RemoveXattr(const std::string& name) {
  P9_ASSIGN_OR_RETURN(const ClientFile* fid, Fid());
  shared_->Mutated();
  ForgetXattr(name);
  return fid->RemoveXattr(name);
}

void GoferInode::ForgetXattr(const std::string& name) {
  std::lock_guard l(mu_);
  xattrs_.erase(name);
}

void GoferInode::KnownWithoutCapabilities() {
  if (!shared_->CachesAttrs()) return;
  std::lock_guard l(mu_);
  xattrs_["security.capability"] = std::nullopt;
}

}  // namespace sentry::fs
