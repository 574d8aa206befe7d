#include "sentry/fuse/kernel_io.h"

#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

namespace sentry::fuse {
namespace {

// The kernel ABI of 7.40 that Debian 12's <linux/fuse.h> (7.37) lacks.
constexpr uint64_t kFusePassthrough = uint64_t{1} << 37;  // An INIT flag (flags2 bit 5).
constexpr uint32_t kFopenPassthrough = 1u << 7;
// Files on file systems stacked at most this deep may back ours; ours then counts as that
// deep (nothing can be stacked on it). 2 is the kernel's limit (FILESYSTEM_MAX_STACK_DEPTH):
// host trees on overlayfs (depth 1) qualify.
constexpr uint32_t kMaxStackDepth = 2;

struct InitOut {  // fuse_init_out
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
  uint32_t flags2, max_stack_depth;
  uint16_t request_timeout, unused[11];
};
static_assert(sizeof(InitOut) == 64);
struct OpenOut {  // fuse_open_out
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut) == 16);
struct BackingMap {  // fuse_backing_map
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
const unsigned long kBackingOpen = _IOW(FUSE_DEV_IOC_MAGIC, 1, BackingMap);
const unsigned long kBackingClose = _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t);

enum class Armed { kNone, kInit, kOpen };
thread_local Armed t_armed = Armed::kNone;
thread_local int32_t t_backing = 0;
thread_local bool t_applied = false;
thread_local bool t_init_offers = false;

ssize_t Read(int fd, void* buf, size_t len, void*) {
  ssize_t n = read(fd, buf, len);
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, flags2) +
                                sizeof(uint32_t))) {
    fuse_in_header h;
    std::memcpy(&h, buf, sizeof(h));
    if (h.opcode == FUSE_INIT) {
      fuse_init_in in{};
      std::memcpy(&in, static_cast<char*>(buf) + sizeof(h),
                  std::min(sizeof(in), static_cast<size_t>(n) - sizeof(h)));
      t_init_offers = (in.flags & FUSE_INIT_EXT) != 0 &&
                      (in.flags2 & static_cast<uint32_t>(kFusePassthrough >> 32)) != 0;
    }
  }
  return n;
}

// libfuse sends a reply as [header, payload] (send_reply_ok). The payload is copied, amended
// and sent in place of the original: libfuse's buffer is not ours to change.
ssize_t Writev(int fd, iovec* iov, int count, void*) {
  Armed what = std::exchange(t_armed, Armed::kNone);
  if (what == Armed::kNone || count != 2 || iov[0].iov_len != sizeof(fuse_out_header) ||
      static_cast<const fuse_out_header*>(iov[0].iov_base)->error != 0) {
    return writev(fd, iov, count);
  }
  alignas(8) char payload[256];
  size_t len = iov[1].iov_len;
  if (len > sizeof(payload)) return writev(fd, iov, count);
  std::memcpy(payload, iov[1].iov_base, len);
  if (what == Armed::kInit && len == sizeof(InitOut)) {
    InitOut o;
    std::memcpy(&o, payload, sizeof(o));
    o.flags |= FUSE_INIT_EXT;
    o.flags2 |= static_cast<uint32_t>(kFusePassthrough >> 32);
    o.max_stack_depth = kMaxStackDepth;
    std::memcpy(payload, &o, sizeof(o));
    t_applied = true;
  } else if (what == Armed::kOpen && len >= sizeof(OpenOut)) {
    // OPEN: the payload is fuse_open_out; CREATE: fuse_entry_out then fuse_open_out.
    OpenOut o;
    std::memcpy(&o, payload + len - sizeof(o), sizeof(o));
    o.open_flags |= kFopenPassthrough;
    o.backing_id = t_backing;
    std::memcpy(payload + len - sizeof(o), &o, sizeof(o));
    t_applied = true;
  } else {
    return writev(fd, iov, count);
  }
  iovec v[2] = {iov[0], {payload, len}};
  return writev(fd, v, 2);
}

ssize_t SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                   unsigned int flags, void*) {
  return splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

p9::Result<void> InstallKernelIo(fuse_session* se) {
  fuse_custom_io io{};
  io.writev = Writev;
  io.read = Read;
  io.splice_send = SpliceSend;  // Keeps FUSE_CAP_SPLICE_WRITE (READ replies from host fds).
  int rc = fuse_session_custom_io(se, &io, fuse_session_fd(se));
  if (rc != 0) return p9::Errno(-rc);
  return p9::Ok();
}

bool InitOffersPassthrough() { return t_init_offers; }

void ArmInitPassthrough() {
  t_armed = Armed::kInit;
  t_applied = false;
}

void ArmOpenPassthrough(int32_t id) {
  t_armed = Armed::kOpen;
  t_backing = id;
  t_applied = false;
}

void Disarm() { t_armed = Armed::kNone; }

bool LastArmedApplied() { return t_applied; }

p9::Result<int32_t> BackingOpen(int dev, int host_fd) {
  BackingMap m{host_fd, 0, 0};
  int id = ioctl(dev, kBackingOpen, &m);
  if (id < 0) return p9::LastErrno();
  if (id == 0) return p9::Errno(EPROTO);  // 0 names no backing in an open reply.
  return id;
}

void BackingClose(int dev, int32_t id) {
  uint32_t u = static_cast<uint32_t>(id);
  (void)ioctl(dev, kBackingClose, &u);
}

}  // namespace sentry::fuse
