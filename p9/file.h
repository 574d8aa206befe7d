// The backend contract of the 9P server: what a served file system implements.
//
// The server (server.h) owns the protocol: fid table, open state, xattr fids, name checks,
// Rreaddir packing, msize limits, flush ordering. A backend implements File and Attacher and
// sees only validated, typed calls. The gofer's host files and test fakes plug in here.
//
// Concurrency: the server calls methods of one File, and of different Files, concurrently from
// its worker threads (requests on one connection run in parallel). Every implementation must be
// thread-safe; each method below says what the server guarantees beyond that.
//
// Lifetime: a File is owned by the server fid that holds it and destroyed (releasing host
// resources) when that fid is clunked, removed, or its connection dies, after any in-flight call
// on it has returned.
//
// Names given to a File (walk elements, create/mkdir/... names) have been checked by the
// server: non-empty, not "." or "..", no '/' or NUL, at most 255 bytes.
#ifndef P9_FILE_H_
#define P9_FILE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "p9/messages.h"
#include "p9/p9.h"
#include "p9/result.h"
#include "p9/unique_fd.h"

namespace p9 {

class File;

struct WalkResult {
  // One qid per name walked. Fewer than the names asked means the walk stopped early; then
  // `file` is null. With no names (a clone) qids is empty and file is the clone.
  std::vector<Qid> qids;
  std::unique_ptr<File> file;  // The file at the end of a complete walk.
};

struct OpenResult {
  Qid qid;
  uint32_t iounit = 0;  // 0: the client uses msize - kIoHeaderSize.
  // A host fd for the opened file that the server may donate to the client (sent with the
  // reply only when the session negotiated the extension). Invalid when there is none.
  UniqueFd donate;
};

struct CreateResult {
  std::unique_ptr<File> file;  // The new file, already opened with the create flags.
  Qid qid;
  uint32_t iounit = 0;
  UniqueFd donate;
};

class File {
 public:
  virtual ~File() = default;

  // Walks `names` (each validated) starting at this file. names.empty() clones this file.
  // An error for the first name is returned as an error; a later failure is a partial result.
  virtual Result<WalkResult> Walk(std::span<const std::string> names) = 0;

  // Fills an Rgetattr for at least the bits of request_mask it can; sets valid accordingly.
  virtual Result<Rgetattr> GetAttr(uint64_t request_mask) = 0;

  // Applies the setattr:: bits of `attr` (its fid field is meaningless here).
  virtual Result<void> SetAttr(const Tsetattr& attr) = 0;

  // True when opening this file or reading or writing it may wait indefinitely or for long (a
  // FIFO, a device, a socket, a remote file). The server serves such requests away from the
  // thread that reads the connection. A regular file or directory on a local file system
  // answers false: its requests are served inline, which saves a thread hand-off each.
  virtual bool MayBlock() const { return true; }

  // Opens this file with open_flags:: `flags`. The server calls it at most once per File and
  // calls ReadAt/WriteAt/Readdir only after it succeeded.
  virtual Result<OpenResult> Open(uint32_t flags) = 0;

  // Reads at most dst.size() bytes at `offset`; returns the count (0 at end of file).
  virtual Result<size_t> ReadAt(std::span<char> dst, uint64_t offset) = 0;
  // The same bytes as ReadAt, moved into the pipe `pipe_fd` with splice(2) instead of copied
  // (see p9/splice_pipes.h): at most `count` bytes at `offset`, never blocking on the pipe
  // (EAGAIN when it is full). ENOSYS when this file cannot (the default): the server copies.
  virtual Result<size_t> SpliceRead(int /*pipe_fd*/, size_t /*count*/, uint64_t /*offset*/) {
    return Errno(ENOSYS);
  }
  // Writes `src` at `offset` (ignored for O_APPEND opens); returns the count written.
  virtual Result<size_t> WriteAt(Bytes src, uint64_t offset) = 0;

  // Directory entries after cookie `offset` (0: from the start), at most about `count` bytes of
  // them in wire form; the server packs what fits and the client resumes from the last
  // entry's offset. Each entry's offset must be a stable cookie for "the entry after this one".
  virtual Result<std::vector<Dirent>> Readdir(uint64_t offset, uint32_t count) = 0;
  // Readdir of a directory fid that was never opened (our dialect's Treaddir on a walked
  // fid): nothing stays open afterwards. ENOSYS lets the server clone, open and read
  // instead; a backend that can list in fewer steps does so here.
  virtual Result<std::vector<Dirent>> ReaddirUnopened(uint64_t /*offset*/, uint32_t /*count*/) {
    return Errno(ENOSYS);
  }
  // Treaddirattr (our dialect): the entries after cookie `offset`, at most about `count`
  // bytes of them in wire form (DirentAttrSize), opened or not; with their attributes
  // (getattr::kBasic) where `all` or the entry is a subdirectory (or of unknown type), and
  // valid = 0 elsewhere and for an entry gone meanwhile. ENOSYS: not offered.
  virtual Result<std::vector<DirentAttr>> ReaddirAttr(uint64_t /*offset*/, uint32_t /*count*/,
                                                      bool /*all*/) {
    return Errno(ENOSYS);
  }

  // Creates and opens regular file `name` in this directory.
  virtual Result<CreateResult> Create(const std::string& name, uint32_t flags, uint32_t mode,
                                      uint32_t gid) = 0;
  virtual Result<Qid> Mkdir(const std::string& name, uint32_t mode, uint32_t gid) = 0;
  virtual Result<Qid> Symlink(const std::string& name, const std::string& target,
                              uint32_t gid) = 0;
  virtual Result<Qid> Mknod(const std::string& name, uint32_t mode, uint32_t major,
                            uint32_t minor, uint32_t gid) = 0;
  // Creates hard link `name` in this directory to `target`.
  virtual Result<void> Link(File& target, const std::string& name) = 0;
  // Trename: moves this file into `newdir` as `name`.
  virtual Result<void> Rename(File& newdir, const std::string& name) = 0;
  // Trenameat: moves `oldname` in this directory to `newname` in `newdir`.
  virtual Result<void> RenameAt(const std::string& oldname, File& newdir,
                                const std::string& newname) = 0;
  // Tunlinkat: removes `name` from this directory; kAtRemoveDir in flags for a directory.
  virtual Result<void> UnlinkAt(const std::string& name, uint32_t flags) = 0;
  // Tremove: removes this file itself. The server clunks the fid whatever the result.
  virtual Result<void> Remove() { return Errno(EOPNOTSUPP); }

  virtual Result<std::string> Readlink() = 0;
  virtual Result<void> Fsync(bool datasync) = 0;
  virtual Result<Rstatfs> StatFs() = 0;

  // POSIX byte-range locks; the server never blocks on them (a blocking request that would
  // wait answers lock::kStatusBlocked and the client retries, as Linux does).
  virtual Result<uint8_t> Lock(const Tlock& req) {
    (void)req;
    return Errno(ENOSYS);
  }
  virtual Result<Rgetlock> GetLock(const Tgetlock& req) {
    (void)req;
    return Errno(ENOSYS);
  }

  // Extended attributes. Values are at most kMaxXattrSize bytes (E2BIG beyond).
  virtual Result<std::string> GetXattr(const std::string& name) {
    (void)name;
    return Errno(EOPNOTSUPP);
  }
  // The names, each NUL-terminated, concatenated (the listxattr(2) format).
  virtual Result<std::string> ListXattr() { return Errno(EOPNOTSUPP); }
  virtual Result<void> SetXattr(const std::string& name, const std::string& value,
                                uint32_t flags) {
    (void)name, (void)value, (void)flags;
    return Errno(EOPNOTSUPP);
  }
  virtual Result<void> RemoveXattr(const std::string& name) {
    (void)name;
    return Errno(EOPNOTSUPP);
  }
};

// Creates the root File of an attach. Thread-safe.
class Attacher {
 public:
  virtual ~Attacher() = default;
  // `aname` selects the attach point (the tree to serve); `uname`/`n_uname` identify the user.
  virtual Result<std::unique_ptr<File>> Attach(const std::string& aname, const std::string& uname,
                                               uint32_t n_uname) = 0;
};

}  // namespace p9

#endif  // P9_FILE_H_
