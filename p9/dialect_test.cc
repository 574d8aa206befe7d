#include "p9/dialect.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "p9/p9.h"

namespace p9 {
namespace {

TEST(DialectTest, EachLevelNamesItselfAndTheHighestIsTheCurrentString) {
  for (unsigned n = 0; n <= static_cast<unsigned>(kDialect); ++n) {
    Dialect d = static_cast<Dialect>(n);
    EXPECT_EQ(ParseDialect(DialectVersion(d)), d) << DialectVersion(d);
  }
  EXPECT_EQ(DialectVersion(Dialect::kPlain), kVersion9P2000L);
  EXPECT_EQ(DialectVersion(Dialect::kReaddirAttr), "9P2000.L.cxx.3");
  EXPECT_EQ(DialectVersion(kDialect), kVersion9P2000LExt);
}

TEST(DialectTest, ANewerPeersLevelIsClampedToOurs) {
  EXPECT_EQ(ParseDialect("9P2000.L.cxx.5"), kDialect);
  EXPECT_EQ(ParseDialect("9P2000.L.cxx.999999999"), kDialect);
}

TEST(DialectTest, AnythingElseIsNotOurDialect) {
  for (const char* v : {"", "9P2000", "9P2000.u", "9P2000.L.", "9P2000.L.cxx", "9P2000.L.cxx.",
                        "9P2000.L.cxx.0", "9P2000.L.cxx.03", "9P2000.L.cxx.+3", "9P2000.L.cxx.-1",
                        "9P2000.L.cxx.3 ", "9P2000.L.cxx.3a", "9P2000.L.cxx.1234567890",
                        "9P2000.L.cxx.99999999999999999999", "9P2000.L.foo", "9p2000.l.cxx.3"}) {
    EXPECT_EQ(ParseDialect(v), std::nullopt) << '"' << v << '"';
  }
}

TEST(DialectTest, OnlyTheExactNameOfALevelNamesIt) {
  EXPECT_EQ(DialectNamed("9P2000.L.cxx.3"), Dialect::kReaddirAttr);
  EXPECT_EQ(DialectNamed(kVersion9P2000LExt), kDialect);
  EXPECT_EQ(DialectNamed("9P2000.L.cxx.5"), std::nullopt) << "not clamped";
  EXPECT_EQ(DialectNamed("9P2000.L"), std::nullopt) << "plain is not a level of the dialect";
  EXPECT_EQ(DialectNamed("9P2000.L.cxx.03"), std::nullopt);
}

TEST(DialectTest, LevelsAreOrdered) {
  EXPECT_TRUE(AtLeast(Dialect::kFusedOpen, Dialect::kFdDonation));
  EXPECT_TRUE(AtLeast(Dialect::kReaddirAttr, Dialect::kReaddirAttr));
  EXPECT_FALSE(AtLeast(Dialect::kReaddirAttr, Dialect::kFusedOpen));
  EXPECT_FALSE(AtLeast(Dialect::kPlain, Dialect::kFdDonation));
}

}  // namespace
}  // namespace p9
