#include "gofer/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace gofer {

p9::Result<void> EnterEmptyRoot(std::string* error) {
  auto fail = [&](const std::string& what) -> p9::Result<void> {
    int e = errno;
    if (error) *error = "jail: " + what + ": " + strerror(e);
    return p9::Errno(e);
  };
  if (unshare(CLONE_NEWNS) != 0) return fail("unshare(CLONE_NEWNS)");
  // Nothing we do below may propagate back to the host's mounts.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return fail("make / private");
  // The new root: a small tmpfs over a directory every system has, in our namespace only.
  const char* root = "/tmp";
  if (mount("gofer-root", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0555") != 0) {
    return fail("tmpfs root");
  }
  if (mkdir("/tmp/proc", 0555) != 0 || mkdir("/tmp/old", 0700) != 0) return fail("mkdir");
  if (mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return fail("mount /proc");
  }
  if (syscall(SYS_pivot_root, root, "/tmp/old") != 0) return fail("pivot_root");
  if (chdir("/") != 0) return fail("chdir /");
  if (umount2("/old", MNT_DETACH) != 0) return fail("detach the host tree");
  if (rmdir("/old") != 0) return fail("rmdir /old");
  // Read-only from now on: nothing is ever created here.
  if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            nullptr) != 0) {
    return fail("remount / read-only");
  }
  return DropCapabilities(error);
}

p9::Result<void> DropCapabilities(std::string* error) {
  // What serving files as any owner needs; everything else goes, from the bounding set too.
  constexpr int kKeep[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
                           CAP_FSETID, CAP_MKNOD};
  auto kept = [&](int cap) {
    for (int k : kKeep) {
      if (k == cap) return true;
    }
    return false;
  };
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (kept(cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      int e = errno;
      if (error) *error = "jail: drop capability " + std::to_string(cap) + ": " + strerror(e);
      return p9::Errno(e);
    }
  }
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) {
    int e = errno;
    if (error) *error = std::string("jail: capget: ") + strerror(e);
    return p9::Errno(e);
  }
  uint64_t keep = 0;
  for (int k : kKeep) keep |= uint64_t{1} << k;
  uint64_t permitted = (uint64_t{data[1].permitted} << 32 | data[0].permitted) & keep;
  for (int i = 0; i < 2; ++i) {
    data[i].permitted = static_cast<uint32_t>(permitted >> (32 * i));
    data[i].effective = data[i].permitted;
    data[i].inheritable = 0;
  }
  if (syscall(SYS_capset, &hdr, data) != 0) {
    int e = errno;
    if (error) *error = std::string("jail: capset: ") + strerror(e);
    return p9::Errno(e);
  }
  return p9::Ok();
}

}  // namespace gofer
