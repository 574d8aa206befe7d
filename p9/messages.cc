#include "p9/messages.h"

#include <ostream>

namespace p9 {

std::ostream& operator<<(std::ostream& os, const Qid& q) {
  return os << "Qid{type=0x" << std::hex << int(q.type) << std::dec << " version=" << q.version
            << " path=" << q.path << "}";
}

const char* MsgTypeName(uint8_t type) {
  switch (static_cast<MsgType>(type)) {
#define P9_NAME_(name, num) \
  case MsgType::k##name:    \
    return #name;
    P9_MESSAGE_TYPES(P9_NAME_)
#undef P9_NAME_
  }
  return nullptr;
}

bool IsKnownMsgType(uint8_t type) { return MsgTypeName(type) != nullptr; }

Result<FrameHeader> ParseHeader(Bytes h, uint32_t msize) {
  if (h.size() < kHeaderSize) return Errno(EPROTO);
  FrameHeader fh;
  fh.size = LoadU32(h.data());
  fh.type = static_cast<uint8_t>(h[4]);
  fh.tag = LoadU16(h.data() + 5);
  if (fh.size < kHeaderSize || fh.size > msize) return Errno(EPROTO);
  return fh;
}

// Encodes `v` at the end of `out` (no temporary buffer per entry).
template <typename T>
void AppendEncoded(std::vector<char>& out, const T& v) {
  Encoder e(std::move(out), Encoder::Appending{});
  e.Put(v);
  out = std::move(e.buffer());
}

// Decodes `data` as a sequence of whole entries T; EPROTO on a truncated or malformed one.
template <typename T>
Result<std::vector<T>> DecodeEntries(Bytes data) {
  std::vector<T> out;
  Decoder d(data);
  while (d.ok() && d.remaining() > 0) {
    T e;
    d.Get(e);
    if (!d.ok()) return Errno(EPROTO);
    out.push_back(std::move(e));
  }
  if (!d.Finished()) return Errno(EPROTO);
  return out;
}

bool AppendDirent(std::vector<char>& out, const Dirent& d, size_t limit) {
  if (out.size() + DirentSize(d) > limit) return false;
  AppendEncoded(out, d);
  return true;
}

Result<std::vector<Dirent>> DecodeDirents(Bytes data) { return DecodeEntries<Dirent>(data); }

bool AppendDirentAttr(std::vector<char>& out, const DirentAttr& d, size_t limit) {
  if (out.size() + DirentAttrSize(d) > limit) return false;
  AppendEncoded(out, d);
  return true;
}

Result<std::vector<DirentAttr>> DecodeDirentAttrs(Bytes data) {
  return DecodeEntries<DirentAttr>(data);
}

}  // namespace p9
