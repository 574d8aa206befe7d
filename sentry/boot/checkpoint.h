// Save and restore of the overlay upper layers (the only file system state of an --overlay
// sandbox that is not on the host). Restore runs right after CreateMountNamespace built the
// namespace on fresh gofer connections, before anything is looked up through it.
//
// Limits: hard links inside an upper layer are saved as separate copies.
#ifndef SENTRY_BOOT_CHECKPOINT_H_
#define SENTRY_BOOT_CHECKPOINT_H_

#include <string>

#include "p9/result.h"
#include "proto/checkpoint.pb.h"
#include "sentry/vfs/mount.h"

namespace sentry::boot {

p9::Result<p9fs::Checkpoint> SaveOverlays(vfs::MountNamespace& ns, std::string* error);
// EINVAL when a saved layer has no matching overlay mount (a different spec or config).
p9::Result<void> RestoreOverlays(vfs::MountNamespace& ns, const p9fs::Checkpoint& cp,
                                 std::string* error);

}  // namespace sentry::boot

#endif  // SENTRY_BOOT_CHECKPOINT_H_
