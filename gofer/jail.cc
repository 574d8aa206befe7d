#include "gofer/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
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
  return p9::Ok();
}

}  // namespace gofer
