// setExecutablePath: the workload's argv[0] resolved through PATH inside the namespace.
#ifndef SENTRY_BOOT_EXECUTABLE_H_
#define SENTRY_BOOT_EXECUTABLE_H_

#include <string>

#include "p9/result.h"
#include "proto/oci_spec.pb.h"
#include "sentry/vfs/mount.h"

namespace sentry::boot {

// The PATH runsc assumes when the spec's env has none.
inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// argv[0] with a '/' is taken as is (relative to cwd); otherwise the first PATH entry that
// holds a regular file with an execute bit wins. ENOENT with `error` when none does; EINVAL
// for an empty argv.
p9::Result<std::string> ResolveExecutable(vfs::MountNamespace& ns, const p9fs::OciProcess& proc,
                                          std::string* error);

}  // namespace sentry::boot

#endif  // SENTRY_BOOT_EXECUTABLE_H_
