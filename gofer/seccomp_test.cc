// The filter in a forked child: what the gofer does keeps working, what it must never do
// (new sockets, exec, ptrace, mount, setuid) is refused with EPERM, on every thread.
#include "gofer/seccomp.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace gofer {
namespace {

// Runs `body` in a child after installing the filter; returns its exit code.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kFiltered = false;  // Sanitizer builds install no filter (seccomp.cc).
#else
constexpr bool kFiltered = true;
#endif

template <typename F>
int InChild(F body) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string err;
    if (!InstallSeccompFilter(&err).has_value()) _exit(100);
    _exit(body());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

TEST(SeccompTest, FileWorkIsAllowed) {
  EXPECT_EQ(InChild([] {
              int d = open("/tmp", O_PATH | O_DIRECTORY);
              if (d < 0) return 1;
              int f = openat(d, "seccomp_test_probe", O_CREAT | O_RDWR | O_TRUNC, 0600);
              if (f < 0) return 2;
              char c;
              if (write(f, "x", 1) != 1 || pread(f, &c, 1, 0) != 1) return 3;
              if (unlinkat(d, "seccomp_test_probe", 0) != 0) return 4;
              std::thread t([] {});  // Threads start.
              t.join();
              return 0;
            }),
            0);
}

// The server's spliced Rread (p9/splice_pipes.h): a pipe of its own, file -> pipe -> a
// socket it was given, with SIGPIPE held pending around it.
TEST(SeccompTest, SplicedReadsAreAllowed) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_EQ(InChild([&] {
              int d = open("/tmp", O_PATH | O_DIRECTORY);
              int f = openat(d, "seccomp_test_splice", O_CREAT | O_RDWR | O_TRUNC, 0600);
              if (f < 0 || write(f, "spliced", 7) != 7) return 1;
              unlinkat(d, "seccomp_test_splice", 0);
              int p[2];
              if (pipe2(p, O_CLOEXEC) != 0) return 2;
              loff_t off = 0;
              if (splice(f, &off, p[1], nullptr, 7, SPLICE_F_NONBLOCK) != 7) return 3;
              sigset_t set;
              if (sigpending(&set) != 0) return 4;
              if (splice(p[0], nullptr, sv[0], nullptr, 7, 0) != 7) return 5;
              char got[8] = {};
              if (read(sv[1], got, 7) != 7 || std::string(got) != "spliced") return 6;
              return 0;
            }),
            0);
  close(sv[0]);
  close(sv[1]);
}

TEST(SeccompTest, DangerousCallsAreRefusedWithEperm) {
  if (!kFiltered) GTEST_SKIP() << "sanitizer build: no filter";
  EXPECT_EQ(InChild([] {
              if (socket(AF_INET, SOCK_STREAM, 0) >= 0 || errno != EPERM) return 1;
              if (socket(AF_UNIX, SOCK_STREAM, 0) >= 0 || errno != EPERM) return 2;
              char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
              if (execv("/bin/true", argv) == 0 || errno != EPERM) return 3;
              if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0 || errno != EPERM) return 4;
              if (mount("none", "/mnt", "tmpfs", 0, nullptr) == 0 || errno != EPERM) return 5;
              if (setuid(0) == 0 || errno != EPERM) return 6;
              // On another thread too (the filter is synchronized to all threads).
              int rc = 0;
              std::thread t([&] {
                if (socket(AF_INET6, SOCK_DGRAM, 0) >= 0 || errno != EPERM) rc = 7;
              });
              t.join();
              return rc;
            }),
            0);
}

}  // namespace
}  // namespace gofer
