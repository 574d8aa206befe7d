#include "p9/leader_follower.h"

namespace p9 {

bool LeaderFollower::Spawn(const StartThread& start) {
  std::lock_guard l(mu_);
  return !closed_ && SpawnLocked(start);
}

bool LeaderFollower::SpawnLocked(const StartThread& start) {
  if (!start()) return false;
  ++threads_;
  return true;
}

bool LeaderFollower::AwaitLead() {
  std::unique_lock l(mu_);
  cv_.wait(l, [&] { return closed_ || !leader_taken_; });
  if (closed_) {
    if (--threads_ == 0) done_cv_.notify_all();
    return false;
  }
  leader_taken_ = true;
  return true;
}

LeaderFollower::Handoff LeaderFollower::PassLead(const StartThread& start,
                                                 const Defer& defer) {
  std::lock_guard l(mu_);
  if (closed_) return Handoff::kKept;
  if (threads_ - 1 - busy_ == 0) {
    if (threads_ >= max_threads_ || !SpawnLocked(start)) {
      // Every other thread is busy: one of them takes the request when it finishes (Done
      // pops under this lock, so it cannot have just looked and left).
      if (busy_ == 0 || !defer) return Handoff::kKept;
      queued_.push_back(defer());
      return Handoff::kQueued;
    }
  }
  leader_taken_ = false;
  ++busy_;
  cv_.notify_one();
  return Handoff::kPassed;
}

void LeaderFollower::Done() {
  for (;;) {
    Task next;
    {
      std::lock_guard l(mu_);
      if (closed_ || queued_.empty()) {
        --busy_;
        return;
      }
      next = std::move(queued_.front());
      queued_.pop_front();
    }
    next();
  }
}

void LeaderFollower::Close() {
  std::deque<Task> dropped;  // Destroyed unlocked: a task's captures are the owner's.
  std::lock_guard l(mu_);
  closed_ = true;
  dropped.swap(queued_);
  cv_.notify_all();
}

void LeaderFollower::WaitNoThreads() {
  std::unique_lock l(mu_);
  done_cv_.wait(l, [&] { return threads_ == 0; });
}

}  // namespace p9
