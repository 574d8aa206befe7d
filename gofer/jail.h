// Moves the gofer, after it has opened its attach points, into a mount namespace of its own
// whose root is an empty tmpfs holding nothing but /proc (the backend re-opens files through
// /proc/self/fd). From then on the served trees are reachable only through the descriptors
// already open: no path on the host resolves, whatever a bug in path handling might build.
//
// REQUIRES: the process has a single thread (unshare(CLONE_NEWNS) moves only the caller), and
// root (or CAP_SYS_ADMIN) in its user namespace.
#ifndef GOFER_JAIL_H_
#define GOFER_JAIL_H_

#include <string>

#include "p9/result.h"

namespace gofer {

// Then drops every capability but those serving files as any owner needs (CHOWN,
// DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, MKNOD), from the bounding set too.
p9::Result<void> EnterEmptyRoot(std::string* error);
p9::Result<void> DropCapabilities(std::string* error);

}  // namespace gofer

#endif  // GOFER_JAIL_H_
