// libFuzzer target: the 9P decoder. The input is one frame (header and body). Every message
// type of the table is decoded from the body; whatever decodes must encode back to exactly the
// same bytes (the codec is a bijection on valid bodies), and Rreaddir data must parse or fail
// cleanly. Any crash, sanitizer report or mismatch is a finding.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "p9/messages.h"

namespace {

using namespace p9;

template <typename M>
void RoundTrip(Bytes body) {
  auto m = DecodeBody<M>(body);
  if (!m.has_value()) return;
  OutFrame f = EncodeFrame(0, *m);
  size_t n = f.size() - kHeaderSize;
  // The re-encoded body must equal the input body byte for byte.
  bool same = n == body.size() &&
              std::memcmp(f.head.data() + kHeaderSize, body.data(),
                          std::min(n, f.head.size() - kHeaderSize)) == 0 &&
              (f.tail.empty() ||
               std::memcmp(f.tail.data(), body.data() + (f.head.size() - kHeaderSize),
                           f.tail.size()) == 0);
  if (!same) std::abort();
  if constexpr (std::is_same_v<M, Rreaddir>) (void)DecodeDirents(m->data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeaderSize) return 0;
  Bytes all(reinterpret_cast<const char*>(data), size);
  auto h = ParseHeader(all.first(kHeaderSize), kMaxMsize);
  if (h.has_value() && h->size != size) return 0;  // Frames are whole, as the reader gives them.
  Bytes body = all.subspan(kHeaderSize);
  // Try the body as every type (the header's type first, as the server would).
#define P9_TRY_(name, num) RoundTrip<name>(body);
  P9_MESSAGE_TYPES(P9_TRY_)
#undef P9_TRY_
  (void)VisitRequest(data[4], body, [](const auto&) {});
  return 0;
}
