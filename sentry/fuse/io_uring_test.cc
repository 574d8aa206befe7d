// The raw io_uring wrapper against the real kernel: submissions are seen, completions carry
// their user_data and result, slots are refused when all are queued, and a read that waits
// (an eventfd, as the FUSE rings use for hand-offs) completes when written.
#include "sentry/fuse/io_uring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "gtest/gtest.h"

namespace sentry::fuse {
namespace {

TEST(IoUringTest, NopsCompleteWithTheirUserData) {
  auto ring = IoUring::Create(8, 0);
  ASSERT_TRUE(ring.has_value()) << ring.error();
  for (uint64_t i = 0; i < 8; ++i) {
    io_uring_sqe* sqe = (*ring)->NextSqe();
    ASSERT_NE(sqe, nullptr);
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = 100 + i;
  }
  EXPECT_EQ((*ring)->NextSqe(), nullptr) << "all 8 slots are queued";
  ASSERT_EQ((*ring)->Enter(8), 0);
  std::map<uint64_t, int> seen;
  EXPECT_EQ((*ring)->ForEachCompletion([&](uint64_t tag, int res) { seen[tag] = res; }), 8u);
  ASSERT_EQ(seen.size(), 8u);
  EXPECT_EQ(seen.begin()->first, 100u);
  EXPECT_EQ(seen.rbegin()->first, 107u);
  for (const auto& [tag, res] : seen) EXPECT_EQ(res, 0) << tag;
  EXPECT_EQ((*ring)->ForEachCompletion([](uint64_t, int) {}), 0u) << "released";
  // The slots are free again once the kernel consumed them; the rings go round.
  for (int round = 0; round < 5; ++round) {
    io_uring_sqe* sqe = (*ring)->NextSqe();
    ASSERT_NE(sqe, nullptr);
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = 7;
    ASSERT_EQ((*ring)->Enter(1), 0);
    EXPECT_EQ((*ring)->ForEachCompletion([](uint64_t tag, int) { EXPECT_EQ(tag, 7u); }), 1u);
  }
}

TEST(IoUringTest, SingleIssuerReadWaitsForAnEventfdWrite) {
  auto ring = IoUring::Create(4, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  ASSERT_TRUE(ring.has_value()) << ring.error();
  int efd = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  uint64_t value = 0;
  io_uring_sqe* sqe = (*ring)->NextSqe();
  ASSERT_NE(sqe, nullptr);
  sqe->opcode = IORING_OP_READ;
  sqe->fd = efd;
  sqe->addr = reinterpret_cast<uint64_t>(&value);
  sqe->len = sizeof(value);
  sqe->user_data = 1;
  ASSERT_EQ((*ring)->Enter(0), 0);
  EXPECT_EQ((*ring)->ForEachCompletion([](uint64_t, int) {}), 0u) << "nothing to read yet";
  std::thread writer([efd] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t three = 3;
    EXPECT_EQ(write(efd, &three, sizeof(three)), 8);
  });
  int rc;
  do rc = (*ring)->Enter(1);
  while (rc == -EINTR);
  ASSERT_EQ(rc, 0);
  int got = -1;
  EXPECT_EQ((*ring)->ForEachCompletion([&](uint64_t tag, int res) {
    EXPECT_EQ(tag, 1u);
    got = res;
  }), 1u);
  EXPECT_EQ(got, 8);
  EXPECT_EQ(value, 3u);
  writer.join();
  close(efd);
}

TEST(IoUringTest, BadFlagsAreAnError) {
  auto ring = IoUring::Create(4, IORING_SETUP_DEFER_TASKRUN);  // Needs SINGLE_ISSUER.
  ASSERT_FALSE(ring.has_value());
  EXPECT_EQ(ring.error(), p9::Errno(EINVAL));
}

}  // namespace
}  // namespace sentry::fuse
