// The gofer's host backend behind the real server, driven by our client over a socketpair,
// on real temp trees: a matrix of file types x mount modes, the mutations, and an escape
// suite that tries to reach a file outside the attach point.
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gofer/attach_point.h"
#include "gtest/gtest.h"
#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/server.h"
#include "p9/socket_util.h"
#include "p9/splice_pipes.h"

namespace gofer {
namespace {

namespace fs = std::filesystem;
using p9::ClientFile;
using p9::Errno;
namespace of = p9::open_flags;

Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }

void WriteFile(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }
std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
mode_t GetUmask() {
  mode_t m = umask(0);
  umask(m);
  return m;
}
size_t OpenFdCount() {
  size_t n = 0;
  for (auto& e : fs::directory_iterator("/proc/self/fd")) (void)e, ++n;
  return n;
}

// A temp tree: <base>/outside/{secret} (must stay unreachable) and <base>/root (served).
class GoferTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gofer_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_dir_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directories(root_dir_);
    fs::create_directories(outside_);
    WriteFile(outside_ / "secret", "SECRET");
    struct stat st;
    ASSERT_EQ(stat((outside_ / "secret").c_str(), &st), 0);
    secret_ino_ = st.st_ino;
    Populate();
    Connect(read_only(), p9::kVersion9P2000LExt);
  }
  void TearDown() override {
    root_ = ClientFile();
    client_.reset();
    if (server_) {
      EXPECT_TRUE(server_->WaitNoConnections(std::chrono::seconds(10)));
      server_.reset();
    }
    fs::remove_all(base_);
  }
  bool read_only() const { return GetParam(); }

  virtual void Populate() {
    WriteFile(root_dir_ / "file", "hello world");
    fs::create_directories(root_dir_ / "dir" / "sub");
    WriteFile(root_dir_ / "dir" / "inner", "inner");
    fs::create_symlink("file", root_dir_ / "link");
    fs::create_symlink("/", root_dir_ / "abs_escape");
    fs::create_symlink("../outside", root_dir_ / "rel_escape");
    ASSERT_EQ(mkfifo((root_dir_ / "fifo").c_str(), 0644), 0);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string sp = (root_dir_ / "sock").string();
    strncpy(a.sun_path, sp.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    close(s);
    // Needs CAP_MKNOD, which Bazel's sandbox (a user namespace) does not grant even to root.
    have_chardev_ = mknod((root_dir_ / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
  }

  void Connect(bool ro, const char* version, uint32_t msize = 1u << 20) {
    root_ = ClientFile();
    client_.reset();
    server_.reset();
    auto ap = AttachPoint::Open(root_dir_.string(), ro, nullptr);
    ASSERT_TRUE(ap.has_value()) << ap.error();
    attacher_ = std::make_unique<HostAttacher>(std::vector{*ap});
    server_ = std::make_unique<p9::Server>(*attacher_, p9::ServerOptions{.threads = 2});
    auto pair = p9::SocketPair();
    ASSERT_TRUE(pair.has_value());
    server_->AddConnection(std::move(pair->second));
    auto c = p9::Client::Create(std::move(pair->first), msize, version);
    ASSERT_TRUE(c.has_value()) << c.error();
    client_ = std::move(*c);
    auto r = ClientFile::Attach(*client_, root_dir_.string());
    ASSERT_TRUE(r.has_value()) << r.error();
    root_ = std::move(*r);
  }

  ClientFile Walk(const std::string& path) {
    auto f = root_.WalkPath(path);
    EXPECT_TRUE(f.has_value()) << path << ": " << f.error();
    return f.has_value() ? std::move(*f) : ClientFile();
  }
  // FIFO `name` of the tree (made unless it exists) opened for reading, and in *writer a
  // host writer (non-blocking) that keeps it open, so that a read waits instead of seeing
  // EOF. The caller closes *writer.
  ClientFile OpenFifo(const std::string& name, int* writer) {
    if (!fs::exists(root_dir_ / name)) {
      EXPECT_EQ(mkfifo((root_dir_ / name).c_str(), 0644), 0);
    }
    ClientFile f = Walk(name);
    EXPECT_TRUE(f.Open(of::kRdOnly).has_value()) << name;
    *writer = open((root_dir_ / name).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    EXPECT_GE(*writer, 0) << name;
    return f;
  }
  // A read of up to 16 bytes of `f` on another thread: what it read, or "error".
  static std::future<std::string> ReadLater(const ClientFile& f) {
    return std::async(std::launch::async, [&f] {
      char buf[16];
      auto n = f.ReadAt(buf, 0);
      return n.has_value() ? std::string(buf, *n) : std::string("error");
    });
  }
  // The `n` fid numbers the client hands out next (released ones go first), for checking
  // that requests which failed or were dropped left none of them in use on the server.
  std::vector<p9::Fid> NextFids(int n) {
    std::vector<p9::Fid> next;
    for (int i = 0; i < n; ++i) next.push_back(client_->NewFid());
    for (auto it = next.rbegin(); it != next.rend(); ++it) client_->ReleaseFid(*it);
    return next;
  }
  // Walks to `name` once per fid of `next`; each walk must get one of them, which it could
  // not if the server still held it. Returns what was walked (holding the numbers).
  std::vector<ClientFile> ExpectFree(const std::vector<p9::Fid>& next, const std::string& name) {
    std::vector<ClientFile> walked;
    std::set<p9::Fid> reused;
    for (size_t i = 0; i < next.size(); ++i) {
      auto w = root_.Walk({name});
      EXPECT_TRUE(w.has_value()) << i << ": " << w.error();
      if (!w.has_value()) break;
      reused.insert(w->fid());
      walked.push_back(std::move(*w));
    }
    EXPECT_EQ(reused, std::set<p9::Fid>(next.begin(), next.end()));
    return walked;
  }
  // Raw Twalk: the number of names the server walked (or the error).
  p9::Result<size_t> RawWalk(const std::vector<std::string>& names) {
    p9::Fid nf = client_->NewFid();
    auto r = client_->Call(p9::Twalk{root_.fid(), nf, names});
    if (!r.has_value()) {
      client_->ReleaseFid(nf);
      return r.error();
    }
    if (r->wqids.size() == names.size()) {
      ClientFile tmp(*client_, nf);  // Clunks.
    } else {
      client_->ReleaseFid(nf);
    }
    return r->wqids.size();
  }

  fs::path base_, root_dir_, outside_;
  ino_t secret_ino_ = 0;
  bool have_chardev_ = false;
  std::unique_ptr<HostAttacher> attacher_;
  std::unique_ptr<p9::Server> server_;
  std::unique_ptr<p9::Client> client_;
  ClientFile root_;
};

INSTANTIATE_TEST_SUITE_P(Modes, GoferTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "ro" : "rw"; });

// ---- File types x modes -----------------------------------------------------------------

struct TypeCase {
  const char* name;
  mode_t type;
  uint8_t qid_type;
  Errno open_rd;  // Errno(0): opens.
};

TEST_P(GoferTest, EveryFileTypeWalksStatsAndOpensAsTheHostSays) {
  std::vector<TypeCase> cases = {
      {"file", S_IFREG, p9::kQtFile, Errno(0)},
      {"dir", S_IFDIR, p9::kQtDir, Errno(0)},
      {"link", S_IFLNK, p9::kQtSymlink, Errno(ELOOP)},
      {"fifo", S_IFIFO, p9::kQtFile, Errno(0)},
      {"sock", S_IFSOCK, p9::kQtFile, Errno(ENXIO)},
  };
  if (have_chardev_) cases.push_back({"null", S_IFCHR, p9::kQtFile, Errno(0)});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ClientFile f = Walk(c.name);
    ASSERT_TRUE(f.valid());
    auto a = f.GetAttr();
    ASSERT_TRUE(a.has_value());
    struct stat st;
    ASSERT_EQ(lstat((root_dir_ / c.name).c_str(), &st), 0);
    EXPECT_EQ(a->mode & S_IFMT, c.type);
    EXPECT_EQ(a->mode, st.st_mode);
    EXPECT_EQ(a->size, static_cast<uint64_t>(st.st_size));
    EXPECT_EQ(a->nlink, st.st_nlink);
    EXPECT_EQ(a->mtime_sec, static_cast<uint64_t>(st.st_mtim.tv_sec));
    EXPECT_EQ(a->qid.type, c.qid_type);
    uint32_t flags = c.type == S_IFIFO ? (of::kRdOnly | of::kNonBlock) : of::kRdOnly;
    EXPECT_EQ(Err(f.Open(flags)), c.open_rd);
    // Writes: EROFS on a read-only mount whatever the type (checked before anything else).
    ClientFile g = Walk(c.name);
    auto w = g.Open(of::kWrOnly | of::kNonBlock);
    if (read_only() && c.type != S_IFLNK && c.type != S_IFSOCK) {
      EXPECT_EQ(Err(w), Errno(EROFS));
    }
    auto touch = Walk(c.name).SetAttr(p9::Tsetattr{.valid = p9::setattr::kMtime});
    EXPECT_EQ(Err(touch), read_only() ? Errno(EROFS) : Errno(0));
  }
}

// A read of a FIFO waits for a writer's data; the connection keeps serving other requests
// meanwhile (the server hands such reads to another thread: HostFile::MayBlock).
TEST_P(GoferTest, BlockedFifoReadDoesNotStallTheConnection) {
  int w;
  ClientFile f = OpenFifo("fifo", &w);
  auto pending = ReadLater(f);
  EXPECT_EQ(pending.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  for (int i = 0; i < 20; ++i) {
    auto a = Walk("file").GetAttr();
    ASSERT_TRUE(a.has_value()) << a.error();
    EXPECT_EQ(a->size, 11u);
  }
  ASSERT_EQ(write(w, "data", 4), 4);
  EXPECT_EQ(pending.get(), "data");
  close(w);
}

// Two FIFO reads that wait for good, on a connection of two threads: the first keeps one
// thread, the second waits for it (queued, LeaderFollower) instead of being served by the
// thread that reads the socket, so other requests still get answers; the second starts once
// the first is done.
TEST_P(GoferTest, AtTheThreadLimitABlockedReadWaitsAndOthersAreServed) {
  int wa, wb;
  ClientFile a = OpenFifo("fifo", &wa), b = OpenFifo("fifo2", &wb);
  auto ra = ReadLater(a);
  EXPECT_EQ(ra.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  auto rb = ReadLater(b);
  EXPECT_EQ(rb.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  auto stat = std::async(std::launch::async, [&] { return Walk("file").GetAttr(); });
  bool answered = stat.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  EXPECT_TRUE(answered) << "the connection stalled behind a blocked read";
  if (!answered) {  // Unblock everything so that the test ends.
    (void)!write(wa, "x", 1);
    (void)!write(wb, "x", 1);
  }
  auto attr = stat.get();
  ASSERT_TRUE(attr.has_value()) << attr.error();
  EXPECT_EQ(attr->size, 11u);
  ASSERT_EQ(write(wb, "bee", 3), 3);
  EXPECT_EQ(rb.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "the second read ran beyond the thread limit";
  ASSERT_EQ(write(wa, "ay", 2), 2);
  EXPECT_EQ(ra.get(), "ay");
  EXPECT_EQ(rb.get(), "bee");
  close(wa);
  close(wb);
}

// A Tflush of a request still queued for a thread is answered at once, and the request is
// never served: the FIFO keeps the bytes it would have read.
TEST_P(GoferTest, AFlushedQueuedReadIsNeverServed) {
  int wa, wb;
  ClientFile a = OpenFifo("fifo", &wa), b = OpenFifo("fifo2", &wb);
  // Sees what the gofer leaves in the FIFO.
  int rb_host = open((root_dir_ / "fifo2").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rb_host, 0);
  auto ra = ReadLater(a);
  EXPECT_EQ(ra.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  std::stop_source stop;
  auto rb = std::async(std::launch::async, [&] {
    char buf[16];
    return client_->Read(b.fid(), 0, buf, stop.get_token());
  });
  EXPECT_EQ(rb.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  stop.request_stop();
  bool flushed = rb.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  EXPECT_TRUE(flushed) << "the Tflush waited for the blocked read ahead of it";
  ASSERT_EQ(write(wb, "bee", 3), 3);
  ASSERT_EQ(write(wa, "ay", 2), 2);
  EXPECT_EQ(ra.get(), "ay");
  auto n = rb.get();
  ASSERT_FALSE(n.has_value()) << "served: " << *n;
  EXPECT_EQ(n.error(), Errno(ECANCELED));
  // The busy thread is free again, and found nothing left to serve.
  auto attr = Walk("file").GetAttr();
  ASSERT_TRUE(attr.has_value()) << attr.error();
  char got[8];
  EXPECT_EQ(read(rb_host, got, sizeof(got)), 3);
  close(wa);
  close(wb);
  close(rb_host);
}

// Twalkopen: a walk (or a clone) and its open in one round trip, the host fd donated; all
// or nothing; the fid walked from stays as it was.
TEST_P(GoferTest, WalkOpenOpensWhatAWalkReachesInOneRoundTrip) {
  {
    // (Scoped: a ClientFile must not outlive its Client, which Connect() replaces.)
    ClientFile f = Walk("file");
    char buf[32];
    const uint64_t before = client_->requests();
    auto c = f.WalkOpen({}, of::kRdOnly);
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_EQ(client_->requests() - before, 1u);
    EXPECT_EQ(c->second.qid, f.GetAttr()->qid);
    auto n = c->first.ReadAt(buf, 0);
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(std::string(buf, *n), "hello world");
    ASSERT_GE(c->first.donated_fd(), 0);
    EXPECT_EQ(pread(c->first.donated_fd(), buf, 5, 0), 5);
    EXPECT_EQ(Err(f.ReadAt(buf, 0)), Errno(EBADF)) << "the fid walked from is not opened";
    auto again = f.WalkOpen({}, of::kRdOnly);
    ASSERT_TRUE(again.has_value()) << "and clones and opens again";

    auto deep = root_.WalkOpen({"dir", "sub"}, of::kRdOnly | of::kDirectory);
    ASSERT_TRUE(deep.has_value()) << deep.error();
    EXPECT_TRUE(deep->first.ReaddirAll().has_value());
    // What a walk reaches may block at open (a FIFO): served away from the reading thread.
    auto fifo = root_.WalkOpen({"fifo"}, of::kRdOnly);
    ASSERT_TRUE(fifo.has_value()) << fifo.error();
    EXPECT_GE(fifo->first.donated_fd(), 0);
    if (read_only()) {
      EXPECT_EQ(Err(f.WalkOpen({}, of::kRdWr)), Errno(EROFS));
    }

    // Failures leave no fid: the numbers handed out next are free on the server.
    const std::vector<p9::Fid> next = NextFids(3);
    EXPECT_EQ(Err(root_.WalkOpen({"dir", "missing"}, of::kRdOnly)), Errno(ENOENT))
        << "partial";
    EXPECT_EQ(Err(root_.WalkOpen({"abs_escape"}, of::kRdOnly)), Errno(ELOOP))
        << "a symlink is walked to, never opened";
    EXPECT_EQ(Err(root_.WalkOpen({"dir"}, of::kRdWr)),
              read_only() ? Errno(EROFS) : Errno(EISDIR));
    EXPECT_EQ(Err(root_.WalkOpen({".."}, of::kRdOnly)), Errno(EINVAL));
    std::vector<ClientFile> walked = ExpectFree(next, "dir");
    ASSERT_EQ(walked.size(), next.size());
    EXPECT_EQ(Err(client_->Call(p9::Twalkopen{f.fid(), f.fid(), of::kRdOnly, {}})),
              Errno(EBADF));
    EXPECT_EQ(Err(client_->Call(p9::Twalkopen{f.fid(), walked[0].fid(), of::kRdOnly, {}})),
              Errno(EBADF));
  }
  Connect(read_only(), p9::kVersion9P2000L);
  EXPECT_EQ(Err(Walk("file").WalkOpen({}, of::kRdOnly)), Errno(ENOSYS));
}

TEST_P(GoferTest, ReadsRegularFilesAndDirectories) {
  ClientFile f = Walk("file");
  ASSERT_TRUE(f.Open(of::kRdOnly).has_value());
  auto all = f.ReadAll();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(*all, "hello world");
  ClientFile d = Walk("dir");
  ASSERT_TRUE(d.Open(of::kRdOnly | of::kDirectory).has_value());
  auto ents = d.ReaddirAll();
  ASSERT_TRUE(ents.has_value());
  std::set<std::string> names;
  for (auto& e : *ents) names.insert(e.name);
  EXPECT_EQ(names, (std::set<std::string>{".", "..", "inner", "sub"}));
  auto link = Walk("link").Readlink();
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(*link, "file");
}

// Large Treads move the file's pages to the socket (p9/splice_pipes.h): what arrives is the
// file's bytes at any offset, across several pipes per reply, short at the end of the file,
// and what the host changed since the last read.
TEST_P(GoferTest, LargeReadsAreSplicedAndCarryTheFileExactly) {
  Connect(read_only(), p9::kVersion9P2000LExt, 4u << 20);
  std::string data((5u << 20) + 777, '\0');
  std::mt19937 rng(3);
  for (char& c : data) c = static_cast<char>(rng());
  WriteFile(root_dir_ / "big", data);
  ClientFile f = Walk("big");
  ASSERT_TRUE(f.Open(of::kRdOnly).has_value());
  const uint64_t before = p9::SplicePipes::bytes_drained();
  std::vector<char> buf(client_->max_read());
  size_t expected_spliced = 0;
  for (auto [off, count] : {std::pair<uint64_t, size_t>{0, 65536}, {4097, 100000},
                            {1, 1u << 20}, {333, client_->max_read()},
                            {data.size() - 5000, 1u << 20}, {data.size(), 1u << 20}}) {
    auto n = f.ReadAt(std::span<char>(buf.data(), count), off);
    ASSERT_TRUE(n.has_value()) << n.error();
    size_t want = std::min<size_t>(count, data.size() - off);
    ASSERT_EQ(*n, want) << "offset " << off;
    EXPECT_TRUE(std::string(buf.data(), *n) == data.substr(off, want)) << "offset " << off;
    expected_spliced += *n;
  }
  EXPECT_EQ(p9::SplicePipes::bytes_drained() - before, expected_spliced);
  // Changed on the host: the next read carries the new bytes.
  std::string patch(200000, 'Z');
  int hfd = open((root_dir_ / "big").c_str(), O_WRONLY);
  ASSERT_EQ(pwrite(hfd, patch.data(), patch.size(), 10), static_cast<ssize_t>(patch.size()));
  close(hfd);
  auto n = f.ReadAt(std::span<char>(buf.data(), 300000), 0);
  ASSERT_TRUE(n.has_value());
  ASSERT_EQ(*n, 300000u);
  EXPECT_TRUE(std::string(buf.data(), 300000) ==
              data.substr(0, 10) + patch + data.substr(200010, 300000 - 200010));
}

TEST_P(GoferTest, EveryMutationIsEROFSOnReadOnlyMounts) {
  if (!read_only()) GTEST_SKIP() << "read-only mode only";
  ClientFile d = Walk("dir");
  EXPECT_EQ(Err(Walk("dir").Create("new", of::kRdWr, 0644)), Errno(EROFS));
  EXPECT_EQ(Err(d.Mkdir("nd", 0755)), Errno(EROFS));
  EXPECT_EQ(Err(d.Symlink("ns", "x")), Errno(EROFS));
  EXPECT_EQ(Err(d.Mknod("nn", S_IFIFO | 0644, 0, 0)), Errno(EROFS));
  EXPECT_EQ(Err(d.Link(Walk("file"), "nl")), Errno(EROFS));
  EXPECT_EQ(Err(Walk("dir/inner").Rename(d, "moved")), Errno(EROFS));
  EXPECT_EQ(Err(d.RenameAt("inner", d, "moved")), Errno(EROFS));
  EXPECT_EQ(Err(d.UnlinkAt("inner")), Errno(EROFS));
  EXPECT_EQ(Err(Walk("dir/inner").Remove()), Errno(EROFS));
  EXPECT_EQ(Err(Walk("file").SetAttr(p9::Tsetattr{.valid = p9::setattr::kSize, .size = 0})),
            Errno(EROFS));
  EXPECT_EQ(Err(Walk("file").SetXattr("user.x", "1")), Errno(EROFS));
  EXPECT_EQ(Err(Walk("file").RemoveXattr("user.x")), Errno(EROFS));
  EXPECT_EQ(Err(Walk("file").Open(of::kRdOnly | of::kTrunc)), Errno(EROFS));
  EXPECT_EQ(ReadFile(root_dir_ / "file"), "hello world");
  EXPECT_TRUE(fs::exists(root_dir_ / "dir" / "inner"));
}

// ---- Mutations (rw) --------------------------------------------------------------------

class GoferRwTest : public GoferTest {};
INSTANTIATE_TEST_SUITE_P(Rw, GoferRwTest, ::testing::Values(false),
                         [](const auto&) { return "rw"; });

TEST_P(GoferRwTest, CreateWriteReadBackReachesTheHost) {
  ClientFile d = Walk("dir");
  auto c = d.Create("new", of::kRdWr, 0640);
  ASSERT_TRUE(c.has_value()) << c.error();
  ASSERT_TRUE(d.WriteAll("payload").has_value());
  char buf[16];
  auto n = d.ReadAt(buf, 0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string(buf, *n), "payload");
  EXPECT_EQ(ReadFile(root_dir_ / "dir" / "new"), "payload");
  struct stat st;
  ASSERT_EQ(stat((root_dir_ / "dir" / "new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~GetUmask());
  EXPECT_EQ(Err(Walk("dir").Create("new", of::kRdWr, 0644)), Errno(EEXIST));
  // O_EXCL|O_NOFOLLOW: an existing symlink is never followed by create.
  EXPECT_EQ(Err(Walk("").Create("abs_escape", of::kRdWr, 0644)), Errno(EEXIST));
}

// Tlcreateat: the file created, opened (host fd donated), walked and its attributes in one
// round trip; the directory fid stays as it was; a failure leaves no fid behind.
TEST_P(GoferRwTest, CreateAtLeavesTheFileOpenedAndWalkedAndTheDirectoryAsItWas) {
  {
    // (Scoped: a ClientFile must not outlive its Client, which Connect() replaces.)
    ClientFile d = Walk("dir");
    char buf[16];
    {
      auto c = d.CreateAt("made", of::kRdWr, 0640);
      ASSERT_TRUE(c.has_value()) << c.error();
      ASSERT_TRUE(c->opened.valid());
      ASSERT_TRUE(c->walked.valid());
      ASSERT_TRUE(c->opened.WriteAll("payload").has_value());
      EXPECT_EQ(ReadFile(root_dir_ / "dir" / "made"), "payload");
      ASSERT_GE(c->opened.donated_fd(), 0);
      ASSERT_EQ(pread(c->opened.donated_fd(), buf, sizeof(buf), 0), 7) << "the host file itself";
      EXPECT_EQ(c->attr.valid & p9::getattr::kBasic, p9::getattr::kBasic);
      EXPECT_TRUE(S_ISREG(c->attr.mode));
      EXPECT_EQ(c->attr.mode & 0777, 0640u & ~GetUmask());
      EXPECT_EQ(c->attr.size, 0u) << "as created";
      EXPECT_EQ(c->qid, c->attr.qid);
      // The walked fid is the new file, not opened: it stats and opens anew.
      auto a = c->walked.GetAttr();
      ASSERT_TRUE(a.has_value());
      EXPECT_EQ(a->qid, c->qid);
      EXPECT_EQ(a->size, 7u);
      EXPECT_EQ(Err(c->walked.ReadAt(buf, 0)), Errno(EBADF)) << "not opened";
      // Even after a rename and a replacement, the walked fid is the file created.
      fs::rename(root_dir_ / "dir" / "made", root_dir_ / "dir" / "moved");
      WriteFile(root_dir_ / "dir" / "made", "other");
      EXPECT_EQ(c->walked.GetAttr()->size, 7u);
      ASSERT_TRUE(c->walked.Open(of::kRdOnly).has_value());
      auto n = c->walked.ReadAt(buf, 0);
      ASSERT_TRUE(n.has_value());
      EXPECT_EQ(std::string(buf, *n), "payload");
    }
    // The directory fid is as it was: unopened, it walks and creates again.
    {
      auto again = d.CreateAt("second", of::kWrOnly, 0600, 0, /*walked=*/false);
      ASSERT_TRUE(again.has_value()) << again.error();
      EXPECT_FALSE(again->walked.valid());
    }
    EXPECT_TRUE(d.Walk({"second"}).has_value());
    EXPECT_EQ(Err(d.ReadAt(buf, 0)), Errno(EBADF)) << "the directory fid was not opened";

    // Failures (an existing name, a symlink, a hostile name, a non-directory) leave no fid:
    // the numbers the client hands out next (released ones first) are free on the server.
    ClientFile top = Walk("");
    ClientFile file = Walk("file");
    const std::vector<p9::Fid> next = NextFids(4);
    EXPECT_EQ(Err(d.CreateAt("second", of::kRdWr, 0644)), Errno(EEXIST));
    EXPECT_EQ(Err(top.CreateAt("abs_escape", of::kRdWr, 0644)), Errno(EEXIST))
        << "O_EXCL|O_NOFOLLOW: a symlink is not followed";
    EXPECT_EQ(Err(d.CreateAt("..", of::kRdWr, 0644)), Errno(EINVAL));
    EXPECT_EQ(Err(file.CreateAt("x", of::kRdWr, 0644)), Errno(ENOTDIR));
    std::vector<ClientFile> walked = ExpectFree(next, "dir");
    ASSERT_EQ(walked.size(), next.size());
    // Fids in use or repeated are refused before anything is created.
    const p9::Fid used = walked[0].fid();
    for (const auto& [newfid, pathfid] : std::vector<std::pair<p9::Fid, p9::Fid>>{
             {used, p9::kNoFid}, {7000, used}, {7000, 7000}, {d.fid(), p9::kNoFid},
             {p9::kNoFid, 7001}}) {
      EXPECT_EQ(Err(client_->Call(
                    p9::Tlcreateat{d.fid(), newfid, pathfid, "n1", of::kRdWr, 0644, 0})),
                Errno(EBADF))
          << newfid << " " << pathfid;
    }
    EXPECT_FALSE(fs::exists(root_dir_ / "dir" / "n1"));
  }
  // Only in our dialect.
  Connect(false, p9::kVersion9P2000L);
  EXPECT_EQ(Err(Walk("dir").CreateAt("plain", of::kRdWr, 0644)), Errno(ENOSYS));
  EXPECT_FALSE(fs::exists(root_dir_ / "dir" / "plain"));
}

// A root gofer makes new files the attaching user's, with the group the client names; a
// file made through an open (Tlcreate, Tlcreateat) is changed through its fd.
TEST_P(GoferRwTest, NewFilesBelongToTheAttachingUserAndTheGroupAsked) {
  if (geteuid() != 0) GTEST_SKIP() << "needs a root gofer";
  if (chown((root_dir_ / "file").c_str(), 1234, 5678) != 0) {
    GTEST_SKIP() << "the host refuses chown: " << strerror(errno);
  }
  auto owner = [&](const std::string& name) {
    struct stat st;
    EXPECT_EQ(lstat((root_dir_ / "dir" / name).c_str(), &st), 0) << name;
    return std::make_pair(st.st_uid, st.st_gid);
  };
  auto attached = ClientFile::Attach(*client_, root_dir_.string(), "u", 1234);
  ASSERT_TRUE(attached.has_value()) << attached.error();
  {
    auto d = attached->Walk({"dir"});
    ASSERT_TRUE(d.has_value());
    auto clone = d->Walk({});
    ASSERT_TRUE(clone.has_value());
    ASSERT_TRUE(clone->Create("c", of::kRdWr, 0644, 5678).has_value());
    ASSERT_TRUE(d->CreateAt("ca", of::kRdWr, 0644, 5678).has_value());
    ASSERT_TRUE(d->Mkdir("m", 0755, 5678).has_value());
    ASSERT_TRUE(d->Symlink("s", "target", 5678).has_value());
    ASSERT_TRUE(d->Mknod("p", S_IFIFO | 0644, 0, 0, 5678).has_value());
    ASSERT_TRUE(d->Mknod("r", S_IFREG | 0644, 0, 0, 5678).has_value());
  }
  for (const char* n : {"c", "ca", "m", "s", "p", "r"}) {
    EXPECT_EQ(owner(n), std::make_pair(uid_t{1234}, gid_t{5678})) << n;
  }
  // As root with root's group: the file stays as created.
  ASSERT_TRUE(Walk("dir").CreateAt("root", of::kRdWr, 0644, 0).has_value());
  EXPECT_EQ(owner("root"), std::make_pair(uid_t{0}, gid_t{0}));
}

TEST_P(GoferRwTest, DirectoryOperationsAndErrnos) {
  ClientFile r = Walk("");
  ASSERT_TRUE(r.Mkdir("m", 0755).has_value());
  EXPECT_TRUE(fs::is_directory(root_dir_ / "m"));
  EXPECT_EQ(Err(r.Mkdir("m", 0755)), Errno(EEXIST));
  ASSERT_TRUE(r.Symlink("s", "target/path").has_value());
  EXPECT_EQ(fs::read_symlink(root_dir_ / "s"), "target/path");
  ASSERT_TRUE(r.Mknod("p", S_IFIFO | 0600, 0, 0).has_value());
  EXPECT_TRUE(fs::is_fifo(root_dir_ / "p"));
  ASSERT_TRUE(r.Link(Walk("file"), "hard").has_value());
  EXPECT_EQ(fs::hard_link_count(root_dir_ / "file"), 2u);
  EXPECT_EQ(Walk("hard").GetAttr()->qid, Walk("file").GetAttr()->qid);
  EXPECT_NE(Walk("dir/inner").GetAttr()->qid, Walk("file").GetAttr()->qid);
  ASSERT_TRUE(r.RenameAt("hard", Walk("m"), "hard2").has_value());
  EXPECT_TRUE(fs::exists(root_dir_ / "m" / "hard2"));
  ClientFile inner = Walk("dir/inner");
  ASSERT_TRUE(inner.Rename(Walk("m"), "inner2").has_value());
  EXPECT_EQ(ReadFile(root_dir_ / "m" / "inner2"), "inner");
  // The fid follows its file: a second rename and a getattr still work.
  ASSERT_TRUE(inner.Rename(Walk(""), "inner3").has_value());
  EXPECT_EQ(ReadFile(root_dir_ / "inner3"), "inner");
  EXPECT_EQ(Err(r.UnlinkAt("m")), Errno(EISDIR));
  EXPECT_EQ(Err(r.UnlinkAt("m", p9::kAtRemoveDir)), Errno(ENOTEMPTY));
  EXPECT_EQ(Err(r.UnlinkAt("file", p9::kAtRemoveDir)), Errno(ENOTDIR));
  EXPECT_EQ(Err(r.UnlinkAt("nothing")), Errno(ENOENT));
  ASSERT_TRUE(Walk("m").UnlinkAt("hard2").has_value());
  ASSERT_TRUE(Walk("m").Remove().has_value());
  EXPECT_FALSE(fs::exists(root_dir_ / "m"));
  EXPECT_EQ(Err(Walk("file").Walk({"x"})), Errno(ENOTDIR));
  auto sfs = r.StatFs();
  ASSERT_TRUE(sfs.has_value());
  EXPECT_GT(sfs->bsize, 0u);
  EXPECT_EQ(sfs->namelen, 255u);
}

TEST_P(GoferRwTest, SetattrModeOwnerSizeTimes) {
  ClientFile f = Walk("file");
  namespace sa = p9::setattr;
  ASSERT_TRUE(f.SetAttr({.valid = sa::kMode, .mode = 0600}).has_value());
  ASSERT_TRUE(f.SetAttr({.valid = sa::kSize, .size = 5}).has_value());
  ASSERT_TRUE(f.SetAttr({.valid = sa::kAtime | sa::kAtimeSet | sa::kMtime | sa::kMtimeSet,
                         .atime_sec = 1000, .atime_nsec = 5, .mtime_sec = 2000, .mtime_nsec = 7})
                  .has_value());
  struct stat st;
  ASSERT_EQ(stat((root_dir_ / "file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_EQ(st.st_atim.tv_nsec, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
  ASSERT_TRUE(f.SetAttr({.valid = sa::kMtime}).has_value());  // Now.
  ASSERT_EQ(stat((root_dir_ / "file").c_str(), &st), 0);
  EXPECT_GT(st.st_mtim.tv_sec, time(nullptr) - 60);
  // Only where the host lets us chown to an arbitrary id (root outside a user namespace).
  if (chown((root_dir_ / "dir" / "inner").c_str(), 1234, 5678) == 0) {
    ASSERT_TRUE(f.SetAttr({.valid = sa::kUid | sa::kGid, .uid = 1234, .gid = 5678}).has_value());
    ASSERT_EQ(stat((root_dir_ / "file").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
  }
  EXPECT_EQ(Err(Walk("dir").SetAttr({.valid = sa::kSize, .size = 0})), Errno(EISDIR));
}

TEST_P(GoferRwTest, UnlinkedOpenFileKeepsWorking) {
  ClientFile d = Walk("");
  ASSERT_TRUE(d.Create("tmpfile", of::kRdWr, 0644).has_value());
  ASSERT_TRUE(d.WriteAll("0123456789").has_value());
  ASSERT_TRUE(Walk("").UnlinkAt("tmpfile").has_value());
  EXPECT_FALSE(fs::exists(root_dir_ / "tmpfile"));
  ASSERT_TRUE(d.WriteAll("AB", 10).has_value());
  auto all = d.ReadAll();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(*all, "0123456789AB");
  auto a = d.GetAttr();
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_EQ(a->size, 12u);
  EXPECT_EQ(a->nlink, 0u);
  ASSERT_TRUE(d.SetAttr({.valid = p9::setattr::kSize, .size = 3}).has_value());
  all = d.ReadAll();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(*all, "012");
  EXPECT_TRUE(d.Fsync().has_value());
}

TEST_P(GoferRwTest, ReaddirOffsetsAreStableAcrossCalls) {
  ClientFile m = Walk("");
  ASSERT_TRUE(m.Mkdir("many", 0755).has_value());
  for (int i = 0; i < 300; ++i) WriteFile(root_dir_ / "many" / ("f" + std::to_string(i)), "");
  ClientFile d = Walk("many");
  ASSERT_TRUE(d.Open(of::kRdOnly).has_value());
  std::multiset<std::string> seen;
  uint64_t off = 0;
  std::vector<std::pair<uint64_t, std::string>> first_pass;
  bool saw_end = false;
  for (;;) {
    auto ents = d.Readdir(off, 1000);  // A few dozen entries per call.
    ASSERT_TRUE(ents.has_value()) << ents.error();
    if (ents->empty()) break;
    ASSERT_FALSE(saw_end) << "a reply with room for another entry was not the last";
    uint64_t prev = off;  // The cookie that resumes right before each entry.
    size_t used = 0;
    for (auto& e : *ents) {
      seen.insert(e.name);
      first_pass.push_back({prev, e.name});
      prev = e.offset;
      used += p9::DirentSize(e);
    }
    // Our dialect's promise (p9.h): every Rreaddir is full but the last.
    saw_end = 1000 - used >= p9::kMaxDirentSize;
    off = ents->back().offset;
  }
  EXPECT_TRUE(saw_end);
  EXPECT_EQ(seen.size(), 302u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 302u) << "duplicates";
  // Resuming from any cookie gives the same next entry as the first pass did.
  ClientFile d2 = Walk("many");
  ASSERT_TRUE(d2.Open(of::kRdOnly).has_value());
  for (size_t i = 0; i < first_pass.size(); i += 37) {
    auto ents = d2.Readdir(first_pass[i].first, 4096);
    ASSERT_TRUE(ents.has_value());
    ASSERT_FALSE(ents->empty());
    EXPECT_EQ(ents->front().name, first_pass[i].second);
  }
  // The same from a walked fid never opened (our dialect): listed by the gofer without an
  // open file left behind, and the fid can still be opened afterwards.
  ClientFile d3 = Walk("many");
  auto fds = [] { return std::distance(fs::directory_iterator("/proc/self/fd"), {}); };
  auto before = fds();
  for (size_t i = 0; i < first_pass.size(); i += 37) {
    auto ents = d3.Readdir(first_pass[i].first, 4096);
    ASSERT_TRUE(ents.has_value()) << ents.error();
    ASSERT_FALSE(ents->empty());
    EXPECT_EQ(ents->front().name, first_pass[i].second);
  }
  EXPECT_EQ(fds(), before);
  auto all = d3.ReaddirAll();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 302u);
  EXPECT_TRUE(d3.Open(of::kRdOnly).has_value());
  // Not a directory: ENOTDIR, as from an opened fid.
  EXPECT_EQ(Walk("file").Readdir(0, 4096).error(), Errno(ENOTDIR));
}

// A listing larger than one reply continues where the last ended: every entry once, each
// with its own attributes.
TEST_P(GoferRwTest, ReaddirAttrOfALargeDirectorySpansReplies) {
  fs::create_directories(root_dir_ / "big");
  for (int i = 0; i < 3000; ++i) {
    WriteFile(root_dir_ / "big" / ("entry-with-a-longish-name-" + std::to_string(i)),
              std::string(static_cast<size_t>(i % 97), 'x'));
  }
  // 3000 entries of about 230 bytes do not fit one 64 KiB reply.
  Connect(false, p9::kVersion9P2000LExt);
  std::vector<p9::DirentAttr> all;
  uint64_t offset = 0;
  int replies = 0;
  for (;;) {
    auto r = client_->ReaddirAttr(root_.fid(), p9::kNoFid, p9::readdirattr::kAllEntries,
                                  {"big"}, offset, 65536);
    ASSERT_TRUE(r.has_value()) << r.error();
    auto& ents = r->second;
    if (ents.empty()) break;
    ++replies;
    offset = ents.back().dirent.offset;
    for (auto& e : ents) all.push_back(std::move(e));
  }
  EXPECT_GT(replies, 5);
  std::map<std::string, uint64_t> sizes;
  for (const auto& e : all) {
    if (e.dirent.name != "." && e.dirent.name != "..") sizes[e.dirent.name] = e.attr.size;
  }
  ASSERT_EQ(sizes.size(), 3000u);
  EXPECT_EQ(all.size(), 3002u) << "no entry twice";
  for (int i = 0; i < 3000; ++i) {
    EXPECT_EQ(sizes["entry-with-a-longish-name-" + std::to_string(i)], static_cast<uint64_t>(i % 97));
  }
  auto whole = root_.ListAttr({"big"}, p9::readdirattr::kAllEntries);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(whole->entries.size(), 3002u);
  // Kept: the replies after the first continue on the new fid.
  auto kept = root_.ListAttr({"big"}, 0, /*keep=*/true);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->entries.size(), 3002u);
  EXPECT_TRUE(kept->dir.valid());
}

// A listing started ahead (the sentry's prefetch) finishes as ListAttr would, first page
// small or not, and leaves a fid at the directory; one dropped unfinished leaves none.
TEST_P(GoferRwTest, AListingStartedAheadFinishesAsListAttrDoes) {
  fs::create_directories(root_dir_ / "wide" / "sub");
  for (int i = 0; i < 300; ++i) {
    WriteFile(root_dir_ / "wide" / ("a-longish-entry-name-" + std::to_string(i)), "x");
  }
  auto names = [](const std::vector<p9::DirentAttr>& ents) {
    std::set<std::string> out;
    for (const auto& e : ents) out.insert(e.dirent.name);
    return out;
  };
  auto sync = root_.ListAttr({"wide"});
  ASSERT_TRUE(sync.has_value());
  ASSERT_EQ(sync->entries.size(), 303u);
  // 4 KiB: the first reply holds a few dozen entries, the rest continue on the kept fid.
  auto ahead = root_.StartListAttr({"wide"}, 0, 4096);
  ASSERT_TRUE(ahead.has_value()) << ahead.error();
  auto l = ahead->Finish();
  ASSERT_TRUE(l.has_value()) << l.error();
  EXPECT_EQ(l->entries.size(), 303u) << "no entry lost or repeated across replies";
  EXPECT_EQ(names(l->entries), names(sync->entries));
  for (const auto& e : l->entries) {
    if (e.dirent.name == "sub") EXPECT_TRUE(S_ISDIR(e.attr.mode)) << "subdirectories' attributes";
  }
  ASSERT_TRUE(l->dir.valid());
  auto inner = l->dir.ListAttr({"sub"});
  ASSERT_TRUE(inner.has_value()) << "the fid left is at the directory";
  EXPECT_EQ(inner->entries.size(), 2u);
  EXPECT_EQ(Err(ahead->Finish()), Errno(EINVAL)) << "once";
  EXPECT_EQ(Err(root_.StartListAttr({"wide"}, 0, 64)), Errno(EINVAL)) << "no room for an entry";
  EXPECT_EQ(Err(root_.StartListAttr({"nope"}, 0, 4096)->Finish()), Errno(ENOENT));

  // Dropped unfinished: each waits for its reply and clunks the fid it left. The client
  // hands the same fid numbers out next (released ones first); walks to them would fail if
  // the server still held them.
  const std::vector<p9::Fid> next = NextFids(5);
  {
    std::vector<ClientFile::ListingAhead> dropped;
    for (int i = 0; i < 5; ++i) {
      auto a = root_.StartListAttr({"wide"}, 0, 4096);
      ASSERT_TRUE(a.has_value());
      dropped.push_back(std::move(*a));
    }
  }
  // The Rclunks are read by later calls; a fid is reused only once its Rclunk is in.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(root_.GetAttr().has_value());
  ExpectFree(next, "wide");
}

TEST_P(GoferRwTest, XattrsReachTheHost) {
  if (setxattr((root_dir_ / "file").c_str(), "user.probe", "1", 1, 0) != 0) {
    GTEST_SKIP() << "host fs has no user xattrs: " << strerror(errno);
  }
  ClientFile f = Walk("file");
  ASSERT_TRUE(f.SetXattr("user.k", "value").has_value());
  char buf[16];
  ssize_t n = getxattr((root_dir_ / "file").c_str(), "user.k", buf, sizeof(buf));
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::string(buf, 5), "value");
  EXPECT_EQ(*f.GetXattr("user.k"), "value");
  EXPECT_THAT(*f.ListXattr(), ::testing::IsSupersetOf({"user.k", "user.probe"}));
  EXPECT_EQ(Err(f.SetXattr("user.k", "x", p9::kXattrCreate)), Errno(EEXIST));
  ASSERT_TRUE(f.RemoveXattr("user.k").has_value());
  EXPECT_EQ(Err(f.GetXattr("user.k")), Errno(ENODATA));
}

TEST_P(GoferRwTest, PosixLocksUseHostOfdLocks) {
  ClientFile a = Walk("file");
  ClientFile b = Walk("file");
  ASSERT_TRUE(a.Open(of::kRdWr).has_value());
  ASSERT_TRUE(b.Open(of::kRdWr).has_value());
  EXPECT_EQ(*a.Lock(p9::lock::kTypeWrLck, 0, 0, 10, 1), p9::lock::kStatusSuccess);
  EXPECT_EQ(*b.Lock(p9::lock::kTypeWrLck, 0, 5, 10, 2), p9::lock::kStatusBlocked);
  auto g = b.GetLock(p9::lock::kTypeWrLck, 0, 100, 2);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->type, p9::lock::kTypeWrLck);
  EXPECT_EQ(g->length, 10u);
  EXPECT_EQ(*a.Lock(p9::lock::kTypeUnLck, 0, 0, 10, 1), p9::lock::kStatusSuccess);
  EXPECT_EQ(*b.Lock(p9::lock::kTypeWrLck, 0, 5, 10, 2), p9::lock::kStatusSuccess);
}

TEST_P(GoferRwTest, DonatedFdReadsTheSameFile) {
  {
    // (Scoped: a ClientFile must not outlive its Client, which Connect() replaces.)
    ClientFile f = Walk("file");
    ASSERT_TRUE(f.Open(of::kRdOnly).has_value());
    ASSERT_GE(f.donated_fd(), 0);
    char buf[32];
    ssize_t n = pread(f.donated_fd(), buf, sizeof(buf), 6);
    ASSERT_EQ(n, 5);
    EXPECT_EQ(std::string(buf, 5), "world");
  }
  // A plain 9P2000.L session never sees an fd.
  Connect(false, p9::kVersion9P2000L);
  ClientFile g = Walk("file");
  ASSERT_TRUE(g.Open(of::kRdOnly).has_value());
  EXPECT_LT(g.donated_fd(), 0);
}

TEST_P(GoferRwTest, DisconnectReleasesEveryHostFd) {
  size_t before = OpenFdCount();
  std::vector<ClientFile> open;
  for (int i = 0; i < 50; ++i) {
    ClientFile f = Walk("dir/inner");
    ASSERT_TRUE(f.Open(of::kRdOnly).has_value());
    open.push_back(std::move(f));
  }
  // Each open holds an O_PATH fd, an opened fd and (here) a donated fd.
  EXPECT_GE(OpenFdCount(), before + 100);
  client_->Shutdown();
  open.clear();
  root_ = ClientFile();
  client_.reset();
  ASSERT_TRUE(server_->WaitNoConnections(std::chrono::seconds(10)));
  // Before: the root fid's fds and our client end are counted; both are gone now.
  EXPECT_LE(OpenFdCount(), before);
}

TEST_P(GoferRwTest, WalkedFidsCostOneHostFdPerFile) {
  // A sandbox keeps a fid per dentry it caches; the gofer must not spend more than one host
  // fd on each (clones share it, siblings share their parent's).
  ClientFile d = Walk("dir");
  for (int i = 0; i < 100; ++i) WriteFile(root_dir_ / "dir" / ("f" + std::to_string(i)), "x");
  size_t before = OpenFdCount();
  std::vector<ClientFile> fids;
  for (int i = 0; i < 100; ++i) {
    // Half walked from "dir", half from the root through "dir": the intermediate directory
    // is shared too.
    auto f = i % 2 ? d.Walk({"f" + std::to_string(i)}) : root_.Walk({"dir", "f" + std::to_string(i)});
    ASSERT_TRUE(f.has_value()) << f.error();
    fids.push_back(std::move(*f));
    auto c = fids.back().Walk({});  // A clone: no fd at all.
    ASSERT_TRUE(c.has_value());
    fids.push_back(std::move(*c));
  }
  EXPECT_LE(OpenFdCount(), before + 100 + 2);
  // Renames and removals through a fid whose parent fd is shared still act on the right
  // names.
  ASSERT_TRUE(fids[0].Rename(d, "renamed").has_value());
  EXPECT_TRUE(fs::exists(root_dir_ / "dir" / "renamed"));
  EXPECT_FALSE(fs::exists(root_dir_ / "dir" / "f0"));
  ASSERT_TRUE(fids[2].Remove().has_value());
  EXPECT_FALSE(fs::exists(root_dir_ / "dir" / "f1"));
  EXPECT_TRUE(fs::exists(root_dir_ / "dir" / "f2"));
}

// Treaddirattr: entries with what lstat says of them, of the fid's directory or of one
// reached by names; every entry's with kAllEntries, else the subdirectories' only; "." and
// ".." carry no attributes (".." of the root is outside the tree); symlinks are described,
// not followed.
TEST_P(GoferTest, ReaddirAttrCarriesWhatLstatSays) {
  auto check = [&](const std::vector<p9::DirentAttr>& ents, const fs::path& dir,
                   bool all) -> std::set<std::string> {
    std::set<std::string> names;
    for (const p9::DirentAttr& e : ents) {
      SCOPED_TRACE(e.dirent.name);
      EXPECT_TRUE(names.insert(e.dirent.name).second) << "listed once";
      if (e.dirent.name == "." || e.dirent.name == "..") {
        EXPECT_EQ(e.attr.valid, 0u);
        continue;
      }
      struct stat st;
      if (lstat((dir / e.dirent.name).c_str(), &st) != 0) {
        ADD_FAILURE() << "listed but not on the host";
        continue;
      }
      if (!all && !S_ISDIR(st.st_mode)) {
        EXPECT_EQ(e.attr.valid, 0u) << "only subdirectories carry attributes";
        continue;
      }
      EXPECT_EQ(e.attr.valid & p9::getattr::kBasic, p9::getattr::kBasic);
      EXPECT_EQ(e.attr.mode, st.st_mode);
      EXPECT_EQ(e.attr.size, static_cast<uint64_t>(st.st_size));
      EXPECT_EQ(e.attr.nlink, st.st_nlink);
      EXPECT_EQ(e.attr.mtime_sec, static_cast<uint64_t>(st.st_mtim.tv_sec));
      EXPECT_EQ(e.attr.mtime_nsec, static_cast<uint64_t>(st.st_mtim.tv_nsec));
      // The same identity a walk gives.
      EXPECT_EQ(e.attr.qid, Walk((dir == root_dir_ ? "" : "dir/") + e.dirent.name).GetAttr()->qid);
    }
    return names;
  };
  auto root = root_.ListAttr({}, p9::readdirattr::kAllEntries);
  ASSERT_TRUE(root.has_value()) << root.error();
  std::set<std::string> names = check(root->entries, root_dir_, true);
  EXPECT_TRUE(names.contains("file") && names.contains("link") && names.contains("abs_escape"));
  EXPECT_EQ(root->qid, p9::Qid{}) << "no names: no qid";
  EXPECT_FALSE(root->dir.valid());
  auto dirs_only = root_.ListAttr();
  ASSERT_TRUE(dirs_only.has_value());
  EXPECT_EQ(check(dirs_only->entries, root_dir_, false), names);
  auto dir = root_.ListAttr({"dir"}, p9::readdirattr::kAllEntries);
  ASSERT_TRUE(dir.has_value()) << dir.error();
  EXPECT_EQ(check(dir->entries, root_dir_ / "dir", true),
            (std::set<std::string>{".", "..", "inner", "sub"}));
  EXPECT_EQ(dir->qid, Walk("dir").GetAttr()->qid);
  // An opened directory fid lists the same.
  ClientFile d = Walk("dir");
  ASSERT_TRUE(d.Open(of::kRdOnly | of::kDirectory).has_value());
  auto opened = d.ListAttr({}, p9::readdirattr::kAllEntries);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->entries.size(), dir->entries.size());
}

// With newfid, the listing leaves a fid at the directory listed, as a walk would; only if
// the listing succeeded, and never over a fid in use.
TEST_P(GoferTest, ReaddirAttrLeavesNewfidAtTheDirectory) {
  auto kept = root_.ListAttr({"dir"}, 0, /*keep=*/true);
  ASSERT_TRUE(kept.has_value()) << kept.error();
  ASSERT_TRUE(kept->dir.valid());
  EXPECT_EQ(kept->dir.GetAttr()->qid, Walk("dir").GetAttr()->qid);
  auto inner = kept->dir.ListAttr({"sub"});
  ASSERT_TRUE(inner.has_value()) << inner.error();
  EXPECT_EQ(inner->entries.size(), 2u) << "dir/sub holds only . and ..";
  p9::Fid nf = client_->NewFid();
  auto bad = client_->ReaddirAttr(root_.fid(), nf, 0, {"missing"}, 0, 4096);
  EXPECT_EQ(Err(bad), Errno(ENOENT));
  bad = client_->ReaddirAttr(root_.fid(), nf, 0, {"file"}, 0, 4096);
  EXPECT_EQ(Err(bad), Errno(ENOTDIR));
  // The failed listings left nothing at nf: a walk may take it.
  auto w = client_->Call(p9::Twalk{root_.fid(), nf, {}});
  ASSERT_TRUE(w.has_value()) << w.error();
  EXPECT_EQ(Err(client_->ReaddirAttr(root_.fid(), nf, 0, {"dir"}, 0, 4096)), Errno(EBADF))
      << "newfid in use";
  ClientFile owned(*client_, nf);  // Clunks it.
}

TEST_P(GoferTest, ReaddirAttrRefusesWhatAWalkRefuses) {
  for (std::string bad : {std::string(".."), std::string("."), std::string(""),
                          std::string("dir/sub"), std::string("x\0y", 3)}) {
    EXPECT_EQ(Err(root_.ListAttr({bad})), Errno(EINVAL)) << bad;
  }
  EXPECT_EQ(Err(root_.ListAttr({"abs_escape"})), Errno(ENOTDIR)) << "a symlink";
  EXPECT_EQ(Err(root_.ListAttr({"rel_escape", "secret"})), Errno(ENOENT));
  EXPECT_EQ(Err(root_.ListAttr({"file"})), Errno(ENOTDIR));
  EXPECT_EQ(Err(root_.ListAttr({"missing"})), Errno(ENOENT));
  EXPECT_EQ(Err(Walk("file").ListAttr()), Errno(ENOTDIR));
  // Listings without newfid make no fids and keep no host fds.
  size_t before = OpenFdCount();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(root_.ListAttr({"dir", "sub"}).has_value());
  EXPECT_LE(OpenFdCount(), before);
  // Plain 9P2000.L has no such message.
  Connect(read_only(), p9::kVersion9P2000L);
  EXPECT_EQ(Err(root_.ListAttr()), Errno(ENOSYS));
}

// ---- Escapes -----------------------------------------------------------------------------

TEST_P(GoferTest, SymlinksAreNeverFollowed) {
  // The symlink itself is reachable; nothing through it.
  EXPECT_EQ(*RawWalk({"abs_escape"}), 1u);
  EXPECT_EQ(*RawWalk({"abs_escape", "etc"}), 1u);
  EXPECT_EQ(*RawWalk({"rel_escape", "secret"}), 1u);
  EXPECT_EQ(Err(Walk("abs_escape").Open(of::kRdOnly)), Errno(ELOOP));
  EXPECT_EQ(Err(Walk("rel_escape").Open(of::kRdOnly)), Errno(ELOOP));
  // Its attributes are the link's, not the target's.
  EXPECT_EQ(Walk("abs_escape").GetAttr()->mode & S_IFMT, static_cast<uint32_t>(S_IFLNK));
}

TEST_P(GoferTest, HostileNamesAreRejected) {
  for (std::string bad : {std::string(".."), std::string("."), std::string(""),
                          std::string("dir/inner"), std::string("../outside"),
                          std::string("x\0y", 3), std::string("/etc")}) {
    EXPECT_EQ(Err(RawWalk({bad})), Errno(EINVAL)) << bad;
    EXPECT_EQ(Err(RawWalk({"dir", bad})), Errno(EINVAL)) << bad;
    EXPECT_EQ(Err(Walk("").Mkdir(bad, 0755)), Errno(EINVAL)) << bad;
  }
  EXPECT_EQ(Err(ClientFile::Attach(*client_, outside_.string())), Errno(ENOENT));
  EXPECT_EQ(Err(ClientFile::Attach(*client_, "/")).value(), 0)
      << "\"/\" names the first (only) attach point, not the host root";
  auto r = ClientFile::Attach(*client_, "/");
  ASSERT_TRUE(r.has_value());
  auto names = r->Walk({"outside"});
  EXPECT_EQ(Err(names), Errno(ENOENT));
}

TEST_P(GoferTest, SymlinkedParentDirectoryIsNotCrossed) {
  if (read_only()) GTEST_SKIP() << "needs host-side changes under the tree";
  fs::create_symlink(outside_, root_dir_ / "parent_link");
  EXPECT_EQ(*RawWalk({"parent_link", "secret"}), 1u);
  // A fid held on a directory that is then swapped for a symlink keeps naming the old
  // directory's inode, never the new target.
  ClientFile d = Walk("dir");
  fs::rename(root_dir_ / "dir", root_dir_ / "dir_old");
  fs::create_symlink(outside_, root_dir_ / "dir");
  WriteFile(outside_ / "inner", "OUTSIDE");
  auto f = d.Walk({"inner"});
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(f->Open(of::kRdOnly).has_value());
  EXPECT_EQ(*f->ReadAll(), "inner");
}

TEST_P(GoferTest, RenameRaceNeverReachesOutside) {
  if (read_only()) GTEST_SKIP() << "the race swaps host directories";
  fs::create_directories(root_dir_ / "race");
  WriteFile(root_dir_ / "race" / "secret", "inside file");
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    while (!stop) {
      fs::rename(root_dir_ / "race", root_dir_ / "race_tmp");
      fs::create_symlink(outside_, root_dir_ / "race");
      fs::remove(root_dir_ / "race");
      fs::rename(root_dir_ / "race_tmp", root_dir_ / "race");
    }
  });
  int reached = 0, escaped = 0;
  for (int i = 0; i < 2000; ++i) {
    auto f = root_.Walk({"race", "secret"});
    if (!f.has_value()) continue;
    auto a = f->GetAttr();
    if (!a.has_value()) continue;
    ++reached;
    if (a->size == 6 /* "SECRET" */) ++escaped;
    if (f->Open(of::kRdOnly).has_value()) {
      auto data = f->ReadAll();
      if (data.has_value() && *data == "SECRET") ++escaped;
    }
  }
  stop = true;
  swapper.join();
  EXPECT_EQ(escaped, 0);
  EXPECT_GT(reached, 0) << "the walk never succeeded: the race did not run";
}

TEST_P(GoferTest, GetattrReportsBtimeWhenTheHostHasIt) {
  auto a = Walk("file").GetAttr(p9::getattr::kAll);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->valid & p9::getattr::kBasic, p9::getattr::kBasic);
  EXPECT_EQ(a->valid & (p9::getattr::kGen | p9::getattr::kDataVersion), 0u)
      << "never claim what the host cannot give";
  struct statx sx;
  ASSERT_EQ(statx(AT_FDCWD, (root_dir_ / "file").c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME, &sx),
            0);
  if (sx.stx_mask & STATX_BTIME) {
    EXPECT_NE(a->valid & p9::getattr::kBtime, 0u);
    EXPECT_EQ(a->btime_sec, static_cast<uint64_t>(sx.stx_btime.tv_sec));
  }
}

TEST_P(GoferTest, NoLinkOrRenameAcrossAttachPoints) {
  if (read_only()) GTEST_SKIP() << "rw only";
  fs::create_directories(base_ / "other");
  std::ofstream(base_ / "other" / "o.txt") << "other";
  auto qids = std::make_shared<QidMap>();
  auto a = AttachPoint::Open(root_dir_.string(), false, qids);
  auto b = AttachPoint::Open((base_ / "other").string(), false, qids);
  ASSERT_TRUE(a.has_value() && b.has_value());
  HostAttacher two({*a, *b});
  p9::Server server(two, p9::ServerOptions{.threads = 1});
  auto pair = p9::SocketPair();
  server.AddConnection(std::move(pair->second));
  auto c = p9::Client::Create(std::move(pair->first));
  ASSERT_TRUE(c.has_value());
  auto ra = ClientFile::Attach(**c, root_dir_.string());
  auto rb = ClientFile::Attach(**c, (base_ / "other").string());
  ASSERT_TRUE(ra.has_value() && rb.has_value());
  EXPECT_NE(ra->GetAttr()->qid.path, rb->GetAttr()->qid.path);
  auto o = rb->WalkPath("o.txt");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(Err(ra->Link(*o, "stolen")), Errno(EXDEV));
  EXPECT_EQ(Err(rb->RenameAt("o.txt", *ra, "stolen")), Errno(EXDEV));
  EXPECT_EQ(Err(o->Rename(*ra, "stolen")), Errno(EXDEV));
  EXPECT_FALSE(fs::exists(root_dir_ / "stolen"));
  // A hard link made on the host *inside* the tree is the same inode, by design; one to a
  // file outside cannot be made by a client that holds no fid outside.
  EXPECT_EQ(Err(ClientFile::Attach(**c, outside_.string())), Errno(ENOENT));
}

TEST_P(GoferTest, AttachPointOverASingleFile) {
  auto ap = AttachPoint::Open((root_dir_ / "file").string(), read_only(), nullptr);
  ASSERT_TRUE(ap.has_value());
  auto one = HostAttacher::ForOne(*ap);
  p9::Server server(*one, p9::ServerOptions{.threads = 1});
  auto pair = p9::SocketPair();
  server.AddConnection(std::move(pair->second));
  auto c = p9::Client::Create(std::move(pair->first));
  ASSERT_TRUE(c.has_value());
  auto f = ClientFile::Attach(**c, "anything");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(Err(f->Walk({"x"})), Errno(ENOTDIR));
  ASSERT_TRUE(f->Open(of::kRdOnly).has_value());
  EXPECT_EQ(*f->ReadAll(), "hello world");
}

}  // namespace
}  // namespace gofer
