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

bool LeaderFollower::PassLead(const StartThread& start) {
  std::lock_guard l(mu_);
  if (closed_) return false;
  if (threads_ - 1 - busy_ == 0) {
    if (threads_ >= max_threads_ || !SpawnLocked(start)) return false;
  }
  leader_taken_ = false;
  ++busy_;
  cv_.notify_one();
  return true;
}

void LeaderFollower::Done() {
  std::lock_guard l(mu_);
  --busy_;
}

void LeaderFollower::Close() {
  std::lock_guard l(mu_);
  closed_ = true;
  cv_.notify_all();
}

void LeaderFollower::WaitNoThreads() {
  std::unique_lock l(mu_);
  done_cv_.wait(l, [&] { return threads_ == 0; });
}

}  // namespace p9
