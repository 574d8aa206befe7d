// sandbox: the untrusted side's process. Spawned by the launcher (runsc) with the sandbox
// ends of the gofer sockets, it builds the mount namespace from the spec (the sentry VFS
// over 9P, tmpfs, overlays), serves it to the kernel over FUSE at --mountpoint inside its
// own private mount namespace, and runs the workload there (see workload.h). It exits with
// the workload's exit code.
//
//   sandbox --spec-fd=N --config-fd=N --io-fds=A,B,... --mountpoint=DIR
//
// After start-up (reading the spec, mounting FUSE) it opens no host path: every file the
// workload sees comes from the gofer over the inherited sockets (or, with file_access=direct,
// from the host tree restricted to the spec's paths).
//
// Signals: SIGTERM and SIGHUP kill the workload's PID namespace (then the sandbox exits
// 128+9 with the init's status); SIGINT and SIGQUIT are left to the workload, which gets
// them from the terminal itself; the launcher decides about teardown.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "gflags/gflags.h"
#include "glog/logging.h"
#include "p9/socket_util.h"
#include "proto/oci_spec.pb.h"
#include "proto/runtime_config.pb.h"
#include "sentry/boot/executable.h"
#include "sentry/boot/mount_namespace.h"
#include "sentry/fuse/fuse_server.h"
#include "sentry/sandbox/workload.h"
#include "sentry/vfs/vfs.h"

DEFINE_int32(spec_fd, -1, "Inherited fd holding the OciSpec (binary protobuf)");
DEFINE_int32(config_fd, -1, "Inherited fd holding the RuntimeConfig (binary protobuf)");
DEFINE_string(io_fds, "", "Comma-separated sandbox ends of the gofer sockets, in mount order");
DEFINE_string(mountpoint, "", "Empty directory where the namespace is mounted over FUSE");
DEFINE_bool(fuse_trace, false, "libfuse's trace of every FUSE request, on stderr");
DEFINE_uint64(fuse_max_nodes, 0,
              "Kernel nodes kept before the least recently used are invalidated (each holds a "
              "gofer fid, i.e. a host fd in the gofer); 0: half the open-file limit, at most "
              "10000");
DEFINE_double(fuse_cache_timeout, 60.0,
              "Seconds the kernel may trust names and attributes of caching file systems");
DEFINE_bool(fuse_passthrough, true,
            "Let the kernel read and write host files itself (FUSE passthrough, Linux 6.9+) "
            "instead of sending their data through the sentry");
DEFINE_bool(fuse_uring, true,
            "Take FUSE requests through per-CPU io_uring queues where the kernel offers it "
            "(Linux 6.14+, fuse module parameter enable_uring=Y)");
DEFINE_bool(fuse_readdirplus, true,
            "Directory listings carry each subdirectory's entry (READDIRPLUS), so descending "
            "needs no LOOKUP");

namespace sentry::sandbox {
namespace {

// Half of what the gofer may open: the rest is for the listings sent ahead (a tenth,
// ListingPrefetch::HeldFor), the workload's open files and the gofer's own. Measured:
// find /usr with 10,000 nodes and 2,048 held listings stayed below a limit of 20,000.
uint64_t MaxNodesFor(uint64_t fd_limit) {
  return std::clamp<uint64_t>(fd_limit / 2, 64, 10000);
}

[[noreturn]] void Die(const std::string& msg, int code = kExitSetupFailed) {
  std::string line = "sandbox: " + msg + "\n";  // One write: stderr is the workload's too.
  (void)!write(2, line.data(), line.size());
  google::FlushLogFiles(google::GLOG_INFO);
  _exit(code);
}

template <typename Message>
Message ReadMessage(int fd, const char* flag) {
  if (fd < 0) Die(std::string("missing --") + flag);
  auto data = p9::ReadToEnd(fd);
  if (!data.has_value()) Die(std::string("reading --") + flag + ": " + data.error().name());
  close(fd);
  Message m;
  if (!m.ParseFromString(*data)) Die(std::string("--") + flag + ": not a valid message");
  return m;
}

int Main() {
  // Before any thread: a private mount namespace (unshare moves only the calling thread, and
  // threads started later inherit it), and the signals the main loop waits for.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit launcher_nofile;
  getrlimit(RLIMIT_NOFILE, &launcher_nofile);
  // A donated host fd per open file. The gofer, started with the same limits, raised its
  // own the same way: what it may open bounds the kernel nodes kept (each a fid there).
  const uint64_t fd_limit = p9::RaiseFdLimit();
  if (unshare(CLONE_NEWNS) != 0) Die(std::string("unshare(CLONE_NEWNS): ") + strerror(errno) + " (the sandbox needs root)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    Die(std::string("making mounts private: ") + strerror(errno));
  }

  auto spec = ReadMessage<p9fs::OciSpec>(FLAGS_spec_fd, "spec-fd");
  auto config = ReadMessage<p9fs::RuntimeConfig>(FLAGS_config_fd, "config-fd");
  if (FLAGS_mountpoint.empty()) Die("missing --mountpoint");
  std::string error;
  auto io_fds = p9::ParseSocketFds(FLAGS_io_fds, &error);
  if (!io_fds.has_value()) Die("--io-fds: " + error);

  auto boot = boot::CreateMountNamespace(spec, config, std::move(*io_fds), &error);
  if (!boot.has_value()) Die("building the mount namespace: " + error);
  for (const auto& w : boot->warnings) LOG(WARNING) << w;
  auto vfs = std::make_shared<vfs::Vfs>(boot->ns);

  auto exe = boot::ResolveExecutable(*boot->ns, spec.process(), &error);
  if (!exe.has_value()) Die(error, exe.error() == p9::Errno(ENOENT) ? kExitNotFound : kExitCannotExecute);
  std::string cwd = spec.process().cwd().empty() ? "/" : spec.process().cwd();
  if (auto st = vfs->Stat(vfs->root(), cwd); !st.has_value() || !S_ISDIR(st->mode)) {
    Die("working directory " + cwd + " is not a directory in the sandbox");
  }

  fuse::FuseOptions fo;
  fo.debug = FLAGS_fuse_trace;
  fo.cache_timeout = FLAGS_fuse_cache_timeout;
  fo.max_nodes = FLAGS_fuse_max_nodes != 0 ? FLAGS_fuse_max_nodes : MaxNodesFor(fd_limit);
  fo.passthrough = FLAGS_fuse_passthrough;
  fo.readdirplus = FLAGS_fuse_readdirplus;
  fo.uring = FLAGS_fuse_uring;
  fo.fsname = "sentry";
  auto server = fuse::FuseServer::Mount(vfs, FLAGS_mountpoint, fo, &error);
  if (!server.has_value()) Die(error);
  for (const std::string& p : KernelMountPoints()) (*server)->Pin(p);
  (*server)->Start();

  WorkloadSpec ws;
  ws.root = FLAGS_mountpoint;
  ws.executable = *exe;
  ws.argv.assign(spec.process().args().begin(), spec.process().args().end());
  ws.env.assign(spec.process().env().begin(), spec.process().env().end());
  ws.cwd = cwd;
  ws.uid = spec.process().user().uid();
  ws.gid = spec.process().user().gid();
  ws.additional_gids.assign(spec.process().user().additional_gids().begin(),
                            spec.process().user().additional_gids().end());
  ws.hostname = spec.hostname();
  ws.nofile = launcher_nofile;
  auto init = StartWorkload(ws, &error);
  if (!init.has_value()) Die(error);
  VLOG(1) << "sandbox: workload init is pid " << *init;

  int code = kExitSetupFailed;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&sigs, &info);
    if (sig < 0) continue;
    if (sig == SIGTERM || sig == SIGHUP) {
      VLOG(1) << "sandbox: signal " << sig << ", killing the workload";
      kill(*init, SIGKILL);
      continue;
    }
    if (sig != SIGCHLD) continue;  // SIGINT/SIGQUIT: the workload's (see above).
    int status = 0;
    pid_t r = waitpid(*init, &status, WNOHANG);
    if (r == *init) {
      code = WorkloadExitCode(status);
      break;
    }
  }
  VLOG(1) << "sandbox: workload exited with " << code;
  // Every write the workload made was written back when its files were closed (FUSE FLUSH);
  // unmount, close what the kernel left open, and go. Destroying the rest (nodes, inodes,
  // fids: one per directory and file seen) would take a find over /usr 0.2 s more, and
  // nothing in it is owed to anyone.
  bool stopped = (*server)->Stop(3000);
  if (stopped) (*server)->CloseFiles();
  google::FlushLogFiles(google::GLOG_INFO);
  _exit(code);
}

}  // namespace
}  // namespace sentry::sandbox

int main(int argc, char** argv) {
  gflags::SetUsageMessage("sandbox --spec-fd=N --config-fd=N --io-fds=A,... --mountpoint=DIR");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  return sentry::sandbox::Main();
}
