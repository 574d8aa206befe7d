// The sentry's page cache for one 9P file under cache=fscache (write-back) and
// cache=fscache_writethrough. Pages are 4 KiB; reads fill missing pages from the backend;
// writes land in the cache and are either written through at once or marked dirty and
// written back on Flush (fsync, close of a writable file, truncate). The cached size is
// authoritative while the cache holds dirty data.
//
// Memory is bounded: past kMaxPages, dirty pages are written back and clean ones dropped.
//
// Thread-safe: one mutex per cache; backend calls happen under it (a file's I/O is
// serialized, which also keeps read-modify-write of partial pages correct).
#ifndef SENTRY_FS_GOFER_PAGE_CACHE_H_
#define SENTRY_FS_GOFER_PAGE_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "p9/result.h"

namespace sentry::fs {

class PageCache {
 public:
  static constexpr size_t kPageSize = 4096;
  static constexpr size_t kMaxPages = 16384;  // 64 MiB per file.

  // Backend I/O: read up to dst.size() bytes at off (0 at EOF); write all of src at off.
  using ReadFn = std::function<p9::Result<size_t>(std::span<char> dst, uint64_t off)>;
  using WriteFn = std::function<p9::Result<void>(std::span<const char> src, uint64_t off)>;

  // `size` is the backend's file size when the cache is created.
  explicit PageCache(uint64_t size) : size_(size) {}

  p9::Result<size_t> Read(std::span<char> dst, uint64_t off, const ReadFn& backend);
  // With `writethrough`, the backend write happens before returning.
  p9::Result<size_t> Write(std::span<const char> src, uint64_t off, const ReadFn& rd,
                           const WriteFn& wr, bool writethrough);
  // Writes back every dirty page.
  p9::Result<void> Flush(const WriteFn& wr);
  // The file was truncated (by us, after flushing) to `size`.
  void Truncate(uint64_t size);
  uint64_t size() const;
  bool dirty() const;

 private:
  struct Page {
    std::vector<char> data;  // kPageSize bytes.
    bool dirty = false;
  };
  // REQUIRES: mu_ held.
  p9::Result<Page*> GetPage(uint64_t index, bool fill, const ReadFn& rd);
  p9::Result<void> FlushLocked(const WriteFn& wr);
  p9::Result<void> MakeRoom(const WriteFn& wr);

  mutable std::mutex mu_;
  std::map<uint64_t, Page> pages_;  // Guarded by mu_.
  uint64_t size_;                   // Guarded by mu_.
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_PAGE_CACHE_H_
