// The "9p" file system: a tree served by the gofer over one socket (trans=fd), through our p9
// client. Each inode holds a walked fid; opens clone it and Tlopen, and use the host fd the
// gofer donates (our 9P2000.L extension) for reads and writes without a round trip, falling
// back to Tread/Twrite against servers that do not donate. What is cached depends on the
// mount's CachePolicy (cache_policy.h).
//
// Errors from the gofer keep their errno. If the gofer dies, operations fail with
// ECONNRESET (connection gone) or EIO (protocol violation), never hang.
#ifndef SENTRY_FS_GOFER_GOFER_FS_H_
#define SENTRY_FS_GOFER_GOFER_FS_H_

#include <memory>
#include <string>

#include "p9/client.h"
#include "p9/unique_fd.h"
#include "sentry/fs/gofer/cache_policy.h"
#include "sentry/fs/gofer/mount_options.h"
#include "sentry/vfs/inode.h"

namespace sentry::fs {

class GoferFs : public vfs::Filesystem {
 public:
  // Mounts from a data string; takes ownership of the socket fd it names.
  static p9::Result<std::shared_ptr<GoferFs>> Mount(const std::string& data, std::string* error);
  static p9::Result<std::shared_ptr<GoferFs>> Create(p9::UniqueFd sock,
                                                     const GoferMountOptions& opts);

  std::string type() const override { return "9p"; }
  std::shared_ptr<vfs::Inode> root() override { return root_; }
  CachePolicy cache() const;
  bool fd_donation() const;
  // Directory listings sent ahead of a tree walker and not yet taken (listing_prefetch.h).
  size_t listings_ahead() const;
  // Requests sent to the gofer so far (p9::Client::requests): for tests counting round trips.
  uint64_t requests() const;

  struct Shared;  // The client and policy, shared by every inode (gofer_shared.h).

 private:
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<vfs::Inode> root_;
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_GOFER_FS_H_
