#include "p9/socket_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdio>
#include <unistd.h>

#include <cstring>

namespace p9 {
namespace {

Result<sockaddr_un> UnixAddr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a.sun_path)) return Errno(ENAMETOOLONG);
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

Result<sockaddr_in> InetAddr(const std::string& host, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return Errno(EINVAL);
  return a;
}

// Splits "HOST:PORT".
Result<std::pair<std::string, uint16_t>> HostPort(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return Errno(EINVAL);
  std::string host = s.substr(0, colon);
  std::string port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    return Errno(EINVAL);
  }
  unsigned long p = std::stoul(port);
  if (p > 65535) return Errno(EINVAL);
  return std::make_pair(host, static_cast<uint16_t>(p));
}

}  // namespace

Result<std::pair<UniqueFd, UniqueFd>> SocketPair() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return LastErrno();
  return std::make_pair(UniqueFd(sv[0]), UniqueFd(sv[1]));
}

Result<UniqueFd> ConnectUnix(const std::string& path) {
  P9_ASSIGN_OR_RETURN(sockaddr_un a, UnixAddr(path));
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return LastErrno();
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return LastErrno();
  return fd;
}

Result<UniqueFd> ListenUnix(const std::string& path) {
  P9_ASSIGN_OR_RETURN(sockaddr_un a, UnixAddr(path));
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Errno(EEXIST);  // Never delete a non-socket.
    unlink(path.c_str());
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return LastErrno();
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return LastErrno();
  if (listen(fd.get(), 128) != 0) return LastErrno();
  return fd;
}

Result<UniqueFd> ConnectTcp(const std::string& host, uint16_t port) {
  P9_ASSIGN_OR_RETURN(sockaddr_in a, InetAddr(host, port));
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return LastErrno();
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return LastErrno();
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // Small requests.
  return fd;
}

Result<UniqueFd> ListenTcp(const std::string& host, uint16_t port, uint16_t* bound_port) {
  P9_ASSIGN_OR_RETURN(sockaddr_in a, InetAddr(host, port));
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return LastErrno();
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return LastErrno();
  if (listen(fd.get(), 128) != 0) return LastErrno();
  if (bound_port) {
    socklen_t len = sizeof(a);
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) return LastErrno();
    *bound_port = ntohs(a.sin_port);
  }
  return fd;
}

Result<UniqueFd> ConnectAddress(const std::string& address) {
  if (address.starts_with("unix:")) return ConnectUnix(address.substr(5));
  if (address.starts_with("tcp:")) {
    P9_ASSIGN_OR_RETURN(auto hp, HostPort(address.substr(4)));
    return ConnectTcp(hp.first, hp.second);
  }
  return Errno(EINVAL);
}

Result<UniqueFd> ListenAddress(const std::string& address) {
  if (address.starts_with("unix:")) return ListenUnix(address.substr(5));
  if (address.starts_with("tcp:")) {
    P9_ASSIGN_OR_RETURN(auto hp, HostPort(address.substr(4)));
    return ListenTcp(hp.first, hp.second);
  }
  return Errno(EINVAL);
}

uint64_t RaiseFdLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  rlim_t want = rl.rlim_max;
  FILE* f = fopen("/proc/sys/fs/nr_open", "re");
  if (f != nullptr) {
    unsigned long long nr = 0;
    if (fscanf(f, "%llu", &nr) == 1 && nr > want) want = std::min<rlim_t>(nr, rlim_t{1} << 20);
    fclose(f);
  }
  struct rlimit up = {want, want};
  if (setrlimit(RLIMIT_NOFILE, &up) != 0) {  // Not root: the soft limit up to the hard one.
    up = {rl.rlim_max, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) != 0) return rl.rlim_cur;
  }
  return up.rlim_cur;
}

Result<std::vector<int>> ParseSocketFds(const std::string& list, std::string* error) {
  std::vector<int> fds;
  size_t start = 0;
  while (start < list.size()) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? list.size() : comma + 1;
    if (item.empty() || item.size() > 9 || item.find_first_not_of("0123456789") != std::string::npos) {
      if (error) *error = "bad fd '" + item + "'";
      return Errno(EINVAL);
    }
    int fd = std::stoi(item);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      if (error) *error = "fd " + item + " is not an open socket";
      return Errno(EINVAL);
    }
    fds.push_back(fd);
  }
  return fds;
}

Result<std::string> ReadToEnd(int fd) {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastErrno();
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace p9
