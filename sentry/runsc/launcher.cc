#include "sentry/runsc/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>

#include "glog/logging.h"
#include "proto/gofer_config.pb.h"
#include "sentry/boot/mounts.h"

namespace sentry::runsc {
namespace {

using Clock = std::chrono::steady_clock;

// Owns fds of this process until the end of Launch (children have their own copies).
struct Fds {
  std::vector<int> fds;
  int Add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  ~Fds() {
    for (int fd : fds) close(fd);
  }
};

// A memfd (close-on-exec) holding `data`, read by a child from offset 0.
int MemFd(const char* name, const std::string& data) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return -1;
    }
    off += static_cast<size_t>(n);
  }
  lseek(fd, 0, SEEK_SET);  // Children share this offset and read from the start.
  return fd;
}

std::string Join(const std::vector<int>& fds) {
  std::string s;
  for (int fd : fds) s += (s.empty() ? "" : ",") + std::to_string(fd);
  return s;
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* n = sigabbrev_np(WTERMSIG(status));
    return std::string("was killed by SIG") + (n ? n : "?");
  }
  return "stopped";
}

// fork + exec of `path` with `args`; `keep` are the fds the child inherits (close-on-exec
// cleared). The child dies with the launcher.
pid_t Spawn(const std::string& path, const std::vector<std::string>& args,
            const std::vector<int>& keep, bool own_session, bool quiet_stdio) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: the launcher is single-threaded, so anything goes, but keep it simple.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(kExitRuntimeError);  // The launcher is already gone.
  if (own_session) setsid();
  if (quiet_stdio) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      if (null > 2) close(null);
    }
  }
  for (int fd : keep) fcntl(fd, F_SETFD, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(path.c_str(), argv.data());
  Error("cannot execute " + path + ": " + strerror(errno));
  _exit(kExitRuntimeError);
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64 || id == "." || id == "..") return false;
  for (char c : id) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

void Error(const std::string& msg) {
  // One write: the workload shares stderr, and its lines must not split ours.
  std::string line = "runsc: " + msg + "\n";
  (void)!write(2, line.data(), line.size());
}

std::string FindBinary(const std::string& rel) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string exe(buf, static_cast<size_t>(n));
  auto exists = [](const std::string& p) { return access(p.c_str(), X_OK) == 0; };
  std::string dir = exe.substr(0, exe.rfind('/'));
  std::string base = rel.substr(rel.rfind('/') + 1);
  for (const std::string& c : {exe + ".runfiles/p9fs/" + rel, dir + "/" + base}) {
    if (exists(c)) return c;
  }
  for (std::string d = dir; !d.empty(); d = d.substr(0, d.rfind('/'))) {
    if (exists(d + "/" + rel)) return d + "/" + rel;
  }
  return "";
}

int Launch(const p9fs::OciSpec& spec, const p9fs::RuntimeConfig& config,
           const LaunchOptions& o) {
  if (!ValidId(o.id)) {
    Error("invalid container id '" + o.id + "': use letters, digits, '_', '.', '-'");
    return kExitRuntimeError;
  }
  for (const auto& [what, path] : {std::pair{"gofer", o.gofer_path}, std::pair{"sandbox", o.sandbox_path}}) {
    if (path.empty() || access(path.c_str(), X_OK) != 0) {
      Error(std::string("cannot find the ") + what + " binary" + (path.empty() ? "" : " at " + path) +
            " (build it, or pass --" + what + "=PATH)");
      return kExitRuntimeError;
    }
  }
  Fds owned;
  p9fs::GoferConfig gc;
  for (const auto& m : boot::GoferMounts(spec, config)) *gc.add_mounts() = m;
  std::vector<int> gofer_ends, sandbox_ends;
  for (int i = 0; i < gc.mounts_size(); ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      Error(std::string("socketpair: ") + strerror(errno));
      return kExitRuntimeError;
    }
    gofer_ends.push_back(owned.Add(sv[0]));
    sandbox_ends.push_back(owned.Add(sv[1]));
  }
  int gofer_cfg = owned.Add(MemFd("gofer-config", gc.SerializeAsString()));
  int spec_fd = owned.Add(MemFd("spec", spec.SerializeAsString()));
  int config_fd = owned.Add(MemFd("runtime-config", config.SerializeAsString()));
  if (gofer_cfg < 0 || spec_fd < 0 || config_fd < 0) {
    Error(std::string("memfd: ") + strerror(errno));
    return kExitRuntimeError;
  }
  std::string tmpl = "/tmp/runsc." + o.id + ".XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    Error("cannot create a mount point under /tmp: " + std::string(strerror(errno)));
    return kExitRuntimeError;
  }
  const std::string mountpoint = tmpl;

  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&sigs, s);
  sigset_t old;
  sigprocmask(SIG_BLOCK, &sigs, &old);

  pid_t gofer = -1;
  if (!gofer_ends.empty()) {
    std::vector<std::string> args = {"--config-fd=" + std::to_string(gofer_cfg),
                                     "--io-fds=" + Join(gofer_ends)};
    args.insert(args.end(), o.child_flags.begin(), o.child_flags.end());
    std::vector<int> keep = gofer_ends;
    keep.push_back(gofer_cfg);
    gofer = Spawn(o.gofer_path, args, keep, /*own_session=*/true, /*quiet_stdio=*/true);
  }
  std::vector<std::string> args = {"--spec-fd=" + std::to_string(spec_fd),
                                   "--config-fd=" + std::to_string(config_fd),
                                   "--io-fds=" + Join(sandbox_ends), "--mountpoint=" + mountpoint};
  args.insert(args.end(), o.child_flags.begin(), o.child_flags.end());
  std::vector<int> keep = sandbox_ends;
  keep.push_back(spec_fd);
  keep.push_back(config_fd);
  pid_t sandbox = Spawn(o.sandbox_path, args, keep, /*own_session=*/false, /*quiet_stdio=*/false);
  // Only the children hold the socket ends now: a dead peer is seen as a closed socket.
  for (int fd : owned.fds) close(fd);
  owned.fds.clear();
  VLOG(1) << "runsc: gofer pid " << gofer << ", sandbox pid " << sandbox << ", mount point "
          << mountpoint;

  std::optional<int> sandbox_status, gofer_status;
  bool gofer_failed = false;
  int exit_signal = 0;
  std::optional<Clock::time_point> term_at, kill_at;
  // Exit 0 is the gofer seeing every connection closed: the sandbox is on its way out. Any
  // other end before we kill it ourselves is a gofer failure, whenever we notice it: the
  // kernel closes a dying gofer's sockets before its parent can reap it, so the sandbox may
  // see EIO and exit first.
  auto GoferFailed = [&](int st) {
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    return !clean && exit_signal == 0 && !gofer_failed;
  };
  auto reap = [&] {
    int st;
    // The gofer first: when it dies, the sandbox's file access fails and the sandbox may be
    // gone by the time we look; both found dead at once still means the gofer failed first.
    if (gofer > 0 && !gofer_status && waitpid(gofer, &st, WNOHANG) == gofer) {
      gofer_status = st;
      if (GoferFailed(st)) {
        gofer_failed = true;
        Error("the gofer " + DescribeStatus(st) +
              " while the sandbox was running: file access now fails with EIO");
        if (!term_at) term_at = Clock::now() + std::chrono::milliseconds(o.gofer_grace_ms);
      }
    }
    if (!sandbox_status && waitpid(sandbox, &st, WNOHANG) == sandbox) sandbox_status = st;
  };
  while (!sandbox_status) {
    timespec tick{0, 100 * 1000 * 1000};
    siginfo_t info;
    int sig = sigtimedwait(&sigs, &info, &tick);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
      if (exit_signal == 0) {
        exit_signal = sig;
        VLOG(1) << "runsc: signal " << sig << ", tearing down";
        term_at = Clock::now();
      }
    }
    reap();
    if (sandbox_status) break;
    auto now = Clock::now();
    if (term_at && now >= *term_at) {
      kill(sandbox, SIGTERM);
      term_at.reset();
      kill_at = now + std::chrono::milliseconds(o.kill_grace_ms);
    }
    if (kill_at && now >= *kill_at) {
      kill(sandbox, SIGKILL);
      kill_at.reset();
    }
  }
  // The sandbox is gone, its sockets closed: the gofer exits on its own; make sure.
  if (gofer > 0 && !gofer_status) {
    auto deadline = Clock::now() + std::chrono::milliseconds(o.kill_grace_ms);
    int st;
    while (Clock::now() < deadline) {
      if (waitpid(gofer, &st, WNOHANG) == gofer) {
        gofer_status = st;
        if (GoferFailed(st)) {
          gofer_failed = true;
          Error("the gofer " + DescribeStatus(st) + ": file access failed with EIO");
        }
        break;
      }
      usleep(10 * 1000);
    }
    if (!gofer_status) {
      kill(gofer, SIGKILL);
      if (waitpid(gofer, &st, 0) == gofer) gofer_status = st;
    }
  }
  if (rmdir(mountpoint.c_str()) != 0) LOG(WARNING) << "cannot remove " << mountpoint << ": " << strerror(errno);
  sigprocmask(SIG_SETMASK, &old, nullptr);

  if (exit_signal != 0) return 128 + exit_signal;
  if (gofer_failed) return kExitRuntimeError;
  int st = *sandbox_status;
  if (WIFSIGNALED(st)) {
    Error("the sandbox " + DescribeStatus(st));
    return 128 + WTERMSIG(st);
  }
  return WEXITSTATUS(st);
}

}  // namespace sentry::runsc
