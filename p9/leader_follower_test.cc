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
          // Lead until told to hand on: as a leader that met a blocking request.
          while (!hand_on.load() && !stop.load()) std::this_thread::sleep_for(1ms);
          if (stop.load()) {  // The input ended: as a real leader does.
            lf.Close();
            continue;
          }
          hand_on = false;
          if (lf.PassLead(Start())) {
            ++passed;
            while (!release.load()) std::this_thread::sleep_for(1ms);
            lf.Done();
          } else {
            ++kept;
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
  std::atomic<int> leads{0}, passed{0}, kept{0};
  std::atomic<bool> hand_on{false}, release{false}, stop{false};
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
  EXPECT_FALSE(p.lf.PassLead(p.Start()));
  // ~Pool: the leader sees its input end, and every thread leaves AwaitLead for good.
}

TEST(LeaderFollowerTest, AFailedStartLeavesTheCallerLeading) {
  LeaderFollower lf(4);
  ASSERT_TRUE(lf.Spawn([] { return true; }));  // This thread.
  ASSERT_TRUE(lf.AwaitLead());
  EXPECT_FALSE(lf.PassLead([] { return false; }));
  lf.Close();
  EXPECT_FALSE(lf.AwaitLead());  // And this thread is no longer counted.
  lf.WaitNoThreads();
}

}  // namespace
}  // namespace p9
