#include "sentry/fs/tmpfs/file_data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sentry::fs {
namespace {

using p9::Errno;
using p9::Result;

std::atomic<size_t> process_memfds{0};  // Held by every tmpfs of this process.

// A quarter of the open-file limit when first asked (the sandbox raises its limit before it
// mounts anything), and at most 65,536: each memfd is also a kernel inode and file, and
// fs.file-max is shared with the host (2.4 million here).
size_t ProcessCap() {
  static const size_t cap = [] {
    constexpr size_t kMost = size_t{1} << 16;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return size_t{0};
    if (rl.rlim_cur == RLIM_INFINITY) return kMost;
    return std::min(kMost, static_cast<size_t>(rl.rlim_cur / 4));
  }();
  return cap;
}

Result<void> WriteAll(int fd, const char* p, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return p9::LastErrno();
    }
    p += w, n -= static_cast<size_t>(w), off += static_cast<uint64_t>(w);
  }
  return p9::Ok();
}

}  // namespace

bool MemfdBudget::Take() {
  if (used_.fetch_add(1, std::memory_order_relaxed) >= max_) {
    used_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  if (process_memfds.fetch_add(1, std::memory_order_relaxed) >= ProcessCap()) {
    process_memfds.fetch_sub(1, std::memory_order_relaxed);
    used_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void MemfdBudget::Give() {
  process_memfds.fetch_sub(1, std::memory_order_relaxed);
  used_.fetch_sub(1, std::memory_order_relaxed);
}

FileData::~FileData() {
  if (int fd = memfd(); fd >= 0) {
    close(fd);
    budget_->Give();
  }
}

bool FileData::ToMemfd(const timespec& atime, const timespec& mtime) {
  std::lock_guard l(mu_);
  if (memfd_.load(std::memory_order_relaxed) >= 0) return true;
  if (!budget_ || !budget_->Take()) return false;
  int fd = memfd_create("tmpfs", MFD_CLOEXEC);
  if (fd < 0) {
    budget_->Give();
    return false;
  }
  const timespec times[2] = {atime, mtime};
  if (!WriteAll(fd, data_.data(), data_.size(), 0).has_value() || futimens(fd, times) != 0) {
    close(fd);
    budget_->Give();
    return false;
  }
  memfd_.store(fd, std::memory_order_release);
  std::string().swap(data_);
  return true;
}

int FileData::MemfdOrLock(std::unique_lock<std::mutex>& l) const {
  if (int fd = memfd(); fd >= 0) return fd;
  l = std::unique_lock(mu_);
  int fd = memfd_.load(std::memory_order_relaxed);
  if (fd >= 0) l.unlock();  // Moved meanwhile: the memfd needs no lock.
  return fd;
}

Result<size_t> FileData::Read(std::span<char> dst, uint64_t off) {
  std::unique_lock<std::mutex> l;
  const int fd = MemfdOrLock(l);
  if (fd < 0) {
    if (off >= data_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(dst.size(), data_.size() - off);
    std::memcpy(dst.data(), data_.data() + off, n);
    return n;
  }
  if (off > kMaxSize) return size_t{0};
  for (;;) {
    ssize_t n = pread(fd, dst.data(), dst.size(), static_cast<off_t>(off));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return p9::LastErrno();
  }
}

Result<size_t> FileData::Write(std::span<const char> src, uint64_t off, bool append) {
  std::unique_lock<std::mutex> l;
  const int fd = MemfdOrLock(l);
  if (fd < 0) {
    if (append) off = data_.size();
    if (off > kMaxSize || src.size() > kMaxSize - off) return Errno(EFBIG);
    if (data_.size() < off + src.size()) data_.resize(off + src.size(), '\0');
    if (!src.empty()) std::memcpy(data_.data() + off, src.data(), src.size());
    return src.size();
  }
  if (append) {
    // RWF_APPEND: at the end of file as the kernel sees it, even against its own writes.
    struct stat st;
    if (fstat(fd, &st) != 0) return p9::LastErrno();
    if (src.size() > kMaxSize - std::min<uint64_t>(st.st_size, kMaxSize)) return Errno(EFBIG);
    iovec iov{const_cast<char*>(src.data()), src.size()};
    for (;;) {
      ssize_t n = pwritev2(fd, &iov, 1, -1, RWF_APPEND);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return p9::LastErrno();
    }
  }
  if (off > kMaxSize || src.size() > kMaxSize - off) return Errno(EFBIG);
  P9_RETURN_IF_ERROR(WriteAll(fd, src.data(), src.size(), off));
  return src.size();
}

Result<void> FileData::Truncate(uint64_t size) {
  if (size > kMaxSize) return Errno(EFBIG);
  std::unique_lock<std::mutex> l;
  const int fd = MemfdOrLock(l);
  if (fd < 0) {
    data_.resize(size, '\0');
    return p9::Ok();
  }
  while (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    if (errno != EINTR) return p9::LastErrno();
  }
  return p9::Ok();
}

Result<FileData::Stat> FileData::GetStat() const {
  Stat s;
  std::unique_lock<std::mutex> l;
  const int fd = MemfdOrLock(l);
  if (fd < 0) {
    s.size = data_.size();
    s.blocks = (s.size + 511) / 512;
    return s;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return p9::LastErrno();
  s.size = static_cast<uint64_t>(st.st_size);
  s.blocks = static_cast<uint64_t>(st.st_blocks);
  s.atime = st.st_atim;
  s.mtime = st.st_mtim;
  s.ctime = st.st_ctim;
  return s;
}

Result<void> FileData::SetTimes(const timespec& atime, const timespec& mtime) {
  int fd = memfd();
  if (fd < 0) return p9::Ok();
  const timespec times[2] = {atime, mtime};
  if (futimens(fd, times) != 0) return p9::LastErrno();
  return p9::Ok();
}

}  // namespace sentry::fs
