// The client against the real server (in process, over a real socketpair) with the scripted
// backend, and against hand-written misbehaving servers for the failure paths.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/server.h"
#include "p9/testing/fake_fs.h"
#include "p9/transport.h"

namespace p9 {
namespace {

using ::p9::testing::FakeAttacher;
using ::p9::testing::FakeState;
using ::testing::Contains;

std::pair<UniqueFd, UniqueFd> Pair() {
  int sv[2];
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }

class ClientServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Connect(kVersion9P2000LExt, kDefaultMsize); }
  void Connect(const char* version, uint32_t msize) {
    root_ = ClientFile();
    client_.reset();
    auto [c, s] = Pair();
    server_.AddConnection(std::move(s));
    auto cl = Client::Create(std::move(c), msize, version);
    ASSERT_TRUE(cl.has_value()) << cl.error();
    client_ = std::move(*cl);
    auto root = ClientFile::Attach(*client_, "");
    ASSERT_TRUE(root.has_value()) << root.error();
    root_ = std::move(*root);
  }
  void TearDown() override {
    state_->OpenGate();
    root_ = ClientFile();
    client_.reset();
    EXPECT_TRUE(server_.WaitNoConnections(std::chrono::seconds(10)));
    EXPECT_EQ(state_->live, 0);
  }

  std::shared_ptr<FakeState> state_ = std::make_shared<FakeState>();
  FakeAttacher attacher_{state_};
  Server server_{attacher_, ServerOptions{.threads = 4}};
  std::unique_ptr<Client> client_;
  ClientFile root_;
};

TEST_F(ClientServerTest, NegotiatesExtensionAndMsize) {
  EXPECT_EQ(client_->version(), kVersion9P2000LExt);
  EXPECT_TRUE(client_->fd_donation());
  EXPECT_EQ(client_->msize(), kDefaultMsize);
  Connect(kVersion9P2000L, 8192);
  EXPECT_EQ(client_->version(), kVersion9P2000L);
  EXPECT_FALSE(client_->fd_donation());
  EXPECT_EQ(client_->msize(), 8192u);
}

// A client of an older release offers a lower level and keeps it: what it may use and
// what the server serves.
TEST_F(ClientServerTest, AnOlderClientKeepsItsLevel) {
  Connect("9P2000.L.cxx.2", kDefaultMsize);
  EXPECT_EQ(client_->version(), "9P2000.L.cxx.2");
  EXPECT_EQ(client_->dialect(), Dialect::kWalkGetattr);
  EXPECT_TRUE(client_->fd_donation());
  EXPECT_TRUE(client_->Has(Dialect::kWalkGetattr));
  EXPECT_FALSE(client_->Has(Dialect::kReaddirAttr));
  EXPECT_TRUE(root_.WalkGetAttr({"da"}).has_value()) << "level 2 has Twalkgetattr";
  EXPECT_EQ(Err(root_.ListAttr()), Errno(ENOSYS)) << "Treaddirattr is level 3";
}

TEST_F(ClientServerTest, WalkGetattrReadWrite) {
  auto f = root_.WalkPath("da/db/file");
  ASSERT_TRUE(f.has_value()) << f.error();
  auto a = f->GetAttr();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size, std::string("/da/db/file").size());
  ASSERT_TRUE(f->Open(open_flags::kRdWr).has_value());
  auto all = f->ReadAll();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(*all, "/da/db/file/da/db/file/da/db/file");
  char buf[4];
  auto n = f->ReadAt(buf, 1);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string(buf, *n), "da/d");
  EXPECT_TRUE(f->WriteAll("hello").has_value());
}

TEST_F(ClientServerTest, LongWalksAreSplitAndPartialWalksAreENOENT) {
  std::vector<std::string> names(40, "dsub");
  auto f = root_.Walk(names);
  ASSERT_TRUE(f.has_value()) << f.error();
  auto link = f->Readlink();
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(link->size(), 40 * 5u);
  names[20] = "missing";
  EXPECT_EQ(Err(root_.Walk(names)), Errno(ENOENT));
  EXPECT_EQ(Err(root_.WalkPath("a/../b")), Errno(EINVAL));
}

TEST_F(ClientServerTest, ErrnoTravelsEndToEnd) {
  EXPECT_EQ(Err(root_.WalkPath("missing")), Errno(ENOENT));
  EXPECT_EQ(Err(root_.UnlinkAt("missing")), Errno(ENOENT));
  EXPECT_EQ(Err(root_.GetXattr("user.none")), Errno(ENODATA));
}

TEST_F(ClientServerTest, ReaddirAllFollowsOffsets) {
  auto d = root_.WalkPath("dir");
  ASSERT_TRUE(d.has_value());
  ASSERT_TRUE(d->Open(open_flags::kRdOnly).has_value());
  auto ents = d->ReaddirAll();
  ASSERT_TRUE(ents.has_value()) << ents.error();
  ASSERT_EQ(ents->size(), 100u);
  EXPECT_EQ(ents->back().name, "entry99");
}

TEST_F(ClientServerTest, XattrsRoundTrip) {
  ASSERT_TRUE(root_.SetXattr("user.a", "1234", kXattrCreate).has_value());
  EXPECT_EQ(Err(root_.SetXattr("user.a", "x", kXattrCreate)), Errno(EEXIST));
  auto v = root_.GetXattr("user.a");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, "1234");
  auto names = root_.ListXattr();
  ASSERT_TRUE(names.has_value());
  EXPECT_THAT(*names, Contains("user.a"));
  ASSERT_TRUE(root_.RemoveXattr("user.a").has_value());
  EXPECT_EQ(Err(root_.GetXattr("user.a")), Errno(ENODATA));
}

TEST_F(ClientServerTest, DonatedFdArrivesWithOpen) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  state_->pipe_read_fd = p[0];
  auto f = root_.WalkPath("file");
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(f->Open(open_flags::kRdOnly).has_value());
  ASSERT_GE(f->donated_fd(), 0);
  ASSERT_EQ(write(p[1], "q", 1), 1);
  char c;
  EXPECT_EQ(read(f->donated_fd(), &c, 1), 1);
  EXPECT_EQ(c, 'q');
  state_->pipe_read_fd = -1;
  close(p[0]);
  close(p[1]);
}

// Twalkgetattr: the walk and the attributes of its end in one round trip, all or nothing;
// a plain 9P2000.L session does not have it.
TEST_F(ClientServerTest, WalkGetAttrInOneRoundTrip) {
  int live = state_->live;
  {
    auto r = root_.WalkGetAttr({"d1", "d2", "file"});
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->second.size, std::string("/d1/d2/file").size());
    EXPECT_TRUE(S_ISREG(r->second.mode));
    EXPECT_EQ(r->second.qid, r->first.GetAttr()->qid) << "the attributes are the new fid's";
    auto d = root_.WalkGetAttr({"d1"});
    ASSERT_TRUE(d.has_value());
    EXPECT_TRUE(S_ISDIR(d->second.mode));
    auto clone = root_.WalkGetAttr({});
    ASSERT_TRUE(clone.has_value());
    EXPECT_TRUE(S_ISDIR(clone->second.mode));
  }
  EXPECT_EQ(Err(root_.WalkGetAttr({"missing"})), Errno(ENOENT));
  EXPECT_EQ(Err(root_.WalkGetAttr({"d1", "missing"})), Errno(ENOENT)) << "partial";
  EXPECT_EQ(Err(root_.WalkGetAttr(std::vector<std::string>(17, "d"))), Errno(E2BIG));
  // Raw partial walk: the qids walked, no attributes, no new fid.
  auto p = client_->Call(Twalkgetattr{root_.fid(), 900, getattr::kBasic, {"d1", "missing"}});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->wqids.size(), 1u);
  EXPECT_EQ(p->attr.valid, 0u);
  EXPECT_EQ(Err(client_->Call(Tclunk{900})), Errno(EBADF));
  // Everything walked above is released (the clunks are asynchronous: give the server time).
  ASSERT_TRUE(root_.GetAttr().has_value());
  for (int i = 0; i < 100 && state_->live != live; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(state_->live, live);

  Connect(kVersion9P2000L, kDefaultMsize);
  EXPECT_EQ(Err(root_.WalkGetAttr({"d1"})), Errno(ENOSYS));
}

// In our dialect a walked directory fid reads without Tlopen; plain 9P2000.L refuses.
TEST_F(ClientServerTest, ReaddirOfUnopenedDirectoryFid) {
  {
    auto d = root_.Walk({"dir"});
    ASSERT_TRUE(d.has_value());
    auto ents = d->Readdir(0, 4096);
    ASSERT_TRUE(ents.has_value()) << ents.error();
    auto opened = root_.Walk({"dir"});
    ASSERT_TRUE(opened->Open(open_flags::kRdOnly).has_value());
    auto want = opened->Readdir(0, 4096);
    ASSERT_TRUE(want.has_value());
    EXPECT_EQ(*ents, *want);
    EXPECT_FALSE(ents->empty());
  }
  Connect(kVersion9P2000L, kDefaultMsize);  // The fids above are gone with their client.
  auto plain = root_.Walk({"dir"});
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(Err(plain->Readdir(0, 4096)), Errno(EBADF));
}

// Several threads drop thousands of fids at once (the FUSE frontend's FORGET of a big tree)
// while another keeps calling: the unanswered replies stay bounded, so neither side ever
// blocks sending to a peer that is itself blocked sending.
TEST_F(ClientServerTest, ConcurrentClunkStormsNeverStall) {
  constexpr int kThreads = 4, kPerThread = 3000;
  std::vector<std::vector<ClientFile>> held(kThreads);
  for (auto& h : held) {
    for (int i = 0; i < kPerThread; ++i) {
      auto f = root_.Walk({"a"});
      ASSERT_TRUE(f.has_value());
      h.push_back(std::move(*f));
    }
  }
  auto done = std::async(std::launch::async, [&] {
    std::atomic<bool> stop{false};
    std::thread caller([&] {
      while (!stop) ASSERT_TRUE(root_.GetAttr().has_value());
    });
    std::vector<std::thread> ts;
    for (auto& h : held) ts.emplace_back([&h] { h.clear(); });
    for (auto& t : ts) t.join();
    stop = true;
    caller.join();
  });
  ASSERT_EQ(done.wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << "clunks stalled the connection";
  EXPECT_TRUE(root_.GetAttr().has_value());
}

// A dropped ClientFile clunks without waiting; its number comes back once the Rclunk has
// been read (by whichever call leads next), never before.
TEST_F(ClientServerTest, FidsAreReused) {
  Fid first;
  {
    auto f = root_.Walk({});
    ASSERT_TRUE(f.has_value());
    first = f->fid();
  }
  auto g = root_.Walk({});
  ASSERT_TRUE(g.has_value());
  EXPECT_NE(g->fid(), first) << "reused before the server answered the clunk";
  bool reused = false;
  for (int i = 0; i < 10 && !reused; ++i) {
    auto h = root_.Walk({});
    ASSERT_TRUE(h.has_value());
    reused = h->fid() == first;
  }
  EXPECT_TRUE(reused);
}

// A burst of clunks with no other call to read their replies: the clunking thread reads
// them itself past a bound, nothing stalls, and every number is reused.
TEST_F(ClientServerTest, ClunkBurstDrainsAndReusesFids) {
  constexpr int kN = 1000;
  std::vector<ClientFile> held;
  for (int i = 0; i < kN; ++i) {
    auto f = root_.Walk({"a"});
    ASSERT_TRUE(f.has_value());
    held.push_back(std::move(*f));
  }
  held.clear();  // kN Tclunk, no waiting.
  Fid max = 0;
  for (int i = 0; i < kN; ++i) {
    auto f = root_.Walk({"a"});
    ASSERT_TRUE(f.has_value()) << f.error();
    max = std::max(max, f->fid());
    held.push_back(std::move(*f));
  }
  EXPECT_LT(max, static_cast<Fid>(kN + 100)) << "clunked numbers were not reused";
}

// Many threads, many requests in flight on one connection; each reply must reach its own
// caller (the content of a file names it).
TEST_F(ClientServerTest, ConcurrentCallsAreMatchedByTag) {
  constexpr int kThreads = 16, kIters = 300;
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        std::string name = "f" + std::to_string(t) + "_" + std::to_string(i % 7);
        auto f = root_.Walk({name});
        if (!f.has_value()) {
          ++bad;
          continue;
        }
        if (!f->Open(open_flags::kRdOnly).has_value()) {
          ++bad;
          continue;
        }
        char buf[64];
        auto n = f->ReadAt(buf, 0);
        std::string want = "/" + name;
        if (!n.has_value() || std::string(buf, std::min(*n, want.size())) != want) ++bad;
        auto a = f->GetAttr();
        if (!a.has_value() || a->size != want.size()) ++bad;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad, 0);
  // The last clunks are asynchronous: a round trip, then a little time for the server.
  ASSERT_TRUE(root_.GetAttr().has_value());
  for (int i = 0; i < 100 && state_->live != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(state_->live, 1) << "only the root fid should remain";
}

// Small frames of concurrent callers are combined into one sendmsg; a frame too big to copy
// waits for its turn. Interleaved bytes would be a garbled frame: the server would close.
TEST_F(ClientServerTest, CombinedSendsNeverInterleaveFrames) {
  constexpr int kThreads = 8, kIters = 200;
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      auto f = root_.Walk({"w" + std::to_string(t)});
      if (!f.has_value() || !f->Open(open_flags::kRdWr).has_value()) {
        ++bad;
        return;
      }
      std::string big(64 * 1024 + t, static_cast<char>('a' + t));
      for (int i = 0; i < kIters; ++i) {
        auto w = client_->Write(f->fid(), 0, Bytes(big.data(), big.size()));
        if (!w.has_value() || *w != big.size()) ++bad;
        if (!f->GetAttr().has_value()) ++bad;
        if (!root_.GetAttr().has_value()) ++bad;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad, 0);
  EXPECT_TRUE(root_.GetAttr().has_value());
}

// The server answers a flushed request before Rflush, so a call cancelled while the backend
// still works on it returns that reply; the connection stays healthy either way.
TEST_F(ClientServerTest, StopSendsTflushAndTheConnectionSurvives) {
  auto f = root_.WalkPath("slow");
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(f->Open(open_flags::kRdOnly).has_value());
  state_->CloseGate();
  std::stop_source stop;
  auto fut = std::async(std::launch::async, [&] {
    char buf[8];
    return client_->Read(f->fid(), 0, buf, stop.get_token());
  });
  ASSERT_TRUE(state_->WaitReading(1));
  stop.request_stop();
  EXPECT_EQ(fut.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "the reply and Rflush cannot come before the backend returns";
  state_->OpenGate();
  auto r = fut.get();
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(*r, 8u);  // "/slow/sl"
  EXPECT_TRUE(root_.GetAttr().has_value());
}

TEST_F(ClientServerTest, ClientGoneReleasesEverythingOnTheServer) {
  std::vector<ClientFile> files;
  for (int i = 0; i < 100; ++i) {
    auto f = root_.WalkPath("x" + std::to_string(i));
    ASSERT_TRUE(f.has_value());
    files.push_back(std::move(*f));
  }
  EXPECT_EQ(state_->live, 101);
  client_->Shutdown();  // Fids are not clunked: the connection just dies.
  files.clear();
  root_ = ClientFile();
  EXPECT_TRUE(server_.WaitNoConnections(std::chrono::seconds(10)));
  EXPECT_EQ(state_->live, 0);
}

TEST_F(ClientServerTest, CallsAfterShutdownFailFast) {
  client_->Shutdown();
  EXPECT_EQ(Err(root_.GetAttr()), Errno(ECONNRESET));
}

// ---- Against hand-written servers --------------------------------------------------------

// A server thread on the far end of a socketpair: answers Tversion, then runs `script`.
class ScriptedPeer {
 public:
  using Script = std::function<void(int fd, FrameReader& reader)>;
  ScriptedPeer(Script script, uint32_t msize = kDefaultMsize,
               std::string version = kVersion9P2000LExt) {
    auto [c, s] = Pair();
    client_fd_ = std::move(c);
    server_fd_ = std::move(s);
    thread_ = std::thread([this, script, msize, version] {
      FrameReader r(server_fd_.get(), kMaxMsize);
      auto v = r.Read();
      if (!v.has_value()) return;
      (void)SendFrame(server_fd_.get(), EncodeFrame(kNoTag, Rversion{msize, version}));
      script(server_fd_.get(), r);
    });
  }
  ~ScriptedPeer() {
    thread_.join();
  }
  UniqueFd TakeClientFd() { return std::move(client_fd_); }
  void CloseServer() { ::shutdown(server_fd_.get(), SHUT_RDWR); }

 private:
  UniqueFd client_fd_, server_fd_;
  std::thread thread_;
};

// An older server answers a lower level of our dialect: the client takes it. A higher level
// than offered, or a malformed one, is a broken server.
TEST(ClientVersionTest, ALowerLevelIsTakenAHigherOneRefused) {
  {
    ScriptedPeer peer([](int, FrameReader&) {}, kDefaultMsize, "9P2000.L.cxx.3");
    auto c = Client::Create(peer.TakeClientFd());
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_EQ((*c)->dialect(), Dialect::kReaddirAttr);
    EXPECT_TRUE((*c)->fd_donation());
    EXPECT_FALSE((*c)->Has(Dialect::kFusedOpen));
  }
  for (const char* answer : {"9P2000.L.cxx.3", "9P2000.L.cxx.03", "9P2000.L.cxx.0"}) {
    SCOPED_TRACE(answer);
    ScriptedPeer peer([](int, FrameReader&) {}, kDefaultMsize, answer);
    EXPECT_EQ(Err(Client::Create(peer.TakeClientFd(), kDefaultMsize, "9P2000.L.cxx.2")),
              Errno(EPROTONOSUPPORT));
  }
  {
    // Plain 9P2000.L offered: only plain 9P2000.L is an answer.
    ScriptedPeer peer([](int, FrameReader&) {}, kDefaultMsize, "9P2000.L.cxx.1");
    EXPECT_EQ(Err(Client::Create(peer.TakeClientFd(), kDefaultMsize, kVersion9P2000L)),
              Errno(EPROTONOSUPPORT));
  }
}

TEST(ClientVersionTest, SmallerMsizeIsAcceptedUnknownIsRejected) {
  {
    ScriptedPeer peer([](int, FrameReader&) {}, 65536, kVersion9P2000L);
    auto c = Client::Create(peer.TakeClientFd(), kDefaultMsize, kVersion9P2000LExt);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ((*c)->msize(), 65536u);
    EXPECT_FALSE((*c)->fd_donation());
  }
  {
    // Our extension is refused, then plain 9P2000.L too.
    ScriptedPeer peer(
        [](int fd, FrameReader& r) {
          auto v = r.Read();
          if (!v.has_value()) return;
          auto tv = DecodeBody<Tversion>(v->body_view());
          EXPECT_EQ(tv->version, kVersion9P2000L) << "fallback after a refused extension";
          (void)SendFrame(fd, EncodeFrame(kNoTag, Rversion{65536, "unknown"}));
        },
        65536, "unknown");
    EXPECT_EQ(Err(Client::Create(peer.TakeClientFd())), Errno(EPROTONOSUPPORT));
  }
  {
    // diod's way of refusing a version: Rlerror. The client retries with plain 9P2000.L.
    auto [c, s] = Pair();
    std::thread peer([fd = s.get()] {
      FrameReader r(fd, kMaxMsize);
      auto v1 = r.Read();
      (void)SendFrame(fd, EncodeFrame(kNoTag, Rlerror{EIO}));
      auto v2 = r.Read();
      auto tv = DecodeBody<Tversion>(v2->body_view());
      EXPECT_EQ(tv->version, kVersion9P2000L);
      (void)SendFrame(fd, EncodeFrame(kNoTag, Rversion{65536, kVersion9P2000L}));
    });
    auto cl = Client::Create(std::move(c));
    peer.join();
    ASSERT_TRUE(cl.has_value()) << cl.error();
    EXPECT_EQ((*cl)->version(), kVersion9P2000L);
    EXPECT_EQ((*cl)->dialect(), Dialect::kPlain) << "the level refused is not kept";
    EXPECT_FALSE((*cl)->fd_donation());
  }
  {
    ScriptedPeer peer([](int, FrameReader&) {}, 2u << 20, kVersion9P2000L);
    EXPECT_EQ(Err(Client::Create(peer.TakeClientFd(), 1u << 20)), Errno(EIO))
        << "a server may not raise msize";
  }
}

// Answers requests in reverse order of arrival: replies out of order must still match.
TEST(ClientScriptedTest, OutOfOrderRepliesMatchTheirCallers) {
  constexpr int kN = 8;
  ScriptedPeer peer([](int fd, FrameReader& r) {
    std::vector<InFrame> reqs;
    for (int i = 0; i < kN; ++i) reqs.push_back(std::move(*r.Read()));
    for (int i = kN - 1; i >= 0; --i) {
      auto g = DecodeBody<Tgetattr>(reqs[i].body_view());
      Rgetattr a;
      a.size = g->fid;  // Echo the fid so the caller can check it got its own reply.
      (void)SendFrame(fd, EncodeFrame(reqs[i].header.tag, a));
    }
    (void)r.Read();  // Until the client goes.
  });
  auto c = Client::Create(peer.TakeClientFd());
  ASSERT_TRUE(c.has_value());
  std::vector<std::future<bool>> fs;
  for (int i = 0; i < kN; ++i) {
    fs.push_back(std::async(std::launch::async, [&, i] {
      auto a = (*c)->Call(Tgetattr{static_cast<Fid>(100 + i)});
      return a.has_value() && a->size == 100u + i;
    }));
  }
  for (auto& f : fs) EXPECT_TRUE(f.get());
  (*c)->Shutdown();
}

TEST(ClientScriptedTest, RreadLandsInTheCallersBuffer) {
  ScriptedPeer peer([](int fd, FrameReader& r) {
    auto f = r.Read();
    auto t = DecodeBody<Tread>(f->body_view());
    std::string data(t->count, 'z');
    data[0] = 'a';
    (void)SendFrame(fd, EncodeFrame(f->header.tag, Rread{Bytes(data.data(), data.size())}));
    (void)r.Read();
  });
  auto c = Client::Create(peer.TakeClientFd());
  ASSERT_TRUE(c.has_value());
  std::vector<char> buf(300000, 0);
  auto n = (*c)->Read(1, 0, buf);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, buf.size());
  EXPECT_EQ(buf[0], 'a');
  EXPECT_EQ(buf.back(), 'z');
  (*c)->Shutdown();
}

// A peer that gathers the requests arriving together (within 300 ms of the first), answers
// them in reverse order with `answer(fd, request)`, and records the largest such batch: 1
// when a client sends one request at a time.
struct BatchingPeer {
  using Answer = std::function<void(int fd, const InFrame& request)>;
  BatchingPeer(Answer answer, uint32_t msize)
      : peer([this, answer](int fd, FrameReader& r) {
          for (;;) {
            std::vector<InFrame> batch;
            auto f = r.Read();
            if (!f.has_value()) return;
            batch.push_back(std::move(*f));
            pollfd p{fd, POLLIN, 0};
            while (r.HasFrame() || poll(&p, 1, 300) == 1) {
              auto more = r.Read();
              if (!more.has_value()) return;
              batch.push_back(std::move(*more));
            }
            max_batch = std::max<size_t>(max_batch, batch.size());
            for (auto it = batch.rbegin(); it != batch.rend(); ++it) answer(fd, *it);
          }
        }, msize) {}
  std::atomic<size_t> max_batch{0};
  ScriptedPeer peer;
};

// Treads of a virtual file of `size` bytes (byte at o: o * 7 % 251); reads at or past
// `fail_at` are Rlerror EIO.
struct ReadPeer : BatchingPeer {
  static char ByteAt(uint64_t o) { return static_cast<char>(o * 7 % 251); }
  ReadPeer(uint64_t size, uint64_t fail_at, uint32_t msize)
      : BatchingPeer(
            [size, fail_at](int fd, const InFrame& f) {
              auto t = DecodeBody<Tread>(f.body_view());
              if (!t.has_value() || t->offset >= fail_at) {
                (void)SendFrame(fd, EncodeFrame(f.header.tag, Rlerror{EIO}));
                return;
              }
              std::string data;
              for (uint64_t o = t->offset; o < std::min(size, t->offset + t->count); ++o) {
                data.push_back(ByteAt(o));
              }
              (void)SendFrame(fd, EncodeFrame(f.header.tag, Rread{Bytes(data.data(), data.size())}));
            },
            msize) {}
};

// ReadFull: several Treads in flight, answered in any order, assembled in order; short only
// at the end of the file; the first Tread's error is the call's, a later one's a short count.
TEST(ClientScriptedTest, ReadFullKeepsSeveralTreadsInFlight) {
  constexpr uint32_t kMsize = 16384;
  const size_t chunk = kMsize - kIoHeaderSize;
  auto expect_bytes = [](const std::vector<char>& buf, uint64_t off, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (buf[i] != ReadPeer::ByteAt(off + i)) {
        ADD_FAILURE() << "byte " << i << " of a read at " << off;
        return;
      }
    }
  };
  {
    ReadPeer rp(1000000, UINT64_MAX, kMsize);
    auto c = Client::Create(rp.peer.TakeClientFd(), kMsize);
    ASSERT_TRUE(c.has_value());
    std::vector<char> buf(10 * chunk + 123);
    auto n = (*c)->ReadFull(1, 5, buf);
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, buf.size());
    expect_bytes(buf, 5, buf.size());
    EXPECT_EQ(rp.max_batch.load(), Client::kPipelineDepth);
    // Past the end of the file: short, and what there is.
    n = (*c)->ReadFull(1, 1000000 - 3 * chunk - 7, buf);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 3 * chunk + 7);
    expect_bytes(buf, 1000000 - 3 * chunk - 7, *n);
    n = (*c)->ReadFull(1, 1000000, buf);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 0u);
    (*c)->Shutdown();
  }
  {
    ReadPeer rp(1000000, 2 * chunk, kMsize);
    auto c = Client::Create(rp.peer.TakeClientFd(), kMsize);
    ASSERT_TRUE(c.has_value());
    std::vector<char> buf(6 * chunk);
    auto n = (*c)->ReadFull(1, 0, buf);  // Chunks 2..5 fail: the first two count.
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, 2 * chunk);
    expect_bytes(buf, 0, *n);
    n = (*c)->ReadFull(1, 2 * chunk, buf);  // The first fails: its error.
    EXPECT_EQ(Err(n), Errno(EIO));
    // The connection is fine afterwards.
    n = (*c)->ReadFull(1, 100, std::span<char>(buf.data(), chunk + 1));
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, chunk + 1);
    (*c)->Shutdown();
  }
}

// Twrites into a file the peer keeps: a write at `fail_at` is Rlerror EIO, one at `short_at`
// is written and acknowledged one byte short. The file is made before the peer's thread.
struct WritePeer {
  struct Store {
    std::mutex mu;
    std::string file;  // Guarded by mu.
  };
  WritePeer(uint64_t fail_at, uint64_t short_at, uint32_t msize)
      : batching(
            [store = store, fail_at, short_at](int fd, const InFrame& f) {
              auto t = DecodeBody<Twrite>(f.body_view());
              if (!t.has_value() || t->offset == fail_at) {
                (void)SendFrame(fd, EncodeFrame(f.header.tag, Rlerror{EIO}));
                return;
              }
              size_t n = t->data.size() - (t->offset == short_at ? 1 : 0);
              {
                std::lock_guard l(store->mu);
                std::string& file = store->file;
                if (file.size() < t->offset + n) file.resize(t->offset + n, '\0');
                std::memcpy(file.data() + t->offset, t->data.data(), n);
              }
              (void)SendFrame(fd, EncodeFrame(f.header.tag, Rwrite{static_cast<uint32_t>(n)}));
            },
            msize) {}
  std::string File() {
    std::lock_guard l(store->mu);
    return store->file;
  }
  std::shared_ptr<Store> store = std::make_shared<Store>();  // Before batching: see above.
  BatchingPeer batching;
};

// WriteFull: several Twrites in flight, each landing at its own offset; the count stops at
// the first short or failed piece, and the first piece's error is the call's.
TEST(ClientScriptedTest, WriteFullKeepsSeveralTwritesInFlight) {
  constexpr uint32_t kMsize = 16384;
  const size_t chunk = kMsize - kIoHeaderSize;
  std::string data(10 * chunk + 321, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13 % 251);
  {
    WritePeer wp(UINT64_MAX, UINT64_MAX, kMsize);
    auto c = Client::Create(wp.batching.peer.TakeClientFd(), kMsize);
    ASSERT_TRUE(c.has_value());
    auto n = (*c)->WriteFull(1, 7, Bytes(data.data(), data.size()));
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, data.size());
    EXPECT_EQ(wp.batching.max_batch.load(), Client::kPipelineDepth);
    EXPECT_TRUE(wp.File() == std::string(7, '\0') + data);
    (*c)->Shutdown();
  }
  {
    WritePeer wp(/*fail_at=*/3 * chunk, /*short_at=*/UINT64_MAX, kMsize);
    auto c = Client::Create(wp.batching.peer.TakeClientFd(), kMsize);
    ASSERT_TRUE(c.has_value());
    auto n = (*c)->WriteFull(1, 0, Bytes(data.data(), data.size()));
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, 3 * chunk);
    EXPECT_EQ(Err((*c)->WriteFull(1, 3 * chunk, Bytes(data.data(), 2 * chunk))), Errno(EIO));
    (*c)->Shutdown();
  }
  {
    WritePeer wp(UINT64_MAX, /*short_at=*/chunk, kMsize);
    auto c = Client::Create(wp.batching.peer.TakeClientFd(), kMsize);
    ASSERT_TRUE(c.has_value());
    auto n = (*c)->WriteFull(1, 0, Bytes(data.data(), data.size()));
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, 2 * chunk - 1);
    (*c)->Shutdown();
  }
}

TEST(ClientScriptedTest, RflushWithoutReplyIsECANCELED) {
  ScriptedPeer peer([](int fd, FrameReader& r) {
    auto req = r.Read();    // The read: never answered.
    auto flush = r.Read();  // Its Tflush.
    auto tf = DecodeBody<Tflush>(flush->body_view());
    if (tf.has_value() && tf->oldtag == req->header.tag) {
      (void)SendFrame(fd, EncodeFrame(flush->header.tag, Rflush{}));
    }
    // The old tag is free again: a new call may use it.
    auto next = r.Read();
    (void)SendFrame(fd, EncodeFrame(next->header.tag, Rclunk{}));
    (void)r.Read();
  });
  auto c = Client::Create(peer.TakeClientFd());
  ASSERT_TRUE(c.has_value());
  std::stop_source stop;
  auto fut = std::async(std::launch::async, [&] {
    char buf[8];
    return (*c)->Read(1, 0, buf, stop.get_token());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop.request_stop();
  EXPECT_EQ(Err(fut.get()), Errno(ECANCELED));
  EXPECT_TRUE((*c)->Call(Tclunk{1}).has_value());
  (*c)->Shutdown();
}

TEST(ClientScriptedTest, ServerDeathFailsEveryWaiter) {
  std::promise<void> all_sent;
  ScriptedPeer peer([&](int fd, FrameReader& r) {
    for (int i = 0; i < 6; ++i) (void)r.Read();
    all_sent.set_value();
    ::shutdown(fd, SHUT_RDWR);  // Dies with six requests unanswered.
  });
  auto c = Client::Create(peer.TakeClientFd());
  ASSERT_TRUE(c.has_value());
  std::vector<std::future<Errno>> fs;
  for (int i = 0; i < 6; ++i) {
    fs.push_back(std::async(std::launch::async, [&] { return Err((*c)->Call(Tgetattr{1})); }));
  }
  all_sent.get_future().wait();
  for (auto& f : fs) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "hung";
    EXPECT_EQ(f.get(), Errno(ECONNRESET));
  }
  EXPECT_EQ(Err((*c)->Call(Tgetattr{1})), Errno(ECONNRESET));
}

TEST(ClientScriptedTest, GarbageReplyFailsEveryWaiterWithEIO) {
  std::promise<void> all_sent;
  ScriptedPeer peer([&](int fd, FrameReader& r) {
    std::vector<InFrame> reqs;
    for (int i = 0; i < 4; ++i) reqs.push_back(std::move(*r.Read()));
    all_sent.set_value();
    // A reply of the wrong type for the first tag.
    (void)SendFrame(fd, EncodeFrame(reqs[0].header.tag, Rclunk{}));
    (void)r.Read();
  });
  auto c = Client::Create(peer.TakeClientFd());
  ASSERT_TRUE(c.has_value());
  std::vector<std::future<Errno>> fs;
  for (int i = 0; i < 4; ++i) {
    fs.push_back(std::async(std::launch::async, [&] { return Err((*c)->Call(Tgetattr{1})); }));
  }
  all_sent.get_future().wait();
  for (auto& f : fs) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "hung";
    EXPECT_EQ(f.get(), Errno(EIO));
  }
}

TEST(ClientScriptedTest, ReplyForUnknownTagIsEIO) {
  ScriptedPeer peer([](int fd, FrameReader& r) {
    auto f = r.Read();
    (void)SendFrame(fd, EncodeFrame(static_cast<Tag>(f->header.tag + 1000), Rclunk{}));
    (void)r.Read();
  });
  auto c = Client::Create(peer.TakeClientFd());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(Err((*c)->Call(Tclunk{1})), Errno(EIO));
}

TEST(ClientScriptedTest, OversizedFrameIsEIO) {
  ScriptedPeer peer(
      [](int fd, FrameReader& r) {
        auto f = r.Read();
        std::vector<char> bytes = {0, 0, 0, 0x10, static_cast<char>(MsgType::kRclunk), 0, 0};
        std::memcpy(&bytes[5], &f->header.tag, 2);
        (void)!write(fd, bytes.data(), bytes.size());
        (void)r.Read();
      },
      8192);
  auto c = Client::Create(peer.TakeClientFd(), 8192);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(Err((*c)->Call(Tclunk{1})), Errno(EIO));
}

}  // namespace
}  // namespace p9
