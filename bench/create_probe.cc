// create_probe DIR N: the system calls `tar x` makes per file, timed one by one. Creates
// DIR/d and in it N files, each: openat(O_CREAT|O_EXCL), a 13-byte write, futimens, fchown
// (to the caller), fchmod, close, then fstatat of the name. Prints µs per file for each call
// and for the whole loop. It runs inside the sandbox from a bind mount (the host's libraries
// are the sandbox's too) as it runs natively (docs/BENCHMARKS.md, session 22).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {
double Now() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: create_probe DIR N\n");
    return 2;
  }
  const std::string dir = std::string(argv[1]) + "/d";
  const int n = std::atoi(argv[2]);
  if (mkdir(dir.c_str(), 0755) != 0) {
    std::perror(dir.c_str());
    return 1;
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    std::perror(dir.c_str());
    return 1;
  }
  const char* names[] = {"openat", "write", "futimens", "fchown", "fchmod", "close", "fstatat"};
  double acc[7] = {};
  const timespec times[2] = {{1000, 0}, {1000, 0}};
  const double start = Now();
  for (int i = 0; i < n; ++i) {
    const std::string name = "f" + std::to_string(i);
    double t[8];
    t[0] = Now();
    int fd = openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    t[1] = Now();
    if (fd < 0) {
      std::perror(name.c_str());
      return 1;
    }
    bool ok = write(fd, "file 1/1 abc\n", 13) == 13;
    t[2] = Now();
    ok &= futimens(fd, times) == 0;
    t[3] = Now();
    ok &= fchown(fd, getuid(), getgid()) == 0;
    t[4] = Now();
    ok &= fchmod(fd, 0644) == 0;
    t[5] = Now();
    ok &= close(fd) == 0;
    t[6] = Now();
    struct stat st;
    ok &= fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    t[7] = Now();
    if (!ok) {
      std::perror(name.c_str());
      return 1;
    }
    for (int k = 0; k < 7; ++k) acc[k] += t[k + 1] - t[k];
  }
  const double total = Now() - start;
  for (int k = 0; k < 7; ++k) std::printf("%-9s %8.2f us/file\n", names[k], acc[k] / n);
  std::printf("%-9s %8.2f us/file\n", "all", total / n);
  return 0;
}
