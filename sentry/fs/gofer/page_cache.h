// The sentry's page cache for one 9P file under cache=fscache (write-back) and
// cache=fscache_writethrough. Pages are 4 KiB; reads fill missing runs from the backend;
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

  // Cached pages are copied out; each run of missing pages is one backend read. With
  // `populate`, the run is kept as clean pages (worth it when a miss costs a round trip);
  // without, it is read straight into `dst` (a donated host fd: the host's page cache
  // already holds it, and a second copy here would only cost memory and a memcpy).
  p9::Result<size_t> Read(std::span<char> dst, uint64_t off, const ReadFn& backend,
                          bool populate);
  // With `writethrough`, the backend write happens before returning.
  p9::Result<size_t> Write(std::span<const char> src, uint64_t off, const ReadFn& rd,
                           const WriteFn& wr, bool writethrough);
  // How much of [off, off+len) the backend holds exactly as Read would return it (no dirty
  // page in the range, clamped to the cached size); nullopt when some of it is dirty.
  std::optional<size_t> CleanExtent(uint64_t off, size_t len) const;
  // Writes back every dirty page.
  p9::Result<void> Flush(const WriteFn& wr);
  // The file was truncated (by us, after flushing) to `size`.
  void Truncate(uint64_t size);
  // The file changed behind the cache (host I/O, after a Flush): every page is dropped and
  // `size` is the file's size now.
  void Reset(uint64_t size);
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
  // All of dst from the backend; past the backend's end of file, zeros.
  static p9::Result<void> ReadFull(std::span<char> dst, uint64_t off, const ReadFn& rd);
  p9::Result<void> MakeRoom(const WriteFn& wr);

  mutable std::mutex mu_;
  std::map<uint64_t, Page> pages_;  // Guarded by mu_.
  uint64_t size_;                   // Guarded by mu_.
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_PAGE_CACHE_H_
