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

// The kernel ABI of 7.40-7.42 that Debian 12's <linux/fuse.h> (7.37) lacks.
constexpr uint64_t kFusePassthrough = uint64_t{1} << 37;  // An INIT flag (flags2 bit 5).
constexpr uint64_t kFuseOverIoUring = uint64_t{1} << 41;  // An INIT flag (flags2 bit 9).
constexpr uint32_t kFuseMaxPages = 1u << 22;              // FUSE_MAX_PAGES: max_pages is set.
constexpr size_t kFuseMinReadBuffer = 8192;
constexpr size_t kDefaultMaxPages = 32;                   // Without FUSE_MAX_PAGES.
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
thread_local bool t_init_offers_uring = false;
thread_local bool t_init_passthrough = false;
thread_local size_t t_init_ring_payload = 0;
thread_local bool t_init_applied_uring = false;
thread_local RingReply* t_ring = nullptr;

uint32_t Flags2(uint64_t flag) { return static_cast<uint32_t>(flag >> 32); }

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
      const bool ext = (in.flags & FUSE_INIT_EXT) != 0;
      t_init_offers = ext && (in.flags2 & Flags2(kFusePassthrough)) != 0;
      t_init_offers_uring = ext && (in.flags2 & Flags2(kFuseOverIoUring)) != 0;
    }
  }
  return n;
}

// True if `out` answers the calling thread's ring request (not yet answered).
bool ForRing(const fuse_out_header& out) {
  return t_ring != nullptr && !t_ring->replied && out.unique == t_ring->unique;
}

// Completes the ring reply: header `out`, `len` payload bytes already in the entry (0 and
// EIO if `fits` is false). Returns what the reply's sender expects: the bytes it gave.
ssize_t FinishRing(fuse_out_header out, size_t len, bool fits) {
  const size_t given = sizeof(out) + len;
  if (!fits) {
    out.error = -EIO;
    len = 0;
  }
  out.len = static_cast<uint32_t>(sizeof(out) + len);
  std::memcpy(t_ring->out_header, &out, sizeof(out));
  *t_ring->payload_len = static_cast<uint32_t>(len);
  t_ring->replied = true;
  return static_cast<ssize_t>(given);
}

bool ForRing(const iovec* iov, int count) {
  if (count < 1 || iov[0].iov_len != sizeof(fuse_out_header)) return false;
  return ForRing(*static_cast<const fuse_out_header*>(iov[0].iov_base));
}

// A reply for the calling thread's ring request: into its entry.
ssize_t ToRing(const iovec* iov, int count) {
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof(out));
  size_t len = 0;
  for (int i = 1; i < count; ++i) len += iov[i].iov_len;
  const bool fits = len <= t_ring->capacity;
  if (fits) {
    size_t at = 0;
    for (int i = 1; i < count; ++i) {
      // memmove: a reply may quote the request, which lies in the same buffer.
      std::memmove(t_ring->payload + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
  }
  return FinishRing(out, len, fits);
}

// Reads exactly `len` bytes of pipe `fd` into `dst` (null: discards them). False on error.
bool ReadPipe(int fd, char* dst, size_t len) {
  char sink[4096];
  while (len > 0) {
    ssize_t n = read(fd, dst ? dst : sink, dst ? len : std::min(len, sizeof(sink)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    len -= static_cast<size_t>(n);
    if (dst) dst += n;
  }
  return true;
}

ssize_t Send(int fd, const iovec* iov, int count) {
  if (ForRing(iov, count)) return ToRing(iov, count);
  return writev(fd, iov, count);
}

// The INIT reply `o`, amended as armed.
void AmendInit(InitOut& o) {
  if (t_init_passthrough) {
    o.flags |= FUSE_INIT_EXT;
    o.flags2 |= Flags2(kFusePassthrough);
    o.max_stack_depth = kMaxStackDepth;
  }
  t_init_applied_uring = false;
  if (t_init_ring_payload > 0) {
    // The kernel refuses ring entries smaller than the largest request it may send.
    size_t pages = (o.flags & kFuseMaxPages) ? o.max_pages : kDefaultMaxPages;
    size_t need = std::max({kFuseMinReadBuffer, static_cast<size_t>(o.max_write),
                            pages * static_cast<size_t>(sysconf(_SC_PAGESIZE))});
    if (need <= t_init_ring_payload) {
      o.flags |= FUSE_INIT_EXT;
      o.flags2 |= Flags2(kFuseOverIoUring);
      t_init_applied_uring = true;
    }
  }
}

// libfuse sends a reply as [header, payload] (send_reply_ok). The payload is copied, amended
// and sent in place of the original: libfuse's buffer is not ours to change.
ssize_t Writev(int fd, iovec* iov, int count, void*) {
  Armed what = std::exchange(t_armed, Armed::kNone);
  if (what == Armed::kNone || count != 2 || iov[0].iov_len != sizeof(fuse_out_header) ||
      static_cast<const fuse_out_header*>(iov[0].iov_base)->error != 0) {
    return Send(fd, iov, count);
  }
  alignas(8) char payload[256];
  size_t len = iov[1].iov_len;
  if (len > sizeof(payload)) return Send(fd, iov, count);
  std::memcpy(payload, iov[1].iov_base, len);
  if (what == Armed::kInit && len == sizeof(InitOut)) {
    InitOut o;
    std::memcpy(&o, payload, sizeof(o));
    AmendInit(o);
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
    return Send(fd, iov, count);
  }
  iovec v[2] = {iov[0], {payload, len}};
  return Send(fd, v, 2);
}

// A spliced reply: [header, data] in the pipe `fdin` (a READ served from a host fd). On a
// thread serving a ring request it is read out of the pipe straight into the entry, the
// one copy a splice to /dev/fuse would have made.
ssize_t SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                   unsigned int flags, void*) {
  if (t_ring == nullptr || t_ring->replied) return splice(fdin, offin, fdout, offout, len, flags);
  fuse_out_header out;
  if (len < sizeof(out) || !ReadPipe(fdin, reinterpret_cast<char*>(&out), sizeof(out))) {
    errno = EIO;
    return -1;
  }
  if (!ForRing(out)) {
    // libfuse replies only to the request it serves: another unique is a bug of ours.
    errno = EINVAL;
    return -1;
  }
  const size_t data = len - sizeof(out);
  const bool fits = data <= t_ring->capacity;
  if (!ReadPipe(fdin, fits ? t_ring->payload : nullptr, data)) {
    errno = EIO;
    return -1;
  }
  return FinishRing(out, data, fits);
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
bool InitOffersUring() { return t_init_offers_uring; }

void ArmInit(bool passthrough, size_t ring_payload) {
  t_armed = Armed::kInit;
  t_applied = false;
  t_init_passthrough = passthrough;
  t_init_ring_payload = ring_payload;
  t_init_applied_uring = false;
}
bool InitAppliedUring() { return t_init_applied_uring; }

void SetRingReply(RingReply* reply) { t_ring = reply; }

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
