// The gofer binary as the launcher runs it: a GoferConfig file and one inherited socket per
// mount (--io-fds), or --listen for external clients. Spawned as a real process.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "glog/logging.h"
#include "gtest/gtest.h"
#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/socket_util.h"

namespace p9 {
namespace {

namespace fs = std::filesystem;

std::string GoferPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  std::string p = std::string(srcdir ? srcdir : ".") + "/p9fs/gofer/gofer";
  return p;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

struct Child {
  pid_t pid = -1;
  int err_fd = -1;  // The child's stderr.
  // Waits for exit (at most 10 s); returns the exit code (-1: killed / timeout).
  int Wait() {
    for (int i = 0; i < 1000; ++i) {
      int st;
      pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }
  std::string Stderr() { return ReadAll(err_fd); }
};

// Runs the gofer with `args`; `fds` are placed at 3, 4, ... in the child.
Child Spawn(std::vector<std::string> args, std::vector<int> fds = {}) {
  int errp[2];
  CHECK_EQ(pipe2(errp, O_CLOEXEC), 0);
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(errp[1], 2);
    // Move fds out of the way first, then into place (they may overlap 3..).
    std::vector<int> moved;
    for (int fd : fds) moved.push_back(fcntl(fd, F_DUPFD, 100));
    for (size_t i = 0; i < moved.size(); ++i) dup2(moved[i], 3 + static_cast<int>(i));
    std::vector<char*> argv;
    std::string bin = GoferPath();
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(errp[1]);
  c.err_fd = errp[0];
  return c;
}

class GoferBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gofer_bin.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "root");
    fs::create_directories(dir_ / "bind");
    std::ofstream(dir_ / "root" / "r.txt") << "root file";
    std::ofstream(dir_ / "bind" / "b.txt") << "bind file";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string WriteConfig(const std::string& text) {
    // A new file each time: callers build several configs before running any.
    std::string p = (dir_ / ("gofer" + std::to_string(configs_++) + ".txtpb")).string();
    std::ofstream(p) << text;
    return p;
  }
  std::string TwoMounts() {
    return "mounts { path: \"" + (dir_ / "root").string() + "\" destination: \"/\" }\n" +
           "mounts { path: \"" + (dir_ / "bind").string() +
           "\" read_only: true destination: \"/data\" }\n";
  }
  fs::path dir_;
  int configs_ = 0;
};

TEST_F(GoferBinaryTest, ServesEachMountOnItsIoFdInOrder) {
  auto p0 = SocketPair();
  auto p1 = SocketPair();
  ASSERT_TRUE(p0.has_value() && p1.has_value());
  Child g = Spawn({"--config=" + WriteConfig(TwoMounts()), "--io-fds=3,4"},
                  {p0->second.get(), p1->second.get()});
  p0->second.reset();
  p1->second.reset();
  {
    auto c0 = Client::Create(std::move(p0->first));
    auto c1 = Client::Create(std::move(p1->first));
    ASSERT_TRUE(c0.has_value() && c1.has_value());
    auto r0 = ClientFile::Attach(**c0, "ignored");
    auto r1 = ClientFile::Attach(**c1, "");
    ASSERT_TRUE(r0.has_value() && r1.has_value());
    auto f0 = r0->WalkPath("r.txt");
    ASSERT_TRUE(f0.has_value()) << "fd 3 serves the root";
    auto f1 = r1->WalkPath("b.txt");
    ASSERT_TRUE(f1.has_value()) << "fd 4 serves the bind mount";
    EXPECT_FALSE(r1->WalkPath("r.txt").has_value());
    // Root is writable, the bind mount read-only.
    ASSERT_TRUE(r0->Walk({})->Create("new", open_flags::kWrOnly, 0644).has_value());
    EXPECT_TRUE(fs::exists(dir_ / "root" / "new"));
    EXPECT_EQ(r1->Walk({})->Create("new", open_flags::kWrOnly, 0644).error(), Errno(EROFS));
    // QIDs are unique across the two mounts.
    EXPECT_NE(r0->GetAttr()->qid.path, r1->GetAttr()->qid.path);
  }
  // Both clients gone: the gofer exits by itself.
  EXPECT_EQ(g.Wait(), 0) << g.Stderr();
}

TEST_F(GoferBinaryTest, AcceptsTheConfigOnAnInheritedFd) {
  // Binary protobuf on fd 3 (written by hand: field 1, a GoferMount with field 1 path).
  std::string path = (dir_ / "root").string();
  std::string mount = std::string("\x0a") + static_cast<char>(path.size()) + path;
  std::string cfg = std::string("\x0a") + static_cast<char>(mount.size()) + mount;
  int cp[2];
  ASSERT_EQ(pipe(cp), 0);
  ASSERT_EQ(write(cp[1], cfg.data(), cfg.size()), static_cast<ssize_t>(cfg.size()));
  close(cp[1]);
  auto p0 = SocketPair();
  Child g = Spawn({"--config-fd=3", "--io-fds=4"}, {cp[0], p0->second.get()});
  close(cp[0]);
  p0->second.reset();
  {
    auto c = Client::Create(std::move(p0->first));
    ASSERT_TRUE(c.has_value());
    auto r = ClientFile::Attach(**c, "");
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->WalkPath("r.txt").has_value());
  }
  EXPECT_EQ(g.Wait(), 0) << g.Stderr();
}

// The per-connection limits come from the command line and are enforced with clean errors.
TEST_F(GoferBinaryTest, CommandLineLimitsAreEnforced) {
  auto p0 = SocketPair();
  ASSERT_TRUE(p0.has_value());
  Child g = Spawn({"--config=" + WriteConfig(TwoMounts().substr(0, TwoMounts().find('\n') + 1)),
                   "--io-fds=3", "--max_msize=8192", "--max_fids=3"},
                  {p0->second.get()});
  p0->second.reset();
  {
    auto c = Client::Create(std::move(p0->first), 1u << 20);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ((*c)->msize(), 8192u) << "msize is capped by --max_msize";
    auto r = ClientFile::Attach(**c, "");  // Fid 1 of 3.
    ASSERT_TRUE(r.has_value());
    auto a = r->Walk({});
    auto b = r->Walk({});
    ASSERT_TRUE(a.has_value() && b.has_value());
    EXPECT_EQ(r->Walk({}).error(), Errno(EMFILE)) << "the fourth fid is refused";
    auto f = r->WalkPath("r.txt");
    EXPECT_EQ(f.error(), Errno(EMFILE));
    *a = ClientFile();  // Clunks.
    f = r->WalkPath("r.txt");
    for (int i = 0; i < 50 && !f.has_value(); ++i) {  // The clunk is asynchronous.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      f = r->WalkPath("r.txt");
    }
    ASSERT_TRUE(f.has_value()) << "a clunked fid frees its slot";
    ASSERT_TRUE(f->Open(open_flags::kRdOnly).has_value());
    // A read larger than msize is cut to msize-24, never a protocol error.
    std::string big(100000, '\0');
    auto n = f->ReadAt(std::span<char>(big.data(), big.size()), 0);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(big.substr(0, *n), "root file");
  }
  EXPECT_EQ(g.Wait(), 0) << g.Stderr();
  Child bad = Spawn({"--config=" + WriteConfig(TwoMounts()), "--io-fds=3,4",
                     "--max_inflight=0"});
  EXPECT_EQ(bad.Wait(), 1);
  EXPECT_NE(bad.Stderr().find("--max-inflight"), std::string::npos);
}

// Serving, the gofer sees an empty root with only /proc (the trees are reachable through the
// descriptors it opened before), keeps only the capabilities file serving needs, and runs
// under its seccomp filter with no_new_privs.
TEST_F(GoferBinaryTest, ServesFromAnEmptyRootUnderSeccomp) {
  auto p0 = SocketPair();
  ASSERT_TRUE(p0.has_value());
  Child g = Spawn({"--config=" + WriteConfig(TwoMounts().substr(0, TwoMounts().find('\n') + 1)),
                   "--io-fds=3"},
                  {p0->second.get()});
  p0->second.reset();
  {
    auto c = Client::Create(std::move(p0->first));
    ASSERT_TRUE(c.has_value());
    auto r = ClientFile::Attach(**c, "");
    ASSERT_TRUE(r.has_value());
    auto f = r->WalkPath("r.txt");  // Served: the gofer is up and past its start-up.
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE(f->Open(open_flags::kRdOnly).has_value());
    EXPECT_EQ(*f->ReadAll(), "root file");
    std::set<std::string> names;
    std::string root = "/proc/" + std::to_string(g.pid) + "/root";
    for (const auto& e : fs::directory_iterator(root)) names.insert(e.path().filename());
    EXPECT_EQ(names, std::set<std::string>{"proc"});
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // Unfiltered there.
    int sfd = open(("/proc/" + std::to_string(g.pid) + "/status").c_str(), O_RDONLY | O_CLOEXEC);
    std::string status = ReadAll(sfd);
    close(sfd);
    EXPECT_NE(status.find("Seccomp:\t2"), std::string::npos) << status;
    EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos) << status;
#endif
    // Only CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID and MKNOD (bits 0-4, 27),
    // in the effective and the bounding set.
    int cfd = open(("/proc/" + std::to_string(g.pid) + "/status").c_str(), O_RDONLY | O_CLOEXEC);
    std::string caps = ReadAll(cfd);
    close(cfd);
    EXPECT_NE(caps.find("CapEff:\t000000000800001f"), std::string::npos) << caps;
    EXPECT_NE(caps.find("CapBnd:\t000000000800001f"), std::string::npos) << caps;
  }
  EXPECT_EQ(g.Wait(), 0) << g.Stderr();
}

TEST_F(GoferBinaryTest, MountAndFdCountMismatchIsAClearError) {
  auto p0 = SocketPair();
  Child g = Spawn({"--config=" + WriteConfig(TwoMounts()), "--io-fds=3"}, {p0->second.get()});
  EXPECT_EQ(g.Wait(), 1);
  EXPECT_NE(g.Stderr().find("2 mounts but --io-fds has 1"), std::string::npos);
}

TEST_F(GoferBinaryTest, BadInputsAreClearErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string msg;
  };
  std::string missing_src = "mounts { path: \"" + (dir_ / "nope").string() + "\" }\n";
  std::vector<Case> cases = {
      {{"--config=/nonexistent.txtpb", "--io-fds="}, "cannot read --config"},
      {{"--config=" + WriteConfig("mounts { bogus: 1 }"), "--io-fds="}, "not a valid GoferConfig"},
      {{"--config=" + WriteConfig(missing_src), "--io-fds=0"}, "is not an open socket"},
      {{"--config=" + WriteConfig(missing_src), "--io-fds=x"}, "bad fd"},
      {{"--listen=tcp:127.0.0.1:1"}, "--listen needs --root"},
      {{"--listen=bogus:1", "--root=" + dir_.string()}, "--listen bogus:1"},
      {{}, "need --config"},
  };
  for (auto& c : cases) {
    Child g = Spawn(c.args);
    EXPECT_EQ(g.Wait(), 1) << c.msg;
    std::string err = g.Stderr();
    EXPECT_NE(err.find(c.msg), std::string::npos) << "got: " << err;
  }
  // A missing mount source, with a real socket.
  auto p0 = SocketPair();
  Child g = Spawn({"--config=" + WriteConfig(missing_src), "--io-fds=3"}, {p0->second.get()});
  EXPECT_EQ(g.Wait(), 1);
  EXPECT_NE(g.Stderr().find("ENOENT"), std::string::npos);
}

TEST_F(GoferBinaryTest, ListensOnTcpAndStopsOnSigterm) {
  // Pick a free port (small race: another process could take it first).
  uint16_t port = 0;
  {
    auto l = ListenTcp("127.0.0.1", 0, &port);
    ASSERT_TRUE(l.has_value());
  }
  std::string addr = "tcp:127.0.0.1:" + std::to_string(port);
  Child g = Spawn({"--root=" + (dir_ / "root").string(), "--read-only", "--listen=" + addr});
  Result<UniqueFd> sock = Errno(ECONNREFUSED);
  for (int i = 0; i < 200 && !sock.has_value(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    sock = ConnectAddress(addr);
  }
  ASSERT_TRUE(sock.has_value());
  {
    auto c = Client::Create(std::move(*sock));
    ASSERT_TRUE(c.has_value());
    auto r = ClientFile::Attach(**c, "");
    ASSERT_TRUE(r.has_value());
    auto f = r->WalkPath("r.txt");
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE(f->Open(open_flags::kRdOnly).has_value());
    EXPECT_EQ(*f->ReadAll(), "root file");
    EXPECT_EQ(r->Mkdir("d", 0755).error(), Errno(EROFS));
  }
  // SIGTERM must reach the main thread's sigwait whenever it comes: every other thread
  // blocks it (a thread that did not would take its default action and kill the gofer).
  size_t others = 0;
  for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(g.pid) + "/task")) {
    if (t.path().filename() == std::to_string(g.pid)) continue;
    std::ifstream status(t.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (!line.starts_with("SigBlk:")) continue;
      uint64_t blocked = std::stoull(line.substr(7), nullptr, 16);
      EXPECT_TRUE(blocked & (uint64_t{1} << (SIGTERM - 1))) << t.path() << ": " << line;
      EXPECT_TRUE(blocked & (uint64_t{1} << (SIGINT - 1))) << t.path() << ": " << line;
      ++others;
    }
  }
  EXPECT_GT(others, 0u) << "the server's threads";
  kill(g.pid, SIGTERM);
  EXPECT_EQ(g.Wait(), 0) << g.Stderr();
}

}  // namespace
}  // namespace p9
