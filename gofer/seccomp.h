// The gofer's system call filter (libseccomp). Installed after start-up, on every thread at
// once (TSYNC), it allows what serving files needs (file and directory calls on descriptors,
// socket I/O on the connections it already has, memory, threads, time) and answers
// everything else with EPERM: no new sockets or connections, no exec, no ptrace, no mount,
// no namespace or privilege changes. no_new_privs is set with it.
//
// An EPERM (not a kill) keeps a missing entry debuggable: the 9P request fails with EPERM
// and the gofer logs nothing worse.
#ifndef GOFER_SECCOMP_H_
#define GOFER_SECCOMP_H_

#include <string>

#include "p9/result.h"

namespace gofer {

p9::Result<void> InstallSeccompFilter(std::string* error);

}  // namespace gofer

#endif  // GOFER_SECCOMP_H_
