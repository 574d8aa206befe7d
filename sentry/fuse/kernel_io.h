// What Debian 12's libfuse (3.14) cannot say to the kernel, said on libfuse's own session:
// FUSE passthrough (Linux 6.9+), where the kernel reads and writes an open file's data on a
// host file itself, with no FUSE READ or WRITE reaching us. libfuse 3.14 predates it.
//
//  - the I/O of the session goes through our callbacks (fuse_session_custom_io). The read
//    callback sees the kernel's INIT request (does it offer passthrough?); the writev
//    callback amends the one reply the calling thread armed: the INIT reply (passthrough
//    on, with the stacking depth the kernel requires) or an OPEN/CREATE reply (the
//    FOPEN_PASSTHROUGH flag and the backing file's id);
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

// In the INIT handler: whether the INIT request being served offers passthrough (recorded
// per thread by the read callback that read it).
bool InitOffersPassthrough();

// Arms the calling thread's next reply. Only between InstallKernelIo and the reply.
void ArmInitPassthrough();  // INIT: passthrough on (only if InitOffersPassthrough()).
void ArmOpenPassthrough(int32_t id);  // OPEN or CREATE: do the file's I/O on backing `id`.
void Disarm();
// True if the last armed reply on this thread was amended (it had the expected shape).
bool LastArmedApplied();

// Backing files on the session's /dev/fuse fd `dev`. Open returns the backing id (> 0).
p9::Result<int32_t> BackingOpen(int dev, int host_fd);
void BackingClose(int dev, int32_t id);

}  // namespace sentry::fuse

#endif  // SENTRY_FUSE_KERNEL_IO_H_
