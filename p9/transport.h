// Framing of 9P messages over a stream socket (unix, socketpair, inherited fd, or TCP), with
// SCM_RIGHTS file descriptors attached to a message.
//
// Sending: SendFrame writes a frame with one sendmsg where it can (head and tail as two iovecs,
// so bulk data is not copied into a staging buffer), attaching fds to the first byte.
//
// Receiving and fds: Linux delivers SCM_RIGHTS with the first recvmsg that touches the skb they
// were sent with, and ends that recvmsg right after that skb. Since a sender attaches fds to the
// sendmsg that starts a frame, the fds received by one recvmsg belong to the *last frame that
// starts within the bytes that recvmsg returned*. FrameReader tracks stream offsets to apply
// exactly this rule; fds that belong to no frame (a hostile peer) are closed, never leaked.
#ifndef P9_TRANSPORT_H_
#define P9_TRANSPORT_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "p9/messages.h"
#include "p9/result.h"
#include "p9/unique_fd.h"

namespace p9 {

// At most this many fds travel with one message; more is a protocol error.
inline constexpr size_t kMaxFdsPerMessage = 8;

// Sends `frame` on `fd`, with `fds` (duplicated by the kernel; still owned by the caller)
// attached to its first byte. Blocks until all is written: retries EINTR, polls on EAGAIN (so a
// non-blocking socket works), continues after short writes. Never raises SIGPIPE.
// Thread-compatible: concurrent senders on one socket must serialize (frames must not interleave).
Result<void> SendFrame(int fd, const OutFrame& frame, std::span<const int> fds = {});

// Asks the kernel for a send buffer on socket `fd` that holds a whole frame of `msize` bytes
// (it caps the request at net.core.wmem_max). With the default (about 208 KiB) a 1 MiB frame
// leaves in pieces, the sender sleeping until the receiver drains each: a wake-up of each side
// per piece. Unix sockets only (TCP autotunes its buffer; a set size would stop that). Best
// effort: a socket that refuses keeps its buffer.
void FitSendBuffer(int fd, uint32_t msize);

// A whole received frame, owning its body and fds.
struct InFrame {
  FrameHeader header;
  std::vector<char> body;        // size - kHeaderSize bytes.
  std::vector<UniqueFd> fds;     // Arrived with this frame.
  Bytes body_view() const { return Bytes(body.data(), body.size()); }
};

// Reads frames from one stream socket. Not thread-safe: one reader at a time.
//
// Two ways to use it:
//  * Whole frames: Read() (blocking) or TryRead() (never blocks; for event loops).
//  * Piecewise, blocking, for zero-copy receive into a caller's buffer:
//      ReadHeader(), then ReadView(n) / ReadInto(dst) for exactly the body bytes, then TakeFds().
// Every frame's size is checked against msize before anything is allocated.
class FrameReader {
 public:
  // Does not own `fd`.
  explicit FrameReader(int fd, uint32_t msize = kDefaultMsize);

  // Before a blocking read waits in the kernel, poll for up to `spin` without blocking,
  // yielding the CPU between tries. A reply or request that comes within it then costs no
  // wake-up: on these VMs an idle vCPU halts and waking it goes through the host (tens of
  // microseconds, DESIGN.md), while the peer typically answers in ten. Zero (the default):
  // block at once.
  void set_spin(std::chrono::nanoseconds spin) { spin_ = spin; }

  // Changes the frame size limit (after version negotiation).
  void set_msize(uint32_t msize) { msize_ = msize; }
  uint32_t msize() const { return msize_; }

  // Blocking: the next whole frame. ECONNRESET when the peer closed, EPROTO on a bad frame.
  // On a blocking socket it waits in recvmsg itself (no poll).
  Result<InFrame> Read();

  // True when a whole frame (or a header Read() will reject at once) is already buffered, so
  // Read() will not touch the socket.
  bool HasFrame() const;

  // Non-blocking: the next whole frame if it can be completed with the bytes available now,
  // std::nullopt if the socket has no more for now (partial progress is kept).
  Result<std::optional<InFrame>> TryRead();

  // Blocking piecewise API. REQUIRES: the previous frame's body was fully consumed.
  Result<FrameHeader> ReadHeader();
  // Next n body bytes of the current frame as a view valid until the next call on this reader.
  // REQUIRES: n <= BodyRemaining().
  Result<Bytes> ReadView(size_t n);
  // Next dst.size() body bytes of the current frame, received directly into dst where they are
  // not already buffered. REQUIRES: dst.size() <= BodyRemaining().
  Result<void> ReadInto(std::span<char> dst);
  // Discards the rest of the current frame's body.
  Result<void> SkipBody();
  size_t BodyRemaining() const { return body_remaining_; }
  // True when the rest of the current frame's body is buffered: reading it makes no syscall.
  bool BodyBuffered() const { return buffered() >= body_remaining_; }
  // The fds that arrived with the current frame (valid after ReadHeader).
  std::vector<UniqueFd> TakeFds() { return std::move(cur_fds_); }

 private:
  struct FdBatch {
    uint64_t begin;  // Stream offsets of the bytes the carrying recvmsg returned.
    uint64_t end;
    std::vector<UniqueFd> fds;
  };

  size_t buffered() const { return wpos_ - rpos_; }
  // One recvmsg into [dst, dst+n). Returns bytes read, or 0 only when !block and nothing is
  // available now. Records fds with their stream range.
  Result<size_t> Recv(char* dst, size_t n, bool block);
  // Ensures at least n bytes are buffered (n <= buffer capacity after growth).
  Result<bool> Fill(size_t n, bool block);
  // The next frame; with !block, std::nullopt if it cannot be completed from what is
  // available now.
  Result<std::optional<InFrame>> ReadFrame(bool block);
  // Parses the header at rpos_, assigns fds, consumes the 7 bytes.
  Result<FrameHeader> TakeHeader();
  void Consume(size_t n) {
    rpos_ += n;
    if (rpos_ == wpos_) rpos_ = wpos_ = 0;
  }

  int fd_;
  uint32_t msize_;
  std::chrono::nanoseconds spin_{0};
  std::vector<char> buf_;
  size_t rpos_ = 0;
  size_t wpos_ = 0;
  uint64_t stream_pos_ = 0;  // Stream offset of buf_[wpos_] (bytes received so far).
  std::deque<FdBatch> batches_;
  std::vector<UniqueFd> cur_fds_;
  size_t body_remaining_ = 0;

  // TryRead's frame in progress.
  std::optional<InFrame> partial_;
  size_t partial_filled_ = 0;
};

}  // namespace p9

#endif  // P9_TRANSPORT_H_
