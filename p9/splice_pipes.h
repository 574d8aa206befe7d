// Rread payloads that never pass through the server's memory: a file's pages go from the
// host page cache into pipes (splice(2) file -> pipe takes page references, no copy) and from
// the pipes into the socket (splice pipe -> unix socket attaches the same pages to the
// socket's buffers, Linux 6.5+; older kernels copy there). The client's recvmsg is then the
// only copy, where pread + sendmsg made three. Measured on 1 MiB reads: about 3x less wall time
// per request (docs/BENCHMARKS.md, session 17).
//
// What a reader sees: the pages are the file's own until the client reads them, so a write or
// truncate racing with an in-flight Tread may show in its reply, as it may with any read that
// overlaps a write. Nothing but the file's bytes can be seen: a referenced page is never freed
// or reused.
//
// Limits: a pipe holds at most /proc/sys/fs/pipe-max-size bytes (1 MiB by default) unless
// privileged, and pipe pages count against the user's pipe-user-pages-soft (64 MiB by default;
// beyond it new pipes get 8 KiB), so each thread keeps at most kMaxPipes pipes and the process
// at most kMaxPipeBytes of pipe capacity. What does not fit is a short read, which 9P allows.
#ifndef P9_SPLICE_PIPES_H_
#define P9_SPLICE_PIPES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "p9/result.h"
#include "p9/unique_fd.h"

namespace p9 {

// One thread's pipes, holding the payload of one Rread between Fill and Drain.
// Not thread-safe: use the calling thread's (ThisThreadPipes()). Lifetime: until the thread
// exits; the pipe capacity returns to the process budget then.
class SplicePipes {
 public:
  static constexpr size_t kMaxPipes = 6;                   // 4 MiB at 1 MiB per pipe, unaligned.
  static constexpr size_t kMaxPipeBytes = size_t{32} << 20;  // Across the process.

  SplicePipes() = default;
  SplicePipes(const SplicePipes&) = delete;
  SplicePipes& operator=(const SplicePipes&) = delete;
  ~SplicePipes();

  // Moves a file's bytes into a pipe, as File::SpliceRead: (pipe_fd, count, offset) -> count.
  using Source = std::function<Result<size_t>(int pipe_fd, size_t count, uint64_t offset)>;

  // Moves up to `count` bytes at `offset` from `source` into the pipes. REQUIRES: held() == 0.
  // Returns the bytes now held: 0 at end of file, fewer than `count` at end of file, on an
  // error after the first byte, or when the pipes are full. An error with nothing held
  // (ENOSYS: the file cannot splice; ENOBUFS: no pipe to be had) tells the caller to read by
  // copying instead.
  Result<size_t> Fill(size_t count, uint64_t offset, const Source& source);

  // Sends every held byte, in order, to the blocking stream socket `sock`. SIGPIPE is kept
  // from the process (splice cannot be asked not to raise it). On error the held bytes are
  // dropped and the stream holds only part of them: the caller must end the connection.
  Result<void> Drain(int sock);

  size_t held() const;

  // Bytes every thread's Drain has sent (for tests and logs).
  static uint64_t bytes_drained();

  // Drops the held bytes (by closing the pipes that hold any).
  void Discard();

 private:
  struct Pipe {
    UniqueFd r, w;
    size_t capacity = 0;  // Bytes the pipe takes from page-aligned offsets.
    size_t held = 0;
  };
  // The next pipe to fill, created if needed. nullptr when none may be had.
  Pipe* PipeAt(size_t i);
  void Release(Pipe& p);

  std::vector<Pipe> pipes_;
};

SplicePipes& ThisThreadPipes();

}  // namespace p9

#endif  // P9_SPLICE_PIPES_H_
