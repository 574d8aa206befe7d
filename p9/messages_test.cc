#include "p9/messages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace p9 {
namespace {

std::vector<char> Flatten(const OutFrame& f) {
  std::vector<char> v = f.head;
  v.insert(v.end(), f.tail.begin(), f.tail.end());
  return v;
}

template <typename M>
M RoundTrip(const M& m, Tag tag = 7) {
  std::vector<char> bytes = Flatten(EncodeFrame(tag, m));
  auto h = ParseHeader(Bytes(bytes.data(), bytes.size()), kMaxMsize);
  EXPECT_TRUE(h.has_value());
  EXPECT_EQ(h->size, bytes.size());
  EXPECT_EQ(h->type, static_cast<uint8_t>(M::kType));
  EXPECT_EQ(h->tag, tag);
  auto d = DecodeBody<M>(Bytes(bytes.data() + kHeaderSize, bytes.size() - kHeaderSize));
  EXPECT_TRUE(d.has_value());
  // Every shorter body is rejected, never over-read.
  for (size_t n = 0; n + kHeaderSize < bytes.size(); ++n) {
    auto bad = DecodeBody<M>(Bytes(bytes.data() + kHeaderSize, n));
    EXPECT_FALSE(bad.has_value()) << "truncated to " << n;
  }
  // One trailing byte is inconsistent.
  bytes.push_back(0);
  EXPECT_FALSE(
      DecodeBody<M>(Bytes(bytes.data() + kHeaderSize, bytes.size() - kHeaderSize)).has_value());
  return d.has_value() ? *d : M{};
}

TEST(MessagesTest, GoldenTversion) {
  Tversion v{.msize = 8192, .version = "9P2000.L"};
  std::vector<char> got = Flatten(EncodeFrame(kNoTag, v));
  const unsigned char want[] = {0x15, 0, 0, 0, 100, 0xff, 0xff, 0x00, 0x20, 0, 0, 8, 0,
                                '9', 'P', '2', '0', '0', '0', '.', 'L'};
  ASSERT_EQ(got.size(), sizeof(want));
  EXPECT_EQ(std::memcmp(got.data(), want, sizeof(want)), 0);
}

TEST(MessagesTest, GoldenRlerror) {
  std::vector<char> got = Flatten(EncodeFrame(1, Rlerror{.ecode = ENOENT}));
  const unsigned char want[] = {11, 0, 0, 0, 7, 1, 0, 2, 0, 0, 0};
  ASSERT_EQ(got.size(), sizeof(want));
  EXPECT_EQ(std::memcmp(got.data(), want, sizeof(want)), 0);
}

TEST(MessagesTest, RoundTripsRequestsAndReplies) {
  Twalk w{.fid = 1, .newfid = 2, .names = {"a", "bb", "ccc"}};
  EXPECT_EQ(RoundTrip(w), w);
  Tlcreate c{.fid = 3, .name = "f", .flags = open_flags::kCreate, .mode = 0644, .gid = 9};
  EXPECT_EQ(RoundTrip(c), c);
  Rgetattr g;
  g.valid = getattr::kAll;
  g.qid = Qid{kQtDir, 3, 99};
  g.mode = 040755;
  g.size = 1ull << 40;
  g.data_version = 77;
  EXPECT_EQ(RoundTrip(g), g);
  Tlock l{.fid = 4, .type = lock::kTypeWrLck, .flags = 1, .start = 5, .length = 6,
          .proc_id = 7, .client_id = "host"};
  EXPECT_EQ(RoundTrip(l), l);
  Rwalk rw{.wqids = {Qid{kQtDir, 1, 2}, Qid{kQtFile, 3, 4}}};
  EXPECT_EQ(RoundTrip(rw), rw);
  Rstatfs s{.type = 0x01021997, .bsize = 4096, .blocks = 10, .namelen = 255};
  EXPECT_EQ(RoundTrip(s), s);
}

TEST(MessagesTest, TwriteDataIsTailNotCopied) {
  static const char kData[] = "payload";
  Twrite w{.fid = 1, .offset = 8, .data = Bytes(kData, 7)};
  OutFrame f = EncodeFrame(3, w);
  EXPECT_EQ(f.tail.data(), kData);
  // Decoded data aliases the received bytes (no copy), so compare while they live.
  std::vector<char> bytes = Flatten(f);
  auto d = DecodeBody<Twrite>(Bytes(bytes.data() + kHeaderSize, bytes.size() - kHeaderSize));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, w);
  EXPECT_GE(d->data.data(), bytes.data());
  EXPECT_LT(d->data.data(), bytes.data() + bytes.size());
}

TEST(MessagesTest, WalkWithTooManyNamesIsRejected) {
  Encoder e;
  e.Put(Fid{1});
  e.Put(Fid{2});
  e.Put(uint16_t{17});
  for (int i = 0; i < 17; ++i) e.Put(std::string("x"));
  auto r = DecodeBody<Twalk>(Bytes(e.buffer().data(), e.buffer().size()));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Errno(EPROTO));
}

TEST(MessagesTest, StringLongerThanInputIsRejected) {
  const char body[] = {1, 0, 0, 0, static_cast<char>(0xff), static_cast<char>(0xff), 'a'};
  EXPECT_TRUE(DecodeBody<Treadlink>(Bytes(body, 4)).has_value());
  EXPECT_FALSE(DecodeBody<Rreadlink>(Bytes(body + 4, 3)).has_value());
}

TEST(MessagesTest, BytesCountBeyondInputIsRejected) {
  const char body[] = {static_cast<char>(0xff), static_cast<char>(0xff), static_cast<char>(0xff),
                       static_cast<char>(0xff), 'a'};
  EXPECT_FALSE(DecodeBody<Rread>(Bytes(body, sizeof(body))).has_value());
}

TEST(MessagesTest, HeaderLimits) {
  char h[7] = {6, 0, 0, 0, 100, 0, 0};
  EXPECT_FALSE(ParseHeader(Bytes(h, 7), kDefaultMsize).has_value());
  uint32_t big = kDefaultMsize + 1;
  std::memcpy(h, &big, 4);
  EXPECT_FALSE(ParseHeader(Bytes(h, 7), kDefaultMsize).has_value());
  EXPECT_FALSE(ParseHeader(Bytes(h, 6), kMaxMsize).has_value());
}

TEST(MessagesTest, NamesCoverTableAndRejectOthers) {
  int known = 0;
  for (int t = 0; t < 256; ++t) known += IsKnownMsgType(static_cast<uint8_t>(t));
  EXPECT_EQ(known, 65);
  EXPECT_STREQ(MsgTypeName(132), "Treaddirattr");
  EXPECT_STREQ(MsgTypeName(134), "Tlcreateat");
  EXPECT_STREQ(MsgTypeName(135), "Rlcreateat");
  EXPECT_STREQ(MsgTypeName(136), "Twalkopen");
  EXPECT_STREQ(MsgTypeName(110), "Twalk");
  EXPECT_STREQ(MsgTypeName(130), "Twalkgetattr");
  EXPECT_EQ(MsgTypeName(106), nullptr);
}

TEST(MessagesTest, DirentAttrsRoundTripAndRespectLimit) {
  DirentAttr a{.dirent = {.qid = Qid{kQtFile, 0, 1}, .offset = 7, .type = 8, .name = "f"}};
  a.attr.valid = getattr::kBasic;
  a.attr.qid = a.dirent.qid;
  a.attr.mode = 0100644;
  a.attr.size = 12345;
  a.attr.mtime_sec = 99;
  DirentAttr gone{.dirent = {.qid = Qid{kQtDir, 0, 2}, .offset = 9, .type = 4, .name = "gone"}};
  std::vector<char> buf;
  ASSERT_TRUE(AppendDirentAttr(buf, a, 1000));
  EXPECT_EQ(buf.size(), DirentAttrSize(a));
  ASSERT_TRUE(AppendDirentAttr(buf, gone, 1000));
  EXPECT_FALSE(AppendDirentAttr(buf, a, buf.size() + DirentAttrSize(a) - 1));
  auto d = DecodeDirentAttrs(Bytes(buf.data(), buf.size()));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, (std::vector<DirentAttr>{a, gone}));
  EXPECT_EQ((*d)[1].attr.valid, 0u) << "an entry gone meanwhile carries no attributes";
  for (size_t n = 1; n < buf.size(); ++n) {
    if (n == DirentAttrSize(a)) continue;  // A whole first entry is valid on its own.
    EXPECT_FALSE(DecodeDirentAttrs(Bytes(buf.data(), n)).has_value()) << n;
  }
}

TEST(MessagesTest, VisitRequestDecodesOnlyRequests) {
  std::vector<char> f = EncodeFrame(1, Tgetattr{.fid = 5, .request_mask = 3}).head;
  Fid seen = 0;
  auto ok = VisitRequest(static_cast<uint8_t>(MsgType::kTgetattr),
                         Bytes(f.data() + kHeaderSize, f.size() - kHeaderSize),
                         [&](const auto& m) {
                           if constexpr (std::is_same_v<std::decay_t<decltype(m)>, Tgetattr>)
                             seen = m.fid;
                         });
  EXPECT_TRUE(ok.has_value());
  EXPECT_EQ(seen, 5u);
  auto bad = VisitRequest(static_cast<uint8_t>(MsgType::kRgetattr), Bytes(), [](const auto&) {});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error(), Errno(EOPNOTSUPP));
}

TEST(MessagesTest, DirentsRoundTripAndRespectLimit) {
  std::vector<char> buf;
  Dirent a{.qid = Qid{kQtFile, 0, 1}, .offset = 1, .type = 8, .name = "a"};
  Dirent b{.qid = Qid{kQtDir, 0, 2}, .offset = 2, .type = 4, .name = "dir"};
  ASSERT_TRUE(AppendDirent(buf, a, 1000));
  ASSERT_TRUE(AppendDirent(buf, b, 1000));
  EXPECT_FALSE(AppendDirent(buf, a, buf.size() + 1));
  auto d = DecodeDirents(Bytes(buf.data(), buf.size()));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, (std::vector<Dirent>{a, b}));
  for (size_t n = 1; n < buf.size(); ++n) {
    if (n == DirentSize(a)) continue;  // A whole first entry is valid on its own.
    EXPECT_FALSE(DecodeDirents(Bytes(buf.data(), n)).has_value()) << n;
  }
}

}  // namespace
}  // namespace p9
