// The open files of a 9p mount: GoferFile (a clone of the inode's fid, data through the page
// cache or the donated host fd) and ListingFile (an fscache directory's cached listing).
#ifndef SENTRY_FS_GOFER_GOFER_FILE_H_
#define SENTRY_FS_GOFER_GOFER_FILE_H_

#include <fcntl.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "p9/client_file.h"
#include "p9/result.h"
#include "sentry/fs/gofer/gofer_fs.h"
#include "sentry/fs/gofer/page_cache.h"
#include "sentry/vfs/inode.h"
#include "sentry/vfs/types.h"

namespace sentry::fs {

class GoferInode;

// An opened clone of an inode's fid. Under the fscache policies, data goes through the
// inode's page cache (shared by its opens) and this file's handle is the backend.
class GoferFile : public vfs::OpenFile {
 public:
  // regular: a regular file, read and written with several requests in flight
  // (Client::ReadFull, WriteFull).
  GoferFile(std::shared_ptr<GoferInode> inode, std::shared_ptr<GoferFs::Shared> shared,
            p9::ClientFile fid, std::shared_ptr<PageCache> cache, int flags, bool regular)
      : inode_(std::move(inode)),
        shared_(std::move(shared)),
        fid_(std::move(fid)),
        cache_(std::move(cache)),
        flags_(flags),
        regular_(regular) {}
  ~GoferFile() override;

  p9::Result<size_t> ReadAt(std::span<char> dst, uint64_t offset) override;
  p9::Result<size_t> WriteAt(std::span<const char> src, uint64_t offset) override;
  p9::Result<std::vector<vfs::DirEntry>> Readdir(uint64_t offset) override;
  p9::Result<void> Fsync() override;
  p9::Result<void> Flush() override;
  bool FlushWritesBack() const override { return cache_ && writable(); }
  std::optional<HostExtent> ReadableHostExtent(uint64_t offset, size_t len) override;
  std::optional<HostIo> HostIoFile() const override;
  p9::Result<void> StartHostIo() override;

 private:
  bool writable() const { return (flags_ & O_ACCMODE) != O_RDONLY; }
  p9::Result<size_t> DirectRead(std::span<char> dst, uint64_t offset);
  p9::Result<void> DirectWrite(std::span<const char> src, uint64_t offset);
  PageCache::ReadFn BackendRead() {
    return [this](std::span<char> d, uint64_t o) { return DirectRead(d, o); };
  }
  PageCache::WriteFn BackendWrite() {
    return [this](std::span<const char> s, uint64_t o) { return DirectWrite(s, o); };
  }

  std::shared_ptr<GoferInode> inode_;
  std::shared_ptr<GoferFs::Shared> shared_;  // Before fid_: the client outlives the clunk.
  p9::ClientFile fid_;
  std::shared_ptr<PageCache> cache_;  // Null unless an fscache policy.
  const int flags_;                   // As the caller opened it.
  const bool regular_;
  bool host_io_ = false;              // StartHostIo() was called (by the opener, once).
};

// A snapshot of a directory's entries (fscache: directory contents are cached per inode).
class ListingFile : public vfs::OpenFile {
 public:
  explicit ListingFile(std::shared_ptr<const std::vector<vfs::DirEntry>> ents)
      : ents_(std::move(ents)) {}
  p9::Result<size_t> ReadAt(std::span<char>, uint64_t) override { return p9::Errno(EISDIR); }
  p9::Result<size_t> WriteAt(std::span<const char>, uint64_t) override { return p9::Errno(EISDIR); }
  p9::Result<std::vector<vfs::DirEntry>> Readdir(uint64_t offset) override;

 private:
  std::shared_ptr<const std::vector<vfs::DirEntry>> ents_;
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_GOFER_FILE_H_
