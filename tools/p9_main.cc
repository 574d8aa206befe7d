// p9: a small command-line 9P2000.L client on our client library.
//
//   p9 --addr=unix:PATH|tcp:HOST:PORT [--aname=A] [--msize=N] COMMAND ARGS...
//     ls [-l] PATH      list a directory
//     stat PATH         attributes of a file
//     cat PATH          print a file
//     put PATH          write stdin to a new (or truncated) file
//     mkdir PATH        make a directory
//     rm PATH           remove a file or empty directory
//     statfs            file system numbers
// Errors print the errno name and exit 1.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>

#include "gflags/gflags.h"
#include "glog/logging.h"
#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/socket_util.h"

DEFINE_string(addr, "", "Server address: unix:PATH or tcp:HOST:PORT");
DEFINE_string(aname, "", "Attach name (the exported path for diod)");
DEFINE_uint32(msize, p9::kDefaultMsize, "msize to offer");
DEFINE_bool(plain, false, "Offer plain 9P2000.L (no fd donation extension)");

namespace {

using p9::ClientFile;

[[noreturn]] void Fail(const std::string& what, p9::Errno e) {
  std::cerr << "p9: " << what << ": " << e.name() << " (" << strerror(e.value()) << ")\n";
  std::exit(1);
}

template <typename T>
T Must(p9::Result<T> r, const std::string& what) {
  if (!r.has_value()) Fail(what, r.error());
  return std::move(r).value();
}
void Must(p9::Result<void> r, const std::string& what) {
  if (!r.has_value()) Fail(what, r.error());
}

std::pair<std::string, std::string> SplitParent(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return {"", p};
  return {p.substr(0, slash), p.substr(slash + 1)};
}

std::string ModeString(uint32_t mode) {
  std::string s = S_ISDIR(mode) ? "d" : S_ISLNK(mode) ? "l" : S_ISFIFO(mode) ? "p"
                : S_ISSOCK(mode) ? "s" : S_ISCHR(mode) ? "c" : S_ISBLK(mode) ? "b" : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (mode & (0400 >> i)) ? rwx[i] : '-';
  return s;
}

void PrintLong(const std::string& name, const p9::Rgetattr& a, const std::string& link) {
  char when[32];
  time_t t = static_cast<time_t>(a.mtime_sec);
  strftime(when, sizeof(when), "%Y-%m-%d %H:%M", gmtime(&t));
  std::printf("%s %3llu %5u %5u %10llu %s %s%s%s\n", ModeString(a.mode).c_str(),
              static_cast<unsigned long long>(a.nlink), a.uid, a.gid,
              static_cast<unsigned long long>(a.size), when, name.c_str(),
              link.empty() ? "" : " -> ", link.c_str());
}

int Run(int argc, char** argv) {
  if (FLAGS_addr.empty() || argc < 2) {
    std::cerr << "usage: p9 --addr=unix:PATH|tcp:HOST:PORT [--aname=A] ls|stat|cat|put|mkdir|rm|statfs [PATH]\n";
    return 2;
  }
  auto sock = Must(p9::ConnectAddress(FLAGS_addr), "connect " + FLAGS_addr);
  auto client = Must(p9::Client::Create(std::move(sock), FLAGS_msize,
                                        FLAGS_plain ? p9::kVersion9P2000L
                                                    : p9::kVersion9P2000LExt),
                     "version");
  ClientFile root = Must(ClientFile::Attach(*client, FLAGS_aname), "attach " + FLAGS_aname);
  std::string cmd = argv[1];
  std::string path = argc > 2 ? argv[argc - 1] : "";
  if (cmd == "ls") {
    bool longf = argc > 3 && std::string(argv[2]) == "-l";
    ClientFile d = Must(root.WalkPath(path), "walk " + path);
    Must(d.Open(p9::open_flags::kRdOnly), "open " + path);
    auto ents = Must(d.ReaddirAll(), "readdir " + path);
    for (const auto& e : ents) {
      if (e.name == "." || e.name == "..") continue;
      if (!longf) {
        std::printf("%s\n", e.name.c_str());
        continue;
      }
      ClientFile f = Must(d.Walk({e.name}), "walk " + e.name);
      auto a = Must(f.GetAttr(), "getattr " + e.name);
      std::string link = S_ISLNK(a.mode) ? Must(f.Readlink(), "readlink") : "";
      PrintLong(e.name, a, link);
    }
  } else if (cmd == "stat") {
    ClientFile f = Must(root.WalkPath(path), "walk " + path);
    PrintLong(path, Must(f.GetAttr(), "getattr " + path), "");
  } else if (cmd == "cat") {
    ClientFile f = Must(root.WalkPath(path), "walk " + path);
    Must(f.Open(p9::open_flags::kRdOnly), "open " + path);
    std::vector<char> buf(client->max_read());
    for (uint64_t off = 0;;) {
      size_t n = Must(f.ReadAt(buf, off), "read " + path);
      if (n == 0) break;
      fwrite(buf.data(), 1, n, stdout);
      off += n;
    }
  } else if (cmd == "put") {
    auto [dir, name] = SplitParent(path);
    ClientFile d = Must(root.WalkPath(dir), "walk " + dir);
    auto existing = d.Walk({name});
    ClientFile f;
    if (existing.has_value()) {
      f = std::move(*existing);
      Must(f.Open(p9::open_flags::kWrOnly | p9::open_flags::kTrunc), "open " + path);
    } else {
      f = std::move(d);
      Must(f.Create(name, p9::open_flags::kWrOnly, 0644), "create " + path);
    }
    std::string data((std::istreambuf_iterator<char>(std::cin)), {});
    Must(f.WriteAll(data), "write " + path);
  } else if (cmd == "mkdir") {
    auto [dir, name] = SplitParent(path);
    Must(Must(root.WalkPath(dir), "walk " + dir).Mkdir(name, 0755), "mkdir " + path);
  } else if (cmd == "rm") {
    auto [dir, name] = SplitParent(path);
    ClientFile d = Must(root.WalkPath(dir), "walk " + dir);
    auto a = Must(Must(d.Walk({name}), "walk " + path).GetAttr(), "getattr " + path);
    Must(d.UnlinkAt(name, S_ISDIR(a.mode) ? p9::kAtRemoveDir : 0), "unlink " + path);
  } else if (cmd == "statfs") {
    auto s = Must(root.StatFs(), "statfs");
    std::printf("type %#x bsize %u blocks %llu bfree %llu files %llu namelen %u\n", s.type,
                s.bsize, static_cast<unsigned long long>(s.blocks),
                static_cast<unsigned long long>(s.bfree),
                static_cast<unsigned long long>(s.files), s.namelen);
  } else {
    std::cerr << "p9: unknown command " << cmd << "\n";
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("a 9P2000.L command-line client");
  // Flags end at the command: "ls -l" must not reach gflags.
  int nflags = 1;
  while (nflags < argc && argv[nflags][0] == '-') ++nflags;
  int fargc = nflags;
  gflags::ParseCommandLineFlags(&fargc, &argv, false);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  argv[nflags - 1] = argv[0];
  return Run(argc - nflags + 1, argv + nflags - 1);
}
