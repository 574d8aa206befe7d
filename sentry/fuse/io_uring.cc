#include "sentry/fuse/io_uring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace sentry::fuse {
namespace {

constexpr size_t kSqeSize = 128;  // IORING_SETUP_SQE128.

template <typename T>
T* At(void* base, uint32_t off) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + off);
}

}  // namespace

p9::Result<std::unique_ptr<IoUring>> IoUring::Create(unsigned entries, unsigned flags) {
  io_uring_params p{};
  p.flags = flags | IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
  p.cq_entries = 2 * entries;
  std::unique_ptr<IoUring> r(new IoUring());
  r->fd_ = static_cast<int>(syscall(__NR_io_uring_setup, entries, &p));
  if (r->fd_ < 0) return p9::LastErrno();
  r->sq_map_len_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_map_len_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single) r->sq_map_len_ = r->cq_map_len_ = std::max(r->sq_map_len_, r->cq_map_len_);
  void* sq = mmap(nullptr, r->sq_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                  r->fd_, IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED) return p9::LastErrno();
  r->sq_map_ = sq;
  void* cq = sq;
  if (!single) {
    cq = mmap(nullptr, r->cq_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
              r->fd_, IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED) return p9::LastErrno();
  }
  r->cq_map_ = cq;
  r->sqes_len_ = p.sq_entries * kSqeSize;
  void* sqes = mmap(nullptr, r->sqes_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    r->fd_, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return p9::LastErrno();
  r->sqes_ = static_cast<char*>(sqes);

  r->sq_head_ = At<std::atomic<unsigned>>(sq, p.sq_off.head);
  r->sq_tail_ = At<std::atomic<unsigned>>(sq, p.sq_off.tail);
  r->sq_array_ = At<unsigned>(sq, p.sq_off.array);
  r->sq_mask_ = *At<unsigned>(sq, p.sq_off.ring_mask);
  r->sq_entries_ = *At<unsigned>(sq, p.sq_off.ring_entries);
  r->cq_head_ = At<std::atomic<unsigned>>(cq, p.cq_off.head);
  r->cq_tail_ = At<std::atomic<unsigned>>(cq, p.cq_off.tail);
  r->cqes_ = At<io_uring_cqe>(cq, p.cq_off.cqes);
  r->cq_mask_ = *At<unsigned>(cq, p.cq_off.ring_mask);
  return r;
}

IoUring::~IoUring() {
  if (sqes_ != nullptr) munmap(sqes_, sqes_len_);
  if (cq_map_ != nullptr && cq_map_ != sq_map_) munmap(cq_map_, cq_map_len_);
  if (sq_map_ != nullptr) munmap(sq_map_, sq_map_len_);
  if (fd_ >= 0) close(fd_);
}

io_uring_sqe* IoUring::NextSqe() {
  const unsigned tail = sq_tail_->load(std::memory_order_relaxed);
  if (tail - sq_head_->load(std::memory_order_acquire) >= sq_entries_) return nullptr;
  const unsigned idx = tail & sq_mask_;
  auto* sqe = reinterpret_cast<io_uring_sqe*>(sqes_ + idx * kSqeSize);
  std::memset(sqe, 0, kSqeSize);
  sq_array_[idx] = idx;
  // Published to the kernel at the next Enter (it reads the tail only then).
  sq_tail_->store(tail + 1, std::memory_order_release);
  ++to_submit_;
  return sqe;
}

int IoUring::Enter(unsigned wait, bool run) {
  unsigned flags = wait > 0 || run ? IORING_ENTER_GETEVENTS : 0;
  long n = syscall(__NR_io_uring_enter, fd_, to_submit_, wait, flags, nullptr, 0);
  if (n < 0) return -errno;
  to_submit_ -= static_cast<unsigned>(n) < to_submit_ ? static_cast<unsigned>(n) : to_submit_;
  return 0;
}

}  // namespace sentry::fuse
