// GoferFile's and ListingFile's methods: reads and writes through the page cache, the donated
// host fd or Tread/Twrite; host I/O; a cached listing's entries.
#include "sentry/fs/gofer/gofer_file.h"

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>

#include "glog/logging.h"
#include "sentry/fs/gofer/gofer_inode.h"
#include "sentry/fs/gofer/gofer_shared.h"

namespace sentry::fs {

using p9::Errno;
using p9::Result;
using vfs::DirEntry;
using vfs::OpenFile;

Result<size_t> GoferFile::ReadAt(std::span<char> dst, uint64_t offset) {
  if (cache_) return cache_->Read(dst, offset, BackendRead(), fid_.donated_fd() < 0);
  return DirectRead(dst, offset);
}

Result<std::vector<DirEntry>> GoferFile::Readdir(uint64_t offset) {
  P9_ASSIGN_OR_RETURN(std::vector<p9::Dirent> ents,
                      fid_.Readdir(offset, shared_->client->msize()));
  std::vector<DirEntry> out;
  out.reserve(ents.size());
  for (auto& e : ents) out.push_back(DirEntry{std::move(e.name), e.qid.path, e.type, e.offset});
  return out;
}

Result<void> GoferFile::Fsync() {
  if (cache_ && writable()) P9_RETURN_IF_ERROR(cache_->Flush(BackendWrite()));
  if (int fd = fid_.donated_fd(); fd >= 0) {
    if (fsync(fd) != 0) return p9::LastErrno();
    return p9::Ok();
  }
  return fid_.Fsync();
}

Result<void> GoferFile::Flush() {
  if (cache_ && writable()) return cache_->Flush(BackendWrite());
  return p9::Ok();
}

std::optional<OpenFile::HostExtent> GoferFile::ReadableHostExtent(uint64_t offset, size_t len) {
  int fd = fid_.donated_fd();
  if (fd < 0) return std::nullopt;
  if (!cache_) return HostExtent{fd, len};  // The host's end of file is the end.
  std::optional<size_t> clean = cache_->CleanExtent(offset, len);
  if (!clean.has_value()) return std::nullopt;
  return HostExtent{fd, *clean};
}

GoferFile::~GoferFile() {
  // Close writes back what this file may have left dirty; an error here has no caller to
  // report to (close(2) through FUSE calls Flush first), so it is logged.
  if (cache_ && writable()) {
    auto r = cache_->Flush(BackendWrite());
    if (!r.has_value()) LOG(ERROR) << "9p: write-back on close failed: " << r.error();
  }
  if (host_io_) inode_->HostIoEnded(writable(), fid_.donated_fd());
}

std::optional<OpenFile::HostIo> GoferFile::HostIoFile() const {
  int fd = fid_.donated_fd();
  if (fd < 0) return std::nullopt;
  return HostIo{fd, inode_.get()};
}

Result<void> GoferFile::StartHostIo() {
  if (host_io_ || fid_.donated_fd() < 0) return Errno(EINVAL);
  // Data written in the sandbox and not yet on the host would be invisible to host I/O;
  // writing it back needs a writable backend, which a read-only open does not have.
  if (cache_ && cache_->dirty()) {
    if (!writable()) return Errno(EBUSY);
    P9_RETURN_IF_ERROR(cache_->Flush(BackendWrite()));
  }
  host_io_ = true;
  inode_->HostIoStarted(writable(), fid_.donated_fd());
  return p9::Ok();
}

Result<size_t> GoferFile::DirectRead(std::span<char> dst, uint64_t offset) {
  int fd = fid_.donated_fd();
  // A regular file by Tread: all of it but at the end of the file, in about one round trip.
  if (fd < 0 && regular_) return fid_.ReadFullAt(dst, offset);
  size_t done = 0;
  while (done < dst.size()) {
    size_t n;
    if (fd >= 0) {
      ssize_t r = pread(fd, dst.data() + done, dst.size() - done,
                        static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        if (done > 0) break;
        return p9::LastErrno();
      }
      n = static_cast<size_t>(r);
    } else {
      P9_ASSIGN_OR_RETURN(n, fid_.ReadAt(dst.subspan(done), offset + done));
    }
    if (n == 0) break;
    done += n;
  }
  return done;
}

Result<void> GoferFile::DirectWrite(std::span<const char> src, uint64_t offset) {
  int fd = fid_.donated_fd();
  size_t done = 0;
  while (done < src.size()) {
    size_t n;
    if (fd >= 0) {
      ssize_t r = pwrite(fd, src.data() + done, src.size() - done,
                         static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return p9::LastErrno();
      }
      n = static_cast<size_t>(r);
    } else if (regular_ && !(flags_ & O_APPEND)) {
      // Several Twrites in flight (Client::WriteFull): about one round trip in all.
      P9_ASSIGN_OR_RETURN(n, fid_.WriteFullAt(p9::Bytes(src.data() + done, src.size() - done),
                                              offset + done));
    } else {
      P9_ASSIGN_OR_RETURN(n, fid_.WriteAt(p9::Bytes(src.data() + done, src.size() - done),
                                          offset + done));
    }
    if (n == 0) return Errno(EIO);
    done += n;
  }
  return p9::Ok();
}

Result<size_t> GoferFile::WriteAt(std::span<const char> src, uint64_t offset) {
  inode_->Wrote();
  if (cache_) {
    if (flags_ & O_APPEND) offset = cache_->size();
    bool through = shared_->cache == CachePolicy::kFscacheWritethrough;
    return cache_->Write(src, offset, BackendRead(), BackendWrite(), through);
  }
  P9_RETURN_IF_ERROR(DirectWrite(src, offset));
  return src.size();
}

Result<std::vector<DirEntry>> ListingFile::Readdir(uint64_t offset) {
  std::vector<DirEntry> out;
  for (size_t i = offset; i < ents_->size(); ++i) out.push_back((*ents_)[i]);
  return out;
}

}  // namespace sentry::fs
