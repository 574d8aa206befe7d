// libFuzzer target: the 9P server with the gofer's host backend on a temp tree, fed an
// arbitrary byte stream over a real socketpair (framed or not, any message order, fids and
// tags). The stream starts after a valid Tversion and Tattach so the fuzzer reaches the
// operations. Afterwards the connection is closed and the server must release everything:
// no crash, no hang, no growing number of host fds, and nothing outside the tree touched.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gofer/attach_point.h"
#include "p9/messages.h"
#include "p9/server.h"
#include "p9/socket_util.h"
#include "p9/transport.h"

namespace {

namespace hfs = std::filesystem;

int CountFds() {
  int n = 0;
  for (const auto& e : hfs::directory_iterator("/proc/self/fd")) (void)e, ++n;
  return n;
}

struct World {
  hfs::path root;
  std::unique_ptr<gofer::HostAttacher> attacher;
  std::unique_ptr<p9::Server> server;
  World() {
    char tmpl[] = "/tmp/p9fs-fuzz.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    root = tmpl;
    hfs::create_directories(root / "tree" / "d" / "e");
    std::ofstream(root / "tree" / "a") << "alpha";
    std::ofstream(root / "tree" / "d" / "b") << "beta";
    hfs::create_symlink("../../outside", root / "tree" / "d" / "up");
    std::ofstream(root / "outside") << "must not change";
    auto ap = gofer::AttachPoint::Open((root / "tree").string(), false, nullptr);
    if (!ap.has_value()) std::abort();
    attacher = gofer::HostAttacher::ForOne(*ap);
    server = std::make_unique<p9::Server>(
        *attacher, p9::ServerOptions{.max_msize = 65536, .threads = 2, .max_fids = 64});
  }
};

World& TheWorld() {
  static World* w = [] {
    auto* w = new World();  // Lives for the process: libFuzzer calls us many times.
    static std::string root = w->root.string();
    std::atexit([] {
      std::error_code ec;
      hfs::remove_all(root, ec);
    });
    return w;
  }();
  return *w;
}

void WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // The server closed on a protocol violation: fine.
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Reads replies until the server has been quiet for a moment or closed the connection.
void Drain(int fd) {
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5) <= 0) return;
    if (read(fd, buf, sizeof(buf)) <= 0) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = TheWorld();
  // The server keeps some fds for its life (its reactor, interned directories of the tree):
  // measured after the first session, the count may only grow by a few directories the
  // input creates. A per-session leak crosses the bound within a few dozen runs.
  static int baseline_fds = -1;
  auto pair = p9::SocketPair();
  if (!pair.has_value()) std::abort();
  int fd = pair->first.get();
  w.server->AddConnection(std::move(pair->second));
  auto v = p9::EncodeFrame(p9::kNoTag, p9::Tversion{65536, p9::kVersion9P2000LExt});
  WriteAll(fd, v.head.data(), v.head.size());
  auto a = p9::EncodeFrame(1, p9::Tattach{0, p9::kNoFid, "root", "", 0});
  WriteAll(fd, a.head.data(), a.head.size());
  // The input in chunks, reading replies in between so neither side's buffer fills up.
  for (size_t off = 0; off < size; off += 4096) {
    WriteAll(fd, reinterpret_cast<const char*>(data) + off, std::min<size_t>(4096, size - off));
    Drain(fd);
  }
  Drain(fd);
  pair->first.reset();  // The client vanishes with whatever it left open.
  if (!w.server->WaitNoConnections(std::chrono::seconds(20))) std::abort();  // Hung.
  // Donated fds arrive on our end and close with it; the server's own must all be gone.
  if (baseline_fds < 0) baseline_fds = CountFds();
  if (CountFds() > baseline_fds + 32) std::abort();
  std::ifstream in(w.root / "outside");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s != "must not change") std::abort();
  return 0;
}
