// What Debian 12's libfuse (3.14) cannot say to the kernel, said on libfuse's own session:
// FUSE passthrough (Linux 6.9+), where the kernel reads and writes an open file's data on a
// host file itself, with no FUSE READ or WRITE reaching us; and FUSE over io_uring (Linux
// 6.14+, uring_queues.h), where requests come and replies go through per-CPU ring entries.
// libfuse 3.14 predates both.
//
//  - the I/O of the session goes through our callbacks (fuse_session_custom_io). The read
//    callback sees the kernel's INIT request (does it offer passthrough, io_uring?); the
//    writev callback amends the one reply the calling thread armed: the INIT reply
//    (passthrough on, with the stacking depth the kernel requires; io_uring on) or an
//    OPEN/CREATE reply (the FOPEN_PASSTHROUGH flag and the backing file's id);
//  - a reply to a request that came through a ring entry goes into that entry (the thread
//    serving it names it with SetRingReply), not to /dev/fuse; a spliced one is read out of
//    its pipe into the entry;
//  - a host file becomes a backing file with the FUSE_DEV_IOC_BACKING_OPEN ioctl on
//    /dev/fuse, which needs CAP_SYS_ADMIN; its id is then named in open replies, and closed
//    with FUSE_DEV_IOC_BACKING_CLOSE.
//
// Arming is per thread: libfuse sends a reply on the thread that calls fuse_reply_*. Arm,
// reply, then check LastArmedApplied() (a reply of another shape is sent unchanged).
#ifndef SENTRY_FUSE_KERNEL_IO_H_
#define SENTRY_FUSE_KERNEL_IO_H_

#include <cstdint>

#include "p9/result.h"

struct fuse_session;

namespace sentry::fuse {

// Makes `se` (mounted, not yet serving) do its /dev/fuse I/O through our callbacks.
// Requests must be served on the thread that read them (SessionLoop does).
p9::Result<void> InstallKernelIo(fuse_session* se);

// In the INIT handler: whether the INIT request being served offers passthrough, and FUSE
// over io_uring (recorded per thread by the read callback that read it).
bool InitOffersPassthrough();
bool InitOffersUring();

// Arms the calling thread's next reply. Only between InstallKernelIo and the reply.
// INIT: passthrough on (only if InitOffersPassthrough()); io_uring on if `ring_payload` > 0
// (only if InitOffersUring()) and ring entries of that many payload bytes hold the largest
// request the reply allows (InitAppliedUring() says whether it was turned on).
void ArmInit(bool passthrough, size_t ring_payload);
bool InitAppliedUring();
void ArmOpenPassthrough(int32_t id);  // OPEN or CREATE: do the file's I/O on backing `id`.
void Disarm();
// True if the last armed reply on this thread was amended (it had the expected shape).
bool LastArmedApplied();

// A request that came through a ring entry (uring_queues.h): where its reply goes. The
// writev and splice callbacks put a reply whose unique id matches into `out_header` (a
// fuse_out_header) and `payload` (at most `capacity` bytes, its length in `*payload_len`)
// and set `replied`; a reply too large for the entry becomes EIO. Anything else (an
// interrupt's reply, a notification) still goes to /dev/fuse.
struct RingReply {
  uint64_t unique = 0;
  void* out_header = nullptr;
  char* payload = nullptr;
  size_t capacity = 0;
  uint32_t* payload_len = nullptr;
  bool replied = false;
};
// The calling thread's ring request, until SetRingReply(nullptr).
void SetRingReply(RingReply* reply);

// Backing files on the session's /dev/fuse fd `dev`. Open returns the backing id (> 0).
p9::Result<int32_t> BackingOpen(int dev, int host_fd);
void BackingClose(int dev, int32_t id);

}  // namespace sentry::fuse

#endif  // SENTRY_FUSE_KERNEL_IO_H_
