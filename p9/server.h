// The 9P2000.L server framework: connections, sessions, fid table and dispatch onto a backend
// (file.h). The gofer and the test fakes plug in through Attacher/File.
//
// Threads: each connection has its own threads (at most ServerOptions::threads), in a
// leader/follower arrangement: one thread at a time reads the socket (blocking recvmsg) and
// serves metadata requests itself, so a lone request is read, served and answered on one thread
// with no wake-up of another (see DESIGN.md on wake-up costs); before serving a request that may
// keep it long (fsync, locks, truncation, bulk I/O, or an open or I/O of a file whose backend
// says it may block, File::MayBlock) it hands reading to another thread. Replies
// of a burst served inline leave together in one sendmsg. A listener has one accept thread.
// Connections never share threads, so a stuck peer or backend stalls only its own connection.
//
// Protocol rules enforced here, not in backends:
//  * Tversion first; it negotiates msize = min(client, max_msize) (>= kMinMsize, else EINVAL)
//    and the version: for "9P2000.L.cxx.N" our dialect at the lower of N and our level
//    (dialect.h), for any other "9P2000.L..." plain "9P2000.L", for anything else "unknown".
//    A new Tversion resets the session. A message above the session's level: ENOSYS.
//  * A tag reused while in flight, or a frame with a bad header, is a protocol violation: the
//    connection is closed. A malformed body gets Rlerror(EINVAL); an unknown type Rlerror(ENOSYS).
//  * Tflush(oldtag) is answered after oldtag's reply has been sent (or at once if it has none,
//    or if oldtag had not started: it was queued for a thread, and is dropped unserved).
//  * Names are validated (EINVAL for "", ".", "..", '/', NUL; ENAMETOOLONG beyond 255).
//  * Limits per connection: fids (EMFILE beyond max_fids), requests in flight (the server
//    stops reading the socket until one completes: backpressure, not an error) and threads
//    (at the limit, a long request is served by the reading thread itself, as before, but one
//    that may wait for good -- I/O of a file whose backend may block -- waits for the first
//    busy thread to finish, while the reading thread serves the others). A new Tversion
//    aborts requests still waiting so, unanswered.
//  * A connection that dies releases every fid (and so every backend File) once its in-flight
//    requests have returned.
#ifndef P9_SERVER_H_
#define P9_SERVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "p9/dialect.h"
#include "p9/file.h"
#include "p9/p9.h"
#include "p9/result.h"
#include "p9/unique_fd.h"

namespace p9 {

struct ServerOptions {
  uint32_t max_msize = kMaxMsize;  // Upper bound for the negotiated msize.
  size_t threads = 0;              // Per connection, at most; 0: 16. See "Threads" above.
  size_t max_fids = 1u << 20;      // Per connection.
  size_t max_inflight = 1024;      // Per connection; must be <= 65535.
  // The highest level of our dialect accepted (dialect.h); kPlain: 9P2000.L only, so no fd
  // donation (level 1). Lower it to serve as an older release would.
  Dialect max_dialect = kDialect;
  // A connection's reading thread polls for the next request this long before sleeping in
  // the kernel (FrameReader::set_spin); 0: sleeps at once.
  std::chrono::nanoseconds spin{0};
};

class Connection;
struct ServerState;

// Serves 9P2000.L on any number of connections. Thread-safe.
class Server {
 public:
  // `attacher` must outlive the Server.
  explicit Server(Attacher& attacher, ServerOptions options = {});
  // Stops: closes every connection and waits for in-flight requests to finish.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves a connected stream socket (unix or TCP, socketpair or inherited fd). Tattach on it
  // goes to `attacher` when given (it must outlive the Server), else to the server's.
  void AddConnection(UniqueFd sock, Attacher* attacher = nullptr);

  // Accepts connections on a listening socket until Stop().
  void Listen(UniqueFd listener);

  // Closes every connection and listener and joins the threads. Idempotent.
  void Stop();

  // Connections alive (for tests and logs): a closed connection stops counting once its
  // in-flight requests have finished and its fids were released.
  size_t connection_count() const;
  // Blocks until connection_count() == 0 or the timeout passes; true if it reached 0.
  bool WaitNoConnections(std::chrono::milliseconds timeout) const;

 private:
  std::shared_ptr<ServerState> state_;
  // Accept loops of Listen(); each owns its listening socket. Guarded by state_->mu.
  std::vector<std::thread> listen_threads_;
  std::once_flag stopped_;
};

// Checks a single path component from the wire (see file.h): EINVAL or ENAMETOOLONG.
Result<void> ValidateName(const std::string& name);

}  // namespace p9

#endif  // P9_SERVER_H_
