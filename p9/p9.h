// Basic 9P2000.L vocabulary: fids, tags, qids, flag and mask bits, protocol limits.
//
// Names follow the 9P2000.L specification and Linux net/9p (include/net/9p/9p.h) so they can be
// grepped against diod, QEMU 9pfs and the kernel client.
#ifndef P9_P9_H_
#define P9_P9_H_

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace p9 {

using Fid = uint32_t;
using Tag = uint16_t;

inline constexpr Fid kNoFid = 0xFFFFFFFFu;  // P9_NOFID: "no afid" in Tattach.
inline constexpr Tag kNoTag = 0xFFFF;       // P9_NOTAG: the tag of Tversion.
inline constexpr uint32_t kNoUid = 0xFFFFFFFFu;  // P9_NONUNAME: n_uname not given.

// Protocol version strings. Plain 9P2000.L always works; extensions are offered only under a
// distinct string so an unextended peer (Linux, diod) never sees them.
inline constexpr char kVersion9P2000L[] = "9P2000.L";
inline constexpr char kVersionUnknown[] = "unknown";
// Our extended dialect at its highest level (dialect.h: the levels, what each adds, and how
// a peer of another level is met). Offered by our client, accepted by our server; anyone
// else answers "9P2000.L". DialectVersion(kDialect) names the same string.
inline constexpr char kVersion9P2000LExt[] = "9P2000.L.cxx.4";

// Message header: size[4] type[1] tag[2]. size counts the whole message, header included.
inline constexpr size_t kHeaderSize = 7;
// Bytes in front of the data of an Rread (header + count[4]) and of a Twrite
// (header + fid[4] offset[8] count[4]). P9_IOHDRSZ in Linux is 24, a safe upper bound of both.
inline constexpr size_t kRreadHeaderSize = kHeaderSize + 4;
inline constexpr size_t kTwriteHeaderSize = kHeaderSize + 4 + 8 + 4;
inline constexpr size_t kIoHeaderSize = 24;

// msize limits. Default 1 MiB; servers and clients accept up to kMaxMsize.
inline constexpr uint32_t kDefaultMsize = 1u << 20;
inline constexpr uint32_t kMaxMsize = 16u << 20;
// Smallest msize we agree to: must hold a full Rgetattr, a 255-byte name walk, and some data.
inline constexpr uint32_t kMinMsize = 4096;

// Twalk may carry at most this many names (MAXWELEM).
inline constexpr size_t kMaxWalkElements = 16;

// Qid.type bits.
enum QidType : uint8_t {
  kQtDir = 0x80,
  kQtAppend = 0x40,
  kQtExcl = 0x20,
  kQtMount = 0x10,
  kQtAuth = 0x08,
  kQtTmp = 0x04,
  kQtSymlink = 0x02,
  kQtLink = 0x01,
  kQtFile = 0x00,
};

// The server's unique identity of a file: 13 bytes on the wire, type[1] version[4] path[8].
struct Qid {
  uint8_t type = kQtFile;
  uint32_t version = 0;
  uint64_t path = 0;
  bool operator==(const Qid&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Qid& q);

// Tlopen/Tlcreate flags (P9_DOTL_*). They equal the Linux x86/arm generic O_* values; a
// server on another ABI must translate (see OpenFlagsToHost in file.h users).
namespace open_flags {
inline constexpr uint32_t kRdOnly = 00000000;
inline constexpr uint32_t kWrOnly = 00000001;
inline constexpr uint32_t kRdWr = 00000002;
inline constexpr uint32_t kNoAccess = 00000003;
inline constexpr uint32_t kAccMode = 00000003;
inline constexpr uint32_t kCreate = 00000100;
inline constexpr uint32_t kExcl = 00000200;
inline constexpr uint32_t kNoCtty = 00000400;
inline constexpr uint32_t kTrunc = 00001000;
inline constexpr uint32_t kAppend = 00002000;
inline constexpr uint32_t kNonBlock = 00004000;
inline constexpr uint32_t kDsync = 00010000;
inline constexpr uint32_t kFasync = 00020000;
inline constexpr uint32_t kDirect = 00040000;
inline constexpr uint32_t kLargeFile = 00100000;
inline constexpr uint32_t kDirectory = 00200000;
inline constexpr uint32_t kNoFollow = 00400000;
inline constexpr uint32_t kNoAtime = 01000000;
inline constexpr uint32_t kCloExec = 02000000;
inline constexpr uint32_t kSync = 04000000;
}  // namespace open_flags

// Tgetattr request_mask / Rgetattr valid bits (P9_GETATTR_*).
namespace getattr {
inline constexpr uint64_t kMode = 0x00000001;
inline constexpr uint64_t kNlink = 0x00000002;
inline constexpr uint64_t kUid = 0x00000004;
inline constexpr uint64_t kGid = 0x00000008;
inline constexpr uint64_t kRdev = 0x00000010;
inline constexpr uint64_t kAtime = 0x00000020;
inline constexpr uint64_t kMtime = 0x00000040;
inline constexpr uint64_t kCtime = 0x00000080;
inline constexpr uint64_t kIno = 0x00000100;
inline constexpr uint64_t kSize = 0x00000200;
inline constexpr uint64_t kBlocks = 0x00000400;
inline constexpr uint64_t kBtime = 0x00000800;
inline constexpr uint64_t kGen = 0x00001000;
inline constexpr uint64_t kDataVersion = 0x00002000;
inline constexpr uint64_t kBasic = 0x000007ff;  // Everything stat(2) returns.
inline constexpr uint64_t kAll = 0x00003fff;
}  // namespace getattr

// Tsetattr valid bits (P9_ATTR_*).
namespace setattr {
inline constexpr uint32_t kMode = 0x00000001;
inline constexpr uint32_t kUid = 0x00000002;
inline constexpr uint32_t kGid = 0x00000004;
inline constexpr uint32_t kSize = 0x00000008;
inline constexpr uint32_t kAtime = 0x00000010;     // Set atime: to "now" unless kAtimeSet.
inline constexpr uint32_t kMtime = 0x00000020;     // Set mtime: to "now" unless kMtimeSet.
inline constexpr uint32_t kCtime = 0x00000040;
inline constexpr uint32_t kAtimeSet = 0x00000080;  // Use atime_sec/atime_nsec.
inline constexpr uint32_t kMtimeSet = 0x00000100;  // Use mtime_sec/mtime_nsec.
}  // namespace setattr

// Tlock/Tgetlock.
namespace lock {
inline constexpr uint8_t kTypeRdLck = 0;
inline constexpr uint8_t kTypeWrLck = 1;
inline constexpr uint8_t kTypeUnLck = 2;
inline constexpr uint32_t kFlagsBlock = 1;
inline constexpr uint32_t kFlagsReclaim = 2;
inline constexpr uint8_t kStatusSuccess = 0;
inline constexpr uint8_t kStatusBlocked = 1;
inline constexpr uint8_t kStatusError = 2;
inline constexpr uint8_t kStatusGrace = 3;
}  // namespace lock

// Tunlinkat flags.
inline constexpr uint32_t kAtRemoveDir = 0x200;  // AT_REMOVEDIR

// Txattrcreate flags.
inline constexpr uint32_t kXattrCreate = 1;   // XATTR_CREATE
inline constexpr uint32_t kXattrReplace = 2;  // XATTR_REPLACE

// Largest xattr value we move (XATTR_SIZE_MAX on Linux).
inline constexpr uint64_t kMaxXattrSize = 65536;

}  // namespace p9

#endif  // P9_P9_H_
