// Sockets for 9P transports: unix paths, TCP, socketpairs, and "unix:PATH" / "tcp:HOST:PORT"
// addresses as the command-line tools take them. All fds are close-on-exec.
#ifndef P9_SOCKET_UTIL_H_
#define P9_SOCKET_UTIL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "p9/result.h"
#include "p9/unique_fd.h"

namespace p9 {

Result<std::pair<UniqueFd, UniqueFd>> SocketPair();
Result<UniqueFd> ConnectUnix(const std::string& path);
// Removes a stale socket file at `path` first. ENAMETOOLONG beyond sun_path.
Result<UniqueFd> ListenUnix(const std::string& path);
Result<UniqueFd> ConnectTcp(const std::string& host, uint16_t port);
// Port 0 picks a free port; `bound_port` receives the port bound.
Result<UniqueFd> ListenTcp(const std::string& host, uint16_t port,
                           uint16_t* bound_port = nullptr);

// "unix:PATH" or "tcp:HOST:PORT" (numeric IPv4 host). EINVAL for anything else.
Result<UniqueFd> ConnectAddress(const std::string& address);
Result<UniqueFd> ListenAddress(const std::string& address);

// Inherited fds, as the launcher hands them to the gofer and the sandbox.
// "A,B,...": each a decimal fd number open on a socket. EINVAL with `error` naming the bad one.
Result<std::vector<int>> ParseSocketFds(const std::string& list, std::string* error);
// Everything readable from `fd` (a pipe, a file or a memfd from its current offset).
Result<std::string> ReadToEnd(int fd);

// Raises this process's open-file limit as far as it may go (the hard limit; as root, the
// kernel's nr_open, capped at 1<<20): a gofer holds one fd per file its client knows, a
// sandbox one per open file. Returns the new soft limit.
uint64_t RaiseFdLimit();

}  // namespace p9

#endif  // P9_SOCKET_UTIL_H_
