// Starting the workload on the sandbox's FUSE view.
//
// StartWorkload starts an init process in new PID, mount, UTS and IPC namespaces. The init
// mounts the kernel's own /proc (of the new PID namespace), a read-only /sys and a small
// /dev (tmpfs with null, zero, full, random, urandom, tty, a private devpts, shm) over the
// view, pivots into the view and detaches the host's tree entirely, drops dangerous
// capabilities from the bounding set (module loading, raw I/O, mknod of devices, mount...),
// closes every inherited fd but 0, 1 and 2 (the gofer sockets and /dev/fuse stay with the
// sandbox), then forks the workload: user and groups from the spec, the spec's cwd, env
// and argv, exec of the already resolved executable. The init forwards SIGTERM, SIGINT,
// SIGHUP and SIGQUIT to the workload, reaps orphans, and exits with the workload's status.
//
// The fork happens while other threads run (the FUSE workers), so everything the children
// use is prepared beforehand and they only make system calls: no allocation, no locks. The
// PID namespace is unshared by the calling thread just before (its next child is the init)
// and restored right after (setns), so later children are born outside it;
// the init unshares the others itself.
//
// Exit codes besides the workload's own: 125 the sandbox could not set the workload up,
// 126 the executable could not be run, 127 it was not found; 128+N killed by signal N.
#ifndef SENTRY_SANDBOX_WORKLOAD_H_
#define SENTRY_SANDBOX_WORKLOAD_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "p9/result.h"

namespace sentry::sandbox {

inline constexpr int kExitSetupFailed = 125;
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

struct WorkloadSpec {
  std::string root;        // The FUSE mount of the sandbox's namespace (host path).
  std::string executable;  // Path inside the namespace (argv[0] resolved through PATH).
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string hostname;
  // The open-file limit the workload gets (the sandbox raises its own): the launcher's.
  struct rlimit nofile = {1024, 4096};
};

// Where the init mounts the kernel's own file systems over the view (the FUSE server must
// never invalidate these entries: see FuseServer::Pin).
inline const std::vector<std::string>& KernelMountPoints() {
  static const std::vector<std::string> points = {"/proc", "/sys", "/dev"};
  return points;
}

// Returns the init's pid (in the caller's PID namespace). The caller reaps it; its exit
// status is the workload's (see WorkloadExitCode).
p9::Result<pid_t> StartWorkload(const WorkloadSpec& spec, std::string* error);

// The exit code a wait status stands for: the code, or 128+signal.
int WorkloadExitCode(int wait_status);

}  // namespace sentry::sandbox

#endif  // SENTRY_SANDBOX_WORKLOAD_H_
