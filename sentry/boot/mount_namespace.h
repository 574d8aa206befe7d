// Builds the sandbox's mount namespace from an OCI spec and runtime config, as runsc's
// createMountNamespace does (the seed documents): the root over 9P from the first io fd
// (or direct host access for file_access=direct), the read-only mount-point tree under it,
// the optional tmpfs overlay, then every compiled mount in order, each destination created
// with mkdirAll through the namespace (so symlinks are followed: /var/run/x lands in
// /run/x), bind mounts each taking the next io fd. Every io fd must be consumed.
//
// direct file access runs our gofer's host backend inside the sandbox process, restricted to
// the root (and bind sources): weaker isolation than the gofer, since the sandbox process can
// open host files itself.
#ifndef SENTRY_BOOT_MOUNT_NAMESPACE_H_
#define SENTRY_BOOT_MOUNT_NAMESPACE_H_

#include <memory>
#include <string>
#include <vector>

#include "sentry/boot/mounts.h"
#include "sentry/vfs/mount.h"

namespace sentry::boot {

struct BootResult {
  std::shared_ptr<vfs::MountNamespace> ns;
  std::vector<std::string> warnings;
};

// `io_fds` are the sandbox ends of the gofer sockets, in mount order (root first). The
// namespace owns them once this succeeds. On failure, `error` says what went wrong.
p9::Result<BootResult> CreateMountNamespace(const p9fs::OciSpec& spec,
                                            const p9fs::RuntimeConfig& config,
                                            std::vector<int> io_fds, std::string* error);

// Where child containers' roots are mounted (multi_container).
inline constexpr char kChildContainersDir[] = "/__runsc_containers__";

// Sets up child container `cid` (multi_container, newer seed): its root over its own first io
// fd at /__runsc_containers__/<cid>, its mounts below it from its remaining io fds. Returns
// the child's root, where its process starts. EINVAL for a bad id or an fd mismatch, EEXIST
// for an id in use.
p9::Result<vfs::VirtualDentry> CreateChildContainer(const std::shared_ptr<vfs::MountNamespace>& nsp,
                                                const std::string& cid,
                                                    const p9fs::OciSpec& spec,
                                                    const p9fs::RuntimeConfig& config,
                                                    std::vector<int> io_fds,
                                                    std::vector<std::string>* warnings,
                                                    std::string* error);

// Creates every missing directory of `path` through the namespace, following symlinks.
p9::Result<void> MkdirAll(vfs::MountNamespace& ns, const std::string& path, std::string* error);

}  // namespace sentry::boot

#endif  // SENTRY_BOOT_MOUNT_NAMESPACE_H_
