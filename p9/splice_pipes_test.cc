// SplicePipes on real files, pipes and socketpairs: the bytes that arrive are the file's, at
// any offset and across pipes; a dead peer is an error (never a SIGPIPE death) that leaves
// the pipes empty and usable.
#include "p9/splice_pipes.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace p9 {
namespace {

class SplicePipesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/splice_pipes_test.XXXXXX";
    fd_ = mkstemp(tmpl);
    ASSERT_GE(fd_, 0);
    unlink(tmpl);
    std::mt19937 rng(7);
    data_.resize((3u << 20) + 4321);
    for (char& c : data_) c = static_cast<char>(rng());
    ASSERT_EQ(pwrite(fd_, data_.data(), data_.size(), 0), static_cast<ssize_t>(data_.size()));
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_), 0);
  }
  void TearDown() override {
    close(fd_);
    if (sv_[0] >= 0) close(sv_[0]);
    if (sv_[1] >= 0) close(sv_[1]);
  }

  SplicePipes::Source FileSource() {
    return [this](int pipe, size_t count, uint64_t offset) -> Result<size_t> {
      loff_t off = static_cast<loff_t>(offset);
      ssize_t n = splice(fd_, &off, pipe, nullptr, count, SPLICE_F_NONBLOCK);
      if (n < 0) return LastErrno();
      return static_cast<size_t>(n);
    };
  }

  // Drains `pipes` into sv_[0] while a thread reads `n` bytes from sv_[1].
  std::string DrainAndReceive(SplicePipes& pipes, size_t n) {
    std::string got(n, '\0');
    std::thread reader([&] {
      size_t done = 0;
      while (done < n) {
        ssize_t r = read(sv_[1], got.data() + done, n - done);
        if (r <= 0) break;
        done += static_cast<size_t>(r);
      }
      got.resize(done);
    });
    auto r = pipes.Drain(sv_[0]);
    reader.join();
    EXPECT_TRUE(r.has_value()) << r.error();
    return got;
  }

  int fd_ = -1;
  int sv_[2] = {-1, -1};
  std::string data_;
};

TEST_F(SplicePipesTest, BytesArriveAsTheFileHoldsThemAtAnyOffset) {
  SplicePipes pipes;
  uint64_t before = SplicePipes::bytes_drained();
  // Unaligned offsets fill each pipe's slots with partial pages; sizes past one pipe.
  for (auto [off, count] : {std::pair<uint64_t, size_t>{0, 65536}, {1, 65537},
                            {4095, 1u << 20}, {12345, (2u << 20) + 3}, {7, 3u << 20}}) {
    auto n = pipes.Fill(count, off, FileSource());
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, count) << "offset " << off;
    EXPECT_EQ(pipes.held(), count);
    std::string got = DrainAndReceive(pipes, count);
    EXPECT_EQ(pipes.held(), 0u);
    ASSERT_EQ(got.size(), count);
    EXPECT_TRUE(got == data_.substr(off, count)) << "offset " << off << " count " << count;
  }
  EXPECT_GE(SplicePipes::bytes_drained() - before, (6u << 20));
}

TEST_F(SplicePipesTest, EndOfFileIsAShortCountOrZero) {
  SplicePipes pipes;
  auto n = pipes.Fill(1u << 20, data_.size() - 100, FileSource());
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 100u);
  EXPECT_EQ(DrainAndReceive(pipes, 100), data_.substr(data_.size() - 100));
  n = pipes.Fill(1u << 20, data_.size(), FileSource());
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(pipes.held(), 0u);
}

TEST_F(SplicePipesTest, ASourceThatCannotSpliceHoldsNothing) {
  SplicePipes pipes;
  auto n = pipes.Fill(1u << 20, 0, [](int, size_t, uint64_t) -> Result<size_t> {
    return Errno(ENOSYS);
  });
  EXPECT_EQ(n.error(), Errno(ENOSYS));
  EXPECT_EQ(pipes.held(), 0u);
  // A FIFO is not a file splice reads at offsets: the kernel refuses (ESPIPE).
  int fifo[2];
  ASSERT_EQ(pipe(fifo), 0);
  n = pipes.Fill(4096, 0, [&](int pipe, size_t count, uint64_t offset) -> Result<size_t> {
    loff_t off = static_cast<loff_t>(offset);
    ssize_t r = splice(fifo[0], &off, pipe, nullptr, count, SPLICE_F_NONBLOCK);
    if (r < 0) return LastErrno();
    return static_cast<size_t>(r);
  });
  EXPECT_EQ(n.error(), Errno(ESPIPE));
  close(fifo[0]);
  close(fifo[1]);
}

TEST_F(SplicePipesTest, MoreThanThePipesHoldIsAShortCount) {
  SplicePipes pipes;
  // A source that never runs dry: each pipe takes what fits, then says EAGAIN.
  int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(zero, 0);
  auto n = pipes.Fill(size_t{64} << 20, 0, [&](int pipe, size_t count, uint64_t) -> Result<size_t> {
    ssize_t r = splice(zero, nullptr, pipe, nullptr, count, SPLICE_F_NONBLOCK);
    if (r < 0) return LastErrno();
    return static_cast<size_t>(r);
  });
  close(zero);
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_GT(*n, 0u);
  EXPECT_LE(*n, SplicePipes::kMaxPipes << 20);
  EXPECT_LT(*n, size_t{64} << 20);
  EXPECT_EQ(pipes.held(), *n);
  pipes.Discard();
  EXPECT_EQ(pipes.held(), 0u);
}

TEST_F(SplicePipesTest, ADeadPeerIsEpipeNotASignalAndThePipesStayUsable) {
  // SIGPIPE keeps its default action (death) here: Drain must not let it be delivered.
  signal(SIGPIPE, SIG_DFL);
  SplicePipes pipes;
  auto n = pipes.Fill(200000, 3, FileSource());
  ASSERT_TRUE(n.has_value());
  close(sv_[1]);
  sv_[1] = -1;
  auto r = pipes.Drain(sv_[0]);
  EXPECT_EQ(r.error(), Errno(EPIPE));
  EXPECT_EQ(pipes.held(), 0u);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE));
  // The next reply, on a new connection, carries its own bytes and no leftovers.
  close(sv_[0]);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_), 0);
  n = pipes.Fill(5000, 100, FileSource());
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(DrainAndReceive(pipes, 5000), data_.substr(100, 5000));
}

}  // namespace
}  // namespace p9
