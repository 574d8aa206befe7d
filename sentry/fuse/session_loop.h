// The loop that reads and serves a libfuse low-level session's requests, in place of
// fuse_session_loop_mt.
//
// Why: with libfuse's loop every request wakes a worker sleeping in read(2) on /dev/fuse, and
// on these VMs a wake-up costs more than serving most requests (DESIGN.md). A workload's
// requests come in quick succession (tar: lookup, create, write, setattr, ... each a few
// microseconds after the last reply), so here the thread that reads /dev/fuse polls it for a
// short while (non-blocking reads, yielding the CPU between tries) before it sleeps in
// poll(2): a request within that window is picked up with no wake-up.
//
// Threads (leader/follower, as p9::Server): one thread at a time, the leader, reads
// /dev/fuse and serves what it reads itself. Before serving a request that may wait for long
// (`may_block`: a lock wait, fsync, I/O of a FIFO or device) it hands reading to an
// available follower, or to a new thread (at most Options::max_threads; p9::LeaderFollower),
// so such a request never stops the others. At the thread limit the leader serves it itself, as libfuse's loop does.
#ifndef SENTRY_FUSE_SESSION_LOOP_H_
#define SENTRY_FUSE_SESSION_LOOP_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

#include "p9/leader_follower.h"

struct fuse_buf;
struct fuse_session;

namespace sentry::fuse {

class SessionLoop {
 public:
  struct Options {
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);  // 0: sleep at once.
    size_t max_threads = 16;
    // Called on the thread that served INIT, right after its reply went out (the kernel has
    // taken it): where the session switches to FUSE over io_uring.
    std::function<void()> after_init;
  };
  // True when serving a request with `opcode` may wait for long.
  using MayBlock = std::function<bool(uint32_t opcode)>;

  // `se` must outlive Run().
  SessionLoop(fuse_session* se, Options options, MayBlock may_block);
  SessionLoop(const SessionLoop&) = delete;
  SessionLoop& operator=(const SessionLoop&) = delete;

  // Serves until the session ends (the kernel ends the connection, or fuse_session_exit()
  // and the next request). The calling thread is the first worker; returns once every
  // worker has ended. Returns 0, or a negative errno if reading /dev/fuse failed.
  int Run();

  // How long the reader polls from now on (once the rings carry the requests, what is left
  // on /dev/fuse is rare: FORGET, INTERRUPT).
  void set_spin(std::chrono::nanoseconds spin) {
    spin_ns_.store(spin.count(), std::memory_order_relaxed);
  }

  // Requests with `opcode` read so far (tests and diagnostics; opcodes above kCounted are
  // not counted).
  uint64_t received(uint32_t opcode) const {
    return opcode < kCounted ? received_[opcode].load(std::memory_order_relaxed) : 0;
  }

 private:
  static constexpr uint32_t kCounted = 64;
  void Worker();
  // Reads and serves as the leader. Returns after handing reading on (having served one
  // request that may block), or when the session ended.
  void Lead(::fuse_buf& buf);
  // The next request into `buf`: its size, 0 at the end of the session, or -errno.
  int Receive(::fuse_buf& buf);
  // Starts a worker thread (lf_'s StartThread).
  bool StartWorker();
  void End(int error);

  fuse_session* const se_;
  const Options options_;
  const MayBlock may_block_;
  int fd_ = -1;
  std::atomic<int64_t> spin_ns_;

  p9::LeaderFollower lf_;  // The reader role among the workers (Run's caller included).
  std::mutex error_mu_;
  bool ended_ = false;  // Guarded by error_mu_.
  int error_ = 0;       // Guarded by error_mu_. The first read error.
  std::array<std::atomic<uint64_t>, kCounted> received_{};
};

}  // namespace sentry::fuse

#endif  // SENTRY_FUSE_SESSION_LOOP_H_
