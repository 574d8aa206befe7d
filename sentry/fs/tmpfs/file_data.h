// The bytes of a tmpfs regular file: in a memfd where one can be had, else in memory.
//
// Why a memfd: the FUSE frontend can then hand the kernel the memfd as the file's backing
// file (passthrough), so the workload's reads, writes and mmaps of /tmp files are the
// kernel's own shmem I/O, with no request to the sentry and no second copy of the data in
// the FUSE inode's page cache. The price is an fd per file, so memfds come from a budget
// (MemfdBudget); a file that gets none keeps its bytes in memory and is served as before.
//
// Once in a memfd, the bytes stay there for the file's life: the kernel (passthrough,
// including a MAP_SHARED mapping that outlives every open) may write the memfd at any time,
// so the memfd's size and its atime and mtime are the file's from then on.
//
// Thread-safe. A file moves into a memfd at most once (ToMemfd), never back.
#ifndef SENTRY_FS_TMPFS_FILE_DATA_H_
#define SENTRY_FS_TMPFS_FILE_DATA_H_

#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "p9/result.h"

namespace sentry::fs {

// How many files of one tmpfs may hold a memfd, within what the whole process may: a
// quarter of its open-file limit (read at the first memfd; at most 65,536), so that tmpfs
// never starves the fds the sentry needs for everything else. Thread-safe.
class MemfdBudget {
 public:
  explicit MemfdBudget(size_t max) : max_(max) {}
  bool Take();  // One memfd more, if both this budget and the process's allow it.
  void Give();  // One fewer.
  size_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  const size_t max_;
  std::atomic<size_t> used_{0};
};

class FileData {
 public:
  // The largest file (as tmpfs had before memfds: EFBIG beyond it).
  static constexpr uint64_t kMaxSize = uint64_t{1} << 40;

  explicit FileData(std::shared_ptr<MemfdBudget> budget) : budget_(std::move(budget)) {}
  ~FileData();
  FileData(const FileData&) = delete;
  FileData& operator=(const FileData&) = delete;

  // Moves the bytes into a memfd, with times `atime` and `mtime`, unless they are in one.
  // False if no memfd can be had (the budget, the fd limit): the bytes stay in memory.
  bool ToMemfd(const timespec& atime, const timespec& mtime);
  // The memfd, or -1 while the bytes are in memory. Valid for this object's life.
  int memfd() const { return memfd_.load(std::memory_order_acquire); }

  p9::Result<size_t> Read(std::span<char> dst, uint64_t off);
  // At `off`, or at the end of file if `append` (atomically, against the kernel's writes too).
  p9::Result<size_t> Write(std::span<const char> src, uint64_t off, bool append);
  p9::Result<void> Truncate(uint64_t size);

  // Size and 512-byte blocks; in a memfd, also its atime, mtime and ctime.
  struct Stat {
    uint64_t size = 0;
    uint64_t blocks = 0;
    std::optional<timespec> atime, mtime, ctime;
  };
  p9::Result<Stat> GetStat() const;
  // In a memfd: sets its atime and mtime (each a time, UTIME_NOW or UTIME_OMIT). In memory:
  // nothing to do (the inode keeps the times).
  p9::Result<void> SetTimes(const timespec& atime, const timespec& mtime);

 private:
  // The memfd; or -1, with `l` then holding mu_, while the bytes are in memory (they stay
  // there until `l` lets go).
  int MemfdOrLock(std::unique_lock<std::mutex>& l) const;

  const std::shared_ptr<MemfdBudget> budget_;
  mutable std::mutex mu_;        // Guards data_, and the move into the memfd.
  std::string data_;             // While memfd_ < 0.
  std::atomic<int> memfd_{-1};   // Set once, under mu_; closed by the destructor.
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_TMPFS_FILE_DATA_H_
