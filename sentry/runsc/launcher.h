// The launcher: runs one sandbox as two processes, as runsc does.
//
// It creates one socketpair per 9P mount (GoferMounts: the root and each bind mount), spawns
// the gofer with the host ends and its GoferConfig, and the sandbox with the other ends, the
// spec and the runtime config (all as binary protobuf on inherited memfds), then waits.
//
//  - The workload's exit code is the launcher's (128+N if it was killed by signal N).
//  - The gofer dying while the sandbox runs: a message, the workload gets EIO on file access
//    and `gofer_grace_ms` to finish, then the sandbox is torn down; exit 125.
//  - SIGINT, SIGTERM, SIGHUP to the launcher: the sandbox is torn down (SIGTERM, then
//    SIGKILL after a moment), then the gofer; exit 128+signal.
//  - Both children die with the launcher (PR_SET_PDEATHSIG), the workload with the sandbox;
//    every mount lives in the sandbox's private mount namespaces, so nothing is left behind
//    but the empty mount point directory, which the launcher removes.
//
// The gofer runs in its own session so terminal signals never reach it; the sandbox and the
// workload stay in the launcher's process group, so the workload owns the terminal.
#ifndef SENTRY_RUNSC_LAUNCHER_H_
#define SENTRY_RUNSC_LAUNCHER_H_

#include <string>
#include <vector>

#include "proto/oci_spec.pb.h"
#include "proto/runtime_config.pb.h"

namespace sentry::runsc {

inline constexpr int kExitRuntimeError = 125;

struct LaunchOptions {
  std::string id;            // Names the mount point; [A-Za-z0-9_.-]+.
  std::string gofer_path;    // Binaries to spawn.
  std::string sandbox_path;
  std::vector<std::string> child_flags;  // Passed to both (logging, --debug).
  int gofer_grace_ms = 5000;
  int kill_grace_ms = 3000;
};

// Runs the sandbox to completion and returns the exit code (see above). Errors before
// anything runs are one line on stderr and kExitRuntimeError.
int Launch(const p9fs::OciSpec& spec, const p9fs::RuntimeConfig& config,
           const LaunchOptions& options);

// Prints "runsc: <msg>" as one line on stderr, in one write.
void Error(const std::string& msg);

// The binary `rel` ("gofer/gofer") next to this one: in its Bazel runfiles, beside it, or
// in a bazel-bin tree above it. "" if none.
std::string FindBinary(const std::string& rel);

}  // namespace sentry::runsc

#endif  // SENTRY_RUNSC_LAUNCHER_H_
