// Framing and fd passing over real sockets: socketpairs and TCP loopback.
#include "p9/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "glog/logging.h"
#include "gtest/gtest.h"
#include "p9/messages.h"

namespace p9 {
namespace {

std::pair<UniqueFd, UniqueFd> Pair() {
  int sv[2];
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

size_t OpenFds() {
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) (void)e, ++n;
  return n;
}

ino_t Ino(int fd) {
  struct stat st;
  CHECK_EQ(fstat(fd, &st), 0);
  return st.st_ino;
}

std::string Payload(const InFrame& f) {
  auto r = DecodeBody<Rread>(f.body_view());
  return r.has_value() ? std::string(r->data.data(), r->data.size()) : "<bad>";
}

TEST(TransportTest, FrameRoundTripOnSocketpair) {
  auto [a, b] = Pair();
  ASSERT_TRUE(SendFrame(a.get(), EncodeFrame(7, Tclunk{42})).has_value());
  FrameReader r(b.get());
  auto f = r.Read();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->header.tag, 7);
  EXPECT_EQ(f->header.type, static_cast<uint8_t>(MsgType::kTclunk));
  EXPECT_EQ(DecodeBody<Tclunk>(f->body_view())->fid, 42u);
  EXPECT_TRUE(f->fds.empty());
}

// Voluntary context switches of the calling thread: each sleep in the kernel is one.
long VoluntarySwitches() {
  rusage u;
  CHECK_EQ(getrusage(RUSAGE_THREAD, &u), 0);
  return u.ru_nvcsw;
}

// With a spin window, a frame that comes within it is read without the reader ever sleeping;
// one that comes after it is still read (by a blocking wait), as without spinning.
TEST(TransportTest, SpinningReadsWithoutSleepingAndFallsBackToBlocking) {
  auto [a, b] = Pair();
  FrameReader r(b.get());
  auto late_send = [&, fd = a.get()](int ms, Tag tag) {
    return std::thread([=] {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      CHECK(SendFrame(fd, EncodeFrame(tag, Tclunk{1})).has_value());
    });
  };
  r.set_spin(std::chrono::seconds(5));
  std::thread t = late_send(50, 1);
  long before = VoluntarySwitches();
  auto f = r.Read();
  long slept = VoluntarySwitches() - before;
  t.join();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->header.tag, 1);
  EXPECT_EQ(slept, 0) << "the reader slept although the frame came within its spin";

  r.set_spin(std::chrono::milliseconds(1));
  t = late_send(100, 2);
  before = VoluntarySwitches();
  f = r.Read();
  slept = VoluntarySwitches() - before;
  t.join();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->header.tag, 2);
  EXPECT_GE(slept, 1) << "past the spin the reader waits in the kernel";
}

TEST(TransportTest, FrameLargerThanTheSocketBufferWithShortWrites) {
  auto [a, b] = Pair();
  std::string big(4u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  std::thread sender([&, fd = a.get()] {
    EXPECT_TRUE(SendFrame(fd, EncodeFrame(1, Rread{Bytes(big.data(), big.size())})).has_value());
  });
  FrameReader r(b.get(), kMaxMsize);
  auto f = r.Read();
  sender.join();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(Payload(*f), big);
}

// A unix socket's send buffer grows to hold a whole frame (as far as wmem_max allows); a
// TCP socket keeps the kernel's autotuning (no fixed size set).
TEST(TransportTest, FitSendBufferGrowsUnixSocketsOnly) {
  auto sndbuf = [](int fd) {
    int v = 0;
    socklen_t len = sizeof(v);
    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len);
    return v;
  };
  auto [a, b] = Pair();
  const int before = sndbuf(a.get());
  FitSendBuffer(a.get(), 1u << 20);
  int wmem_max = 0;
  FILE* f = fopen("/proc/sys/net/core/wmem_max", "r");
  if (f != nullptr) {
    if (fscanf(f, "%d", &wmem_max) != 1) wmem_max = 0;
    fclose(f);
  }
  if (wmem_max > before / 2) {
    EXPECT_GT(sndbuf(a.get()), before);
    EXPECT_GE(sndbuf(a.get()) / 2, std::min(wmem_max, (1 << 20) + 65536));
  } else {
    EXPECT_EQ(sndbuf(a.get()), before) << "wmem_max " << wmem_max;
  }
  int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(tcp, 0);
  const int tcp_before = sndbuf(tcp);
  FitSendBuffer(tcp, 4u << 20);
  EXPECT_EQ(sndbuf(tcp), tcp_before);
  close(tcp);
}

TEST(TransportTest, SendWorksOnANonBlockingSocket) {
  auto [a, b] = Pair();
  fcntl(a.get(), F_SETFL, O_NONBLOCK);
  std::string big(2u << 20, 'n');
  std::thread sender([&, fd = a.get()] {
    EXPECT_TRUE(SendFrame(fd, EncodeFrame(1, Rread{Bytes(big.data(), big.size())})).has_value());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // Let it hit EAGAIN.
  FrameReader r(b.get(), kMaxMsize);
  auto f = r.Read();
  sender.join();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(Payload(*f).size(), big.size());
}

TEST(TransportTest, FdsArriveWithTheirFrameAndAreReal) {
  auto [a, b] = Pair();
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd pr(p[0]), pw(p[1]);
  int fds[] = {pw.get()};
  ASSERT_TRUE(SendFrame(a.get(), EncodeFrame(1, Rlopen{}), fds).has_value());
  FrameReader r(b.get());
  auto f = r.Read();
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->fds.size(), 1u);
  EXPECT_EQ(Ino(f->fds[0].get()), Ino(pw.get()));
  ASSERT_EQ(write(f->fds[0].get(), "via fd", 6), 6);
  char buf[8];
  ASSERT_EQ(read(pr.get(), buf, sizeof(buf)), 6);
  EXPECT_EQ(std::string(buf, 6), "via fd");
  EXPECT_NE(fcntl(f->fds[0].get(), F_GETFD) & FD_CLOEXEC, 0) << "received fds are CLOEXEC";
}

TEST(TransportTest, BackToBackFramesEachGetTheirOwnFds) {
  auto [a, b] = Pair();
  std::vector<std::pair<UniqueFd, UniqueFd>> pipes;
  for (int i = 0; i < 6; ++i) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    pipes.emplace_back(UniqueFd(p[0]), UniqueFd(p[1]));
  }
  // Frames 0, 2, 4 carry two fds each; 1, 3, 5 none. All sent before any is read, so one
  // recvmsg may see several frames.
  for (int i = 0; i < 6; ++i) {
    if (i % 2 == 0) {
      int fds[] = {pipes[i].first.get(), pipes[i + 1].second.get()};
      ASSERT_TRUE(SendFrame(a.get(), EncodeFrame(static_cast<Tag>(i), Rlopen{}), fds).has_value());
    } else {
      ASSERT_TRUE(SendFrame(a.get(), EncodeFrame(static_cast<Tag>(i), Rclunk{})).has_value());
    }
  }
  FrameReader r(b.get());
  for (int i = 0; i < 6; ++i) {
    auto f = r.Read();
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->header.tag, i);
    if (i % 2 == 0) {
      ASSERT_EQ(f->fds.size(), 2u) << "frame " << i;
      EXPECT_EQ(Ino(f->fds[0].get()), Ino(pipes[i].first.get()));
      EXPECT_EQ(Ino(f->fds[1].get()), Ino(pipes[i + 1].second.get()));
    } else {
      EXPECT_TRUE(f->fds.empty()) << "frame " << i;
    }
  }
}

// Sends raw bytes with `nfds` copies of `fd` attached, by hand.
void SendWithFds(int sock, const void* data, size_t len, int fd, int nfds) {
  iovec iov{const_cast<void*>(data), len};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * nfds));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  std::vector<int> fds(nfds, fd);
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * nfds);
  ASSERT_EQ(sendmsg(sock, &msg, 0), static_cast<ssize_t>(len));
}

TEST(TransportTest, FdsWithNoFrameAreClosedNotLeaked) {
  size_t before = OpenFds();
  {
    auto [a, b] = Pair();
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    UniqueFd pr(p[0]), pw(p[1]);
    // A frame split in two sends; fds ride on the second half, which starts no frame. The
    // reader must have taken the first half already (one recvmsg would otherwise return both
    // halves, and the fds would then rightly belong to the frame starting in it).
    OutFrame f = EncodeFrame(1, Tclunk{5});
    ASSERT_EQ(write(a.get(), f.head.data(), 3), 3);
    std::thread late([&, fd = a.get()] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      SendWithFds(fd, f.head.data() + 3, f.head.size() - 3, pr.get(), 3);
    });
    FrameReader r(b.get());
    auto got = r.Read();
    late.join();
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->fds.empty()) << "fds attached mid-frame belong to no frame";
  }
  EXPECT_EQ(OpenFds(), before);
}

TEST(TransportTest, TooManyFdsIsEPROTOWithoutLeak) {
  size_t before = OpenFds();
  {
    auto [a, b] = Pair();
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    UniqueFd pr(p[0]), pw(p[1]);
    OutFrame f = EncodeFrame(1, Rlopen{});
    SendWithFds(a.get(), f.head.data(), f.head.size(), pr.get(), 20);
    FrameReader r(b.get());
    auto got = r.Read();
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.error(), Errno(EPROTO));
    int fds[kMaxFdsPerMessage + 1];
    std::fill(std::begin(fds), std::end(fds), pr.get());
    EXPECT_EQ(SendFrame(a.get(), f, fds).error(), Errno(EINVAL)) << "sender refuses too";
  }
  EXPECT_EQ(OpenFds(), before);
}

TEST(TransportTest, OversizedAndUndersizedFramesAreEPROTO) {
  {
    auto [a, b] = Pair();
    OutFrame f = EncodeFrame(1, Rread{Bytes("0123456789", 10)});
    ASSERT_TRUE(SendFrame(a.get(), f).has_value());
    FrameReader r(b.get(), 16);  // The frame is 21 bytes.
    EXPECT_EQ(r.Read().error(), Errno(EPROTO));
  }
  {
    auto [a, b] = Pair();
    const char tiny[] = {6, 0, 0, 0, 120, 0, 0};
    ASSERT_EQ(write(a.get(), tiny, 7), 7);
    FrameReader r(b.get());
    EXPECT_EQ(r.Read().error(), Errno(EPROTO));
  }
}

TEST(TransportTest, EofIsECONNRESETAtABoundaryAndMidFrame) {
  {
    auto [a, b] = Pair();
    a.reset();
    FrameReader r(b.get());
    EXPECT_EQ(r.Read().error(), Errno(ECONNRESET));
  }
  {
    auto [a, b] = Pair();
    OutFrame f = EncodeFrame(1, Tclunk{5});
    ASSERT_EQ(write(a.get(), f.head.data(), 9), 9);
    a.reset();
    FrameReader r(b.get());
    EXPECT_EQ(r.Read().error(), Errno(ECONNRESET));
  }
}

TEST(TransportTest, TryReadReturnsNulloptUntilTheFrameIsComplete) {
  auto [a, b] = Pair();
  fcntl(b.get(), F_SETFL, O_NONBLOCK);
  FrameReader r(b.get());
  std::string data(1000, 'd');
  OutFrame f = EncodeFrame(3, Rread{Bytes(data.data(), data.size())});
  std::vector<char> all = f.head;
  all.insert(all.end(), f.tail.begin(), f.tail.end());
  for (size_t i = 0; i < all.size(); ++i) {
    auto got = r.TryRead();
    ASSERT_TRUE(got.has_value());
    ASSERT_FALSE(got->has_value()) << "complete after only " << i << " bytes";
    ASSERT_EQ(write(a.get(), &all[i], 1), 1);
  }
  auto got = r.TryRead();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(Payload(**got), data);
}

TEST(TransportTest, PiecewiseReadIntoTheCallersBuffer) {
  auto [a, b] = Pair();
  std::string data(3u << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd pr(p[0]), pw(p[1]);
  int fds[] = {pr.get()};
  std::thread sender([&, fd = a.get()] {
    EXPECT_TRUE(SendFrame(fd, EncodeFrame(9, Rread{Bytes(data.data(), data.size())}), fds)
                    .has_value());
    EXPECT_TRUE(SendFrame(fd, EncodeFrame(10, Rclunk{})).has_value());
    EXPECT_TRUE(SendFrame(fd, EncodeFrame(11, Tclunk{77})).has_value());
  });
  FrameReader r(b.get(), kMaxMsize);
  auto h = r.ReadHeader();
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->tag, 9);
  EXPECT_EQ(r.BodyRemaining(), data.size() + 4);
  auto cnt = r.ReadView(4);
  ASSERT_TRUE(cnt.has_value());
  uint32_t count;
  std::memcpy(&count, cnt->data(), 4);
  ASSERT_EQ(count, data.size());
  std::vector<char> dst(count);
  ASSERT_TRUE(r.ReadInto(dst).has_value());
  EXPECT_EQ(std::string(dst.begin(), dst.end()), data);
  auto got_fds = r.TakeFds();
  ASSERT_EQ(got_fds.size(), 1u);
  EXPECT_EQ(Ino(got_fds[0].get()), Ino(pr.get()));
  // Skip one frame's body, then read the next whole.
  h = r.ReadHeader();
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->tag, 10);
  ASSERT_TRUE(r.SkipBody().has_value());
  auto f = r.Read();
  sender.join();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->header.tag, 11);
  EXPECT_EQ(DecodeBody<Tclunk>(f->body_view())->fid, 77u);
}

void NoopHandler(int) {}

TEST(TransportTest, SurvivesEintrOnBothEnds) {
  struct sigaction sa {};
  sa.sa_handler = NoopHandler;  // No SA_RESTART: syscalls return EINTR.
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  auto [a, b] = Pair();
  std::string big(8u << 20, 'e');
  std::atomic<bool> done{false};
  pthread_t reader_thread = pthread_self();
  pthread_t sender_thread;
  std::atomic<bool> sender_ready{false};
  std::thread sender([&, fd = a.get()] {
    sender_thread = pthread_self();
    sender_ready = true;
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(SendFrame(fd, EncodeFrame(static_cast<Tag>(i),
                                             Rread{Bytes(big.data(), big.size())}))
                      .has_value());
    }
  });
  while (!sender_ready) std::this_thread::yield();
  std::thread pest([&] {
    while (!done) {
      pthread_kill(reader_thread, SIGUSR1);
      pthread_kill(sender_thread, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  FrameReader r(b.get(), kMaxMsize);
  for (int i = 0; i < 3; ++i) {
    auto f = r.Read();
    ASSERT_TRUE(f.has_value()) << f.error();
    EXPECT_EQ(Payload(*f).size(), big.size());
  }
  sender.join();
  done = true;
  pest.join();
  sigaction(SIGUSR1, &old, nullptr);
}

TEST(TransportTest, TcpLoopback) {
  UniqueFd l(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(l.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(l.get(), 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(l.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  UniqueFd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  UniqueFd s(accept(l.get(), nullptr, nullptr));
  ASSERT_TRUE(s.valid());
  std::string data(1u << 20, 't');
  std::thread sender([&] {
    EXPECT_TRUE(SendFrame(c.get(), EncodeFrame(4, Rread{Bytes(data.data(), data.size())}))
                    .has_value());
  });
  FrameReader r(s.get(), kMaxMsize);
  auto f = r.Read();
  sender.join();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(Payload(*f), data);
}

TEST(TransportTest, SendToAClosedPeerIsAnErrorNotSIGPIPE) {
  auto [a, b] = Pair();
  b.reset();
  auto r = SendFrame(a.get(), EncodeFrame(1, Tclunk{1}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errno(EPIPE));
}

}  // namespace
}  // namespace p9
