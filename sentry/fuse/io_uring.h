// A minimal io_uring instance over the raw system calls (no liburing: not among the
// project's libraries), enough for FUSE over io_uring (uring_queues.h): 128-byte SQEs,
// one submitting thread, completions read in place.
//
// Threads: not thread-safe. With IORING_SETUP_SINGLE_ISSUER the kernel also insists that
// only the creating thread submits and waits; create it on the thread that will use it.
#ifndef SENTRY_FUSE_IO_URING_H_
#define SENTRY_FUSE_IO_URING_H_

#include <linux/io_uring.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "p9/result.h"

namespace sentry::fuse {

class IoUring {
 public:
  // `entries` submission slots and 2 * entries completion slots; `flags` are
  // IORING_SETUP_* (IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE are always added).
  static p9::Result<std::unique_ptr<IoUring>> Create(unsigned entries, unsigned flags);
  ~IoUring();
  IoUring(const IoUring&) = delete;
  IoUring& operator=(const IoUring&) = delete;

  int fd() const { return fd_; }

  // The next free submission slot, zeroed (all 128 bytes), queued for the next Enter; null
  // if every slot is queued or still owned by the kernel.
  io_uring_sqe* NextSqe();
  // Submits what is queued and, if `wait` > 0, waits until that many completions are
  // ready (running the ring's deferred task work). With `run` and no wait, runs that task
  // work without waiting (completions it posts are Ready() after). 0 or -errno (-EINTR:
  // try again).
  int Enter(unsigned wait, bool run = false);
  // Completions ready to be taken (ForEachCompletion).
  unsigned Ready() const {
    return cq_tail_->load(std::memory_order_acquire) - cq_head_->load(std::memory_order_relaxed);
  }
  // Calls f(user_data, res) for each completion ready now, then releases them. Returns how
  // many there were.
  template <typename F>
  unsigned ForEachCompletion(F&& f) {
    unsigned head = cq_head_->load(std::memory_order_relaxed);
    const unsigned tail = cq_tail_->load(std::memory_order_acquire);
    unsigned n = 0;
    for (; head != tail; ++head, ++n) {
      const io_uring_cqe& c = cqes_[head & cq_mask_];
      f(c.user_data, c.res);
    }
    cq_head_->store(head, std::memory_order_release);
    return n;
  }

 private:
  IoUring() = default;

  int fd_ = -1;
  void* sq_map_ = nullptr;
  size_t sq_map_len_ = 0;
  void* cq_map_ = nullptr;  // Same as sq_map_ with IORING_FEAT_SINGLE_MMAP.
  size_t cq_map_len_ = 0;
  char* sqes_ = nullptr;  // 128-byte entries.
  size_t sqes_len_ = 0;

  std::atomic<unsigned>* sq_head_ = nullptr;  // The kernel's: consumed up to here.
  std::atomic<unsigned>* sq_tail_ = nullptr;  // Ours: queued up to here.
  unsigned* sq_array_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned sq_entries_ = 0;
  unsigned to_submit_ = 0;  // Queued since the last Enter.

  std::atomic<unsigned>* cq_head_ = nullptr;  // Ours: released up to here.
  std::atomic<unsigned>* cq_tail_ = nullptr;  // The kernel's: posted up to here.
  io_uring_cqe* cqes_ = nullptr;
  unsigned cq_mask_ = 0;
};

}  // namespace sentry::fuse

#endif  // SENTRY_FUSE_IO_URING_H_
