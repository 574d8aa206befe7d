#include "sentry/fuse/fuse_server.h"

#include <fuse3/fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "glog/logging.h"
#include "sentry/fuse/kernel_io.h"
#include "sentry/fuse/session_loop.h"
#include "sentry/fuse/uring_queues.h"

namespace sentry::fuse {

using p9::Errno;
using p9::Result;
using vfs::VirtualDentry;

namespace {

// A directory's entries in cookie order: "." (cookie 1), ".." (2), then by name hash.
struct Listing {
  std::vector<vfs::DirEntry> entries;
  std::vector<uint64_t> cookies;  // cookies[i]: where a reader resumes after entries[i].
};

// One kernel node id.
struct Node {
  VirtualDentry vd;
  uint64_t nlookup = 0;  // Guarded by Impl::mu.
  // Where the kernel last looked it up (for invalidation), and when it was last used.
  fuse_ino_t parent = 0;   // Guarded by Impl::mu.
  std::string name;        // Guarded by Impl::mu.
  uint64_t last_used = 0;  // Guarded by Impl::mu. A tick of Impl::clock.
  // Eviction invalidated its entry and the kernel has not forgotten it yet (nor looked it
  // up again). Guarded by Impl::mu.
  bool invalidated = false;
  // The listing readers of this directory continue in, when read without a handle (the
  // kernel sends no OPENDIR: see Impl::stateless_dirs). Offsets given to the kernel name
  // positions by name hash, not in one listing (see DirCookie), so any listing serves any
  // reader: a new one replaces it at each read from offset 0, and the one read to its end
  // is dropped. Guarded by list_mu.
  std::mutex list_mu;
  std::shared_ptr<const Listing> listing;
  // Passthrough (kernel_io.h): the backing file the kernel does this regular file's I/O
  // on, registered at the first open that can use one and closed when the kernel forgets
  // the node. The kernel insists that every open of a node in passthrough uses the same
  // one; the node's inode never changes, so neither does its host file. 0: none yet; -1:
  // this file cannot have one. Guarded by backing_mu.
  std::mutex backing_mu;
  int32_t backing = 0;
};

// What fi->fh points to.
struct Handle {
  std::unique_ptr<vfs::FileHandle> h;
  // Requests using the handle right now. The kernel sends RELEASE only after every request
  // on the file has been answered, but nothing it does is visible to the program's memory
  // model (or to TSan): DropHandle waits for this to drop to zero (acquire/release) before
  // destroying, which makes the order explicit and guards against a kernel that breaks it.
  std::atomic<int> users{0};
  // Directories: every entry, listed when the kernel reads from offset 0 (see DirCookie).
  std::mutex mu;
  std::shared_ptr<const Listing> listing;  // Guarded by mu.
};

Handle* HandleOf(fuse_file_info* fi) { return reinterpret_cast<Handle*>(fi->fh); }

// Marks a request as using its handle for the guard's lifetime (see Handle::users).
class HandleUse {
 public:
  explicit HandleUse(fuse_file_info* fi) : hd_(HandleOf(fi)) {
    hd_->users.fetch_add(1, std::memory_order_acquire);
  }
  ~HandleUse() { hd_->users.fetch_sub(1, std::memory_order_release); }
  HandleUse(const HandleUse&) = delete;
  HandleUse& operator=(const HandleUse&) = delete;
  Handle* operator->() const { return hd_; }
  Handle* get() const { return hd_; }

 private:
  Handle* hd_;
};

// A dead gofer is an I/O error to the workload, as with the kernel's 9p client.
int ReplyErrno(Errno e) {
  switch (e.value()) {
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
      return EIO;
  }
  return e.value();
}

void Err(fuse_req_t req, Errno e) { fuse_reply_err(req, ReplyErrno(e)); }
// The reply of an operation that returns nothing but its status.
void ReplyStatus(fuse_req_t req, const Result<void>& r) {
  fuse_reply_err(req, r.has_value() ? 0 : ReplyErrno(r.error()));
}

}  // namespace

struct FuseServer::Impl {
  std::shared_ptr<vfs::Vfs> vfs;
  FuseOptions options;
  fuse_session* se = nullptr;
  bool mounted = false;
  std::string mountpoint;

  mutable std::mutex mu;
  std::unordered_map<fuse_ino_t, std::shared_ptr<Node>> nodes;            // Guarded by mu.
  std::map<std::pair<const vfs::Mount*, const vfs::Dentry*>, fuse_ino_t> ids;  // Guarded by mu.
  // Dentries whose kernel entries are never invalidated (FuseServer::Pin), held alive so
  // their keys stay unique.
  std::vector<VirtualDentry> pinned;                                      // Guarded by mu.
  bool Pinned(const VirtualDentry& vd) const {                            // REQUIRES: mu.
    return std::find(pinned.begin(), pinned.end(), vd) != pinned.end();
  }
  fuse_ino_t next_id = FUSE_ROOT_ID + 1;                                   // Guarded by mu.

  // Open handles, so those the kernel never released (a RELEASE still queued at unmount)
  // are freed with the server and do not pin the file systems.
  std::mutex handles_mu;
  std::unordered_map<Handle*, std::unique_ptr<Handle>> handles;  // Guarded by handles_mu.

  Handle* NewHandle(std::unique_ptr<vfs::FileHandle> h) {
    auto hd = std::make_unique<Handle>();
    hd->h = std::move(h);
    Handle* raw = hd.get();
    std::lock_guard l(handles_mu);
    handles.emplace(raw, std::move(hd));
    return raw;
  }
  void DropHandle(Handle* hd) {
    std::unique_ptr<Handle> dropped;  // Destroyed outside the lock: it may write back.
    {
      std::lock_guard l(handles_mu);
      auto it = handles.find(hd);
      if (it == handles.end()) return;
      dropped = std::move(it->second);
      handles.erase(it);
    }
    while (dropped->users.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

  std::mutex ino_mu;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> inos;  // Guarded by ino_mu.
  uint64_t next_ino = 2;                                   // Guarded by ino_mu. 1 is the root.

  static Impl& Of(fuse_req_t req) { return *static_cast<Impl*>(fuse_req_userdata(req)); }

  uint64_t clock = 0;  // Guarded by mu. Orders node uses for eviction.
  size_t invalidated = 0;  // Guarded by mu. Nodes with Node::invalidated set.

  std::shared_ptr<Node> Get(fuse_ino_t ino) {
    std::lock_guard l(mu);
    auto it = nodes.find(ino);
    if (it == nodes.end()) return nullptr;
    it->second->last_used = ++clock;
    return it->second;
  }

  // The node id for `vd` (named `name` in node `parent`), its lookup count raised by one.
  fuse_ino_t Ref(const VirtualDentry& vd, fuse_ino_t parent, const std::string& name) {
    fuse_ino_t id;
    size_t count;
    {
      std::lock_guard l(mu);
      auto key = std::make_pair(vd.mount.get(), vd.dentry.get());
      auto it = ids.find(key);
      std::shared_ptr<Node> n;
      if (it != ids.end()) {
        id = it->second;
        n = nodes[id];
        if (n->invalidated) {  // Looked up again: in use after all.
          n->invalidated = false;
          --invalidated;
        }
      } else {
        id = next_id++;
        n = std::make_shared<Node>();
        n->vd = vd;
        nodes.emplace(id, n);
        ids.emplace(key, id);
      }
      n->nlookup++;
      n->parent = parent;
      n->name = name;
      n->last_used = ++clock;
      count = CountedLocked();
    }
    if (count > options.max_nodes) evict_cv.notify_one();
    return id;
  }

  // Eviction: the kernel keeps every dentry it has seen until memory runs short, and each
  // pins a node here, a dentry in the VFS and a fid (a host fd) in the gofer. Above
  // max_nodes, the least recently used are invalidated in the kernel (notify_inval_entry,
  // from this thread: never from a request handler, which may hold the directory's lock);
  // unused ones are then dropped and FORGET frees them. In-use ones (open, cwd) stay.
  std::mutex evict_mu;
  std::condition_variable evict_cv;
  bool evict_stop = false;  // Guarded by evict_mu.
  std::thread evictor;
  // Lives as long as the session; Run() on FuseServer::loop_.
  std::unique_ptr<SessionLoop> loop;
  // FUSE over io_uring (FuseOptions::uring): started with the loop, registered after INIT
  // if the kernel took it, joined after the loop ends.
  std::unique_ptr<UringQueues> uring;
  std::atomic<bool> uring_active{false};

  // On the thread that served INIT, after its reply: the rings take over if it turned
  // them on, and the /dev/fuse reader stops polling (what is left there is rare).
  void AfterInit() {
    if (!uring) return;
    if (!InitAppliedUring()) return uring->Abandon();
    if (uring->Register()) {
      uring_active = true;
      loop->set_spin(std::chrono::nanoseconds(0));
      VLOG(1) << "fuse: requests come through io_uring";
    } else {
      LOG(WARNING) << "fuse: the kernel refused the io_uring queues; requests go through /dev/fuse";
    }
  }

  // Requests whose handler may wait for long, so the loop hands reading on first: fsync
  // waits for the host's disk. (FIFOs and devices never reach us: the kernel serves special
  // files itself; locks are the kernel's too, as we register no lock handlers.)
  static bool MayBlock(uint32_t opcode) {
    return opcode == FUSE_FSYNC || opcode == FUSE_FSYNCDIR;
  }

  // One pass invalidates the least recently used down to 80% of max_nodes, then the next
  // may start as soon as the count is over again: the nodes it invalidated no longer count
  // (Node::invalidated) while their FORGETs come, so it does not pick them again. (It used
  // to wait 200 ms for the FORGETs instead, and a tree walker added thousands of nodes, each
  // a gofer fd, meanwhile: at an open-file limit of 1,024 a find over /usr ran out.)
  void EvictLoop() {
    for (;;) {
      {
        std::unique_lock l(evict_mu);
        evict_cv.wait_for(l, std::chrono::seconds(1), [&] { return evict_stop || Over(); });
        if (evict_stop) return;
        if (!Over()) continue;
      }
      std::vector<std::pair<uint64_t, fuse_ino_t>> candidates;  // (last used, id)
      size_t counted;
      {
        std::lock_guard l(mu);
        for (const auto& [id, n] : nodes) {
          if (id == FUSE_ROOT_ID || n->parent == 0 || n->invalidated || Pinned(n->vd)) continue;
          candidates.emplace_back(n->last_used, id);
        }
        counted = CountedLocked();
      }
      size_t low = options.max_nodes - options.max_nodes / 5;
      size_t drop = std::min(counted > low ? counted - low : 0, candidates.size());
      std::vector<std::pair<fuse_ino_t, std::string>> victims;  // (parent, name)
      if (drop > 0) {
        std::nth_element(candidates.begin(), candidates.begin() + static_cast<long>(drop - 1),
                         candidates.end());
        candidates.resize(drop);
        std::lock_guard l(mu);
        for (const auto& [used, id] : candidates) {
          auto it = nodes.find(id);
          if (it == nodes.end() || it->second->invalidated || it->second->last_used != used) {
            continue;  // Forgotten, or used since it was picked.
          }
          it->second->invalidated = true;
          ++invalidated;
          victims.emplace_back(it->second->parent, it->second->name);
        }
      }
      for (const auto& [parent, name] : victims) {
        fuse_lowlevel_notify_inval_entry(se, parent, name.c_str(), name.size());
      }
      std::unique_lock l(evict_mu);
      if (victims.empty()) {
        // Nothing to invalidate (all in use or pinned): look again later, not at once.
        evict_cv.wait_for(l, std::chrono::milliseconds(200), [&] { return evict_stop; });
      } else {
        evict_cv.wait_for(l, std::chrono::milliseconds(200), [&] { return evict_stop || Over(); });
      }
      if (evict_stop) return;
    }
  }
  // The nodes eviction answers for: all but those it invalidated and the kernel has yet to
  // forget, of which at most half of max_nodes are left out (the kernel keeps an
  // invalidated node that is in use, e.g. a hard link's other name, and each holds a fid).
  size_t CountedLocked() const {
    return nodes.size() - std::min(invalidated, options.max_nodes / 2);
  }
  bool Over() {
    std::lock_guard l(mu);
    return CountedLocked() > options.max_nodes;
  }

  void Forget(fuse_ino_t ino, uint64_t count) {
    if (ino == FUSE_ROOT_ID) return;
    std::shared_ptr<Node> dropped;  // Released outside mu: it may free a dentry chain.
    {
      std::lock_guard l(mu);
      auto it = nodes.find(ino);
      if (it == nodes.end()) return;
      Node& n = *it->second;
      n.nlookup = count >= n.nlookup ? 0 : n.nlookup - count;
      if (n.nlookup == 0) {
        if (n.invalidated) --invalidated;
        ids.erase(std::make_pair(n.vd.mount.get(), n.vd.dentry.get()));
        dropped = std::move(it->second);
        nodes.erase(it);
      }
    }
    if (dropped) {
      // The kernel's inode is gone, and with it every open that used the backing file.
      std::lock_guard l(dropped->backing_mu);
      if (dropped->backing > 0) BackingClose(fuse_session_fd(se), dropped->backing);
      dropped->backing = 0;
    }
  }

  // Passthrough: set at INIT when the kernel offers it and FuseOptions::passthrough asks;
  // cleared for good if the kernel refuses a backing file (no CAP_SYS_ADMIN, or INIT did
  // not turn it on).
  bool passthrough = false;  // Written at INIT, before any other request.
  std::atomic<bool> backing_allowed{true};

  // The backing id under which the kernel may do the I/O of `h`, just opened on `n`, and
  // `h` switched to host I/O; 0 if it cannot (then the open is served as usual).
  int32_t Passthrough(Node& n, vfs::FileHandle& h) {
    if (!passthrough || !backing_allowed.load(std::memory_order_relaxed)) return 0;
    if (n.vd.dentry->type() != S_IFREG) return 0;
    std::optional<vfs::OpenFile::HostIo> io = h.file->HostIoFile();
    // An overlay hands out its layers' files: the host file must be this node's own.
    if (!io || io->inode != n.vd.dentry->inode().get()) return 0;
    std::lock_guard l(n.backing_mu);
    if (n.backing < 0) return 0;
    if (n.backing == 0) {
      auto id = BackingOpen(fuse_session_fd(se), io->fd);
      if (!id.has_value()) {
        int e = id.error().value();
        if (e == EPERM || e == EOPNOTSUPP || e == ENOTTY) {
          if (backing_allowed.exchange(false)) {
            LOG(WARNING) << "fuse: no passthrough (the kernel refuses backing files: "
                         << id.error() << "); file data goes through the sentry";
          }
        } else {
          VLOG(1) << "fuse: no backing file for node " << n.name << ": " << id.error();
          n.backing = -1;
        }
        return 0;
      }
      n.backing = *id;
    }
    if (!h.file->StartHostIo().has_value()) return 0;
    return n.backing;
  }

  // Replies to OPEN (create_entry null) or CREATE with `fi`, the handle's I/O passed
  // through to backing file `backing` if > 0. Returns fuse_reply_*'s result.
  int ReplyOpen(fuse_req_t req, fuse_file_info* fi, int32_t backing,
                const fuse_entry_param* create_entry) {
    if (backing > 0) {
      // The kernel takes no other flag with passthrough but DIRECT_IO and NOFLUSH (the page
      // cache it would keep is the host file's own).
      fi->keep_cache = 0;
      fi->noflush = 1;  // Writes reach the host as they happen: nothing to write back.
      ArmOpenPassthrough(backing);
    }
    int rc = create_entry ? fuse_reply_create(req, create_entry, fi) : fuse_reply_open(req, fi);
    if (backing > 0) {
      Disarm();
      if (rc == 0 && !LastArmedApplied()) LOG(ERROR) << "fuse: an open reply missed passthrough";
    }
    return rc;
  }

  uint64_t MapIno(uint64_t mount_id, uint64_t ino, bool is_root) {
    if (is_root) return FUSE_ROOT_ID;
    std::lock_guard l(ino_mu);
    auto [it, fresh] = inos.try_emplace({mount_id, ino}, 0);
    if (fresh) it->second = next_ino++;
    return it->second;
  }

  struct stat ToStat(const VirtualDentry& vd, const vfs::Attr& a) {
    struct stat st{};
    bool is_root = vd == vfs->root();
    st.st_ino = MapIno(vd.mount->id, a.ino, is_root);
    st.st_mode = a.mode;
    st.st_nlink = a.nlink;
    st.st_uid = a.uid;
    st.st_gid = a.gid;
    st.st_rdev = a.rdev;
    st.st_size = static_cast<off_t>(a.size);
    st.st_blksize = static_cast<blksize_t>(a.blksize);
    st.st_blocks = static_cast<blkcnt_t>(a.blocks);
    st.st_atim = a.atime;
    st.st_mtim = a.mtime;
    st.st_ctim = a.ctime;
    return st;
  }

  // Set at INIT: the kernel can open directories without us (FUSE_NO_OPENDIR_SUPPORT) and
  // FuseOptions::stateless_dirs asks for it. Written before any other request is served.
  bool stateless_dirs = false;

  // Every entry of an open directory, "." and ".." first, st_ino mapped. readdir(3) hides
  // entries with d_ino 0, so both dot entries carry a real number ("..": the directory's
  // own, where the parent may be another mount's; only find -noleaf style tools look, and
  // they stat anyway).
  Result<std::vector<vfs::DirEntry>> List(vfs::FileHandle& h) {
    std::vector<vfs::DirEntry> all;
    all.resize(2);
    uint64_t cookie = 0;
    for (;;) {
      auto ents = h.file->Readdir(cookie);
      if (!ents.has_value()) return ents.error();
      if (ents->empty()) break;
      cookie = ents->back().offset;
      for (auto& e : *ents) {
        if (e.name == "." || e.name == "..") continue;
        all.push_back(std::move(e));
      }
    }
    const VirtualDentry& at = h.at;
    for (size_t i = 2; i < all.size(); ++i) all[i].ino = MapIno(at.mount->id, all[i].ino, false);
    uint64_t self = FUSE_ROOT_ID;
    if (auto a = vfs->StatAt(at); a.has_value()) self = ToStat(at, *a).st_ino;
    all[0] = vfs::DirEntry{".", self, 4, 0};
    all[1] = vfs::DirEntry{"..", self, 4, 0};
    return all;
  }
  Result<std::vector<vfs::DirEntry>> List(const VirtualDentry& dir) {
    auto h = vfs->OpenAt(dir, O_RDONLY | O_DIRECTORY);
    if (!h.has_value()) return h.error();
    return List(**h);
  }

  double Timeout(const VirtualDentry& vd) const {
    return vd.dentry->inode()->CacheLookups() ? options.cache_timeout : 0.0;
  }

  // Replies with the entry for `vd` (just looked up or created under `parent`); for CREATE
  // (`create_fi`), with the open file `create_h` too.
  // Returns the node id given to the kernel, or 0 if the kernel got none (an error reply,
  // or an interrupted request).
  fuse_ino_t ReplyEntry(fuse_req_t req, fuse_ino_t parent_ino, const VirtualDentry& parent,
                        const char* name, const VirtualDentry& vd, fuse_file_info* create_fi,
                        vfs::FileHandle* create_h) {
    auto a = vfs->StatAt(vd);
    if (!a.has_value()) {
      Err(req, a.error());
      return 0;
    }
    fuse_entry_param e{};
    e.ino = Ref(vd, parent_ino, name);
    e.generation = 0;
    e.attr = ToStat(vd, *a);
    e.entry_timeout = Timeout(parent);
    e.attr_timeout = Timeout(vd);
    int rc;
    if (create_fi) {
      int32_t backing = 0;
      if (std::shared_ptr<Node> n = Get(e.ino)) backing = Passthrough(*n, *create_h);
      rc = ReplyOpen(req, create_fi, backing, &e);
    } else {
      rc = fuse_reply_entry(req, &e);
    }
    if (rc != 0) {  // The kernel never saw it (interrupted).
      Forget(e.ino, 1);
      return 0;
    }
    return e.ino;
  }

  // The child `name` of `parent` just created by the VFS (`made`), as an entry reply.
  void ReplyCreated(fuse_req_t req, fuse_ino_t parent_ino, const VirtualDentry& parent,
                    const char* name, const Result<VirtualDentry>& made) {
    if (!made.has_value()) return Err(req, made.error());
    ReplyEntry(req, parent_ino, parent, name, *made, nullptr, nullptr);
  }
};

namespace {

using Impl = FuseServer::Impl;

#define NODE_OR_REPLY(var, ino)                  \
  std::shared_ptr<Node> var = impl.Get(ino);     \
  if (!var) {                                    \
    fuse_reply_err(req, ESTALE);                 \
    return;                                      \
  }

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* impl = static_cast<Impl*>(userdata);
  if (conn->max_write > impl->options.max_io || conn->max_write == 0) {
    conn->max_write = impl->options.max_io;
  }
  if (conn->max_read == 0 || conn->max_read > impl->options.max_io) conn->max_read = impl->options.max_io;
  // Sequential reads arrive as large requests (one round trip per max_io, not per 128 KiB).
  if (conn->max_readahead < impl->options.max_io) conn->max_readahead = impl->options.max_io;
  // Writes go through our own write path (the 9p page cache, or the donated fd); the
  // kernel's write-back cache would hide errors until close.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // (libfuse 3.14 never puts this one in its INIT reply; the session loop serves requests
  // one at a time unless one may block, so the kernel's per-directory lock costs little.)
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  // Without OPENDIR the kernel also keeps each listing in its page cache (FOPEN_CACHE_DIR,
  // FOPEN_KEEP_CACHE), dropped only when it changes the directory itself or sees a new
  // mtime. Right where every change goes through us; a file system that revalidates
  // (changes made on the host) needs a fresh listing at each open, so one such mount keeps
  // OPENDIR for the whole connection. The namespace is complete before the mount.
  bool all_cache = true;
  for (const auto& m : impl->vfs->ns().AllMounts()) {
    if (!m->root->inode()->CacheLookups()) all_cache = false;
  }
  impl->stateless_dirs = impl->options.stateless_dirs && all_cache &&
                         (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  // Symlink targets in the kernel's page cache: a symlink never changes in place, and where
  // every change goes through us a replaced one is a new node. (Where the host may replace
  // one, a reused inode number could keep a node and its stale target: not there.)
  // READDIRPLUS, where entries may be kept (FUSE_READDIRPLUS_AUTO: the kernel asks for it
  // at the start of a listing and after lookups in the directory; libfuse turns both on
  // since we have the op). With timeouts of 0 its entries would be dropped at once.
  if (!(all_cache && impl->options.readdirplus)) {
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  }
  if (all_cache && (conn->capable & FUSE_CAP_CACHE_SYMLINKS)) {
    conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  }
  // libfuse sends the reply after this returns; ArmInit amends it (kernel_io.h), and
  // Impl::AfterInit registers the rings if it turned them on.
  impl->passthrough = impl->options.passthrough && InitOffersPassthrough();
  size_t ring = impl->uring && InitOffersUring() && impl->uring->Ready() ? impl->uring->payload() : 0;
  if (impl->passthrough || ring > 0) ArmInit(impl->passthrough, ring);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(p, parent);
  auto vd = impl.vfs->ns().Resolve(p->vd, name, false);
  if (!vd.has_value()) {
    if (vd.error() == Errno(ENOENT) && impl.Timeout(p->vd) > 0) {
      // A negative entry the kernel may keep: nothing changes this name behind our back.
      fuse_entry_param e{};
      e.ino = 0;
      e.entry_timeout = impl.Timeout(p->vd);
      fuse_reply_entry(req, &e);
      return;
    }
    Err(req, vd.error());
    return;
  }
  impl.ReplyEntry(req, parent, p->vd, name, *vd, nullptr, nullptr);
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Impl::Of(req).Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Impl& impl = Impl::Of(req);
  for (size_t i = 0; i < count; ++i) impl.Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  auto a = impl.vfs->StatAt(n->vd);
  if (!a.has_value()) return Err(req, a.error());
  struct stat st = impl.ToStat(n->vd, *a);
  fuse_reply_attr(req, &st, impl.Timeout(n->vd));
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info*) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  vfs::SetAttrRequest r;
  using S = vfs::SetAttrRequest;
  if (to_set & FUSE_SET_ATTR_MODE) r.mask |= S::kMode, r.mode = attr->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) r.mask |= S::kUid, r.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) r.mask |= S::kGid, r.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) r.mask |= S::kSize, r.size = static_cast<uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    r.mask |= S::kAtimeNow;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    r.mask |= S::kAtime, r.atime = attr->st_atim;
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    r.mask |= S::kMtimeNow;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    r.mask |= S::kMtime, r.mtime = attr->st_mtim;
  }
  if (r.mask != 0) {
    auto s = impl.vfs->SetAttrAt(n->vd, r);
    if (!s.has_value()) return Err(req, s.error());
  }
  auto a = impl.vfs->StatAt(n->vd);
  if (!a.has_value()) return Err(req, a.error());
  struct stat st = impl.ToStat(n->vd, *a);
  fuse_reply_attr(req, &st, impl.Timeout(n->vd));
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  auto t = impl.vfs->ReadlinkAt(n->vd);
  if (!t.has_value()) return Err(req, t.error());
  fuse_reply_readlink(req, t->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(p, parent);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto r = impl.vfs->Mknod(p->vd, name, mode, rdev, ctx->uid, ctx->gid);
  impl.ReplyCreated(req, parent, p->vd, name, r);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(p, parent);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto r = impl.vfs->Mkdir(p->vd, name, mode, ctx->uid, ctx->gid);
  impl.ReplyCreated(req, parent, p->vd, name, r);
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(p, parent);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto r = impl.vfs->Symlink(p->vd, target, name, ctx->uid, ctx->gid);
  impl.ReplyCreated(req, parent, p->vd, name, r);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(p, parent);
  ReplyStatus(req, impl.vfs->Unlink(p->vd, name));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(p, parent);
  ReplyStatus(req, impl.vfs->Rmdir(p->vd, name));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  Impl& impl = Impl::Of(req);
  // RENAME_NOREPLACE and RENAME_EXCHANGE cannot be made atomic over 9P; callers (mv) fall
  // back to plain rename on EINVAL.
  if (flags != 0) return Err(req, Errno(EINVAL));
  NODE_OR_REPLY(p, parent);
  NODE_OR_REPLY(np, newparent);
  ReplyStatus(req, impl.vfs->RenameAt(p->vd, name, np->vd, newname));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  NODE_OR_REPLY(np, newparent);
  auto r = impl.vfs->LinkAt(n->vd, np->vd, newname);
  impl.ReplyCreated(req, newparent, np->vd, newname, r);
}

// O_DIRECT is the kernel's business (it bypasses its page cache and sends us READs); the
// sentry's own buffers are not aligned, so it must not reach the host open.
int OpenFlags(int flags) { return flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT); }

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  auto h = impl.vfs->OpenAt(n->vd, OpenFlags(fi->flags));
  if (!h.has_value()) return Err(req, h.error());
  Handle* hd = impl.NewHandle(std::move(*h));
  fi->fh = reinterpret_cast<uint64_t>(hd);
  // Cached file systems keep the kernel's page cache across opens; others start afresh so
  // host-side changes are seen at open (close-to-open consistency).
  fi->keep_cache = impl.Timeout(n->vd) > 0;
  // FLUSH (at each close) writes back what this handle wrote: nothing for a read-only one,
  // nor for a file system that holds no writes back (tmpfs; 9p without a page cache), so
  // the kernel need not ask (FOPEN_NOFLUSH; a program's start opens hundreds of files).
  fi->noflush = !hd->h->file->FlushWritesBack();
  if (impl.ReplyOpen(req, fi, impl.Passthrough(*n, *hd->h), nullptr) != 0) impl.DropHandle(hd);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(p, parent);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto h = impl.vfs->Open(p->vd, name, OpenFlags(fi->flags) | O_CREAT | (fi->flags & O_EXCL),
                          mode, ctx->uid, ctx->gid);
  if (!h.has_value()) return Err(req, h.error());
  VirtualDentry at = (*h)->at;
  Handle* hd = impl.NewHandle(std::move(*h));
  fi->fh = reinterpret_cast<uint64_t>(hd);
  fi->keep_cache = impl.Timeout(at) > 0;
  fi->noflush = !hd->h->file->FlushWritesBack();  // As for OPEN: tar's every file.
  if (impl.ReplyEntry(req, parent, p->vd, name, at, fi, hd->h.get()) == 0) impl.DropHandle(hd);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  HandleUse hd(fi);
  if (auto ext = hd->h->file->ReadableHostExtent(static_cast<uint64_t>(off), size)) {
    // Straight from the host fd: libfuse splices it into /dev/fuse (FUSE_CAP_SPLICE_WRITE),
    // so the data is copied once, host page cache to FUSE page cache, never through us.
    fuse_bufvec bv = FUSE_BUFVEC_INIT(ext->len);
    bv.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    bv.buf[0].fd = ext->fd;
    bv.buf[0].pos = off;
    fuse_reply_data(req, &bv, static_cast<fuse_buf_copy_flags>(0));
    return;
  }
  thread_local std::vector<char> buf;
  if (buf.size() < size) buf.resize(size);
  auto n = hd->h->ReadAt(std::span<char>(buf.data(), size), static_cast<uint64_t>(off));
  if (!n.has_value()) return Err(req, n.error());
  fuse_reply_buf(req, buf.data(), *n);
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off,
             fuse_file_info* fi) {
  HandleUse hd(fi);
  auto n = hd->h->WriteAt(std::span<const char>(data, size), static_cast<uint64_t>(off));
  if (!n.has_value()) return Err(req, n.error());
  fuse_reply_write(req, *n);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  ReplyStatus(req, HandleUse(fi)->h->file->Flush());
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Impl::Of(req).DropHandle(HandleOf(fi));
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  ReplyStatus(req, HandleUse(fi)->h->file->Fsync());
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Impl& impl = Impl::Of(req);
  if (impl.stateless_dirs) {
    // The kernel then opens directories itself (fh 0, no RELEASEDIR) from now on; it has
    // already checked permissions (default_permissions).
    fuse_reply_err(req, ENOSYS);
    return;
  }
  NODE_OR_REPLY(n, ino);
  auto h = impl.vfs->OpenAt(n->vd, O_RDONLY | O_DIRECTORY);
  if (!h.has_value()) return Err(req, h.error());
  Handle* hd = impl.NewHandle(std::move(*h));
  fi->fh = reinterpret_cast<uint64_t>(hd);
  fi->cache_readdir = 0;
  if (fuse_reply_open(req, fi) != 0) impl.DropHandle(hd);
}

// Directory offsets. An entry's cookie (its d_off: where reading resumes after it) is a
// hash of its name, the entries are listed in hash order, and reading from cookie c
// continues with the first name hashing above c. That holds in every listing of the
// directory, so a reader continues correctly in a newer one: each name present throughout
// is seen exactly once, whatever others do meanwhile (interleaved readers, the kernel's
// cached copy dropped part-way, seekdir), as with ext4's hash cookies. 0 is the start, 1 and
// 2 follow "." and "..", kDirEnd follows the last entry. Names whose hashes collide get
// consecutive cookies (63 bits: never seen in practice).
constexpr uint64_t kDirEnd = uint64_t{INT64_MAX};
uint64_t DirCookie(const std::string& name) {
  uint64_t h = std::hash<std::string>{}(name) >> 1;
  return std::clamp<uint64_t>(h, 3, kDirEnd - 1 - 4096);
}

std::shared_ptr<const Listing> MakeListing(std::vector<vfs::DirEntry> all) {
  auto l = std::make_shared<Listing>();
  std::vector<std::pair<uint64_t, size_t>> order;
  order.reserve(all.size());
  for (size_t i = 2; i < all.size(); ++i) order.emplace_back(DirCookie(all[i].name), i);
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : all[a.second].name < all[b.second].name;
  });
  l->entries.reserve(all.size());
  l->cookies.reserve(all.size());
  l->entries.push_back(std::move(all[0]));
  l->cookies.push_back(1);
  l->entries.push_back(std::move(all[1]));
  l->cookies.push_back(2);
  for (const auto& [c, i] : order) {
    uint64_t cookie = std::max(c, l->cookies.back() + 1);
    l->entries.push_back(std::move(all[i]));
    l->cookies.push_back(cookie);
  }
  return l;
}

// READDIRPLUS: the directory listed (node `ino`, dentry `vd`). Subdirectories come with
// their entry, looked up as LOOKUP would (node id, attributes, timeouts), so a walker that
// descends costs the kernel no LOOKUP; other entries come with node id 0 (the kernel then
// keeps only name and type, as after READDIR), which costs no lookup here. A lookup here
// can cost a gofer round trip that a mere listing (ls) would not have paid, so a reply
// looks up at most kPlusLookups subdirectories (every one of most directories); the rest
// come as names, and a walker looks those up itself.
constexpr size_t kPlusLookups = 64;
struct Plus {
  fuse_ino_t ino;
  VirtualDentry vd;
};

// Replies to a READDIR (or READDIRPLUS, with `plus`) of at most `size` bytes with the
// entries of `listing` after cookie `after`. True when the reply holds the last entry: the
// reader comes back only with kDirEnd, which needs no listing.
bool ReplyListing(fuse_req_t req, size_t size, const Listing& listing, uint64_t after,
                  const Plus* plus) {
  Impl& impl = Impl::Of(req);
  const auto& cookies = listing.cookies;
  size_t i = static_cast<size_t>(std::upper_bound(cookies.begin(), cookies.end(), after) -
                                 cookies.begin());
  std::vector<char> buf(size);
  size_t used = 0;
  std::vector<fuse_ino_t> given;  // Node ids whose lookup count this reply raises.
  for (; i < cookies.size(); ++i) {
    const vfs::DirEntry& e = listing.entries[i];
    fuse_entry_param ep{};
    ep.attr.st_ino = e.ino;
    ep.attr.st_mode = static_cast<mode_t>(e.type) << 12;
    off_t next = static_cast<off_t>(i + 1 == cookies.size() ? kDirEnd : cookies[i]);
    char* at = buf.data() + used;
    if (!plus) {
      size_t need = fuse_add_direntry(req, at, size - used, e.name.c_str(), &ep.attr, next);
      if (need > size - used) break;
      used += need;
      continue;
    }
    size_t need = fuse_add_direntry_plus(req, nullptr, 0, e.name.c_str(), &ep, next);
    if (need > size - used) break;
    // Not "." or "..", which the kernel skips.
    if (e.type == DT_DIR && i >= 2 && given.size() < kPlusLookups) {
      auto vd = impl.vfs->ns().Resolve(plus->vd, e.name, false);
      auto a = vd.has_value() ? impl.vfs->StatAt(*vd) : Result<vfs::Attr>(vd.error());
      if (a.has_value()) {  // Else the name alone; a LOOKUP will say what is wrong.
        ep.ino = impl.Ref(*vd, plus->ino, e.name);
        given.push_back(ep.ino);
        ep.attr = impl.ToStat(*vd, *a);
        ep.entry_timeout = impl.Timeout(plus->vd);
        ep.attr_timeout = impl.Timeout(*vd);
      }
    }
    fuse_add_direntry_plus(req, at, size - used, e.name.c_str(), &ep, next);
    used += need;
  }
  if (fuse_reply_buf(req, buf.data(), used) != 0) {
    for (fuse_ino_t id : given) impl.Forget(id, 1);  // The kernel never saw them.
  }
  return i == cookies.size();
}

// Without a handle (stateless_dirs): the node's listing, replaced at each read from offset 0
// and dropped once a reader has it all.
void ReaddirStateless(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  const uint64_t after = static_cast<uint64_t>(off);
  if (after >= kDirEnd) {
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  std::shared_ptr<const Listing> listing;
  if (after != 0) {
    std::lock_guard l(n->list_mu);
    listing = n->listing;
  }
  if (!listing) {
    auto listed = impl.List(n->vd);
    if (!listed.has_value()) return Err(req, listed.error());
    listing = MakeListing(std::move(*listed));
    std::lock_guard l(n->list_mu);
    n->listing = listing;
  }
  Plus p{ino, n->vd};
  if (ReplyListing(req, size, *listing, after, plus ? &p : nullptr)) {
    std::lock_guard l(n->list_mu);
    if (n->listing == listing) n->listing.reset();
  }
}

void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
             bool plus) {
  if (fi->fh == 0) return ReaddirStateless(req, ino, size, off, plus);
  Impl& impl = Impl::Of(req);
  HandleUse hd(fi);
  std::shared_ptr<const Listing> listing;
  Errno error{0};
  {
    // The reply must come after the lock is released: once the kernel has it, the
    // directory may be closed and the handle freed (RELEASEDIR) on another thread.
    std::lock_guard l(hd->mu);
    if (off == 0 || !hd->listing) {
      auto listed = impl.List(*hd->h);
      if (listed.has_value()) {
        hd->listing = MakeListing(std::move(*listed));
      } else {
        error = listed.error();
      }
    }
    listing = hd->listing;
  }
  if (error.value() != 0) return Err(req, error);
  Plus p{ino, hd->h->at};
  ReplyListing(req, size, *listing, static_cast<uint64_t>(off), plus ? &p : nullptr);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Readdir(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   fuse_file_info* fi) {
  Readdir(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Impl::Of(req).DropHandle(HandleOf(fi));
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
  if (fi->fh == 0) {  // Opened by the kernel alone (stateless_dirs).
    Impl& impl = Impl::Of(req);
    NODE_OR_REPLY(n, ino);
    auto h = impl.vfs->OpenAt(n->vd, O_RDONLY | O_DIRECTORY);
    if (!h.has_value()) return Err(req, h.error());
    return ReplyStatus(req, (*h)->file->Fsync());
  }
  ReplyStatus(req, HandleUse(fi)->h->file->Fsync());
}

void OpStatfs(fuse_req_t req, fuse_ino_t ino) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  auto s = impl.vfs->StatFsAt(n->vd);
  if (!s.has_value()) return Err(req, s.error());
  struct statvfs v{};
  v.f_bsize = s->bsize;
  v.f_frsize = s->bsize;
  v.f_blocks = s->blocks;
  v.f_bfree = s->bfree;
  v.f_bavail = s->bavail;
  v.f_files = s->files;
  v.f_ffree = s->ffree;
  v.f_favail = s->ffree;
  v.f_namemax = s->namelen;
  fuse_reply_statfs(req, &v);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                size_t size, int flags) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  ReplyStatus(req, impl.vfs->SetXattrAt(n->vd, name, std::string(value, size), flags));
}

// getxattr/listxattr: size 0 asks for the length; a value longer than `size` is ERANGE.
void ReplySized(fuse_req_t req, const std::string& v, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, v.size());
  } else if (v.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, v.data(), v.size());
  }
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  auto v = impl.vfs->GetXattrAt(n->vd, name);
  if (!v.has_value()) return Err(req, v.error());
  ReplySized(req, *v, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  auto names = impl.vfs->ListXattrAt(n->vd);
  if (!names.has_value()) return Err(req, names.error());
  std::string all;
  for (const auto& s : *names) all.append(s).push_back('\0');
  ReplySized(req, all, size);
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Impl& impl = Impl::Of(req);
  NODE_OR_REPLY(n, ino);
  ReplyStatus(req, impl.vfs->RemoveXattrAt(n->vd, name));
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = OpInit;
  o.lookup = OpLookup;
  o.forget = OpForget;
  o.forget_multi = OpForgetMulti;
  o.getattr = OpGetattr;
  o.setattr = OpSetattr;
  o.readlink = OpReadlink;
  o.mknod = OpMknod;
  o.mkdir = OpMkdir;
  o.symlink = OpSymlink;
  o.unlink = OpUnlink;
  o.rmdir = OpRmdir;
  o.rename = OpRename;
  o.link = OpLink;
  o.open = OpOpen;
  o.create = OpCreate;
  o.read = OpRead;
  o.write = OpWrite;
  o.flush = OpFlush;
  o.release = OpRelease;
  o.fsync = OpFsync;
  o.opendir = OpOpendir;
  o.readdir = OpReaddir;
  o.readdirplus = OpReaddirplus;
  o.releasedir = OpReleasedir;
  o.fsyncdir = OpFsyncdir;
  o.statfs = OpStatfs;
  o.setxattr = OpSetxattr;
  o.getxattr = OpGetxattr;
  o.listxattr = OpListxattr;
  o.removexattr = OpRemovexattr;
  return o;
}();

}  // namespace

Result<std::unique_ptr<FuseServer>> FuseServer::Mount(std::shared_ptr<vfs::Vfs> v,
                                                      const std::string& mountpoint,
                                                      const FuseOptions& options,
                                                      std::string* error) {
  std::unique_ptr<FuseServer> s(new FuseServer());
  s->impl_ = std::make_unique<Impl>();
  Impl& impl = *s->impl_;
  impl.vfs = std::move(v);
  impl.options = options;
  {
    auto root = std::make_shared<Node>();
    root->vd = impl.vfs->root();
    root->nlookup = 1;
    impl.nodes.emplace(FUSE_ROOT_ID, std::move(root));
  }
  // nosuid and nodev are libfuse's defaults and stay: set-id bits and device nodes of the
  // served trees give the workload nothing. The kernel checks permissions from our modes.
  std::string opts = "allow_other,default_permissions,fsname=" + options.fsname +
                     ",subtype=sentry,max_read=" + std::to_string(options.max_io);
  std::vector<std::string> argv_s = {"sentry", "-o", opts};
  if (options.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  impl.se = fuse_session_new(&args, &kOps, sizeof(kOps), &impl);
  fuse_opt_free_args(&args);
  if (impl.se == nullptr) {
    if (error) *error = "fuse: cannot create a session (bad options?)";
    return Errno(EINVAL);
  }
  if (fuse_session_mount(impl.se, mountpoint.c_str()) != 0) {
    if (error) *error = "fuse: cannot mount at " + mountpoint + " (is /dev/fuse there, are we root?)";
    fuse_session_destroy(impl.se);
    impl.se = nullptr;
    return Errno(EPERM);
  }
  impl.mounted = true;
  impl.mountpoint = mountpoint;
  if (auto r = InstallKernelIo(impl.se); !r.has_value()) {
    LOG(WARNING) << "fuse: custom session I/O refused (" << r.error() << "): no passthrough";
  }
  return s;
}

void FuseServer::Start() {
  if (started_) return;
  started_ = true;
  impl_->evictor = std::thread([impl = impl_.get()] { impl->EvictLoop(); });
  if (impl_->options.uring) {
    // Payload room for the largest request INIT allows (max_write: max_io).
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t payload = (std::max<size_t>(impl_->options.max_io, 8192) + page - 1) / page * page;
    impl_->uring = UringQueues::Start(impl_->se, {.payload = payload,
                                                  .may_block = &Impl::MayBlock,
                                                  .spin = impl_->options.spin});
  }
  impl_->loop = std::make_unique<SessionLoop>(
      impl_->se,
      SessionLoop::Options{.spin = impl_->options.spin,
                           .after_init = [impl = impl_.get()] { impl->AfterInit(); }},
      &Impl::MayBlock);
  loop_ = std::thread([this] {
    int rc = impl_->loop->Run();
    if (rc != 0) VLOG(1) << "fuse: loop ended with " << rc;
    // The rings end with the connection too. Abandoned if the session ended before INIT
    // was served (a no-op once registered).
    if (impl_->uring) {
      impl_->uring->Abandon();
      impl_->uring->Join();
    }
    std::lock_guard l(done_mu_);
    done_ = true;
    done_cv_.notify_all();
  });
}

bool FuseServer::Stop(int timeout_ms) {
  if (stopped_) return true;
  stopped_ = true;
  if (impl_->se == nullptr) return true;
  if (impl_->evictor.joinable()) {
    {
      std::lock_guard l(impl_->evict_mu);
      impl_->evict_stop = true;
    }
    impl_->evict_cv.notify_all();
    impl_->evictor.join();
  }
  fuse_session_exit(impl_->se);
  if (!started_) {
    if (impl_->mounted) fuse_session_unmount(impl_->se);
    impl_->mounted = false;
    return true;
  }
  // Detach first and let the kernel end the connection once nobody uses the mount: the
  // workers' reads then fail and the loop returns. libfuse's unmount closes /dev/fuse, which
  // must not happen while workers still read it.
  if (impl_->mounted) umount2(impl_->mountpoint.c_str(), MNT_DETACH);
  std::unique_lock l(done_mu_);
  bool ended = done_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [this] { return done_; });
  l.unlock();
  if (ended) {
    loop_.join();
    if (impl_->mounted) fuse_session_unmount(impl_->se);
    impl_->mounted = false;
  } else {
    LOG(WARNING) << "fuse: the session loop did not end in " << timeout_ms << " ms";
    loop_.detach();
  }
  return ended;
}

void FuseServer::CloseFiles() {
  std::unordered_map<Handle*, std::unique_ptr<Handle>> open;
  {
    std::lock_guard l(impl_->handles_mu);
    open.swap(impl_->handles);
  }
  open.clear();  // No request is served after Stop(): no handle has users left.
}

FuseServer::~FuseServer() {
  bool ended = Stop();
  // A loop still running uses the session: leave both to the process's end.
  if (ended && impl_ && impl_->se != nullptr) {
    fuse_session_destroy(impl_->se);
  } else if (impl_) {
    (void)impl_.release();
  }
}

uint64_t FuseServer::received(uint32_t opcode) const {
  uint64_t n = impl_->loop ? impl_->loop->received(opcode) : 0;
  if (impl_->uring) n += impl_->uring->received(opcode);
  return n;
}

bool FuseServer::uring() const { return impl_->uring_active.load(); }

uint64_t FuseServer::ring_received(uint32_t opcode) const {
  return impl_->uring ? impl_->uring->received(opcode) : 0;
}

void FuseServer::Pin(const std::string& path) {
  VirtualDentry at = impl_->vfs->root();
  std::stringstream parts(path);
  std::string name;
  while (std::getline(parts, name, '/')) {
    if (name.empty()) continue;
    auto next = impl_->vfs->ns().Resolve(at, name, false);
    if (!next.has_value()) return;
    at = *next;
    std::lock_guard l(impl_->mu);
    if (!impl_->Pinned(at)) impl_->pinned.push_back(at);
  }
}

bool FuseServer::passthrough() const {
  return impl_->passthrough && impl_->backing_allowed.load(std::memory_order_relaxed);
}

size_t FuseServer::live_nodes() const {
  std::lock_guard l(impl_->mu);
  return impl_->nodes.size() - 1;
}

}  // namespace sentry::fuse
