// Every 9P2000.L message: one X-macro table of types, one plain struct per message.
//
// A struct lists its wire fields once with P9_FIELDS; wire.h's Encoder/Decoder walk them, so
// there is no hand-written encode/decode per message. Each request names its Response. Field
// names follow the 9P2000.L spec (and Linux net/9p) exactly.
//
// Layouts (after size[4] type[1] tag[2]):
//   Tversion msize[4] version[s]                 Rversion msize[4] version[s]
//   Tauth afid[4] uname[s] aname[s] n_uname[4]    Rauth aqid[13]
//   Tattach fid[4] afid[4] uname[s] aname[s] n_uname[4]   Rattach qid[13]
//   Rlerror ecode[4]
//   Tflush oldtag[2]                             Rflush
//   Twalk fid[4] newfid[4] nwname[2] wname[s]*    Rwalk nwqid[2] wqid[13]*
//   Tlopen fid[4] flags[4]                       Rlopen qid[13] iounit[4]
//   Tlcreate fid[4] name[s] flags[4] mode[4] gid[4]   Rlcreate qid[13] iounit[4]
//   Tsymlink fid[4] name[s] symtgt[s] gid[4]      Rsymlink qid[13]
//   Tmknod dfid[4] name[s] mode[4] major[4] minor[4] gid[4]   Rmknod qid[13]
//   Trename fid[4] dfid[4] name[s]               Rrename
//   Treadlink fid[4]                             Rreadlink target[s]
//   Tgetattr fid[4] request_mask[8]              Rgetattr valid[8] qid[13] mode[4] uid[4] gid[4]
//        nlink[8] rdev[8] size[8] blksize[8] blocks[8] atime_sec[8] atime_nsec[8] mtime_sec[8]
//        mtime_nsec[8] ctime_sec[8] ctime_nsec[8] btime_sec[8] btime_nsec[8] gen[8]
//        data_version[8]
//   Tsetattr fid[4] valid[4] mode[4] uid[4] gid[4] size[8] atime_sec[8] atime_nsec[8]
//        mtime_sec[8] mtime_nsec[8]              Rsetattr
//   Txattrwalk fid[4] newfid[4] name[s]          Rxattrwalk size[8]
//   Txattrcreate fid[4] name[s] attr_size[8] flags[4]   Rxattrcreate
//   Treaddir fid[4] offset[8] count[4]           Rreaddir count[4] data[count]
//   Tfsync fid[4] datasync[4]                    Rfsync
//   Tlock fid[4] type[1] flags[4] start[8] length[8] proc_id[4] client_id[s]   Rlock status[1]
//   Tgetlock fid[4] type[1] start[8] length[8] proc_id[4] client_id[s]
//        Rgetlock type[1] start[8] length[8] proc_id[4] client_id[s]
//   Tlink dfid[4] fid[4] name[s]                 Rlink
//   Tmkdir dfid[4] name[s] mode[4] gid[4]        Rmkdir qid[13]
//   Trenameat olddirfid[4] oldname[s] newdirfid[4] newname[s]   Rrenameat
//   Tunlinkat dirfd[4] name[s] flags[4]          Runlinkat
//   Tstatfs fid[4]                               Rstatfs type[4] bsize[4] blocks[8] bfree[8]
//        bavail[8] files[8] ffree[8] fsid[8] namelen[4]
//   Tread fid[4] offset[8] count[4]              Rread count[4] data[count]
//   Twrite fid[4] offset[8] count[4] data[count] Rwrite count[4]
//   Tclunk fid[4]                                Rclunk
//   Tremove fid[4]                               Rremove
// Our dialect only, each from the level of it given (dialect.h; a session below that level,
// plain 9P2000.L included, answers ENOSYS):
//   Twalkgetattr fid[4] newfid[4] request_mask[8] nwname[2] wname[s]*
//        Rwalkgetattr nwqid[2] wqid[13]* <an Rgetattr body>
//     (cxx.2) Twalk and Tgetattr of the file walked to, in one round trip (gVisor's
//     Twalkgetattr). A partial walk creates no newfid and its attributes have valid = 0.
//   Treaddirattr fid[4] newfid[4] flags[4] nwname[2] wname[s]* offset[8] count[4]
//        Rreaddirattr qid[13] count[4] data[count]
//     (cxx.3) The entries, after cookie `offset`, of the directory reached by walking `wname`
//     from `fid` (no names: fid itself, opened or not), each a dirent followed by an Rgetattr
//     body (getattr::kBasic). Which entries carry attributes (valid = 0 for the others, for
//     "." and "..", and for an entry gone meanwhile): every one with readdirattr::kAllEntries
//     in `flags`, else the subdirectories (and entries of unknown type). With it a client
//     knows entries without walking them, and lists a directory it never walked. Unless newfid
//     is NOFID, newfid is left at the directory listed (as Twalk would), and only if the
//     listing succeeded; qid is that directory's (zero without names). At most `count` bytes
//     of data, and a reply with room for another entry is the last.
//   Tlcreateat dfid[4] newfid[4] pathfid[4] name[s] flags[4] mode[4] gid[4]
//        Rlcreateat qid[13] iounit[4] <an Rgetattr body>
//     (cxx.4) Tlcreate of `name` in directory `dfid` without consuming it: dfid stays as it
//     was, newfid is the new file opened with `flags` (as Tlcreate leaves its fid, with the
//     host fd donated as Rlcreate's), and unless pathfid is NOFID, pathfid is the new file
//     walked but not opened (as Twalk of the name would leave it, but of the file created,
//     whatever the name names by then). The attributes (getattr::kBasic) are the new
//     file's. Creating, opening and knowing a file in one round trip instead of three (a
//     clone, Tlcreate, a walk of the name).
//   Twalkopen fid[4] newfid[4] flags[4] nwname[2] wname[s]*   Rwalkopen qid[13] iounit[4]
//     (cxx.4) Twalk of `wname` from `fid` to newfid (no names: a clone) and Tlopen of newfid
//     with `flags`, in one round trip; fid stays as it was and newfid must differ from it.
//     All or nothing: a partial walk is ENOENT and a failed open leaves no newfid. The
//     opened host fd is donated as Rlopen's.
#ifndef P9_MESSAGES_H_
#define P9_MESSAGES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "p9/p9.h"
#include "p9/wire.h"

namespace p9 {

// X(name, number). Requests are even, their replies the next odd number.
#define P9_MESSAGE_TYPES(X) \
  X(Rlerror, 7)             \
  X(Tstatfs, 8)             \
  X(Rstatfs, 9)             \
  X(Tlopen, 12)             \
  X(Rlopen, 13)             \
  X(Tlcreate, 14)           \
  X(Rlcreate, 15)           \
  X(Tsymlink, 16)           \
  X(Rsymlink, 17)           \
  X(Tmknod, 18)             \
  X(Rmknod, 19)             \
  X(Trename, 20)            \
  X(Rrename, 21)            \
  X(Treadlink, 22)          \
  X(Rreadlink, 23)          \
  X(Tgetattr, 24)           \
  X(Rgetattr, 25)           \
  X(Tsetattr, 26)           \
  X(Rsetattr, 27)           \
  X(Txattrwalk, 30)         \
  X(Rxattrwalk, 31)         \
  X(Txattrcreate, 32)       \
  X(Rxattrcreate, 33)       \
  X(Treaddir, 40)           \
  X(Rreaddir, 41)           \
  X(Tfsync, 50)             \
  X(Rfsync, 51)             \
  X(Tlock, 52)              \
  X(Rlock, 53)              \
  X(Tgetlock, 54)           \
  X(Rgetlock, 55)           \
  X(Tlink, 70)              \
  X(Rlink, 71)              \
  X(Tmkdir, 72)             \
  X(Rmkdir, 73)             \
  X(Trenameat, 74)          \
  X(Rrenameat, 75)          \
  X(Tunlinkat, 76)          \
  X(Runlinkat, 77)          \
  X(Tversion, 100)          \
  X(Rversion, 101)          \
  X(Tauth, 102)             \
  X(Rauth, 103)             \
  X(Tattach, 104)           \
  X(Rattach, 105)           \
  X(Tflush, 108)            \
  X(Rflush, 109)            \
  X(Twalk, 110)             \
  X(Rwalk, 111)             \
  X(Tread, 116)             \
  X(Rread, 117)             \
  X(Twrite, 118)            \
  X(Rwrite, 119)            \
  X(Tclunk, 120)            \
  X(Rclunk, 121)            \
  X(Tremove, 122)           \
  X(Rremove, 123)           \
  X(Twalkgetattr, 130)      \
  X(Rwalkgetattr, 131)      \
  X(Treaddirattr, 132)      \
  X(Rreaddirattr, 133)      \
  X(Tlcreateat, 134)        \
  X(Rlcreateat, 135)        \
  X(Twalkopen, 136)         \
  X(Rwalkopen, 137)

// The requests (T messages), for dispatch tables.
#define P9_REQUEST_TYPES(X) \
  X(Tstatfs)                \
  X(Tlopen)                 \
  X(Tlcreate)               \
  X(Tsymlink)               \
  X(Tmknod)                 \
  X(Trename)                \
  X(Treadlink)              \
  X(Tgetattr)               \
  X(Tsetattr)               \
  X(Txattrwalk)             \
  X(Txattrcreate)           \
  X(Treaddir)               \
  X(Tfsync)                 \
  X(Tlock)                  \
  X(Tgetlock)               \
  X(Tlink)                  \
  X(Tmkdir)                 \
  X(Trenameat)              \
  X(Tunlinkat)              \
  X(Tversion)               \
  X(Tauth)                  \
  X(Tattach)                \
  X(Tflush)                 \
  X(Twalk)                  \
  X(Tread)                  \
  X(Twrite)                 \
  X(Tclunk)                 \
  X(Tremove)                \
  X(Twalkgetattr)           \
  X(Treaddirattr)           \
  X(Tlcreateat)             \
  X(Twalkopen)

enum class MsgType : uint8_t {
#define P9_ENUM_(name, num) k##name = num,
  P9_MESSAGE_TYPES(P9_ENUM_)
#undef P9_ENUM_
};

// "Twalk"; nullptr for a number that is not a 9P2000.L message.
const char* MsgTypeName(uint8_t type);
bool IsKnownMsgType(uint8_t type);

// ---- Replies --------------------------------------------------------------------------------

struct Rlerror {
  static constexpr MsgType kType = MsgType::kRlerror;
  uint32_t ecode = 0;
  P9_FIELDS(ecode)
  bool operator==(const Rlerror&) const = default;
};

struct Rversion {
  static constexpr MsgType kType = MsgType::kRversion;
  uint32_t msize = 0;
  std::string version;
  P9_FIELDS(msize, version)
  bool operator==(const Rversion&) const = default;
};

struct Rauth {
  static constexpr MsgType kType = MsgType::kRauth;
  Qid aqid;
  P9_FIELDS(aqid)
  bool operator==(const Rauth&) const = default;
};

struct Rattach {
  static constexpr MsgType kType = MsgType::kRattach;
  Qid qid;
  P9_FIELDS(qid)
  bool operator==(const Rattach&) const = default;
};

struct Rwalk {
  static constexpr MsgType kType = MsgType::kRwalk;
  std::vector<Qid> wqids;  // One per name walked; fewer than asked means a partial walk.
  P9_FIELDS(wqids)
  bool operator==(const Rwalk&) const = default;
};

// Replies to an open: qid and iounit (Rwalkopen is in our dialect only).
#define P9_OPEN_REPLY_(Name)                             \
  struct Name {                                          \
    static constexpr MsgType kType = MsgType::k##Name;   \
    Qid qid;                                             \
    uint32_t iounit = 0;                                 \
    P9_FIELDS(qid, iounit)                               \
    bool operator==(const Name&) const = default;        \
  };
P9_OPEN_REPLY_(Rlopen)
P9_OPEN_REPLY_(Rlcreate)
P9_OPEN_REPLY_(Rwalkopen)
#undef P9_OPEN_REPLY_


// Replies that carry only a qid.
#define P9_QID_REPLY_(Name)                              \
  struct Name {                                          \
    static constexpr MsgType kType = MsgType::k##Name;   \
    Qid qid;                                             \
    P9_FIELDS(qid)                                       \
    bool operator==(const Name&) const = default;        \
  };
P9_QID_REPLY_(Rsymlink)
P9_QID_REPLY_(Rmknod)
P9_QID_REPLY_(Rmkdir)
#undef P9_QID_REPLY_

// Replies with an empty body.
#define P9_EMPTY_REPLY_(Name)                            \
  struct Name {                                          \
    static constexpr MsgType kType = MsgType::k##Name;   \
    P9_NO_FIELDS()                                       \
    bool operator==(const Name&) const = default;        \
  };
P9_EMPTY_REPLY_(Rflush)
P9_EMPTY_REPLY_(Rrename)
P9_EMPTY_REPLY_(Rsetattr)
P9_EMPTY_REPLY_(Rxattrcreate)
P9_EMPTY_REPLY_(Rfsync)
P9_EMPTY_REPLY_(Rlink)
P9_EMPTY_REPLY_(Rrenameat)
P9_EMPTY_REPLY_(Runlinkat)
P9_EMPTY_REPLY_(Rclunk)
P9_EMPTY_REPLY_(Rremove)
#undef P9_EMPTY_REPLY_

struct Rreadlink {
  static constexpr MsgType kType = MsgType::kRreadlink;
  std::string target;
  P9_FIELDS(target)
  bool operator==(const Rreadlink&) const = default;
};

struct Rgetattr {
  static constexpr MsgType kType = MsgType::kRgetattr;
  uint64_t valid = 0;  // getattr:: bits actually filled in.
  Qid qid;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blksize = 0;
  uint64_t blocks = 0;
  uint64_t atime_sec = 0;
  uint64_t atime_nsec = 0;
  uint64_t mtime_sec = 0;
  uint64_t mtime_nsec = 0;
  uint64_t ctime_sec = 0;
  uint64_t ctime_nsec = 0;
  uint64_t btime_sec = 0;
  uint64_t btime_nsec = 0;
  uint64_t gen = 0;
  uint64_t data_version = 0;
  P9_FIELDS(valid, qid, mode, uid, gid, nlink, rdev, size, blksize, blocks, atime_sec,
            atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, btime_sec, btime_nsec, gen,
            data_version)
  bool operator==(const Rgetattr&) const = default;
};

struct Rwalkgetattr {
  static constexpr MsgType kType = MsgType::kRwalkgetattr;
  std::vector<Qid> wqids;  // As Rwalk.
  Rgetattr attr;           // Of the last name; valid = 0 after a partial walk.
  P9_FIELDS(wqids, attr)
  bool operator==(const Rwalkgetattr&) const = default;
};

struct Rlcreateat {
  static constexpr MsgType kType = MsgType::kRlcreateat;
  Qid qid;
  uint32_t iounit = 0;
  Rgetattr attr;  // Of the new file; valid = 0 where the server could not tell.
  P9_FIELDS(qid, iounit, attr)
  bool operator==(const Rlcreateat&) const = default;
};

struct Rxattrwalk {
  static constexpr MsgType kType = MsgType::kRxattrwalk;
  uint64_t size = 0;
  P9_FIELDS(size)
  bool operator==(const Rxattrwalk&) const = default;
};

// Rread and Rreaddir data are views: into the receive buffer when decoded, into the sender's
// buffer when encoded.
struct Rreaddir {
  static constexpr MsgType kType = MsgType::kRreaddir;
  Bytes data;
  P9_FIELDS(data)
  bool operator==(const Rreaddir& o) const { return SameBytes(data, o.data); }
  static bool SameBytes(Bytes a, Bytes b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  }
};

// Rreaddirattr data: DirentAttr entries (DecodeDirentAttrs).
struct Rreaddirattr {
  static constexpr MsgType kType = MsgType::kRreaddirattr;
  Qid qid;
  Bytes data;
  P9_FIELDS(qid, data)
  bool operator==(const Rreaddirattr& o) const {
    return qid == o.qid && Rreaddir::SameBytes(data, o.data);
  }
};

struct Rlock {
  static constexpr MsgType kType = MsgType::kRlock;
  uint8_t status = 0;  // lock::kStatus*
  P9_FIELDS(status)
  bool operator==(const Rlock&) const = default;
};

struct Rgetlock {
  static constexpr MsgType kType = MsgType::kRgetlock;
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
  P9_FIELDS(type, start, length, proc_id, client_id)
  bool operator==(const Rgetlock&) const = default;
};

struct Rstatfs {
  static constexpr MsgType kType = MsgType::kRstatfs;
  uint32_t type = 0;
  uint32_t bsize = 0;
  uint64_t blocks = 0;
  uint64_t bfree = 0;
  uint64_t bavail = 0;
  uint64_t files = 0;
  uint64_t ffree = 0;
  uint64_t fsid = 0;
  uint32_t namelen = 0;
  P9_FIELDS(type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen)
  bool operator==(const Rstatfs&) const = default;
};

struct Rread {
  static constexpr MsgType kType = MsgType::kRread;
  Bytes data;
  P9_FIELDS(data)
  bool operator==(const Rread& o) const { return Rreaddir::SameBytes(data, o.data); }
};

struct Rwrite {
  static constexpr MsgType kType = MsgType::kRwrite;
  uint32_t count = 0;
  P9_FIELDS(count)
  bool operator==(const Rwrite&) const = default;
};

// ---- Requests -------------------------------------------------------------------------------

struct Tversion {
  static constexpr MsgType kType = MsgType::kTversion;
  using Response = Rversion;
  uint32_t msize = 0;
  std::string version;
  P9_FIELDS(msize, version)
  bool operator==(const Tversion&) const = default;
};

struct Tauth {
  static constexpr MsgType kType = MsgType::kTauth;
  using Response = Rauth;
  Fid afid = 0;
  std::string uname;
  std::string aname;
  uint32_t n_uname = kNoUid;
  P9_FIELDS(afid, uname, aname, n_uname)
  bool operator==(const Tauth&) const = default;
};

struct Tattach {
  static constexpr MsgType kType = MsgType::kTattach;
  using Response = Rattach;
  Fid fid = 0;
  Fid afid = kNoFid;
  std::string uname;
  std::string aname;
  uint32_t n_uname = kNoUid;
  P9_FIELDS(fid, afid, uname, aname, n_uname)
  bool operator==(const Tattach&) const = default;
};

struct Tflush {
  static constexpr MsgType kType = MsgType::kTflush;
  using Response = Rflush;
  Tag oldtag = 0;
  P9_FIELDS(oldtag)
  bool operator==(const Tflush&) const = default;
};

struct Twalk {
  static constexpr MsgType kType = MsgType::kTwalk;
  using Response = Rwalk;
  Fid fid = 0;
  Fid newfid = 0;
  std::vector<std::string> names;  // Wire: u16 count; at most kMaxWalkElements.
  P9_FIELDS(fid, newfid, names)
  bool operator==(const Twalk&) const = default;
};

struct Twalkgetattr {
  static constexpr MsgType kType = MsgType::kTwalkgetattr;
  using Response = Rwalkgetattr;
  Fid fid = 0;
  Fid newfid = 0;
  uint64_t request_mask = 0;  // getattr::
  std::vector<std::string> names;
  P9_FIELDS(fid, newfid, request_mask, names)
  bool operator==(const Twalkgetattr&) const = default;
};

struct Tlopen {
  static constexpr MsgType kType = MsgType::kTlopen;
  using Response = Rlopen;
  Fid fid = 0;
  uint32_t flags = 0;  // open_flags::
  P9_FIELDS(fid, flags)
  bool operator==(const Tlopen&) const = default;
};

struct Tlcreate {
  static constexpr MsgType kType = MsgType::kTlcreate;
  using Response = Rlcreate;
  Fid fid = 0;  // The directory; on success it becomes the new, opened file.
  std::string name;
  uint32_t flags = 0;
  uint32_t mode = 0;
  uint32_t gid = 0;
  P9_FIELDS(fid, name, flags, mode, gid)
  bool operator==(const Tlcreate&) const = default;
};

struct Tlcreateat {
  static constexpr MsgType kType = MsgType::kTlcreateat;
  using Response = Rlcreateat;
  Fid dfid = 0;  // The directory; unchanged.
  Fid newfid = 0;   // The new file, opened.
  Fid pathfid = kNoFid;  // The new file, walked; NOFID: none.
  std::string name;
  uint32_t flags = 0;
  uint32_t mode = 0;
  uint32_t gid = 0;
  P9_FIELDS(dfid, newfid, pathfid, name, flags, mode, gid)
  bool operator==(const Tlcreateat&) const = default;
};

struct Twalkopen {
  static constexpr MsgType kType = MsgType::kTwalkopen;
  using Response = Rwalkopen;
  Fid fid = 0;
  Fid newfid = 0;
  uint32_t flags = 0;  // open_flags::
  std::vector<std::string> names;
  P9_FIELDS(fid, newfid, flags, names)
  bool operator==(const Twalkopen&) const = default;
};

struct Tsymlink {
  static constexpr MsgType kType = MsgType::kTsymlink;
  using Response = Rsymlink;
  Fid fid = 0;  // The directory.
  std::string name;
  std::string symtgt;
  uint32_t gid = 0;
  P9_FIELDS(fid, name, symtgt, gid)
  bool operator==(const Tsymlink&) const = default;
};

struct Tmknod {
  static constexpr MsgType kType = MsgType::kTmknod;
  using Response = Rmknod;
  Fid dfid = 0;
  std::string name;
  uint32_t mode = 0;
  uint32_t major = 0;
  uint32_t minor = 0;
  uint32_t gid = 0;
  P9_FIELDS(dfid, name, mode, major, minor, gid)
  bool operator==(const Tmknod&) const = default;
};

struct Trename {
  static constexpr MsgType kType = MsgType::kTrename;
  using Response = Rrename;
  Fid fid = 0;
  Fid dfid = 0;
  std::string name;
  P9_FIELDS(fid, dfid, name)
  bool operator==(const Trename&) const = default;
};

struct Treadlink {
  static constexpr MsgType kType = MsgType::kTreadlink;
  using Response = Rreadlink;
  Fid fid = 0;
  P9_FIELDS(fid)
  bool operator==(const Treadlink&) const = default;
};

struct Tgetattr {
  static constexpr MsgType kType = MsgType::kTgetattr;
  using Response = Rgetattr;
  Fid fid = 0;
  uint64_t request_mask = getattr::kBasic;
  P9_FIELDS(fid, request_mask)
  bool operator==(const Tgetattr&) const = default;
};

struct Tsetattr {
  static constexpr MsgType kType = MsgType::kTsetattr;
  using Response = Rsetattr;
  Fid fid = 0;
  uint32_t valid = 0;  // setattr:: bits.
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t atime_sec = 0;
  uint64_t atime_nsec = 0;
  uint64_t mtime_sec = 0;
  uint64_t mtime_nsec = 0;
  P9_FIELDS(fid, valid, mode, uid, gid, size, atime_sec, atime_nsec, mtime_sec, mtime_nsec)
  bool operator==(const Tsetattr&) const = default;
};

struct Txattrwalk {
  static constexpr MsgType kType = MsgType::kTxattrwalk;
  using Response = Rxattrwalk;
  Fid fid = 0;
  Fid newfid = 0;
  std::string name;  // Empty: list the names.
  P9_FIELDS(fid, newfid, name)
  bool operator==(const Txattrwalk&) const = default;
};

struct Txattrcreate {
  static constexpr MsgType kType = MsgType::kTxattrcreate;
  using Response = Rxattrcreate;
  Fid fid = 0;
  std::string name;
  uint64_t attr_size = 0;
  uint32_t flags = 0;  // kXattrCreate / kXattrReplace.
  P9_FIELDS(fid, name, attr_size, flags)
  bool operator==(const Txattrcreate&) const = default;
};

struct Treaddir {
  static constexpr MsgType kType = MsgType::kTreaddir;
  using Response = Rreaddir;
  Fid fid = 0;
  uint64_t offset = 0;
  uint32_t count = 0;
  P9_FIELDS(fid, offset, count)
  bool operator==(const Treaddir&) const = default;
};

namespace readdirattr {
inline constexpr uint32_t kAllEntries = 1;  // Every entry's attributes, not only subdirectories'.
}  // namespace readdirattr

struct Treaddirattr {
  static constexpr MsgType kType = MsgType::kTreaddirattr;
  using Response = Rreaddirattr;
  Fid fid = 0;
  Fid newfid = kNoFid;  // kNoFid: none.
  uint32_t flags = 0;   // readdirattr::
  std::vector<std::string> names;  // Wire: u16 count; at most kMaxWalkElements.
  uint64_t offset = 0;
  uint32_t count = 0;
  P9_FIELDS(fid, newfid, flags, names, offset, count)
  bool operator==(const Treaddirattr&) const = default;
};

struct Tfsync {
  static constexpr MsgType kType = MsgType::kTfsync;
  using Response = Rfsync;
  Fid fid = 0;
  uint32_t datasync = 0;
  P9_FIELDS(fid, datasync)
  bool operator==(const Tfsync&) const = default;
};

struct Tlock {
  static constexpr MsgType kType = MsgType::kTlock;
  using Response = Rlock;
  Fid fid = 0;
  uint8_t type = 0;  // lock::kType*
  uint32_t flags = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
  P9_FIELDS(fid, type, flags, start, length, proc_id, client_id)
  bool operator==(const Tlock&) const = default;
};

struct Tgetlock {
  static constexpr MsgType kType = MsgType::kTgetlock;
  using Response = Rgetlock;
  Fid fid = 0;
  uint8_t type = 0;
  uint64_t start = 0;
  uint64_t length = 0;
  uint32_t proc_id = 0;
  std::string client_id;
  P9_FIELDS(fid, type, start, length, proc_id, client_id)
  bool operator==(const Tgetlock&) const = default;
};

struct Tlink {
  static constexpr MsgType kType = MsgType::kTlink;
  using Response = Rlink;
  Fid dfid = 0;
  Fid fid = 0;
  std::string name;
  P9_FIELDS(dfid, fid, name)
  bool operator==(const Tlink&) const = default;
};

struct Tmkdir {
  static constexpr MsgType kType = MsgType::kTmkdir;
  using Response = Rmkdir;
  Fid dfid = 0;
  std::string name;
  uint32_t mode = 0;
  uint32_t gid = 0;
  P9_FIELDS(dfid, name, mode, gid)
  bool operator==(const Tmkdir&) const = default;
};

struct Trenameat {
  static constexpr MsgType kType = MsgType::kTrenameat;
  using Response = Rrenameat;
  Fid olddirfid = 0;
  std::string oldname;
  Fid newdirfid = 0;
  std::string newname;
  P9_FIELDS(olddirfid, oldname, newdirfid, newname)
  bool operator==(const Trenameat&) const = default;
};

struct Tunlinkat {
  static constexpr MsgType kType = MsgType::kTunlinkat;
  using Response = Runlinkat;
  Fid dirfd = 0;
  std::string name;
  uint32_t flags = 0;  // kAtRemoveDir
  P9_FIELDS(dirfd, name, flags)
  bool operator==(const Tunlinkat&) const = default;
};

struct Tstatfs {
  static constexpr MsgType kType = MsgType::kTstatfs;
  using Response = Rstatfs;
  Fid fid = 0;
  P9_FIELDS(fid)
  bool operator==(const Tstatfs&) const = default;
};

struct Tread {
  static constexpr MsgType kType = MsgType::kTread;
  using Response = Rread;
  Fid fid = 0;
  uint64_t offset = 0;
  uint32_t count = 0;
  P9_FIELDS(fid, offset, count)
  bool operator==(const Tread&) const = default;
};

struct Twrite {
  static constexpr MsgType kType = MsgType::kTwrite;
  using Response = Rwrite;
  Fid fid = 0;
  uint64_t offset = 0;
  Bytes data;  // Wire: count[4] data[count].
  P9_FIELDS(fid, offset, data)
  bool operator==(const Twrite& o) const {
    return fid == o.fid && offset == o.offset && Rreaddir::SameBytes(data, o.data);
  }
};

struct Tclunk {
  static constexpr MsgType kType = MsgType::kTclunk;
  using Response = Rclunk;
  Fid fid = 0;
  P9_FIELDS(fid)
  bool operator==(const Tclunk&) const = default;
};

struct Tremove {
  static constexpr MsgType kType = MsgType::kTremove;
  using Response = Rremove;
  Fid fid = 0;
  P9_FIELDS(fid)
  bool operator==(const Tremove&) const = default;
};

template <typename M>
concept Message = requires {
  { M::kType } -> std::convertible_to<MsgType>;
} && HasFields<M>;

template <typename M>
concept Request = Message<M> && requires { typename M::Response; };

// ---- Frames ---------------------------------------------------------------------------------

// An encoded message ready to send: head holds size/type/tag and every field but a trailing
// Bytes, which stays where it is (tail). Not copyable across the lifetime of tail's owner.
struct OutFrame {
  std::vector<char> head;
  Bytes tail;
  size_t size() const { return head.size() + tail.size(); }
};

// Encodes `m` with `tag` into a frame. `reuse` donates a buffer to avoid an allocation.
template <Message M>
OutFrame EncodeFrame(Tag tag, const M& m, std::vector<char> reuse = {}) {
  Encoder e(std::move(reuse));
  e.Put(uint32_t{0});  // size, patched below
  e.Put(static_cast<uint8_t>(M::kType));
  e.Put(static_cast<uint16_t>(tag));
  e.Put(m);
  e.PatchU32(0, static_cast<uint32_t>(e.size()));
  OutFrame f;
  f.tail = e.tail();
  f.head = std::move(e.buffer());
  return f;
}

// A parsed header of a received frame.
struct FrameHeader {
  uint32_t size = 0;
  uint8_t type = 0;
  Tag tag = 0;
};

// Parses the 7-byte header. Fails (EPROTO) on size < 7 or size > msize.
Result<FrameHeader> ParseHeader(Bytes header7, uint32_t msize);

// Decodes the body (after the header) of a frame as message M. Fails with EPROTO when the body
// is truncated, has trailing bytes, or breaks a field limit. Bytes fields alias `body`.
template <Message M>
Result<M> DecodeBody(Bytes body) {
  M m;
  Decoder d(body);
  d.Get(m);
  if (!d.Finished()) return Errno(EPROTO);
  return m;
}

// Calls `visit(const T&)` with the decoded request T of `type`, for every request type in the
// table. Returns EPROTO for a malformed body and EOPNOTSUPP for a type that is not a request.
template <typename Visitor>
Result<void> VisitRequest(uint8_t type, Bytes body, Visitor&& visit) {
  switch (static_cast<MsgType>(type)) {
#define P9_VISIT_(name)                                   \
  case MsgType::k##name: {                                \
    auto m = DecodeBody<name>(body);                      \
    if (!m.has_value()) return m.error();                 \
    visit(*m);                                            \
    return Ok();                                          \
  }
    P9_REQUEST_TYPES(P9_VISIT_)
#undef P9_VISIT_
    default:
      return Errno(EOPNOTSUPP);
  }
}

// A directory entry inside Rreaddir data: qid[13] offset[8] type[1] name[s].
struct Dirent {
  Qid qid;
  uint64_t offset = 0;  // Cookie to pass as Treaddir.offset to continue after this entry.
  uint8_t type = 0;     // DT_* as in getdents64.
  std::string name;
  P9_FIELDS(qid, offset, type, name)
  bool operator==(const Dirent&) const = default;
};

// Wire size of a dirent.
inline size_t DirentSize(const Dirent& d) { return 13 + 8 + 1 + 2 + d.name.size(); }
// The largest entry (a 255-byte name).
inline constexpr size_t kMaxDirentSize = 13 + 8 + 1 + 2 + 255;

// Appends `d` to `out` if it fits in `limit` total bytes; returns false when it does not.
bool AppendDirent(std::vector<char>& out, const Dirent& d, size_t limit);

// Decodes Rreaddir data. Fails (EPROTO) on a truncated or malformed entry.
Result<std::vector<Dirent>> DecodeDirents(Bytes data);

// An entry inside Rreaddirattr data: a dirent, then the entry's attributes.
struct DirentAttr {
  Dirent dirent;
  Rgetattr attr;
  P9_FIELDS(dirent, attr)
  bool operator==(const DirentAttr&) const = default;
};
// Wire size of an Rgetattr body, and of a DirentAttr (at most kMaxDirentAttrSize).
inline constexpr size_t kRgetattrSize = 8 + 13 + 4 + 4 + 4 + 8 * 15;
inline size_t DirentAttrSize(const DirentAttr& d) { return DirentSize(d.dirent) + kRgetattrSize; }
inline constexpr size_t kMaxDirentAttrSize = kMaxDirentSize + kRgetattrSize;
// Appends `d` to Rreaddirattr data unless that would pass `limit` bytes (then false).
bool AppendDirentAttr(std::vector<char>& out, const DirentAttr& d, size_t limit);
// Decodes Rreaddirattr data. Fails (EPROTO) on a truncated or malformed entry.
Result<std::vector<DirentAttr>> DecodeDirentAttrs(Bytes data);

}  // namespace p9

#endif  // P9_MESSAGES_H_
