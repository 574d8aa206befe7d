// The reader role of a leader/follower thread set, shared by p9::Server's connections and
// the sandbox's FUSE session loop.
//
// One thread at a time, the leader, reads the input and serves what it reads itself: a
// request costs no hand-off to another thread (on these VMs a wake-up costs more than most
// requests). Before serving a request that may wait for long, the leader passes the role to
// a thread that is neither leading nor busy, or has the owner start one (up to
// `max_threads`), so a slow request never stops the others. At the limit, with every other
// thread busy, the owner may queue the request as a task: the first busy thread to finish
// runs it, and the leader reads on (otherwise the leader serves the request itself, and a
// request that waits for good -- a FIFO nobody writes -- stops the input with it).
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
#include <deque>
#include <functional>
#include <mutex>

namespace p9 {

class LeaderFollower {
 public:
  // Starts one thread that will call AwaitLead(): true if it did. Called under this
  // object's lock: it must not call back into it.
  using StartThread = std::function<bool()>;
  // A request that waits for a busy thread (see PassLead).
  using Task = std::function<void()>;
  // Makes the Task for the request the leader holds. Called under this object's lock.
  using Defer = std::function<Task()>;

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

  enum class Handoff {
    kPassed,  // The role went to an available thread, or to a new one `start` started; the
              // caller counts busy: it serves the request, calls Done(), then AwaitLead.
    kQueued,  // Every other thread is busy at the limit (or `start` failed): the request is
              // queued as `defer`'s Task for the first of them to finish; the caller leads on.
    kKept,    // The caller stays leader and serves the request itself: closed, or no thread
              // is busy to take a task, or `defer` is empty.
  };
  // Called by the leader before serving a request that may block.
  Handoff PassLead(const StartThread& start, const Defer& defer = nullptr);
  // The busy caller of PassLead (kPassed) has served its request: runs the queued tasks,
  // oldest first, until none is left (or closed), then stops counting busy.
  void Done();

  // Ends the set: AwaitLead returns false to every thread, PassLead and Spawn refuse, and
  // queued tasks are dropped unrun. Idempotent.
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
  std::deque<Task> queued_;     // Guarded by mu_. Only while every thread but one is busy.
};

}  // namespace p9

#endif  // P9_LEADER_FOLLOWER_H_
