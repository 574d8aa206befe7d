// The 9P mount data string, as runsc passes it: "trans=fd,rfdno=N,wfdno=N,
// privateunixsocket=true,cache=remote_revalidating[,aname=A][,msize=N][,spin_us=N]
// [,prefetch=N]".
// spin_us (ours): how long a call polls for the gofer's reply before sleeping (0..1000).
// prefetch (ours): directory listings sent ahead of a tree walker, at most (0..256; 0: none;
// see listing_prefetch.h).
#ifndef SENTRY_FS_GOFER_MOUNT_OPTIONS_H_
#define SENTRY_FS_GOFER_MOUNT_OPTIONS_H_

#include <string>

#include "p9/result.h"
#include "sentry/fs/gofer/cache_policy.h"

namespace sentry::fs {

struct GoferMountOptions {
  int rfd = -1;
  int wfd = -1;
  bool private_unix_socket = false;
  CachePolicy cache = CachePolicy::kFscache;  // The default when cache= is absent.
  std::string aname;
  uint32_t msize = 1u << 20;
  // The gofer answers most requests in ~10 us; sleeping and being woken costs more than that
  // on these VMs (see p9::FrameReader::set_spin).
  uint32_t spin_us = 50;
  uint32_t prefetch = 16;
};

// EINVAL (with `error` naming the culprit) for unknown options, malformed values, a
// transport other than fd, missing or differing rfdno/wfdno (one socket serves both).
p9::Result<GoferMountOptions> ParseGoferMountOptions(const std::string& data, std::string* error);

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_MOUNT_OPTIONS_H_
