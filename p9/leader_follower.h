// The reader role of a leader/follower thread set, shared by p9::Server's connections and
// the sandbox's FUSE session loop.
//
// One thread at a time, the leader, reads the input and serves what it reads itself: a
// request costs no hand-off to another thread (on these VMs a wake-up costs more than most
// requests). Before serving a request that may wait for long, the leader passes the role to
// a thread that is neither leading nor busy, or has the owner start one (up to
// `max_threads`), so a slow request never stops the others; at the limit it serves the
// request itself.
//
// A thread that is neither leading nor busy is idle or about to be (it has just finished a
// request of its own and is on its way to AwaitLead): it counts as available, so a burst of
// blocking requests does not start a thread per request. (Counting only threads already
// waiting made a leader at the limit serve a blocking FIFO read itself and hang.)
//
// Thread-safe. The owner starts threads (Spawn, PassLead) with a callback; each started
// thread loops `while (AwaitLead()) { ...lead... }` and ends when AwaitLead returns false.
#ifndef P9_LEADER_FOLLOWER_H_
#define P9_LEADER_FOLLOWER_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>

namespace p9 {

class LeaderFollower {
 public:
  // Starts one thread that will call AwaitLead(): true if it did. Called under this
  // object's lock: it must not call back into it.
  using StartThread = std::function<bool()>;

  explicit LeaderFollower(size_t max_threads) : max_threads_(max_threads) {}
  LeaderFollower(const LeaderFollower&) = delete;
  LeaderFollower& operator=(const LeaderFollower&) = delete;

  // Starts a thread through `start` (the first one, usually) and counts it; a `start` that
  // just returns true counts the calling thread, which then loops on AwaitLead itself.
  // False if it could not, or after Close().
  bool Spawn(const StartThread& start);

  // Waits until the role is free and takes it: true. False once closed; the calling thread
  // is then no longer counted and must end.
  bool AwaitLead();

  // Called by the leader before serving a request that may block. True: the role has been
  // passed on (to an available thread, or to a new one `start` started) and the caller counts
  // busy until Done(); it then serves the request and goes back to AwaitLead. False: the
  // caller stays leader (every other thread is busy at the limit, `start` failed, or closed).
  bool PassLead(const StartThread& start);
  // The busy caller of a successful PassLead has served its request.
  void Done();

  // Ends the set: AwaitLead returns false to every thread, PassLead and Spawn refuse.
  // Idempotent.
  void Close();
  // Waits until every counted thread has left AwaitLead for good (after Close()).
  void WaitNoThreads();

 private:
  bool SpawnLocked(const StartThread& start);  // REQUIRES: mu_ held.

  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;       // The role freed, or closed.
  std::condition_variable done_cv_;  // The last thread gone.
  bool leader_taken_ = false;   // Guarded by mu_. Some thread holds the role.
  size_t threads_ = 0;          // Guarded by mu_. Started and not yet ended.
  size_t busy_ = 0;             // Guarded by mu_. Serving a request after PassLead.
  bool closed_ = false;         // Guarded by mu_.
};

}  // namespace p9

#endif  // P9_LEADER_FOLLOWER_H_
