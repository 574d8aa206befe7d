// Every message type of the table, tested generically: a new message added to
// P9_MESSAGE_TYPES is covered here without writing a line.
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "p9/messages.h"

namespace p9 {
namespace {

// The list of every message struct, straight from the table.
template <typename First, typename... Rest>
struct DropFirst {
  using type = ::testing::Types<Rest...>;
};
#define P9_TYPE_(name, num) , name
using AllMessages = DropFirst<void P9_MESSAGE_TYPES(P9_TYPE_)>::type;
#undef P9_TYPE_

// Fills every field with a distinct non-default value.
struct Filler {
  int n = 1;
  static inline const char kPayload[] = "bulk payload bytes";
  void operator()(uint8_t& v) { v = static_cast<uint8_t>(n++ * 3); }
  void operator()(uint16_t& v) { v = static_cast<uint16_t>(1000 + n++); }
  void operator()(uint32_t& v) { v = 0x01020304u + n++; }
  void operator()(uint64_t& v) { v = 0x0102030405060708ull + n++; }
  void operator()(std::string& s) { s = "str" + std::to_string(n++); }
  void operator()(Qid& q) { q = Qid{kQtDir, static_cast<uint32_t>(n++), 0xabcdef00ull + n}; }
  void operator()(std::vector<std::string>& v) { v = {"a", "bb", "ccc" + std::to_string(n++)}; }
  void operator()(std::vector<Qid>& v) {
    v = {Qid{kQtFile, 1, 2}, Qid{kQtSymlink, 3, static_cast<uint64_t>(n++)}};
  }
  void operator()(Bytes& b) { b = Bytes(kPayload, sizeof(kPayload) - 1); }
  // A message nested in another (Rwalkgetattr's attributes).
  template <typename M>
    requires requires(M m) { m.Fields(); }
  void operator()(M& m) {
    std::apply([&](auto&... field) { ((*this)(field), ...); }, m.Fields());
  }
};

template <typename M>
M Filled() {
  M m{};
  Filler f;
  std::apply([&](auto&... field) { (f(field), ...); }, m.Fields());
  return m;
}

// The whole frame as one buffer (head + tail).
template <typename M>
std::vector<char> Wire(const M& m, Tag tag = 0x1234) {
  OutFrame f = EncodeFrame(tag, m);
  std::vector<char> out = f.head;
  out.insert(out.end(), f.tail.begin(), f.tail.end());
  return out;
}

template <typename M>
class EveryMessageTest : public ::testing::Test {};
TYPED_TEST_SUITE(EveryMessageTest, AllMessages);

TYPED_TEST(EveryMessageTest, RoundTripsWithEveryFieldSet) {
  using M = TypeParam;
  M m = Filled<M>();
  std::vector<char> w = Wire(m);
  auto h = ParseHeader(Bytes(w.data(), kHeaderSize), kMaxMsize);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->size, w.size());
  EXPECT_EQ(h->type, static_cast<uint8_t>(M::kType));
  EXPECT_EQ(h->tag, 0x1234);
  EXPECT_TRUE(IsKnownMsgType(h->type));
  auto d = DecodeBody<M>(Bytes(w.data() + kHeaderSize, w.size() - kHeaderSize));
  ASSERT_TRUE(d.has_value()) << MsgTypeName(h->type);
  EXPECT_TRUE(*d == m) << MsgTypeName(h->type);
}

TYPED_TEST(EveryMessageTest, EveryTruncationIsRejected) {
  using M = TypeParam;
  std::vector<char> w = Wire(Filled<M>());
  Bytes body(w.data() + kHeaderSize, w.size() - kHeaderSize);
  for (size_t n = 0; n < body.size(); ++n) {
    auto d = DecodeBody<M>(body.first(n));
    // A Bytes field (count + data) at the end may decode from a shorter count only if the
    // count itself says so; here it does not, so every prefix must fail.
    EXPECT_FALSE(d.has_value()) << "prefix " << n << " of " << body.size();
    if (d.has_value()) break;
  }
}

TYPED_TEST(EveryMessageTest, TrailingByteIsRejected) {
  using M = TypeParam;
  std::vector<char> w = Wire(Filled<M>());
  w.push_back('x');
  auto d = DecodeBody<M>(Bytes(w.data() + kHeaderSize, w.size() - kHeaderSize));
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error(), Errno(EPROTO));
}

TYPED_TEST(EveryMessageTest, DefaultMessageRoundTrips) {
  using M = TypeParam;
  M m{};
  std::vector<char> w = Wire(m);
  auto d = DecodeBody<M>(Bytes(w.data() + kHeaderSize, w.size() - kHeaderSize));
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(*d == m);
}

// ---- Malformed input, per field type ------------------------------------------------------

// Decodes `body` as M; expects EPROTO.
template <typename M>
void ExpectRejected(std::vector<unsigned char> body, const char* what) {
  auto d = DecodeBody<M>(Bytes(reinterpret_cast<const char*>(body.data()), body.size()));
  ASSERT_FALSE(d.has_value()) << what;
  EXPECT_EQ(d.error(), Errno(EPROTO)) << what;
}

TEST(MalformedTest, IntegersShortOfTheirWidth) {
  ExpectRejected<Rlock>({}, "u8 missing");
  ExpectRejected<Tflush>({0x01}, "u16 short");
  ExpectRejected<Tclunk>({0x01, 0x02, 0x03}, "u32 short");
  ExpectRejected<Rxattrwalk>({1, 2, 3, 4, 5, 6, 7}, "u64 short");
}

TEST(MalformedTest, StringLengthsBeyondTheBody) {
  // Treadlink is fid only; Rreadlink is one string.
  ExpectRejected<Rreadlink>({0x05, 0x00, 'a', 'b'}, "len 5, 2 bytes");
  ExpectRejected<Rreadlink>({0xff, 0xff, 'a'}, "len 0xffff");
  ExpectRejected<Rreadlink>({0x01}, "length itself truncated");
}

TEST(MalformedTest, VectorCountsOverTheLimitOrBeyondTheBody) {
  // Twalk: fid[4] newfid[4] nwname[2] names.
  std::vector<unsigned char> b = {1, 0, 0, 0, 2, 0, 0, 0, 17, 0};
  for (int i = 0; i < 17; ++i) b.insert(b.end(), {1, 0, 'x'});
  ExpectRejected<Twalk>(b, "17 names");
  ExpectRejected<Twalk>({1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff}, "65535 names, none present");
  ExpectRejected<Twalk>({1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0, 'a'}, "second name missing");
  ExpectRejected<Rwalk>({17, 0}, "17 qids");
}

TEST(MalformedTest, QidTruncated) {
  ExpectRejected<Rattach>({0x80, 1, 0, 0, 0, 1, 2, 3}, "qid of 8 bytes");
}

TEST(MalformedTest, BytesCountBeyondTheBody) {
  ExpectRejected<Rread>({0x10, 0, 0, 0, 'a', 'b'}, "count 16, 2 bytes");
  ExpectRejected<Rread>({0xff, 0xff, 0xff, 0xff}, "count 4G");
  ExpectRejected<Rreaddir>({0x01, 0, 0}, "count truncated");
}

// ---- Golden bytes in the layouts of the spec / Linux net/9p ---------------------------------

std::vector<unsigned char> Bytes8(const std::vector<char>& v) {
  return std::vector<unsigned char>(v.begin(), v.end());
}

TEST(GoldenTest, TwalkTwoNames) {
  // size[4] Twalk(110) tag[2] fid[4] newfid[4] nwname[2] {len[2] name}*2
  std::vector<unsigned char> want = {23, 0, 0, 0, 110, 1, 0, 5, 0, 0, 0, 6, 0, 0, 0,
                                     2,  0, 1, 0, 'a', 2, 0, 'b', 'c'};
  want[0] = static_cast<unsigned char>(want.size());
  EXPECT_EQ(Bytes8(Wire(Twalk{5, 6, {"a", "bc"}}, 1)), want);
}

TEST(GoldenTest, Treaddir) {
  // size[4] Treaddir(40) tag[2] fid[4] offset[8] count[4]
  std::vector<unsigned char> want = {25, 0, 0, 0, 40, 7, 0, 3, 0, 0, 0,
                                     9,  0, 0, 0, 0,  0, 0, 0, 0, 0x10, 0, 0};
  want[0] = static_cast<unsigned char>(want.size());
  EXPECT_EQ(Bytes8(Wire(Treaddir{3, 9, 0x1000}, 7)), want);
}

TEST(GoldenTest, RreadWithData) {
  // size[4] Rread(117) tag[2] count[4] data[count]
  static const char data[] = "xyz";
  std::vector<unsigned char> want = {14, 0, 0, 0, 117, 2, 0, 3, 0, 0, 0, 'x', 'y', 'z'};
  EXPECT_EQ(Bytes8(Wire(Rread{Bytes(data, 3)}, 2)), want);
}

TEST(GoldenTest, Tlcreate) {
  // size[4] Tlcreate(14) tag[2] fid[4] name[s] flags[4] mode[4] gid[4]
  std::vector<unsigned char> want = {0, 0, 0, 0, 14, 9, 0, 1, 0, 0, 0, 2, 0, 'f', 'n',
                                     0x42, 0x80, 0, 0, 0xa4, 0x81, 0, 0, 100, 0, 0, 0};
  want[0] = static_cast<unsigned char>(want.size());
  EXPECT_EQ(Bytes8(Wire(Tlcreate{1, "fn", 0x8042, 0100644, 100}, 9)), want);
}

TEST(GoldenTest, Tlcreateat) {
  // size[4] Tlcreateat(134) tag[2] dfid[4] newfid[4] pathfid[4] name[s] flags[4] mode[4] gid[4]
  std::vector<unsigned char> want = {0, 0, 0, 0, 134, 9, 0,                 // header
                                     1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,  // fids
                                     2, 0, 'f', 'n',                              // name
                                     0x42, 0x80, 0, 0, 0xa4, 0x81, 0, 0, 100, 0, 0, 0};
  want[0] = static_cast<unsigned char>(want.size());
  EXPECT_EQ(Bytes8(Wire(Tlcreateat{1, 2, kNoFid, "fn", 0x8042, 0100644, 100}, 9)), want);
}

TEST(GoldenTest, RlcreateatIsRlcreateThenAnRgetattrBody) {
  Rlcreateat r;
  r.qid = Qid{kQtFile, 0, 42};
  r.iounit = 8192;
  r.attr.valid = getattr::kBasic;
  r.attr.qid = r.qid;
  r.attr.size = 5;
  std::vector<char> w = Wire(r, 3);
  ASSERT_EQ(w.size(), 7u + 13 + 4 + 153);  // An Rgetattr body is 153 bytes.
  EXPECT_EQ(static_cast<unsigned char>(w[4]), 135);
  uint32_t iounit;
  std::memcpy(&iounit, &w[20], 4);
  EXPECT_EQ(iounit, 8192u);
  std::vector<char> g = Wire(r.attr, 3);
  EXPECT_TRUE(std::equal(w.begin() + 24, w.end(), g.begin() + 7)) << "the Rgetattr body";
}

TEST(GoldenTest, RgetattrLayout) {
  // size[4] Rgetattr(25) tag[2] valid[8] qid[13] mode[4] uid[4] gid[4] nlink[8] rdev[8]
  // size[8] blksize[8] blocks[8] atime[16] mtime[16] ctime[16] btime[16] gen[8] data_version[8]
  Rgetattr a;
  a.valid = getattr::kBasic;
  a.qid = Qid{kQtDir, 0, 42};
  a.mode = 040755;
  a.size = 4096;
  std::vector<char> w = Wire(a, 3);
  ASSERT_EQ(w.size(), 7u + 8 + 13 + 4 * 3 + 8 * 5 + 16 * 4 + 8 * 2);  // 160
  EXPECT_EQ(static_cast<unsigned char>(w[4]), 25);
  uint64_t valid;
  std::memcpy(&valid, &w[7], 8);
  EXPECT_EQ(valid, getattr::kBasic);
  EXPECT_EQ(static_cast<unsigned char>(w[15]), kQtDir);
  uint32_t mode;
  std::memcpy(&mode, &w[28], 4);
  EXPECT_EQ(mode, 040755u);
  uint64_t size;
  std::memcpy(&size, &w[56], 8);  // After mode, uid, gid, nlink, rdev.
  EXPECT_EQ(size, 4096u);
}

}  // namespace
}  // namespace p9
