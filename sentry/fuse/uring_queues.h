// FUSE over io_uring (Linux 6.14+, with the fuse module's `enable_uring` parameter on): the
// kernel hands each request to a ring entry in the queue of the CPU the requesting thread
// runs on, and one io_uring command of ours carries the reply and fetches that entry's next
// request.
//
// Why: on these VMs (DESIGN.md) waking a thread on the other CPU costs more than serving
// most requests. Through /dev/fuse, a request is picked up by our thread on whichever CPU it
// runs (polling, or woken), and its reply wakes the requester, whose CPU has meanwhile gone
// idle and halted. Here each CPU's queue is served by a thread pinned to that CPU: the
// requester blocks, the CPU switches to our thread, our reply makes the requester runnable
// again on the same CPU. Neither direction wakes an idle CPU.
//
// What still comes through /dev/fuse (SessionLoop keeps reading it): INIT, before the
// rings exist for the kernel; FORGET and INTERRUPT. Notifications still go to /dev/fuse.
//
// Threads: one per possible CPU, pinned to it where the process may run there, each the
// only user of its own ring (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: the
// kernel copies a request into an entry only when that thread waits for completions, never
// interrupting it while it serves one). It serves each request itself, except those that
// may block for long (`may_block`), which it hands to a new thread; since only the ring's
// thread may submit, that reply comes back to it through an eventfd read on the ring.
//
// Life: Start() creates the threads, their rings and buffers before INIT is read; once the
// INIT reply went out with FUSE_OVER_IO_URING (kernel_io.h), Register() has every thread
// register its entries, and the kernel switches to the rings when every queue has one. If
// INIT did not turn it on, Abandon() ends the threads. Registered threads end when the
// kernel ends the connection (each entry's command then completes with an error).
#ifndef SENTRY_FUSE_URING_QUEUES_H_
#define SENTRY_FUSE_URING_QUEUES_H_

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct fuse_session;

namespace sentry::fuse {

class UringQueues {
 public:
  struct Options {
    // Entries per queue: requests of one CPU in service at once (more wait in the kernel).
    unsigned depth = 16;
    // Payload bytes per entry; the kernel needs room for its largest request (max_write).
    size_t payload = size_t{1} << 20;
    // True when serving a request with `opcode` may wait for long (SessionLoop::MayBlock).
    std::function<bool(uint32_t opcode)> may_block;
    // After replying, a thread polls its ring this long for the next request before
    // sleeping (0: sleeps at once). See Run().
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
  };

  // Starts the threads, each setting up its ring and entries. Never null.
  static std::unique_ptr<UringQueues> Start(fuse_session* se, Options options);
  ~UringQueues();  // Abandon(), then Join().
  UringQueues(const UringQueues&) = delete;
  UringQueues& operator=(const UringQueues&) = delete;

  // Waits until every thread has set up; true if every ring and buffer exists.
  bool Ready();
  size_t payload() const { return options_.payload; }
  // After the INIT reply turned io_uring on: every thread registers its entries. Returns
  // once each has submitted them: true if the kernel refused none.
  bool Register();
  // Without Register(): the threads end. No-op after it.
  void Abandon();
  // Waits until every thread has ended (after Abandon, or the end of the connection).
  void Join();

  // Requests with `opcode` that came through the rings (opcodes below 64).
  uint64_t received(uint32_t opcode) const {
    return opcode < kCounted ? received_[opcode].load(std::memory_order_relaxed) : 0;
  }

  struct Queue;  // One CPU's ring, entries and thread (uring_queues.cc).

 private:
  static constexpr uint32_t kCounted = 64;
  UringQueues(fuse_session* se, Options options);

  enum class Phase { kSetup, kRegister, kAbandon };
  // The thread of queue `q`: setup, then (registered) serving until its entries are gone.
  void Run(Queue& q);
  void Serve(Queue& q, size_t entry);
  void ServeNow(Queue& q, size_t entry);
  // Queues command `cmd` (register, or commit the reply and fetch) for entry `entry`.
  void Submit(Queue& q, size_t entry, uint32_t cmd);

  fuse_session* const se_;
  const Options options_;
  int dev_fd_ = -1;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable cv_;
  Phase phase_ = Phase::kSetup;  // Guarded by mu_.
  size_t set_up_ = 0;            // Guarded by mu_. Threads done setting up.
  size_t setup_failed_ = 0;      // Guarded by mu_.
  size_t registered_ = 0;        // Guarded by mu_. Threads done registering.
  size_t register_failed_ = 0;   // Guarded by mu_.
  bool joined_ = false;          // Guarded by mu_.

  std::array<std::atomic<uint64_t>, kCounted> received_{};
};

}  // namespace sentry::fuse

#endif  // SENTRY_FUSE_URING_QUEUES_H_
