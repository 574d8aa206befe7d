// The kernel frontend: the sentry VFS served to the host kernel over FUSE (libfuse3 low-level
// API), so unmodified programs can run on the sandbox's mount namespace.
//
// Node ids: the kernel names files by node id. Each node id holds one VirtualDentry (mount +
// dentry), so the dentry, its inode and its ancestors live while the kernel remembers the
// node, and the same dentry always gets the same node id. Node ids are freed when the
// kernel's lookup count drops to zero (FORGET). st_ino is mapped from (mount, inode number)
// to a number unique in this FUSE mount, so hard links keep one st_ino and files of different
// mounts never share one.
//
// Caching in the kernel follows the file system's policy: a directory whose file system
// caches lookups (every change goes through this sandbox: tmpfs, 9p under fscache) lets the
// kernel keep names, negative lookups, attributes and page cache for `cache_timeout`; one
// that revalidates (9p under remote_revalidating) gets timeouts of 0, so every path walk and
// stat comes back to us and reaches the gofer, and each open drops the kernel's page cache.
//
// Errors keep the VFS errno, except that a dead gofer connection (ECONNRESET, EPIPE,
// ENOTCONN) is reported as EIO, as the kernel's own 9p client does.
//
// Threads: the session loop (session_loop.h) serves requests on a leader/follower set of
// threads, handing reading on before a request that may block; with FUSE over io_uring
// (uring_queues.h) one thread per CPU serves that CPU's requests instead, and the session
// loop only what still comes through /dev/fuse. Every handler may run concurrently. mu_ guards the node table and ino_mu_ the st_ino map; neither is held while
// calling the VFS. A directory handle's snapshot, and a node's listings, are guarded by
// their own mutexes.
#ifndef SENTRY_FUSE_FUSE_SERVER_H_
#define SENTRY_FUSE_FUSE_SERVER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "p9/result.h"
#include "sentry/vfs/vfs.h"

struct fuse_session;

namespace sentry::fuse {

struct FuseOptions {
  // Seconds the kernel may trust names and attributes of file systems that cache.
  double cache_timeout = 60.0;
  // Largest read/write the kernel sends in one request.
  uint32_t max_io = 1 << 20;
  // Kernel nodes kept before the least recently used are invalidated (each pins a gofer
  // fid, hence a host fd in the gofer); eviction brings them down to 80%.
  size_t max_nodes = 10000;
  // Name shown in /proc/mounts.
  std::string fsname = "sentry";
  // libfuse's trace of every request, on stderr.
  bool debug = false;
  // How long the thread reading /dev/fuse (SessionLoop), and each io_uring queue's thread
  // (UringQueues), poll for the next request before sleeping.
  std::chrono::microseconds spin = std::chrono::microseconds(50);
  // Directories are listed without OPENDIR/RELEASEDIR where the kernel allows it
  // (FUSE_NO_OPENDIR_SUPPORT) and every mount caches lookups: two requests fewer for each
  // directory a program reads, and the kernel keeps listings (a second one costs no
  // request). Offsets are then name hashes, valid in any listing of the directory.
  bool stateless_dirs = true;
  // Regular files whose file system names a host fd for them (9p with fd donation) have
  // their data read and written by the kernel on that host file (FUSE passthrough, Linux
  // 6.9+, needs CAP_SYS_ADMIN): no READ or WRITE request, no copy through the sentry, and
  // mmap maps the host's pages. Elsewhere, or where the kernel refuses, data goes through
  // the sentry as before.
  bool passthrough = true;
  // Where every mount caches, directory listings carry each subdirectory's entry
  // (READDIRPLUS): a walker that descends needs no LOOKUP.
  bool readdirplus = true;
  // Requests come through per-CPU io_uring queues where the kernel offers it (Linux 6.14+,
  // `echo Y > /sys/module/fuse/parameters/enable_uring`): each served on the CPU that made
  // it, with no wake-up of the other CPU. Elsewhere, or if the rings cannot be set up,
  // everything goes through /dev/fuse as before.
  bool uring = true;
};

class FuseServer {
 public:
  // Mounts the namespace of `vfs` at `mountpoint` (an existing empty directory). The caller
  // must be root in its mount namespace. Nothing is served until Start().
  static p9::Result<std::unique_ptr<FuseServer>> Mount(std::shared_ptr<vfs::Vfs> vfs,
                                                       const std::string& mountpoint,
                                                       const FuseOptions& options,
                                                       std::string* error);
  ~FuseServer();  // Stop(), then frees the session.

  // Serves requests on the session loop's threads; returns at once.
  void Start();
  // Unmounts (lazily: the kernel tears the connection down once no process uses the mount)
  // and waits up to `timeout_ms` for the loop to end. False if it did not end in time (the
  // loop thread is then left to die with the process).
  bool Stop(int timeout_ms = 5000);
  // After Stop() returned true: closes every file the kernel left open (each writes back
  // what it holds, as its RELEASE would have). For a caller about to end the process without
  // destroying the server: what else the server and the file systems under it hold is
  // memory and gofer fids, which the process's end and the gofer (at the connection's
  // close) free at once, where destructors would free them one by one.
  void CloseFiles();

  // Never invalidates the kernel's entries for absolute `path` or any directory on the way
  // to it. Eviction invalidates entries, and the kernel detaches whatever is mounted on an
  // invalidated entry or below it: the sandbox's /proc, /sys and /dev are mounted over this
  // view. Components that do not exist are ignored.
  void Pin(const std::string& path);
  // Node ids the kernel still holds, the root excluded (tests check FORGET frees them).
  size_t live_nodes() const;
  // Requests of FUSE opcode `opcode` (FUSE_OPENDIR, ...) received so far; 0 before Start().
  uint64_t received(uint32_t opcode) const;
  // True once the kernel takes requests through the io_uring queues (FuseOptions::uring).
  bool uring() const;
  // Of received(opcode), those that came through the io_uring queues.
  uint64_t ring_received(uint32_t opcode) const;
  // True once the kernel has agreed to passthrough (FuseOptions::passthrough) and accepted a
  // backing file, or has not yet refused one.
  bool passthrough() const;

  // Internal: what the libfuse callbacks reach through the request's user data.
  struct Impl;

 private:
  FuseServer() = default;
  std::unique_ptr<Impl> impl_;
  std::thread loop_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;   // Guarded by done_mu_.
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace sentry::fuse

#endif  // SENTRY_FUSE_FUSE_SERVER_H_
