// The levels of our 9P2000.L dialect, and the version strings that name them.
//
// Why levels: each extension of the dialect used to replace the one version string, so a
// peer one release older negotiated plain 9P2000.L with us and lost every extension, not
// just the newest. A version string "9P2000.L.cxx.N" now names level N; the server answers
// the lower of the client's level and its own, and each side uses only what that level has.
// A level includes every level below it. Plain "9P2000.L" is level 0, never anything else.
//
//   1  Rlopen and Rlcreate may carry the opened host file's fd (SCM_RIGHTS on unix sockets).
//   2  Twalkgetattr; Treaddir of a walked, unopened directory fid (read as if opened
//      read-only: no Twalk/Tlopen/Tclunk around a listing); every Rreaddir full (the server
//      stops only when the next entry would not fit or the directory has ended), so a reply
//      with room for kMaxDirentSize more bytes is the last and the client need not send the
//      Treaddir that would come back empty.
//   3  Treaddirattr: a listing whose entries carry their attributes, of a directory fid or
//      of one walked to from it for the listing alone.
//   4  Tlcreateat and Twalkopen.
//
// The messages are described in messages.h; a message above the session's level is answered
// ENOSYS, as a plain 9P2000.L server answers it.
#ifndef P9_DIALECT_H_
#define P9_DIALECT_H_

#include <optional>
#include <string>
#include <string_view>

namespace p9 {

enum class Dialect : unsigned {
  kPlain = 0,        // 9P2000.L as specified.
  kFdDonation = 1,   // Host fds with Rlopen/Rlcreate.
  kWalkGetattr = 2,  // Twalkgetattr, Treaddir on unopened fids, full Rreaddir.
  kReaddirAttr = 3,  // Treaddirattr.
  kFusedOpen = 4,    // Tlcreateat, Twalkopen.
};

// The highest level this build speaks, and what Client::Create offers by default.
inline constexpr Dialect kDialect = Dialect::kFusedOpen;

// "9P2000.L" for kPlain, "9P2000.L.cxx.N" for level N.
std::string DialectVersion(Dialect d);

// The level a version string names: "9P2000.L" is kPlain, "9P2000.L.cxx.N" (N a decimal
// number from 1, no sign or leading zero) is level N, clamped to kDialect, so a newer peer's
// string names the most this build speaks. Anything else (other suffixes included) is
// nullopt: not our dialect.
std::optional<Dialect> ParseDialect(std::string_view version);

// The level of our dialect that `version` names exactly (DialectVersion(level) == version,
// level 1 or more; no clamping): what a client offers, and what it may be answered with.
std::optional<Dialect> DialectNamed(std::string_view version);

inline bool AtLeast(Dialect have, Dialect need) {
  return static_cast<unsigned>(have) >= static_cast<unsigned>(need);
}

}  // namespace p9

#endif  // P9_DIALECT_H_
