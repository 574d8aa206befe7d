// The small file systems the boot sequence mounts (as the seed documents do): proc, sysfs,
// devtmpfs, devpts, and the read-only mount-point tree of the submount overlay. Their
// contents are minimal but every entry lists, stats and reads without error.
#ifndef SENTRY_FS_SYNTH_SPECIAL_H_
#define SENTRY_FS_SYNTH_SPECIAL_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sentry/fs/synth/synth_fs.h"

namespace sentry::fs {

// /proc: self -> 1, 1/{mounts,cmdline,status}, mounts -> self/mounts, filesystems, cpuinfo,
// meminfo, uptime, version, sys/kernel/hostname. `mounts` renders the mount table.
std::shared_ptr<SynthFs> MakeProcFs(std::function<std::string()> mounts, std::string hostname);
// /sys: the top-level directories, empty.
std::shared_ptr<SynthFs> MakeSysFs();
// /dev: null, zero, full, random, urandom, tty, ptmx -> pts/ptmx, fd/stdin/stdout/stderr
// symlinks, and the pts and shm directories (mount points).
std::shared_ptr<SynthFs> MakeDevFs();
// /dev/pts: ptmx only.
std::shared_ptr<SynthFs> MakeDevptsFs();
// A read-only tree of directories containing every path in `paths` (the submount overlay's
// lower layer, so mount points exist over a read-only root).
std::shared_ptr<SynthFs> MakeMountPointTree(const std::vector<std::string>& paths);

}  // namespace sentry::fs

#endif  // SENTRY_FS_SYNTH_SPECIAL_H_
