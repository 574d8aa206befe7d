// Protocol-level tests of the server framework: raw frames over a real socketpair against a
// scripted backend, so each rule of server.h (version, tags, flush, limits, fid lifetime,
// fd donation) is checked byte for byte without the client library in the way.
#include "p9/server.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "p9/messages.h"
#include "p9/testing/fake_fs.h"
#include "p9/transport.h"

namespace p9 {
namespace {

using ::p9::testing::FakeAttacher;
using ::p9::testing::FakeState;

// The client end of a socketpair whose other end the server serves.
class RawConn {
 public:
  explicit RawConn(Server& server) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fd_ = UniqueFd(sv[0]);
    server.AddConnection(UniqueFd(sv[1]));
    reader_ = std::make_unique<FrameReader>(fd_.get(), kMaxMsize);
  }
  template <typename M>
  void Send(Tag tag, const M& m) {
    ASSERT_TRUE(SendFrame(fd_.get(), EncodeFrame(tag, m)).has_value());
  }
  void SendRaw(const std::vector<char>& bytes) {
    ASSERT_EQ(write(fd_.get(), bytes.data(), bytes.size()), ssize_t(bytes.size()));
  }
  // The next frame, or an error (ECONNRESET when the server closed). Fails the test after 10s.
  // (Frames may already sit in the reader's buffer, so try it before polling.)
  Result<InFrame> Next() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      P9_ASSIGN_OR_RETURN(std::optional<InFrame> f, reader_->TryRead());
      if (f) return std::move(*f);
      pollfd p{fd_.get(), POLLIN, 0};
      if (std::chrono::steady_clock::now() > deadline || poll(&p, 1, 10000) != 1) {
        ADD_FAILURE() << "no reply within 10s";
        return Errno(ETIMEDOUT);
      }
    }
  }
  // True if nothing arrives within `ms`.
  bool Quiet(int ms) {
    auto f = reader_->TryRead();
    if (!f.has_value() || f->has_value()) return false;
    pollfd p{fd_.get(), POLLIN, 0};
    return poll(&p, 1, ms) == 0;
  }
  // Sends and returns the decoded reply R, or the Rlerror errno.
  template <typename T, typename R = typename T::Response>
  Result<R> Call(const T& req, Tag tag = 1, std::vector<UniqueFd>* fds = nullptr) {
    Send(tag, req);
    P9_ASSIGN_OR_RETURN(InFrame f, Next());
    last_ = std::move(f);
    EXPECT_EQ(last_.header.tag, tag);
    if (fds) *fds = std::move(last_.fds);
    return Decode<R>(last_);
  }
  template <typename R>
  static Result<R> Decode(const InFrame& f) {
    if (f.header.type == static_cast<uint8_t>(MsgType::kRlerror)) {
      auto e = DecodeBody<Rlerror>(f.body_view());
      if (!e.has_value()) return Errno(EBADMSG);
      return Errno(static_cast<int>(e->ecode));
    }
    if (f.header.type != static_cast<uint8_t>(R::kType)) return Errno(EBADMSG);
    return DecodeBody<R>(f.body_view());
  }
  void Version(const char* version = kVersion9P2000L) {
    auto r = Call(Tversion{1u << 20, version}, kNoTag);
    ASSERT_TRUE(r.has_value());
  }
  void Attach(Fid fid = 1) {
    auto r = Call(Tattach{fid, kNoFid, "root", "", kNoUid});
    ASSERT_TRUE(r.has_value()) << r.error();
  }
  int fd() { return fd_.get(); }
  void Close() { fd_.reset(); }

 private:
  UniqueFd fd_;
  std::unique_ptr<FrameReader> reader_;
  InFrame last_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeServer({}); }
  void MakeServer(ServerOptions o) {
    conn_.reset();
    server_.reset();
    server_ = std::make_unique<Server>(attacher_, o);
    conn_ = std::make_unique<RawConn>(*server_);
  }
  void TearDown() override {
    state_->OpenGate();
    conn_.reset();
    server_.reset();
    EXPECT_EQ(state_->live, 0) << "backend files leaked";
  }
  Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }
  // Version, attach fid 1, open "slow" as fid 2, close the gate: reads of fid 2 then block
  // in the backend until OpenGate().
  void OpenSlowWithGateClosed() {
    conn_->Version();
    conn_->Attach(1);
    ASSERT_TRUE(conn_->Call(Twalk{1, 2, {"slow"}}).has_value());
    ASSERT_TRUE(conn_->Call(Tlopen{2, open_flags::kRdOnly}).has_value());
    state_->CloseGate();
  }
  // The tags of the next n replies (an empty set if one does not come).
  std::set<Tag> NextTags(int n) {
    std::set<Tag> tags;
    for (int i = 0; i < n; ++i) {
      auto f = conn_->Next();
      if (!f.has_value()) return {};
      tags.insert(f->header.tag);
    }
    return tags;
  }

  std::shared_ptr<FakeState> state_ = std::make_shared<FakeState>();
  FakeAttacher attacher_{state_};
  std::unique_ptr<Server> server_;
  std::unique_ptr<RawConn> conn_;
};

TEST_F(ServerTest, VersionNegotiatesTheSmallerMsize) {
  MakeServer({.max_msize = 1u << 20});
  auto r = conn_->Call(Tversion{4u << 20, "9P2000.L"}, kNoTag);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->msize, 1u << 20);
  EXPECT_EQ(r->version, "9P2000.L");
  r = conn_->Call(Tversion{8192, "9P2000.L"}, kNoTag);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->msize, 8192u);
}

TEST_F(ServerTest, VersionEchoesOnlyKnownVersions) {
  auto r = conn_->Call(Tversion{1u << 20, kVersion9P2000LExt}, kNoTag);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version, kVersion9P2000LExt);
  r = conn_->Call(Tversion{1u << 20, "9P2000.u"}, kNoTag);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version, "unknown");
  // Our extension offered to a server that does not allow donation falls back to plain .L.
  MakeServer({.max_dialect = Dialect::kPlain});
  r = conn_->Call(Tversion{1u << 20, kVersion9P2000LExt}, kNoTag);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version, "9P2000.L");
}

// A client of another release offers another level: the server answers the lower of its
// level and ours, and nothing else of 9P2000.L... is taken for our dialect.
TEST_F(ServerTest, VersionAnswersTheLowerLevelOfOurDialect) {
  const std::pair<const char*, const char*> cases[] = {
      {"9P2000.L.cxx.1", "9P2000.L.cxx.1"},
      {"9P2000.L.cxx.3", "9P2000.L.cxx.3"},
      {"9P2000.L.cxx.9", kVersion9P2000LExt},  // A newer client gets all we have.
      {"9P2000.L.cxx.0", "9P2000.L"},
      {"9P2000.L.cxx.x", "9P2000.L"},
      {"9P2000.L.other", "9P2000.L"},
  };
  for (auto [offered, answered] : cases) {
    auto r = conn_->Call(Tversion{1u << 20, offered}, kNoTag);
    ASSERT_TRUE(r.has_value()) << offered;
    EXPECT_EQ(r->version, answered) << offered;
  }
  // A server held to an older level answers it to a newer client.
  MakeServer({.max_dialect = Dialect::kWalkGetattr});
  auto r = conn_->Call(Tversion{1u << 20, kVersion9P2000LExt}, kNoTag);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version, "9P2000.L.cxx.2");
  r = conn_->Call(Tversion{1u << 20, "9P2000.L.cxx.1"}, kNoTag);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version, "9P2000.L.cxx.1");
}

// Each message of the dialect is answered ENOSYS below its level, as a plain server answers
// it, and served from its level on (here: refused for its unknown fid, after the level).
TEST_F(ServerTest, DialectMessagesAreServedFromTheirLevelOn) {
  constexpr Fid kUnknown = 99;
  auto errno_of = [&](unsigned which) -> Errno {
    switch (which) {
      case 0: return Err(conn_->Call(Twalkgetattr{kUnknown, 100, getattr::kBasic, {}}));
      case 1: return Err(conn_->Call(Treaddirattr{kUnknown, kNoFid, 0, {}, 0, 8192}));
      case 2: return Err(conn_->Call(Tlcreateat{kUnknown, 100, 101, "f", 0, 0644, 0}));
      default: return Err(conn_->Call(Twalkopen{kUnknown, 100, 0, {}}));
    }
  };
  const Dialect needs[] = {Dialect::kWalkGetattr, Dialect::kReaddirAttr, Dialect::kFusedOpen,
                           Dialect::kFusedOpen};
  for (unsigned level = 0; level <= static_cast<unsigned>(kDialect); ++level) {
    const Dialect d = static_cast<Dialect>(level);
    SCOPED_TRACE(DialectVersion(d));
    conn_->Version(DialectVersion(d).c_str());
    for (unsigned m = 0; m < 4; ++m) {
      EXPECT_EQ(errno_of(m), AtLeast(d, needs[m]) ? Errno(EBADF) : Errno(ENOSYS)) << m;
    }
  }
}

// Level 2 lists a walked directory fid that was never opened; level 1 does not.
TEST_F(ServerTest, UnopenedDirectoriesAreListedFromLevelTwo) {
  for (Dialect d : {Dialect::kFdDonation, Dialect::kWalkGetattr}) {
    SCOPED_TRACE(DialectVersion(d));
    MakeServer({});
    conn_->Version(DialectVersion(d).c_str());
    conn_->Attach(1);
    ASSERT_TRUE(conn_->Call(Twalk{1, 2, {"d"}}).has_value());
    auto r = conn_->Call(Treaddir{2, 0, 4096});
    if (d == Dialect::kFdDonation) {
      EXPECT_FALSE(r.has_value()) << "a level 1 session lists only opened fids";
      continue;
    }
    ASSERT_TRUE(r.has_value()) << r.error();
    auto ents = DecodeDirents(r->data);
    ASSERT_TRUE(ents.has_value());
    ASSERT_FALSE(ents->empty());
    EXPECT_EQ(ents->front().name, "entry0");
  }
}

TEST_F(ServerTest, TinyMsizeIsEINVAL) {
  EXPECT_EQ(Err(conn_->Call(Tversion{100, "9P2000.L"}, kNoTag)), Errno(EINVAL));
}

TEST_F(ServerTest, RequestBeforeVersionIsEPROTO) {
  EXPECT_EQ(Err(conn_->Call(Tattach{1, kNoFid, "", "", kNoUid})), Errno(EPROTO));
}

TEST_F(ServerTest, FrameLargerThanMsizeClosesConnection) {
  conn_->Version();
  // msize is 1 MiB; announce 2 MiB.
  std::vector<char> bytes = {0, 0, 0x20, 0, static_cast<char>(MsgType::kTclunk), 1, 0};
  conn_->SendRaw(bytes);
  EXPECT_EQ(Err(conn_->Next()), Errno(ECONNRESET));
}

TEST_F(ServerTest, AttachWalkGetattr) {
  conn_->Version();
  conn_->Attach(1);
  auto w = conn_->Call(Twalk{1, 2, {"a", "dsub", "f"}});
  ASSERT_TRUE(w.has_value()) << w.error();
  ASSERT_EQ(w->wqids.size(), 3u);
  EXPECT_EQ(w->wqids[1].type, kQtDir);
  auto a = conn_->Call(Tgetattr{2, getattr::kBasic});
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_EQ(a->qid, w->wqids[2]);
  EXPECT_EQ(a->size, std::string("/a/dsub/f").size());
}

TEST_F(ServerTest, AttachWithAfidOrUsedFidFails) {
  conn_->Version();
  EXPECT_EQ(Err(conn_->Call(Tattach{1, 7, "", "", kNoUid})), Errno(EINVAL));
  conn_->Attach(1);
  EXPECT_EQ(Err(conn_->Call(Tattach{1, kNoFid, "", "", kNoUid})), Errno(EBADF));
  EXPECT_EQ(Err(conn_->Call(Tattach{2, kNoFid, "", "nope", kNoUid})), Errno(ENOENT));
}

TEST_F(ServerTest, PartialWalkCreatesNoFid) {
  conn_->Version();
  conn_->Attach(1);
  auto w = conn_->Call(Twalk{1, 2, {"a", "missing", "c"}});
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->wqids.size(), 1u);
  EXPECT_EQ(Err(conn_->Call(Tgetattr{2})), Errno(EBADF));
  EXPECT_EQ(Err(conn_->Call(Twalk{1, 2, {"missing"}})), Errno(ENOENT));
}

TEST_F(ServerTest, WalkToSameFidReplacesIt) {
  conn_->Version();
  conn_->Attach(1);
  ASSERT_TRUE(conn_->Call(Twalk{1, 1, {"x"}}).has_value());
  auto r = conn_->Call(Treadlink{1});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->target, "/x");
  EXPECT_EQ(Err(conn_->Call(Twalk{1, 1, {"x"}})), Errno(0));
}

TEST_F(ServerTest, WalkIntoUsedFidIsEBADF) {
  conn_->Version();
  conn_->Attach(1);
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {}}).has_value());
  EXPECT_EQ(Err(conn_->Call(Twalk{1, 2, {"y"}})), Errno(EBADF));
}

TEST_F(ServerTest, BadNamesAreRejectedBeforeTheBackend) {
  conn_->Version();
  conn_->Attach(1);
  for (std::string bad : {std::string(), std::string("."), std::string(".."),
                          std::string("a/b"), std::string("a\0b", 3)}) {
    EXPECT_EQ(Err(conn_->Call(Twalk{1, 2, {bad}})), Errno(EINVAL)) << bad;
    EXPECT_EQ(Err(conn_->Call(Tmkdir{1, bad, 0755, 0})), Errno(EINVAL)) << bad;
    EXPECT_EQ(Err(conn_->Call(Tlcreate{1, bad, 0, 0644, 0})), Errno(EINVAL)) << bad;
    EXPECT_EQ(Err(conn_->Call(Tunlinkat{1, bad, 0})), Errno(EINVAL)) << bad;
    EXPECT_EQ(Err(conn_->Call(Trenameat{1, "ok", 1, bad})), Errno(EINVAL)) << bad;
  }
  EXPECT_EQ(Err(conn_->Call(Twalk{1, 2, {std::string(256, 'n')}})), Errno(ENAMETOOLONG));
  EXPECT_EQ(Err(conn_->Call(Twalk{1, 2, {std::string(255, 'n')}})), Errno(0));
}

TEST_F(ServerTest, UnknownFidIsEBADF) {
  conn_->Version();
  EXPECT_EQ(Err(conn_->Call(Tgetattr{42})), Errno(EBADF));
  EXPECT_EQ(Err(conn_->Call(Tclunk{42})), Errno(EBADF));
  EXPECT_EQ(Err(conn_->Call(Tread{42, 0, 10})), Errno(EBADF));
}

TEST_F(ServerTest, IoNeedsAnOpenFidWithTheRightMode) {
  conn_->Version();
  conn_->Attach(1);
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {"f"}}).has_value());
  EXPECT_EQ(Err(conn_->Call(Tread{2, 0, 10})), Errno(EBADF));
  ASSERT_TRUE(conn_->Call(Tlopen{2, open_flags::kRdOnly}).has_value());
  EXPECT_EQ(Err(conn_->Call(Tlopen{2, open_flags::kRdOnly})), Errno(EINVAL));
  char data[] = "hi";
  EXPECT_EQ(Err(conn_->Call(Twrite{2, 0, Bytes(data, 2)})), Errno(EBADF));
  auto r = conn_->Call(Tread{2, 0, 4});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::string(r->data.data(), r->data.size()), "/f/f");
}

TEST_F(ServerTest, ReadIsCappedByMsize) {
  ASSERT_TRUE(conn_->Call(Tversion{4096, "9P2000.L"}, kNoTag).has_value());
  conn_->Attach(1);
  std::string longname(200, 'x');
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {longname, longname, longname, longname, longname,
                                       longname, longname}}).has_value());
  ASSERT_TRUE(conn_->Call(Tlopen{2, open_flags::kRdOnly}).has_value());
  auto r = conn_->Call(Tread{2, 0, 1u << 20});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->data.size(), 4096 - kRreadHeaderSize);
}

TEST_F(ServerTest, MalformedBodyIsEINVALAndConnectionSurvives) {
  conn_->Version();
  // Tgetattr with a 2-byte body.
  conn_->SendRaw({9, 0, 0, 0, static_cast<char>(MsgType::kTgetattr), 5, 0, 1, 2});
  auto f = conn_->Next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->header.tag, 5);
  EXPECT_EQ(Err(RawConn::Decode<Rgetattr>(*f)), Errno(EINVAL));
  conn_->Attach(1);  // Still served.
}

TEST_F(ServerTest, UnknownOrReplyTypeIsENOSYS) {
  conn_->Version();
  for (uint8_t type : {uint8_t{200}, static_cast<uint8_t>(MsgType::kRread),
                       static_cast<uint8_t>(MsgType::kTauth)}) {
    std::vector<char> bytes = {7, 0, 0, 0, static_cast<char>(type), 3, 0};
    if (type == static_cast<uint8_t>(MsgType::kTauth)) {
      OutFrame fr = EncodeFrame(3, Tauth{9, "u", "a", kNoUid});
      bytes = fr.head;
    }
    conn_->SendRaw(bytes);
    auto f = conn_->Next();
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(Err(RawConn::Decode<Rattach>(*f)), Errno(ENOSYS)) << int(type);
  }
}

TEST_F(ServerTest, FlushIsAnsweredAfterTheFlushedReply) {
  ASSERT_NO_FATAL_FAILURE(OpenSlowWithGateClosed());
  conn_->Send(10, Tread{2, 0, 5});
  ASSERT_TRUE(state_->WaitReading(1));
  conn_->Send(11, Tflush{10});
  EXPECT_TRUE(conn_->Quiet(100)) << "Rflush must wait for the read";
  state_->OpenGate();
  auto f1 = conn_->Next();
  ASSERT_TRUE(f1.has_value());
  EXPECT_EQ(f1->header.tag, 10);
  EXPECT_EQ(f1->header.type, static_cast<uint8_t>(MsgType::kRread));
  auto f2 = conn_->Next();
  ASSERT_TRUE(f2.has_value());
  EXPECT_EQ(f2->header.tag, 11);
  EXPECT_EQ(f2->header.type, static_cast<uint8_t>(MsgType::kRflush));
}

TEST_F(ServerTest, FlushOfIdleTagIsAnsweredAtOnce) {
  conn_->Version();
  EXPECT_TRUE(conn_->Call(Tflush{77}, 3).has_value());
}

TEST_F(ServerTest, TagReusedInFlightClosesConnection) {
  ASSERT_NO_FATAL_FAILURE(OpenSlowWithGateClosed());
  conn_->Send(10, Tread{2, 0, 5});
  ASSERT_TRUE(state_->WaitReading(1));
  conn_->Send(10, Tgetattr{1});
  // The violation closes the connection while the read is still blocked: no reply at all.
  EXPECT_EQ(Err(conn_->Next()), Errno(ECONNRESET));
  EXPECT_EQ(server_->connection_count(), 1u) << "the blocked read still holds the connection";
  state_->OpenGate();
  EXPECT_TRUE(server_->WaitNoConnections(std::chrono::seconds(10)));
}

TEST_F(ServerTest, InflightLimitAppliesBackpressure) {
  MakeServer({.max_inflight = 2});
  ASSERT_NO_FATAL_FAILURE(OpenSlowWithGateClosed());
  for (Tag t = 10; t < 15; ++t) conn_->Send(t, Tread{2, 0, 5});
  ASSERT_TRUE(state_->WaitReading(2));
  EXPECT_TRUE(conn_->Quiet(100));
  {
    std::lock_guard l(state_->mu);
    EXPECT_EQ(state_->reading, 2) << "more than max_inflight requests reached the backend";
  }
  state_->OpenGate();
  EXPECT_EQ(NextTags(5), (std::set<Tag>{10, 11, 12, 13, 14}));
  EXPECT_LE(state_->max_reading, 2);
}

TEST_F(ServerTest, FidLimitIsEMFILE) {
  MakeServer({.max_fids = 3});
  conn_->Version();
  conn_->Attach(1);
  EXPECT_TRUE(conn_->Call(Twalk{1, 2, {}}).has_value());
  EXPECT_TRUE(conn_->Call(Twalk{1, 3, {}}).has_value());
  EXPECT_EQ(Err(conn_->Call(Twalk{1, 4, {}})), Errno(EMFILE));
  EXPECT_TRUE(conn_->Call(Tclunk{3}).has_value());
  EXPECT_TRUE(conn_->Call(Twalk{1, 4, {}}).has_value());
}

TEST_F(ServerTest, PeerDeathReleasesEveryFid) {
  conn_->Version();
  conn_->Attach(1);
  for (Fid f = 2; f < 200; ++f) {
    auto w = conn_->Call(Twalk{1, f, {"x"}});
    ASSERT_TRUE(w.has_value()) << f << " " << w.error();
  }
  ASSERT_TRUE(conn_->Call(Twalk{1, 500, {"slow"}}).has_value());
  ASSERT_TRUE(conn_->Call(Tlopen{500, open_flags::kRdOnly}).has_value());
  state_->CloseGate();
  conn_->Send(9, Tread{500, 0, 5});  // In flight when the peer dies.
  ASSERT_TRUE(state_->WaitReading(1));
  EXPECT_GE(state_->live, 200);
  conn_->Close();
  EXPECT_FALSE(server_->WaitNoConnections(std::chrono::milliseconds(50)))
      << "the in-flight request still holds the connection";
  state_->OpenGate();
  EXPECT_TRUE(server_->WaitNoConnections(std::chrono::seconds(10)));
  EXPECT_EQ(state_->live, 0);
}

TEST_F(ServerTest, NewVersionResetsSession) {
  conn_->Version();
  conn_->Attach(1);
  conn_->Version();
  EXPECT_EQ(Err(conn_->Call(Tgetattr{1})), Errno(EBADF));
  EXPECT_EQ(state_->live, 0);
}

TEST_F(ServerTest, FdIsDonatedOnlyUnderTheExtension) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  state_->pipe_read_fd = p[0];
  for (const char* v : {kVersion9P2000L, kVersion9P2000LExt}) {
    SCOPED_TRACE(v);
    MakeServer({});
    conn_->Version(v);
    conn_->Attach(1);
    ASSERT_TRUE(conn_->Call(Twalk{1, 2, {"f"}}).has_value());
    std::vector<UniqueFd> fds;
    ASSERT_TRUE(conn_->Call(Tlopen{2, 0}, 1, &fds).has_value());
    if (std::string(v) == kVersion9P2000L) {
      EXPECT_TRUE(fds.empty());
    } else {
      ASSERT_EQ(fds.size(), 1u);
      ASSERT_EQ(write(p[1], "z", 1), 1);
      char c = 0;
      EXPECT_EQ(read(fds[0].get(), &c, 1), 1);
      EXPECT_EQ(c, 'z');
    }
  }
  close(p[0]);
  close(p[1]);
  state_->pipe_read_fd = -1;
}

TEST_F(ServerTest, XattrCreateWriteClunkSetsAndWalkReads) {
  conn_->Version();
  conn_->Attach(1);
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {}}).has_value());
  ASSERT_TRUE(conn_->Call(Txattrcreate{2, "user.k", 5, 0}).has_value());
  char v[] = "value";
  ASSERT_TRUE(conn_->Call(Twrite{2, 0, Bytes(v, 5)}).has_value());
  ASSERT_TRUE(conn_->Call(Tclunk{2}).has_value());
  EXPECT_EQ(state_->xattrs["user.k"], "value");

  auto w = conn_->Call(Txattrwalk{1, 3, "user.k"});
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->size, 5u);
  auto r = conn_->Call(Tread{3, 1, 100});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::string(r->data.data(), r->data.size()), "alue");
  ASSERT_TRUE(conn_->Call(Tclunk{3}).has_value());

  auto l = conn_->Call(Txattrwalk{1, 3, ""});
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->size, 7u);  // "user.k\0"
  ASSERT_TRUE(conn_->Call(Tclunk{3}).has_value());
  EXPECT_EQ(Err(conn_->Call(Txattrwalk{1, 3, "user.none"})), Errno(ENODATA));

  // A short value is an error at clunk, and the fid is gone anyway.
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {}}).has_value());
  ASSERT_TRUE(conn_->Call(Txattrcreate{2, "user.j", 5, 0}).has_value());
  ASSERT_TRUE(conn_->Call(Twrite{2, 0, Bytes(v, 2)}).has_value());
  EXPECT_EQ(Err(conn_->Call(Tclunk{2})), Errno(EINVAL));
  EXPECT_EQ(Err(conn_->Call(Tclunk{2})), Errno(EBADF));
  EXPECT_FALSE(state_->xattrs.contains("user.j"));

  // Writing past the announced size is refused.
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {}}).has_value());
  ASSERT_TRUE(conn_->Call(Txattrcreate{2, "user.j", 1, 0}).has_value());
  EXPECT_EQ(Err(conn_->Call(Twrite{2, 0, Bytes(v, 2)})), Errno(EINVAL));
  ASSERT_TRUE(conn_->Call(Tclunk{2}).has_value() == false);

  // removexattr(2) as Linux sends it.
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {}}).has_value());
  ASSERT_TRUE(conn_->Call(Txattrcreate{2, "user.k", 0, kXattrReplace}).has_value());
  ASSERT_TRUE(conn_->Call(Tclunk{2}).has_value());
  EXPECT_FALSE(state_->xattrs.contains("user.k"));
}

TEST_F(ServerTest, ReaddirPacksWhatFitsAndResumes) {
  conn_->Version();
  conn_->Attach(1);
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {"d"}}).has_value());
  ASSERT_TRUE(conn_->Call(Tlopen{2, open_flags::kRdOnly}).has_value());
  auto r = conn_->Call(Treaddir{2, 0, 100});
  ASSERT_TRUE(r.has_value());
  auto ents = DecodeDirents(r->data);
  ASSERT_TRUE(ents.has_value());
  ASSERT_EQ(ents->size(), 3u);  // Each entry is 30 bytes.
  EXPECT_EQ((*ents)[2].name, "entry2");
  r = conn_->Call(Treaddir{2, (*ents)[2].offset, 4096});
  ASSERT_TRUE(r.has_value());
  ents = DecodeDirents(r->data);
  ASSERT_TRUE(ents.has_value());
  EXPECT_EQ(ents->front().name, "entry3");
  EXPECT_EQ(Err(conn_->Call(Treaddir{2, 0, 10})), Errno(EINVAL));
}

TEST_F(ServerTest, LcreateMakesTheFidNameTheNewFile) {
  conn_->Version();
  conn_->Attach(1);
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {"d"}}).has_value());
  ASSERT_TRUE(conn_->Call(Tlcreate{2, "new", open_flags::kRdWr, 0644, 0}).has_value());
  auto r = conn_->Call(Tread{2, 0, 100});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::string(r->data.data(), r->data.size()).substr(0, 6), "/d/new");
}

TEST_F(ServerTest, RemoveClunksEvenOnError) {
  conn_->Version();
  conn_->Attach(1);
  ASSERT_TRUE(conn_->Call(Twalk{1, 2, {"f"}}).has_value());
  EXPECT_EQ(Err(conn_->Call(Tremove{2})), Errno(EOPNOTSUPP));  // Backend default.
  EXPECT_EQ(Err(conn_->Call(Tgetattr{2})), Errno(EBADF));
}

TEST_F(ServerTest, BackendErrnoReachesTheWire) {
  conn_->Version();
  conn_->Attach(1);
  EXPECT_EQ(Err(conn_->Call(Tunlinkat{1, "missing", 0})), Errno(ENOENT));
  EXPECT_EQ(Err(conn_->Call(Tunlinkat{1, "x", 0x1})), Errno(EINVAL));
  EXPECT_EQ(Err(conn_->Call(Tlock{1, lock::kTypeRdLck, 0, 0, 0, 0, ""})), Errno(EBADF));
}

TEST_F(ServerTest, ManyPipelinedRequestsAllAnswered) {
  conn_->Version();
  conn_->Attach(1);
  std::thread sender([&] {
    for (int i = 0; i < 2000; ++i) conn_->Send(static_cast<Tag>(i + 1), Tgetattr{1});
  });
  std::map<Tag, int> seen;
  for (int i = 0; i < 2000; ++i) {
    auto f = conn_->Next();
    ASSERT_TRUE(f.has_value());
    ++seen[f->header.tag];
  }
  sender.join();
  EXPECT_EQ(seen.size(), 2000u);
  EXPECT_EQ(seen.rbegin()->first, 2000);
}

TEST_F(ServerTest, SlowRequestsDoNotStallTheConnection) {
  ASSERT_NO_FATAL_FAILURE(OpenSlowWithGateClosed());
  // Three reads block in the backend at once: each was handed to its own thread.
  for (Tag t = 10; t < 13; ++t) conn_->Send(t, Tread{2, 0, 5});
  ASSERT_TRUE(state_->WaitReading(3));
  // Metadata requests are still read and answered meanwhile.
  for (Tag t = 20; t < 25; ++t) {
    auto r = conn_->Call(Tgetattr{1, getattr::kBasic}, t);
    ASSERT_TRUE(r.has_value()) << r.error();
  }
  state_->OpenGate();
  EXPECT_EQ(NextTags(3), (std::set<Tag>{10, 11, 12}));
}

TEST_F(ServerTest, AtTheThreadLimitTheReaderServesSlowRequestsItself) {
  MakeServer({.threads = 1});
  ASSERT_NO_FATAL_FAILURE(OpenSlowWithGateClosed());
  conn_->Send(10, Tread{2, 0, 5});
  ASSERT_TRUE(state_->WaitReading(1));
  conn_->Send(11, Tgetattr{1, getattr::kBasic});
  EXPECT_TRUE(conn_->Quiet(100)) << "one thread: nobody reads while the read blocks";
  state_->OpenGate();
  auto f1 = conn_->Next();
  auto f2 = conn_->Next();
  ASSERT_TRUE(f1.has_value() && f2.has_value());
  EXPECT_EQ(f1->header.tag, 10);
  EXPECT_EQ(f2->header.tag, 11);
}

// At the limit a slow request waits for a busy thread (LeaderFollower: queued); a new
// session aborts it: it is never answered, and its tag is free at once.
TEST_F(ServerTest, ANewSessionAbortsRequestsQueuedForAThread) {
  MakeServer({.threads = 2});
  ASSERT_NO_FATAL_FAILURE(OpenSlowWithGateClosed());
  conn_->Send(10, Tread{2, 0, 5});
  ASSERT_TRUE(state_->WaitReading(1));
  conn_->Send(11, Tread{2, 0, 5});  // Both threads taken: one reads, one waits in the backend.
  auto g = conn_->Call(Tgetattr{1, getattr::kBasic}, 20);
  ASSERT_TRUE(g.has_value()) << g.error();
  {
    std::lock_guard l(state_->mu);
    EXPECT_EQ(state_->reading, 1) << "the second read ran beyond the thread limit";
  }
  ASSERT_NO_FATAL_FAILURE(conn_->Version());
  // Tattach takes long but not for good: at the limit the reader serves it itself rather
  // than queue it behind a read that may never end.
  ASSERT_NO_FATAL_FAILURE(conn_->Attach(1));
  // Tag 11 may be reused at once (a tag still in flight would close the connection).
  auto g2 = conn_->Call(Tgetattr{1, getattr::kBasic}, 11);
  ASSERT_TRUE(g2.has_value()) << g2.error();
  state_->OpenGate();
  auto f = conn_->Next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->header.tag, 10);  // It was running: it finishes.
  EXPECT_TRUE(conn_->Quiet(200)) << "the aborted read was answered";
  std::lock_guard l(state_->mu);
  EXPECT_EQ(state_->max_reading, 1);
}

TEST_F(ServerTest, BatchedRepliesKeepFlushOrder) {
  conn_->Version();
  conn_->Attach(1);
  // One write holding a request and a flush of it: the reply is queued while the flush is
  // served from the same buffer; Rflush must still come after it.
  std::vector<char> bytes;
  for (Tag t = 30; t < 60; t += 2) {
    OutFrame a = EncodeFrame(t, Tgetattr{1, getattr::kBasic});
    OutFrame b = EncodeFrame(static_cast<Tag>(t + 1), Tflush{t});
    bytes.insert(bytes.end(), a.head.begin(), a.head.end());
    bytes.insert(bytes.end(), b.head.begin(), b.head.end());
  }
  conn_->SendRaw(bytes);
  for (Tag t = 30; t < 60; t += 2) {
    auto f1 = conn_->Next();
    auto f2 = conn_->Next();
    ASSERT_TRUE(f1.has_value() && f2.has_value());
    EXPECT_EQ(f1->header.tag, t);
    EXPECT_EQ(f1->header.type, static_cast<uint8_t>(MsgType::kRgetattr));
    EXPECT_EQ(f2->header.tag, t + 1);
    EXPECT_EQ(f2->header.type, static_cast<uint8_t>(MsgType::kRflush));
  }
}

TEST_F(ServerTest, ListenAcceptsUnixConnections) {
  // Bazel's TEST_TMPDIR is too long for sun_path (108 bytes); a pid is not unique either
  // (sandboxed runs of the test, each in its own PID namespace, share /tmp).
  char dir[] = "/tmp/p9srv-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/s";
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  ASSERT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(l, 16), 0);
  server_->Listen(UniqueFd(l));
  for (int i = 0; i < 3; ++i) {
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    UniqueFd cfd(c);
    ASSERT_TRUE(SendFrame(c, EncodeFrame(kNoTag, Tversion{8192, "9P2000.L"})).has_value());
    FrameReader rd(c);
    auto f = rd.Read();
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->header.type, static_cast<uint8_t>(MsgType::kRversion));
  }
  server_->Stop();
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace p9
