// Wire format of 9P2000.L: little-endian integers, u16-length strings, 13-byte qids.
//
// Every message is  size[4] type[1] tag[2] body...  where size counts the whole message. The
// body is the message struct's fields (P9_FIELDS in messages.h) in order:
//   u8/u16/u32/u64      little-endian
//   std::string         len[2] bytes[len]           (no NUL terminator)
//   Qid                 type[1] version[4] path[8]
//   std::vector<T>      count[2] T*count            (walk names and qids; at most 16)
//   Bytes               count[4] bytes[count]       (read/write/readdir data; always last)
//
// Decoder never trusts a length: every read is bounds-checked against the frame, counts are
// capped before anything is allocated, and the first failure is sticky so callers check once.
// Bytes fields decode as views into the frame (no copy) and encode as a separate tail iovec
// (no copy), so bulk data moves between the socket and the caller's buffer only once.
#ifndef P9_WIRE_H_
#define P9_WIRE_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "p9/p9.h"
#include "p9/result.h"

namespace p9 {

static_assert(std::endian::native == std::endian::little, "9P is little-endian; port Put/Get");

// A view of bulk data: Rread/Rreaddir data, Twrite data. Not owned.
using Bytes = std::span<const char>;

// Lists a message's wire fields, in order, once.
#define P9_FIELDS(...)                                            \
  auto Fields() { return std::tie(__VA_ARGS__); }                 \
  auto Fields() const { return std::tie(__VA_ARGS__); }
#define P9_NO_FIELDS()                      \
  std::tuple<> Fields() const { return {}; }

template <typename M>
concept HasFields = requires(const M& m) { m.Fields(); };

// Appends wire bytes to a growing buffer. A Bytes field is not copied: it is remembered as the
// tail, which the transport sends right after the buffer. Only the last field may be Bytes.
class Encoder {
 public:
  Encoder() = default;
  explicit Encoder(std::vector<char> reuse) : buf_(std::move(reuse)) { buf_.clear(); }
  // Appends to what `buf` holds already (take it back with buffer()).
  struct Appending {};
  Encoder(std::vector<char> buf, Appending) : buf_(std::move(buf)) {}

  void Put(uint8_t v) { Raw(&v, 1); }
  void Put(uint16_t v) { Raw(&v, 2); }
  void Put(uint32_t v) { Raw(&v, 4); }
  void Put(uint64_t v) { Raw(&v, 8); }
  // REQUIRES: s.size() <= 65535; longer strings are our bug (names are checked upstream).
  void Put(const std::string& s) {
    CHECK_LE(s.size(), 0xFFFFu) << "9P string too long";
    Put(static_cast<uint16_t>(s.size()));
    Raw(s.data(), s.size());
  }
  void Put(const Qid& q) {
    Put(q.type);
    Put(q.version);
    Put(q.path);
  }
  template <typename T>
  void Put(const std::vector<T>& v) {
    CHECK_LE(v.size(), 0xFFFFu);
    Put(static_cast<uint16_t>(v.size()));
    for (const auto& e : v) Put(e);
  }
  // Bulk data: count[4] here, the bytes as the tail. REQUIRES: no tail yet.
  void Put(Bytes b) {
    CHECK(tail_.empty() && !has_tail_) << "only one Bytes field, and it must be last";
    CHECK_LE(b.size(), 0xFFFFFFFFu);
    Put(static_cast<uint32_t>(b.size()));
    tail_ = b;
    has_tail_ = true;
  }
  template <HasFields M>
  void Put(const M& m) {
    std::apply([this](const auto&... f) { (Put(f), ...); }, m.Fields());
  }

  std::vector<char>& buffer() { return buf_; }
  const std::vector<char>& buffer() const { return buf_; }
  Bytes tail() const { return tail_; }
  size_t size() const { return buf_.size() + tail_.size(); }

  // Overwrites 4 bytes at `pos` (used to patch the size field).
  void PatchU32(size_t pos, uint32_t v) {
    CHECK_LE(pos + 4, buf_.size());
    std::memcpy(buf_.data() + pos, &v, 4);
  }

 private:
  void Raw(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    buf_.insert(buf_.end(), c, c + n);
  }

  std::vector<char> buf_;
  Bytes tail_;
  bool has_tail_ = false;
};

// Reads wire bytes from a bounded view. The first failure is sticky: later Gets do nothing and
// ok() stays false. Decoded Bytes alias the input view, which must outlive them.
class Decoder {
 public:
  explicit Decoder(Bytes in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? static_cast<size_t>(end_ - p_) : 0; }
  // Marks the input bad (e.g. a semantic check of the caller failed).
  void Fail() { ok_ = false; }
  // True when every byte was consumed without error: a message with trailing bytes is
  // inconsistent and rejected.
  bool Finished() const { return ok_ && p_ == end_; }

  void Get(uint8_t& v) { Raw(&v, 1); }
  void Get(uint16_t& v) { Raw(&v, 2); }
  void Get(uint32_t& v) { Raw(&v, 4); }
  void Get(uint64_t& v) { Raw(&v, 8); }
  void Get(std::string& s) {
    uint16_t n = 0;
    Get(n);
    if (!Need(n)) return;
    s.assign(p_, n);
    p_ += n;
  }
  void Get(Qid& q) {
    Get(q.type);
    Get(q.version);
    Get(q.path);
  }
  template <typename T>
  void Get(std::vector<T>& v) {
    uint16_t n = 0;
    Get(n);
    // Walk is the only vector user; its limit also bounds the allocation.
    if (!ok_ || n > kMaxWalkElements) {
      ok_ = false;
      return;
    }
    v.clear();
    v.resize(n);
    for (auto& e : v) Get(e);
  }
  void Get(Bytes& b) {
    uint32_t n = 0;
    Get(n);
    if (!Need(n)) return;
    b = Bytes(p_, n);
    p_ += n;
  }
  template <HasFields M>
  void Get(M& m) {
    std::apply([this](auto&... f) { (Get(f), ...); }, m.Fields());
  }

 private:
  bool Need(size_t n) {
    if (!ok_ || static_cast<size_t>(end_ - p_) < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  void Raw(void* dst, size_t n) {
    if (!Need(n)) return;
    std::memcpy(dst, p_, n);
    p_ += n;
  }

  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// Little-endian helpers for peeking at headers without a Decoder.
inline uint32_t LoadU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint16_t LoadU16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace p9

#endif  // P9_WIRE_H_
