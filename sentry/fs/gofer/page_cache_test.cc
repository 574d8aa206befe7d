// PageCache against an in-memory backend: random reads, writes, flushes and truncates are
// checked byte for byte against a model, with and without populating clean pages, and a
// run of missing pages must cost one backend read.
#include "sentry/fs/gofer/page_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace sentry::fs {
namespace {

struct Backend {
  std::string data;
  int reads = 0;
  int writes = 0;
  PageCache::ReadFn Reader() {
    return [this](std::span<char> dst, uint64_t off) -> p9::Result<size_t> {
      ++reads;
      if (off >= data.size()) return size_t{0};
      size_t n = std::min<size_t>(dst.size(), data.size() - off);
      std::memcpy(dst.data(), data.data() + off, n);
      return n;
    };
  }
  PageCache::WriteFn Writer() {
    return [this](std::span<const char> src, uint64_t off) -> p9::Result<void> {
      ++writes;
      if (data.size() < off + src.size()) data.resize(off + src.size(), '\0');
      std::memcpy(data.data() + off, src.data(), src.size());
      return p9::Ok();
    };
  }
};

std::string Pattern(size_t n, char base) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(base + i % 23);
  return s;
}

std::string ReadAll(PageCache& pc, Backend& b, uint64_t off, size_t len, bool populate) {
  std::string out(len, 'x');
  auto n = pc.Read(std::span<char>(out.data(), len), off, b.Reader(), populate);
  EXPECT_TRUE(n.has_value());
  out.resize(n.has_value() ? *n : 0);
  return out;
}

TEST(PageCacheTest, AMissingRunIsOneBackendRead) {
  for (bool populate : {false, true}) {
    Backend b{Pattern(1 << 20, 'a')};
    PageCache pc(b.data.size());
    EXPECT_EQ(ReadAll(pc, b, 100, 300000, populate), b.data.substr(100, 300000));
    EXPECT_EQ(b.reads, 1) << "populate=" << populate;
    // Again: served from the cache only when populating.
    EXPECT_EQ(ReadAll(pc, b, 100, 300000, populate), b.data.substr(100, 300000));
    EXPECT_EQ(b.reads, populate ? 1 : 2);
  }
}

TEST(PageCacheTest, CachedPagesSplitRunsAndDirtyDataWins) {
  Backend b{Pattern(64 * 1024, 'a')};
  PageCache pc(b.data.size());
  std::string mid(10, 'Z');
  // Dirty bytes in page 5 only (a partial write reads the page first).
  ASSERT_TRUE(pc.Write(std::span<const char>(mid.data(), mid.size()), 5 * 4096 + 7, b.Reader(),
                       b.Writer(), false)
                  .has_value());
  b.reads = 0;
  std::string want = b.data;
  want.replace(5 * 4096 + 7, 10, mid);
  EXPECT_EQ(ReadAll(pc, b, 0, want.size(), false), want);
  EXPECT_EQ(b.reads, 2) << "pages 0-4 and 6-15: two runs around the cached page";
  EXPECT_EQ(b.data.substr(5 * 4096 + 7, 10), Pattern(64 * 1024, 'a').substr(5 * 4096 + 7, 10))
      << "write-back: not on the backend yet";
  ASSERT_TRUE(pc.Flush(b.Writer()).has_value());
  EXPECT_EQ(b.data, want);
}

TEST(PageCacheTest, ShortBackendReadsAsZeros) {
  Backend b{std::string(5000, 'q')};
  PageCache pc(9000);  // The backend shrank behind our back.
  std::string got = ReadAll(pc, b, 0, 9000, true);
  ASSERT_EQ(got.size(), 9000u);
  EXPECT_EQ(got.substr(0, 5000), std::string(5000, 'q'));
  EXPECT_EQ(got.substr(5000), std::string(4000, '\0'));
}

TEST(PageCacheTest, RandomOperationsMatchAModel) {
  for (bool populate : {false, true}) {
    for (bool through : {false, true}) {
      Backend b{Pattern(50000, 'a')};
      std::string model = b.data;
      PageCache pc(b.data.size());
      uint32_t seed = 777;
      auto rnd = [&] { return seed = seed * 1103515245 + 12345, (seed >> 8); };
      for (int i = 0; i < 400; ++i) {
        switch (rnd() % 5) {
          case 0:
          case 1: {
            size_t off = rnd() % 80000, len = 1 + rnd() % 20000;
            std::string d(len, static_cast<char>('A' + i % 26));
            ASSERT_TRUE(pc.Write(std::span<const char>(d.data(), len), off, b.Reader(),
                                 b.Writer(), through)
                            .has_value());
            if (model.size() < off + len) model.resize(off + len, '\0');
            model.replace(off, len, d);
            break;
          }
          case 2: {
            size_t off = rnd() % 90000, len = rnd() % 30000;
            std::string want = off < model.size() ? model.substr(off, len) : "";
            ASSERT_EQ(ReadAll(pc, b, off, len, populate), want) << "op " << i;
            break;
          }
          case 3:
            ASSERT_TRUE(pc.Flush(b.Writer()).has_value());
            ASSERT_EQ(b.data.substr(0, model.size()), model) << "op " << i;
            break;
          case 4: {
            // As the file system truncates: flush, truncate the backend, then the cache.
            size_t to = rnd() % (model.size() + 1);
            ASSERT_TRUE(pc.Flush(b.Writer()).has_value());
            b.data.resize(to);
            pc.Truncate(to);
            model.resize(to);
            break;
          }
        }
        ASSERT_EQ(pc.size(), model.size());
      }
      ASSERT_TRUE(pc.Flush(b.Writer()).has_value());
      EXPECT_EQ(b.data.substr(0, model.size()), model)
          << "populate=" << populate << " writethrough=" << through;
    }
  }
}

}  // namespace
}  // namespace sentry::fs
