#include "sentry/fuse/session_loop.h"

#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

#include "glog/logging.h"

namespace sentry::fuse {

SessionLoop::SessionLoop(fuse_session* se, Options options, MayBlock may_block)
    : se_(se),
      options_(std::move(options)),
      may_block_(std::move(may_block)),
      spin_ns_(options_.spin.count()),
      lf_(options_.max_threads) {}

int SessionLoop::Run() {
  fd_ = fuse_session_fd(se_);
  // Non-blocking, so a read while polling returns EAGAIN; sleeping is poll(2)'s job. (Replies
  // are writes to the same fd; /dev/fuse never blocks a write.)
  int fl = fcntl(fd_, F_GETFL);
  if (fl < 0 || fcntl(fd_, F_SETFL, fl | O_NONBLOCK) != 0) return -errno;
  lf_.Spawn([] { return true; });  // This thread is the first worker.
  Worker();
  lf_.WaitNoThreads();
  std::lock_guard l(error_mu_);
  return error_;
}

void SessionLoop::Worker() {
  fuse_buf buf{};  // This thread's request buffer, allocated by libfuse at the first read.
  while (lf_.AwaitLead()) Lead(buf);
  free(buf.mem);
}

void SessionLoop::Lead(fuse_buf& buf) {
  for (;;) {
    int n = Receive(buf);
    if (n <= 0 || fuse_session_exited(se_)) {
      End(n < 0 ? n : 0);
      return;
    }
    fuse_buf req = buf;
    req.size = static_cast<size_t>(n);
    bool block = false;
    bool init = false;
    if (static_cast<size_t>(n) >= sizeof(fuse_in_header)) {
      fuse_in_header h;
      std::memcpy(&h, buf.mem, sizeof(h));
      block = may_block_(h.opcode);
      init = h.opcode == FUSE_INIT;
      if (h.opcode < kCounted) received_[h.opcode].fetch_add(1, std::memory_order_relaxed);
    }
    if (block && lf_.PassLead([this] { return StartWorker(); }) ==
                     p9::LeaderFollower::Handoff::kPassed) {
      fuse_session_process_buf(se_, &req);
      lf_.Done();
      return;
    }
    fuse_session_process_buf(se_, &req);
    if (init && options_.after_init) options_.after_init();
  }
}

int SessionLoop::Receive(fuse_buf& buf) {
  auto until = std::chrono::steady_clock::now() +
               std::chrono::nanoseconds(spin_ns_.load(std::memory_order_relaxed));
  for (;;) {
    int n = fuse_session_receive_buf(se_, &buf);
    if (n == -EINTR) continue;
    if (n != -EAGAIN) return n;
    if (std::chrono::steady_clock::now() < until) {
      sched_yield();  // Lets the workload (or the gofer) run if it shares our CPU.
      continue;
    }
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return -errno;
    // Readable, or the connection is gone (POLLERR): the next read tells which.
  }
}

bool SessionLoop::StartWorker() {
  try {
    std::thread([this] { Worker(); }).detach();
  } catch (const std::system_error& e) {
    LOG(WARNING) << "fuse: cannot start a worker: " << e.what();
    return false;
  }
  return true;
}

void SessionLoop::End(int error) {
  {
    std::lock_guard l(error_mu_);
    if (!ended_ && error < 0) error_ = error;
    ended_ = true;
  }
  lf_.Close();
}

}  // namespace sentry::fuse
