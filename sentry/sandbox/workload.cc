#include "sentry/sandbox/workload.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>

#include "glog/logging.h"

namespace sentry::sandbox {
namespace {

// Capabilities the workload may keep (Docker's default set without CAP_MKNOD): enough for
// root-owned package scripts and servers, none that reach past the namespaces (no mount,
// module loading, raw I/O, ptrace, open_by_handle_at, device nodes).
constexpr int kKeptCaps[] = {CAP_CHOWN,      CAP_DAC_OVERRIDE,     CAP_FOWNER,
                             CAP_FSETID,     CAP_KILL,             CAP_SETGID,
                             CAP_SETUID,     CAP_SETPCAP,          CAP_NET_BIND_SERVICE,
                             CAP_SYS_CHROOT, CAP_AUDIT_WRITE,      CAP_SETFCAP};

// Everything the children use, built before the clone.
struct Prepared {
  const WorkloadSpec* spec;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<gid_t> groups;
  mode_t umask_value;
};

// Async-signal-safe error exit for the children.
void WriteAll(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

[[noreturn]] void Fail(const char* what, const char* arg, int err, int code) {
  WriteAll("sandbox: ");
  WriteAll(what);
  if (arg != nullptr) {
    WriteAll(" ");
    WriteAll(arg);
  }
  WriteAll(": ");
  const char* name = strerrorname_np(err);
  WriteAll(name ? name : "error");
  WriteAll(" (");
  WriteAll(strerrordesc_np(err) ? strerrordesc_np(err) : "?");
  WriteAll(")\n");
  _exit(code);
}

void Check(int rc, const char* what, const char* arg = nullptr) {
  if (rc != 0) Fail(what, arg, errno, kExitSetupFailed);
}

// The kernel file systems the workload sees over the view (at KernelMountPoints()).
void MountKernelFileSystems() {
  Check(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr), "mount",
        "/proc");
  Check(mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr),
        "mount", "/sys");
  Check(mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        "mount", "/dev");
  struct Dev {
    const char* path;
    unsigned major, minor;
  };
  const Dev devs[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
                      {"/dev/random", 1, 8},  {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
  for (const Dev& d : devs) {
    Check(mknod(d.path, S_IFCHR | 0666, makedev(d.major, d.minor)), "mknod", d.path);
  }
  Check(mkdir("/dev/pts", 0755), "mkdir", "/dev/pts");
  Check(mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620"),
        "mount", "/dev/pts");
  Check(symlink("pts/ptmx", "/dev/ptmx"), "symlink", "/dev/ptmx");
  Check(mkdir("/dev/shm", 01777), "mkdir", "/dev/shm");
  Check(mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "mount",
        "/dev/shm");
  Check(symlink("/proc/self/fd", "/dev/fd"), "symlink", "/dev/fd");
  Check(symlink("/proc/self/fd/0", "/dev/stdin"), "symlink", "/dev/stdin");
  Check(symlink("/proc/self/fd/1", "/dev/stdout"), "symlink", "/dev/stdout");
  Check(symlink("/proc/self/fd/2", "/dev/stderr"), "symlink", "/dev/stderr");
}

void DropBoundingCaps() {
  for (int cap = 0; cap <= 63; ++cap) {
    bool keep = false;
    for (int k : kKeptCaps) keep |= k == cap;
    if (keep) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // Past the kernel's last capability.
      Fail("dropping capability", nullptr, errno, kExitSetupFailed);
    }
  }
}

[[noreturn]] void ExecWorkload(const Prepared& p) {
  const WorkloadSpec& s = *p.spec;
  setrlimit(RLIMIT_NOFILE, &s.nofile);
  // Raw system calls: glibc's set*id wrappers signal every thread it believes exists (the
  // sandbox's, copied into this child's memory) and would wait for them forever.
  if (syscall(SYS_setgroups, p.groups.size(), p.groups.data()) != 0) Fail("setgroups", nullptr, errno, kExitSetupFailed);
  if (syscall(SYS_setresgid, s.gid, s.gid, s.gid) != 0) Fail("setgid", nullptr, errno, kExitSetupFailed);
  if (syscall(SYS_setresuid, s.uid, s.uid, s.uid) != 0) Fail("setuid", nullptr, errno, kExitSetupFailed);
  if (chdir(s.cwd.c_str()) != 0) Fail("cannot enter the working directory", s.cwd.c_str(), errno, kExitSetupFailed);
  umask(p.umask_value);
  execve(s.executable.c_str(), p.argv.data(), p.envp.data());
  int err = errno;
  Fail("cannot execute", s.executable.c_str(), err,
       err == ENOENT ? kExitNotFound : kExitCannotExecute);
}

volatile pid_t g_workload = 0;

void Forward(int sig) {
  if (g_workload > 0) kill(g_workload, sig);
}

[[noreturn]] void RunInit(const Prepared& p) {
  const WorkloadSpec& s = *p.spec;
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // The sandbox gone: the whole PID namespace goes.
  // Single-threaded now: the other namespaces can be entered here.
  Check(unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC), "unshare");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Only stdio crosses into the workload: the gofer sockets and /dev/fuse stay outside.
  syscall(SYS_close_range, 3u, UINT_MAX, 0u);
  if (!s.hostname.empty()) Check(sethostname(s.hostname.data(), s.hostname.size()), "sethostname");

  // Into the view; the host's tree is detached, not just hidden.
  Check(chdir(s.root.c_str()), "chdir", s.root.c_str());
  Check(static_cast<int>(syscall(SYS_pivot_root, ".", ".")), "pivot_root", s.root.c_str());
  Check(umount2(".", MNT_DETACH), "detaching the host root");
  Check(chdir("/"), "chdir", "/");
  umask(0);
  MountKernelFileSystems();
  DropBoundingCaps();

  struct sigaction sa {};
  sa.sa_handler = Forward;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaction(sig, &sa, nullptr);

  pid_t pid = fork();  // The init is single-threaded: a plain fork.
  if (pid < 0) Fail("starting the workload", nullptr, errno, kExitSetupFailed);
  if (pid == 0) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaction(sig, &dfl, nullptr);
    ExecWorkload(p);
  }
  g_workload = static_cast<pid_t>(pid);
  for (;;) {
    int status = 0;
    pid_t r = wait4(-1, &status, 0, nullptr);
    if (r == g_workload) _exit(WorkloadExitCode(status));
    if (r < 0 && errno != EINTR) Fail("waiting for the workload", nullptr, errno, kExitSetupFailed);
  }
}

}  // namespace

int WorkloadExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kExitSetupFailed;
}

p9::Result<pid_t> StartWorkload(const WorkloadSpec& spec, std::string* error) {
  if (spec.argv.empty() || spec.executable.empty()) {
    if (error) *error = "no command to run";
    return p9::Errno(EINVAL);
  }
  Prepared p;
  p.spec = &spec;
  for (const auto& a : spec.argv) p.argv.push_back(const_cast<char*>(a.c_str()));
  p.argv.push_back(nullptr);
  for (const auto& e : spec.env) p.envp.push_back(const_cast<char*>(e.c_str()));
  p.envp.push_back(nullptr);
  p.groups.assign(spec.additional_gids.begin(), spec.additional_gids.end());
  p.umask_value = umask(022);
  umask(p.umask_value);

  // The next child of this thread starts a new PID namespace as its init. glibc's fork (not a
  // raw clone) keeps allocator and sanitizer locks consistent in the child, though other
  // threads run; the child still sticks to system calls.
  // Afterwards this thread goes back to its own PID namespace for children (setns), so later
  // children (LeakSanitizer's tracer, for one) are not born into the workload's.
  int own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (own_pidns < 0 || unshare(CLONE_NEWPID) != 0) {
    int err = errno;
    if (own_pidns >= 0) close(own_pidns);
    if (error) *error = std::string("cannot create the workload's PID namespace: ") + strerror(err);
    return p9::Errno(err);
  }
  pid_t pid = fork();
  if (pid != 0) {
    int fork_err = errno;
    if (setns(own_pidns, CLONE_NEWPID) != 0) PLOG(ERROR) << "sandbox: restoring the PID namespace";
    close(own_pidns);
    if (pid < 0) {
      if (error) *error = std::string("cannot start the workload's init: ") + strerror(fork_err);
      return p9::Errno(fork_err);
    }
  }
  if (pid == 0) RunInit(p);
  return static_cast<pid_t>(pid);
}

}  // namespace sentry::sandbox
