#include "sentry/fs/synth/special.h"

#include <sys/random.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>

namespace sentry::fs {

using p9::Errno;
using p9::Result;

std::shared_ptr<SynthFs> MakeProcFs(std::function<std::string()> mounts, std::string hostname) {
  auto root = std::make_shared<SynthNode>();
  root->Link("self", "1");
  root->Link("mounts", "self/mounts");
  auto one = root->Dir("1");
  one->File("mounts", mounts);
  one->File("cmdline", [] { return std::string(); });
  one->File("status", [] { return std::string("Name:\tinit\nPid:\t1\nPPid:\t0\n"); });
  root->File("filesystems", [] {
    return std::string("nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevtmpfs\n"
                       "nodev\tdevpts\nnodev\t9p\nnodev\toverlay\n");
  });
  root->File("cpuinfo", [] {
    std::string out;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < n; ++i) out += "processor\t: " + std::to_string(i) + "\n\n";
    return out;
  });
  root->File("meminfo", [] {
    struct sysinfo si {};
    sysinfo(&si);
    uint64_t unit = si.mem_unit ? si.mem_unit : 1;
    return "MemTotal:       " + std::to_string(si.totalram * unit / 1024) + " kB\n" +
           "MemFree:        " + std::to_string(si.freeram * unit / 1024) + " kB\n";
  });
  root->File("uptime", [] {
    struct sysinfo si {};
    sysinfo(&si);
    return std::to_string(si.uptime) + ".00 0.00\n";
  });
  root->File("version", [] {
    struct utsname u {};
    uname(&u);
    return std::string("Linux version ") + u.release + " (p9fs sentry)\n";
  });
  root->MkdirAll("sys/kernel")->File("hostname", [hostname] { return hostname + "\n"; });
  return std::make_shared<SynthFs>("proc", root);
}

std::shared_ptr<SynthFs> MakeSysFs() {
  auto root = std::make_shared<SynthNode>();
  for (const char* d : {"block", "bus", "class", "dev", "devices", "firmware", "fs", "kernel",
                        "module", "power"}) {
    root->Dir(d);
  }
  return std::make_shared<SynthFs>("sysfs", root);
}

namespace {

Result<size_t> ReadZeros(std::span<char> dst) {
  std::memset(dst.data(), 0, dst.size());
  return dst.size();
}
Result<size_t> ReadEof(std::span<char>) { return size_t{0}; }
Result<size_t> ReadRandom(std::span<char> dst) {
  size_t done = 0;
  while (done < dst.size()) {
    ssize_t n = getrandom(dst.data() + done, dst.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return p9::LastErrno();
    }
    done += static_cast<size_t>(n);
  }
  return done;
}
Result<size_t> Discard(std::span<const char> src) { return src.size(); }
Result<size_t> NoSpace(std::span<const char>) { return Errno(ENOSPC); }
Result<size_t> NoTty(std::span<char>) { return Errno(ENXIO); }
Result<size_t> NoTtyW(std::span<const char>) { return Errno(ENXIO); }

}  // namespace

std::shared_ptr<SynthFs> MakeDevFs() {
  auto root = std::make_shared<SynthNode>();
  root->mode = S_IFDIR | 0755;
  root->CharDev("null", 1, 3, 0666, ReadEof, Discard);
  root->CharDev("zero", 1, 5, 0666, ReadZeros, Discard);
  root->CharDev("full", 1, 7, 0666, ReadZeros, NoSpace);
  root->CharDev("random", 1, 8, 0666, ReadRandom, Discard);
  root->CharDev("urandom", 1, 9, 0666, ReadRandom, Discard);
  root->CharDev("tty", 5, 0, 0666, NoTty, NoTtyW);
  root->Link("ptmx", "pts/ptmx");
  root->Link("fd", "/proc/self/fd");
  root->Link("stdin", "/proc/self/fd/0");
  root->Link("stdout", "/proc/self/fd/1");
  root->Link("stderr", "/proc/self/fd/2");
  root->Dir("pts", 0755);
  root->Dir("shm", 01777);
  return std::make_shared<SynthFs>("devtmpfs", root);
}

std::shared_ptr<SynthFs> MakeDevptsFs() {
  auto root = std::make_shared<SynthNode>();
  root->mode = S_IFDIR | 0755;
  root->CharDev("ptmx", 5, 2, 0666, NoTty, NoTtyW);
  return std::make_shared<SynthFs>("devpts", root);
}

std::shared_ptr<SynthFs> MakeMountPointTree(const std::vector<std::string>& paths) {
  auto root = std::make_shared<SynthNode>();
  root->mode = S_IFDIR | 0755;
  for (const auto& p : paths) root->MkdirAll(p, 0755);
  return std::make_shared<SynthFs>("tmpfs", root);
}

}  // namespace sentry::fs
