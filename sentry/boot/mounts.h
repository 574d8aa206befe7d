// The mount list of a sandbox, compiled from an OCI spec as runsc's boot/fs.go does (see
// ../../../shared/seeds): /dev and /dev/pts always; the spec's mounts minus the /dev entries
// our own /dev provides; /proc, /sys and /tmp added right after the root unless the spec has
// them. Also the per-mount decisions (file system, options, io fd, overlay), the device names
// and the restore environment. Pure functions: nothing here touches a file system.
#ifndef SENTRY_BOOT_MOUNTS_H_
#define SENTRY_BOOT_MOUNTS_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "p9/result.h"
#include "proto/gofer_config.pb.h"
#include "proto/oci_spec.pb.h"
#include "proto/runtime_config.pb.h"
#include "sentry/vfs/mount.h"

namespace sentry::boot {

using Mounts = std::vector<p9fs::OciMount>;

// Parses a config.json (unknown fields ignored). EINVAL with `error` on malformed JSON.
p9::Result<p9fs::OciSpec> ParseSpecJson(const std::string& json, std::string* error);
// <bundle>/config.json. ENOENT/EINVAL with `error` naming the file.
p9::Result<p9fs::OciSpec> LoadBundleSpec(const std::string& bundle, std::string* error);

// filepath.Clean for absolute-or-relative slash paths.
std::string CleanPath(std::string_view p);

// False for /dev itself and for what our /dev already provides (fd, stdin, stdout, stderr,
// null, zero, full, random, urandom, shm, pts, ptmx and below).
bool IsSupportedDevMount(const p9fs::OciMount& m);

// The mounts to set up, in order. `warnings` receives one line per skipped mount.
Mounts CompileMounts(const p9fs::OciSpec& spec, std::vector<std::string>* warnings);

// ro, rw, noatime; anything else is warned about and ignored.
vfs::MountFlags MountFlagsOf(const google::protobuf::RepeatedPtrField<std::string>& options,
                             std::vector<std::string>* warnings);

// Keeps the options whose key is allowed ("k" or "k=v"), warns about the rest; "a=b=c" is
// EINVAL.
p9::Result<std::vector<std::string>> FilterOptions(
    const google::protobuf::RepeatedPtrField<std::string>& options,
    const std::vector<std::string>& allowed, std::vector<std::string>* warnings,
    std::string* error);

// Destinations below `root` (relative to it), for the submount overlay of a mount at root.
std::vector<std::string> Subtargets(const std::string& root, const Mounts& mounts);

// "9pfs-<dest>" for bind mounts, "none" for the rest; the root is "9pfs-/".
inline constexpr char kRootDevice[] = "9pfs-/";
std::string MountDevice(const p9fs::OciMount& m);

// The 9P mount data for io fd `fd`: cache=remote_revalidating for shared access only;
// exclusive access leaves the 9p default (fscache), as the seeds do.
std::string P9MountOptions(const p9fs::RuntimeConfig& config, int fd);

// Hands out io fds in mount order; running out is an error, never a crash.
class FdDispenser {
 public:
  explicit FdDispenser(std::vector<int> fds) : fds_(std::move(fds)) {}
  p9::Result<int> Remove(const std::string& for_what, std::string* error);
  bool empty() const { return next_ == fds_.size(); }
  size_t remaining() const { return fds_.size() - next_; }
  size_t used() const { return next_; }

 private:
  std::vector<int> fds_;
  size_t next_ = 0;
};

// What to mount for one spec mount. fs_name "" means "skip" (an unknown type, warned).
struct MountPlan {
  std::string fs_name;  // "devtmpfs", "devpts", "proc", "sysfs", "tmpfs", "9p", "direct".
  std::string data;     // Mount data (options joined by ',').
  bool use_overlay = false;
};
p9::Result<MountPlan> PlanMount(const p9fs::RuntimeConfig& config, const p9fs::OciMount& m,
                                FdDispenser& fds, std::vector<std::string>* warnings,
                                std::string* error);

// What the gofer serves for this spec, in io-fd order (the order CreateMountNamespace takes
// them): the root, then each bind mount of CompileMounts. Empty for direct file access.
// With the overlay, writable ones are served read-only as well: the sandbox's tmpfs upper
// takes every write, and the gofer itself then guarantees the host tree cannot change.
std::vector<p9fs::GoferMount> GoferMounts(const p9fs::OciSpec& spec,
                                          const p9fs::RuntimeConfig& config);

// What a restore needs to re-create each mount: file system name -> its mounts, in order.
struct MountArgs {
  std::string dev;
  vfs::MountFlags flags;
  std::string data;
  bool operator==(const MountArgs& o) const {
    return dev == o.dev && flags.read_only == o.flags.read_only &&
           flags.noatime == o.flags.noatime && data == o.data;
  }
};
using RestoreEnvironment = std::map<std::string, std::vector<MountArgs>>;
// EINVAL for direct file access (no save/restore of host access), or an fd mismatch.
p9::Result<RestoreEnvironment> CreateRestoreEnvironment(const p9fs::OciSpec& spec,
                                                        const p9fs::RuntimeConfig& config,
                                                        FdDispenser& fds, std::string* error);

}  // namespace sentry::boot

#endif  // SENTRY_BOOT_MOUNTS_H_
