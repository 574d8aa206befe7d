#include "sentry/fs/gofer/gofer_fs.h"

#include <fcntl.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "p9/client_file.h"
#include "sentry/fs/gofer/gofer_inode.h"
#include "sentry/fs/gofer/gofer_shared.h"

namespace sentry::fs {

using p9::ClientFile;
using p9::Errno;
using p9::Result;

namespace {
// The first page of a listing sent ahead: most directories fit (an entry with attributes
// is about 150 bytes); larger ones are read on when taken. Bounds what a listing nobody
// takes holds.
constexpr uint32_t kPrefetchFirstBytes = 16 * 1024;

// What the gofer may open, as far as this process can tell: ours. The launcher starts both
// with the same limits and each raises its own as far as it goes (p9::RaiseFdLimit); in
// tests the server shares this process's fd table.
uint64_t GoferFdLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1u << 20;
  return rl.rlim_cur;
}
}  // namespace

CachePolicy GoferFs::cache() const { return shared_->cache; }
bool GoferFs::fd_donation() const { return shared_->client->fd_donation(); }
uint64_t GoferFs::requests() const { return shared_->client->requests(); }
size_t GoferFs::listings_ahead() const {
  return shared_->prefetch ? shared_->prefetch->ahead() : 0;
}

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
  if (shared->CachesAttrs() && shared->client->Has(p9::Dialect::kReaddirAttr) &&
      opts.prefetch > 0) {
    shared->prefetch = std::make_unique<ListingPrefetch>(
        opts.prefetch, kPrefetchFirstBytes, ListingPrefetch::HeldFor(GoferFdLimit()));
  }
  P9_ASSIGN_OR_RETURN(ClientFile root, ClientFile::Attach(*shared->client, opts.aname));
  P9_ASSIGN_OR_RETURN(p9::Rgetattr a, root.GetAttr(p9::getattr::kBasic));
  auto fs = std::shared_ptr<GoferFs>(new GoferFs());
  fs->shared_ = shared;
  fs->root_ = std::make_shared<GoferInode>(shared, std::move(root), a.qid);
  return fs;
}

}  // namespace sentry::fs
