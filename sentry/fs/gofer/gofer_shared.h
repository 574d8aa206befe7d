// GoferFs::Shared, what every inode and open file of one 9p mount shares (the client, the
// cache policy, the change epoch), and ToAttr, a Tgetattr reply as the VFS's attributes.
#ifndef SENTRY_FS_GOFER_GOFER_SHARED_H_
#define SENTRY_FS_GOFER_GOFER_SHARED_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "p9/client.h"
#include "p9/messages.h"
#include "sentry/fs/gofer/cache_policy.h"
#include "sentry/fs/gofer/gofer_fs.h"
#include "sentry/fs/gofer/listing_prefetch.h"
#include "sentry/vfs/types.h"

namespace sentry::fs {

struct GoferFs::Shared {
  std::unique_ptr<p9::Client> client;  // First: outlives everything below.
  CachePolicy cache;
  // Attribute-caching policies in our dialect, unless the mount says prefetch=0: listings
  // sent ahead of a tree walker. Null otherwise.
  std::unique_ptr<ListingPrefetch> prefetch;
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

vfs::Attr ToAttr(const p9::Rgetattr& r);

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_GOFER_SHARED_H_
