// The reader role of a leader/follower set, driven by real threads.
#include "p9/leader_follower.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace p9 {
namespace {

using namespace std::chrono_literals;

// Threads started by the set: each loops on AwaitLead and records that it led.
struct Pool {
  explicit Pool(size_t max) : lf(max) {}
  ~Pool() {
    release = true;
    stop = true;
    lf.Close();
    lf.WaitNoThreads();
    for (auto& t : threads) t.join();
  }
  LeaderFollower::StartThread Start() {
    return [this] {
      threads.emplace_back([this] {
        while (lf.AwaitLead()) {
          ++leads;
          // Lead until the input ends or a blocking request is handed on.
          for (bool leading = true; leading;) {
            while (!hand_on.load() && !stop.load()) std::this_thread::sleep_for(1ms);
            if (stop.load()) {  // The input ended: as a real leader does.
              lf.Close();
              break;
            }
            hand_on = false;  // A blocking request.
            LeaderFollower::Defer defer;
            if (queue) defer = [this] { return LeaderFollower::Task([this] { ++ran; }); };
            switch (lf.PassLead(Start(), defer)) {
              case LeaderFollower::Handoff::kPassed:
                ++passed;
                while (!release.load()) std::this_thread::sleep_for(1ms);
                lf.Done();
                leading = false;
                break;
              case LeaderFollower::Handoff::kQueued:
                ++queued;
                break;
              case LeaderFollower::Handoff::kKept:
                ++kept;  // Served here; leads on.
                break;
            }
          }
        }
      });
      return true;
    };
  }
  // Starts the first thread and waits until it leads.
  bool Begin() { return lf.Spawn(Start()) && WaitFor(leads, 1); }
  // The leader meets its n-th blocking request; waits until it has handed the role on and
  // another thread leads.
  bool HandOn(int n) {
    hand_on = true;
    return WaitFor(passed, n) && WaitFor(leads, n + 1);
  }
  bool WaitFor(const std::atomic<int>& v, int want) {
    for (int i = 0; i < 2000 && v.load() < want; ++i) std::this_thread::sleep_for(1ms);
    return v.load() >= want;
  }

  LeaderFollower lf;
  std::vector<std::thread> threads;  // Touched only under lf's lock (Start runs there).
  std::atomic<int> leads{0}, passed{0}, kept{0}, queued{0}, ran{0};
  std::atomic<bool> hand_on{false}, release{false}, stop{false};
  std::atomic<bool> queue{false};  // The owner queues requests met at the limit.
};

TEST(LeaderFollowerTest, PassesTheRoleAndStopsAtTheLimit) {
  Pool p(3);
  ASSERT_TRUE(p.Begin());
  // Two blocking requests: each hands the role to a new thread (busy ones are not available).
  ASSERT_TRUE(p.HandOn(1));
  ASSERT_TRUE(p.HandOn(2));
  // A third at the limit: the other two are busy, so the leader keeps the role.
  p.hand_on = true;
  ASSERT_TRUE(p.WaitFor(p.kept, 1));
  EXPECT_EQ(p.passed.load(), 2);
  EXPECT_EQ(p.leads.load(), 3);
}

// At the limit an owner that can queue does: the leader leads on, and the busy thread runs
// the queued tasks, oldest first, when its own request is done.
TEST(LeaderFollowerTest, AtTheLimitARequestWaitsForTheFirstBusyThread) {
  Pool p(2);
  p.queue = true;
  ASSERT_TRUE(p.Begin());
  ASSERT_TRUE(p.HandOn(1));
  for (int i = 1; i <= 2; ++i) {
    p.hand_on = true;
    ASSERT_TRUE(p.WaitFor(p.queued, i));
  }
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(p.ran.load(), 0);  // The busy thread is still busy.
  EXPECT_EQ(p.kept.load(), 0);
  EXPECT_EQ(p.leads.load(), 2);  // And no thread beyond the limit took the role.
  p.release = true;
  ASSERT_TRUE(p.WaitFor(p.ran, 2));
  EXPECT_EQ(p.threads.size(), 2u);
}

// Close drops what is queued: the busy thread, once done, runs none of it.
TEST(LeaderFollowerTest, CloseDropsQueuedTasks) {
  Pool p(2);
  p.queue = true;
  ASSERT_TRUE(p.Begin());
  ASSERT_TRUE(p.HandOn(1));
  p.hand_on = true;
  ASSERT_TRUE(p.WaitFor(p.queued, 1));
  p.lf.Close();
  p.release = true;
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(p.ran.load(), 0);
}

// With no other thread at all there is nobody to queue for: the caller keeps the request.
TEST(LeaderFollowerTest, ALoneThreadKeepsTheRequest) {
  LeaderFollower lf(1);
  ASSERT_TRUE(lf.Spawn([] { return true; }));
  ASSERT_TRUE(lf.AwaitLead());
  int made = 0;
  auto defer = [&] {
    ++made;
    return LeaderFollower::Task([] {});
  };
  EXPECT_EQ(lf.PassLead([] { return false; }, defer), LeaderFollower::Handoff::kKept);
  EXPECT_EQ(made, 0);
  lf.Close();
  EXPECT_FALSE(lf.AwaitLead());
  lf.WaitNoThreads();
}

// A thread that has finished its request but not yet come back to AwaitLead counts as
// available: handing on at the limit then succeeds and no thread is added.
TEST(LeaderFollowerTest, AThreadDoneWithItsRequestIsAvailable) {
  Pool p(2);
  ASSERT_TRUE(p.Begin());
  ASSERT_TRUE(p.HandOn(1));
  p.release = true;  // The first thread finishes and returns to AwaitLead (role taken: waits).
  std::this_thread::sleep_for(20ms);
  p.release = false;
  ASSERT_TRUE(p.HandOn(2));  // The second hands on: to the first, within the limit of 2.
  EXPECT_EQ(p.kept.load(), 0);
  EXPECT_EQ(p.threads.size(), 2u);
}

TEST(LeaderFollowerTest, CloseEndsEveryThreadAndRefusesMore) {
  Pool p(4);
  ASSERT_TRUE(p.Begin());
  p.lf.Close();
  EXPECT_FALSE(p.lf.Spawn(p.Start()));
  EXPECT_EQ(p.lf.PassLead(p.Start()), LeaderFollower::Handoff::kKept);
  // ~Pool: the leader sees its input end, and every thread leaves AwaitLead for good.
}

TEST(LeaderFollowerTest, AFailedStartLeavesTheCallerLeading) {
  LeaderFollower lf(4);
  ASSERT_TRUE(lf.Spawn([] { return true; }));  // This thread.
  ASSERT_TRUE(lf.AwaitLead());
  EXPECT_EQ(lf.PassLead([] { return false; }), LeaderFollower::Handoff::kKept);
  lf.Close();
  EXPECT_FALSE(lf.AwaitLead());  // And this thread is no longer counted.
  lf.WaitNoThreads();
}

}  // namespace
}  // namespace p9
