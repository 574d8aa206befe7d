#include "gofer/seccomp.h"

#include <errno.h>
#include <seccomp.h>

#include <memory>

namespace gofer {
namespace {

// What the gofer does after start-up. Names unknown to this kernel's table are skipped.
constexpr const char* kAllowed[] = {
    // Files and directories, always relative to descriptors it holds (or /proc/self/fd).
    "openat", "close", "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv",
    "pwritev", "lseek", "fstat", "newfstatat", "statx", "fstatfs", "statfs", "getdents64",
    "fsync", "fdatasync", "ftruncate", "fallocate", "fchmod", "fchmodat", "chmod", "fchown",
    "fchownat", "utimensat", "mkdirat", "mknodat", "symlinkat", "linkat", "renameat",
    "renameat2", "unlinkat", "readlinkat", "getxattr", "lgetxattr", "fgetxattr", "setxattr",
    "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
    "lremovexattr", "fremovexattr", "fcntl", "dup", "dup3", "ioctl", "flock", "umask",
    // Its connections: messages and fd passing on sockets it already has; accepting on a
    // listener it already has (--listen). No socket(), connect() or bind().
    "recvmsg", "sendmsg", "recvfrom", "sendto", "shutdown", "accept4", "getsockopt",
    "setsockopt", "getsockname", "getpeername",
    // Rread data moved by page references (p9/splice_pipes.h): its own pipes, splice between
    // them and files or sockets it holds, and SIGPIPE kept pending around it.
    "pipe2", "splice", "rt_sigpending",
    // Waiting: blocking reads, poll (listener, a full socket), condition variables, the
    // yield of a polling reader, sleeps.
    "poll", "ppoll", "futex", "sched_yield", "nanosleep", "clock_nanosleep",
    // Memory and threads.
    "mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "clone", "clone3",
    "set_robust_list", "rseq", "exit", "exit_group", "rt_sigreturn", "rt_sigprocmask",
    "rt_sigaction", "sigaltstack", "tgkill", "gettid", "getpid", "getuid", "geteuid",
    "getgid", "getegid", "clock_gettime", "gettimeofday", "getrandom", "prlimit64",
    "sched_getaffinity", "restart_syscall", "rt_sigtimedwait",
    // --listen: removing its own socket file at exit.
    "unlink",
};

// By number: calls newer than this libseccomp's table (2.5.4 knows names up to Linux 6.0).
constexpr struct {
  const char* name;
  int nr;
} kAllowedByNumber[] = {
    {"fchmodat2", 452},  // Linux 6.6; host_file.cc's chmod of an O_PATH fd.
};

}  // namespace

p9::Result<void> InstallSeccompFilter(std::string* error) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer runtimes need calls a server does not (LeakSanitizer ptraces the process
  // at exit): sanitizer builds run unfiltered.
  (void)error;
  return p9::Ok();
#endif
  auto fail = [&](const char* what, int rc) -> p9::Result<void> {
    if (error) *error = std::string("seccomp: ") + what + ": " + strerror(-rc);
    return p9::Errno(-rc);
  };
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)),
                                                        seccomp_release);
  if (!ctx) return fail("init", -ENOMEM);
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1);
  if (rc != 0) return fail("tsync", rc);
  for (const char* name : kAllowed) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0);
    if (rc != 0) return fail(name, rc);
  }
  for (const auto& [name, nr] : kAllowedByNumber) {
    rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0);
    if (rc != 0) return fail(name, rc);
  }
  rc = seccomp_load(ctx.get());
  if (rc != 0) return fail("load", rc);
  return p9::Ok();
}

}  // namespace gofer
