// How much of a 9P file system the sentry may cache. Chosen per mount with cache=...
#ifndef SENTRY_FS_GOFER_CACHE_POLICY_H_
#define SENTRY_FS_GOFER_CACHE_POLICY_H_

#include <string>

namespace sentry::fs {

enum class CachePolicy {
  // cache=remote_revalidating: for shared file access (others change the host tree too).
  //  - may keep dentries, but revalidates each one against the gofer on lookup (a walk of
  //    the name, comparing the qid): a file created, deleted, replaced or renamed on the host
  //    is seen on the next access;
  //  - never trusts attributes: every stat asks the gofer;
  //  - file data goes through the donated host fd (no sentry page cache), so host writes are
  //    seen at once.
  kRemoteRevalidating,
  // cache=fscache (the default): for exclusive access (only this sandbox changes the tree).
  //  - trusts cached dentries: a name looked up once is not walked again;
  //  - caches negative lookups (a name found missing stays missing until we create it);
  //  - caches directory listings (dropped when we change the directory);
  //  - caches attributes (dropped by our own changes);
  //  - caches file data in the sentry's page cache (page_cache.h) with write-back on fsync
  //    and close.
  //  Host-side changes made behind the sandbox's back may stay invisible until the dentry is
  //  evicted (this staleness is what exclusive access allows, and the tests document it).
  kFscache,
  // cache=fscache_writethrough: as fscache, but every write reaches the gofer before it
  // returns (the page cache serves reads; nothing is left dirty).
  kFscacheWritethrough,
  // cache=none: nothing cached; every lookup walks, every stat asks.
  kNone,
};

inline const char* CachePolicyName(CachePolicy p) {
  switch (p) {
    case CachePolicy::kRemoteRevalidating: return "remote_revalidating";
    case CachePolicy::kFscache: return "fscache";
    case CachePolicy::kFscacheWritethrough: return "fscache_writethrough";
    case CachePolicy::kNone: return "none";
  }
  return "?";
}

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_CACHE_POLICY_H_
