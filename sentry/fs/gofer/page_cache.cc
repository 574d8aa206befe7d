#include "sentry/fs/gofer/page_cache.h"

#include <algorithm>
#include <cstring>

namespace sentry::fs {

p9::Result<PageCache::Page*> PageCache::GetPage(uint64_t index, bool fill, const ReadFn& rd) {
  auto it = pages_.find(index);
  if (it != pages_.end()) return &it->second;
  Page p;
  p.data.assign(kPageSize, '\0');
  uint64_t off = index * kPageSize;
  if (fill && off < size_) {
    size_t want = std::min<uint64_t>(kPageSize, size_ - off);
    P9_RETURN_IF_ERROR(ReadFull(std::span<char>(p.data.data(), want), off, rd));
  }
  return &pages_.emplace(index, std::move(p)).first->second;
}

p9::Result<size_t> PageCache::Read(std::span<char> dst, uint64_t off, const ReadFn& backend,
                                   bool populate) {
  std::lock_guard l(mu_);
  if (off >= size_) return size_t{0};
  const uint64_t end = off + std::min<uint64_t>(dst.size(), size_ - off);
  uint64_t pos = off;
  while (pos < end) {
    uint64_t index = pos / kPageSize;
    auto it = pages_.find(index);
    if (it != pages_.end()) {
      size_t n = std::min<uint64_t>(end - pos, (index + 1) * kPageSize - pos);
      std::memcpy(dst.data() + (pos - off), it->second.data.data() + pos % kPageSize, n);
      pos += n;
      continue;
    }
    // A run of missing pages costs one backend read, not one per page.
    uint64_t last = index + 1;
    auto next = pages_.lower_bound(last);
    uint64_t run_end_page = next == pages_.end() ? UINT64_MAX : next->first;
    uint64_t run_end = std::min<uint64_t>(end, run_end_page == UINT64_MAX
                                                   ? end
                                                   : run_end_page * kPageSize);
    if (!populate) {
      P9_RETURN_IF_ERROR(ReadFull(std::span<char>(dst.data() + (pos - off), run_end - pos), pos,
                                  backend));
      pos = run_end;
      continue;
    }
    // Whole pages, so the cache never holds a partial one.
    uint64_t first_byte = index * kPageSize;
    uint64_t last_page = (run_end + kPageSize - 1) / kPageSize;
    uint64_t fill_end = std::min<uint64_t>(last_page * kPageSize, size_);
    std::vector<char> buf(last_page * kPageSize - first_byte, '\0');
    P9_RETURN_IF_ERROR(
        ReadFull(std::span<char>(buf.data(), fill_end - first_byte), first_byte, backend));
    if (pages_.size() + (last_page - index) > kMaxPages) {
      // Bounded memory: drop clean pages (dirty ones stay until flushed).
      std::erase_if(pages_, [](const auto& kv) { return !kv.second.dirty; });
    }
    for (uint64_t i = index; i < last_page; ++i) {
      const char* src = buf.data() + (i - index) * kPageSize;
      pages_.emplace(i, Page{std::vector<char>(src, src + kPageSize), false});
    }
    std::memcpy(dst.data() + (pos - off), buf.data() + (pos - first_byte), run_end - pos);
    pos = run_end;
  }
  return static_cast<size_t>(end - off);
}

p9::Result<void> PageCache::ReadFull(std::span<char> dst, uint64_t off, const ReadFn& rd) {
  size_t done = 0;
  while (done < dst.size()) {
    P9_ASSIGN_OR_RETURN(size_t n, rd(dst.subspan(done), off + done));
    if (n == 0) {
      // Shorter on the host than we thought: the rest reads as zeros.
      std::fill(dst.begin() + static_cast<ptrdiff_t>(done), dst.end(), '\0');
      break;
    }
    done += n;
  }
  return p9::Ok();
}

p9::Result<void> PageCache::MakeRoom(const WriteFn& wr) {
  if (pages_.size() < kMaxPages) return p9::Ok();
  P9_RETURN_IF_ERROR(FlushLocked(wr));
  pages_.clear();
  return p9::Ok();
}

p9::Result<size_t> PageCache::Write(std::span<const char> src, uint64_t off, const ReadFn& rd,
                                    const WriteFn& wr, bool writethrough) {
  std::lock_guard l(mu_);
  if (writethrough) P9_RETURN_IF_ERROR(wr(src, off));
  size_t done = 0;
  while (done < src.size()) {
    uint64_t pos = off + done;
    uint64_t index = pos / kPageSize;
    size_t in_page = pos % kPageSize;
    size_t n = std::min(src.size() - done, kPageSize - in_page);
    if (!pages_.contains(index)) P9_RETURN_IF_ERROR(MakeRoom(wr));
    // A partial page needs its old contents (read-modify-write).
    bool whole = in_page == 0 && n == kPageSize;
    P9_ASSIGN_OR_RETURN(Page * p, GetPage(index, !whole, rd));
    std::memcpy(p->data.data() + in_page, src.data() + done, n);
    if (!writethrough) p->dirty = true;
    done += n;
  }
  size_ = std::max<uint64_t>(size_, off + src.size());
  return src.size();
}

p9::Result<void> PageCache::FlushLocked(const WriteFn& wr) {
  for (auto& [index, p] : pages_) {
    if (!p.dirty) continue;
    uint64_t off = index * kPageSize;
    if (off >= size_) {
      p.dirty = false;
      continue;
    }
    size_t n = std::min<uint64_t>(kPageSize, size_ - off);
    P9_RETURN_IF_ERROR(wr(std::span<const char>(p.data.data(), n), off));
    p.dirty = false;
  }
  return p9::Ok();
}

std::optional<size_t> PageCache::CleanExtent(uint64_t off, size_t len) const {
  std::lock_guard l(mu_);
  if (off >= size_) return size_t{0};
  uint64_t end = off + std::min<uint64_t>(len, size_ - off);
  for (auto it = pages_.lower_bound(off / kPageSize);
       it != pages_.end() && it->first * kPageSize < end; ++it) {
    if (it->second.dirty) return std::nullopt;
  }
  return static_cast<size_t>(end - off);
}

p9::Result<void> PageCache::Flush(const WriteFn& wr) {
  std::lock_guard l(mu_);
  return FlushLocked(wr);
}

void PageCache::Truncate(uint64_t size) {
  std::lock_guard l(mu_);
  size_ = size;
  uint64_t keep = (size + kPageSize - 1) / kPageSize;
  pages_.erase(pages_.lower_bound(keep), pages_.end());
  if (size % kPageSize != 0) {
    auto it = pages_.find(size / kPageSize);
    if (it != pages_.end()) {
      std::fill(it->second.data.begin() + size % kPageSize, it->second.data.end(), '\0');
    }
  }
}

void PageCache::Reset(uint64_t size) {
  std::lock_guard l(mu_);
  pages_.clear();
  size_ = size;
}

uint64_t PageCache::size() const {
  std::lock_guard l(mu_);
  return size_;
}

bool PageCache::dirty() const {
  std::lock_guard l(mu_);
  for (auto& [i, p] : pages_) {
    if (p.dirty) return true;
  }
  return false;
}

}  // namespace sentry::fs
