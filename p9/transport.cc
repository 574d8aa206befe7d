#include "p9/transport.h"

#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

namespace p9 {
namespace {

// Receive buffer size for small frames; grows to a frame's size only when asked to (ReadView).
constexpr size_t kInitialBuffer = 64 * 1024;

Result<void> WaitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, -1);
    if (r >= 0) return Ok();
    if (errno != EINTR) return LastErrno();
  }
}

}  // namespace

Result<void> SendFrame(int fd, const OutFrame& frame, std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) return Errno(EINVAL);
  iovec iov[2];
  int niov = 0;
  if (!frame.head.empty()) {
    iov[niov++] = {const_cast<char*>(frame.head.data()), frame.head.size()};
  }
  if (!frame.tail.empty()) {
    iov[niov++] = {const_cast<char*>(frame.tail.data()), frame.tail.size()};
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  bool send_fds = !fds.empty();
  iovec* cur = iov;
  while (niov > 0) {
    msghdr msg{};
    msg.msg_iov = cur;
    msg.msg_iovlen = niov;
    if (send_fds) {
      std::memset(control, 0, sizeof(control));
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        P9_RETURN_IF_ERROR(WaitFor(fd, POLLOUT));
        continue;
      }
      return LastErrno();
    }
    send_fds = false;  // The fds went with the first byte sent.
    size_t left = static_cast<size_t>(n);
    while (niov > 0 && left >= cur->iov_len) {
      left -= cur->iov_len;
      ++cur;
      --niov;
    }
    if (niov > 0) {
      cur->iov_base = static_cast<char*>(cur->iov_base) + left;
      cur->iov_len -= left;
    }
  }
  return Ok();
}

void FitSendBuffer(int fd, uint32_t msize) {
  // Unix sockets only: TCP tunes its own send buffer, and setting one turns that off.
  sockaddr_storage addr{};
  socklen_t alen = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0 ||
      addr.ss_family != AF_UNIX) {
    return;
  }
  int want = 0;
  socklen_t len = sizeof(want);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, &len) != 0) return;
  // The kernel doubles what it is given (for its bookkeeping) and reports the doubled size.
  int need = static_cast<int>(std::min<uint64_t>(msize + uint64_t{64} * 1024, INT32_MAX / 2));
  if (want / 2 >= need) return;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &need, sizeof(need));
}

FrameReader::FrameReader(int fd, uint32_t msize) : fd_(fd), msize_(msize) {}

Result<size_t> FrameReader::Recv(char* dst, size_t n, bool block) {
  // Spinning: non-blocking tries until the deadline, then a blocking read.
  bool spinning = block && spin_.count() > 0;
  std::chrono::steady_clock::time_point until;
  if (spinning) until = std::chrono::steady_clock::now() + spin_;
  for (;;) {
    iovec iov{dst, n};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const bool wait = block && !spinning;
    ssize_t r = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (spinning && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // sched_yield lets a peer on this same CPU run (and answer) instead of us spinning.
        if (std::chrono::steady_clock::now() >= until) {
          spinning = false;
        } else {
          sched_yield();
        }
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!block) return size_t{0};
        P9_RETURN_IF_ERROR(WaitFor(fd_, POLLIN));
        continue;
      }
      return LastErrno();
    }
    // Take ownership of any fds first, so every error path below closes them.
    std::vector<UniqueFd> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.emplace_back(f);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) return Errno(EPROTO);  // Too many fds: hostile peer.
    if (r == 0) return Errno(ECONNRESET);                   // Orderly close by the peer.
    if (!fds.empty()) {
      batches_.push_back(FdBatch{stream_pos_, stream_pos_ + static_cast<uint64_t>(r),
                                 std::move(fds)});
    }
    stream_pos_ += static_cast<uint64_t>(r);
    return static_cast<size_t>(r);
  }
}

Result<bool> FrameReader::Fill(size_t n, bool block) {
  while (buffered() < n) {
    if (buf_.size() - rpos_ < n) {
      // Compact, then grow if still too small.
      // (memmove with a null pointer is UB even for 0 bytes; buf_ starts empty.)
      if (buffered() > 0) std::memmove(buf_.data(), buf_.data() + rpos_, buffered());
      wpos_ -= rpos_;
      rpos_ = 0;
      if (buf_.size() < std::max(n, kInitialBuffer)) buf_.resize(std::max(n, kInitialBuffer));
    }
    P9_ASSIGN_OR_RETURN(size_t got, Recv(buf_.data() + wpos_, buf_.size() - wpos_, block));
    if (got == 0) return false;
    wpos_ += got;
  }
  return true;
}

Result<FrameHeader> FrameReader::TakeHeader() {
  P9_ASSIGN_OR_RETURN(FrameHeader h, ParseHeader(Bytes(buf_.data() + rpos_, kHeaderSize), msize_));
  const uint64_t start = stream_pos_ - buffered();
  const uint64_t end = start + h.size;
  cur_fds_.clear();
  // Batches that ended before this frame started held no frame start: a peer that sends fds in
  // the middle of a frame. Close them. A batch whose range holds this start and ends within this
  // frame is this frame's; one that reaches past the frame belongs to a later frame.
  while (!batches_.empty() && batches_.front().end <= end) {
    FdBatch& b = batches_.front();
    if (b.begin <= start && start < b.end) {
      for (auto& f : b.fds) cur_fds_.push_back(std::move(f));
    }
    batches_.pop_front();
  }
  if (cur_fds_.size() > kMaxFdsPerMessage) return Errno(EPROTO);
  Consume(kHeaderSize);
  body_remaining_ = h.size - kHeaderSize;
  return h;
}

Result<FrameHeader> FrameReader::ReadHeader() {
  if (body_remaining_ != 0 || partial_) return Errno(EPROTO);  // Caller bug, but not fatal.
  P9_ASSIGN_OR_RETURN(bool ok, Fill(kHeaderSize, /*block=*/true));
  (void)ok;
  return TakeHeader();
}

Result<Bytes> FrameReader::ReadView(size_t n) {
  CHECK_LE(n, body_remaining_);
  P9_ASSIGN_OR_RETURN(bool ok, Fill(n, /*block=*/true));
  (void)ok;
  Bytes v(buf_.data() + rpos_, n);
  Consume(n);
  body_remaining_ -= n;
  return v;
}

Result<void> FrameReader::ReadInto(std::span<char> dst) {
  CHECK_LE(dst.size(), body_remaining_);
  size_t have = std::min(buffered(), dst.size());
  if (have > 0) std::memcpy(dst.data(), buf_.data() + rpos_, have);
  Consume(have);
  body_remaining_ -= have;
  size_t done = have;
  while (done < dst.size()) {
    P9_ASSIGN_OR_RETURN(size_t got, Recv(dst.data() + done, dst.size() - done, /*block=*/true));
    done += got;
    body_remaining_ -= got;
  }
  return Ok();
}

Result<void> FrameReader::SkipBody() {
  while (body_remaining_ > 0) {
    size_t n = std::min(body_remaining_, kInitialBuffer);
    P9_ASSIGN_OR_RETURN(Bytes v, ReadView(n));
    (void)v;
  }
  return Ok();
}

Result<InFrame> FrameReader::Read() {
  P9_ASSIGN_OR_RETURN(std::optional<InFrame> f, ReadFrame(/*block=*/true));
  return std::move(*f);
}

bool FrameReader::HasFrame() const {
  if (body_remaining_ != 0 || partial_) return false;
  if (buffered() < kHeaderSize) return false;
  const uint32_t size = LoadU32(buf_.data() + rpos_);
  return size <= kHeaderSize || size > msize_ || buffered() >= size;
}

Result<std::optional<InFrame>> FrameReader::TryRead() { return ReadFrame(/*block=*/false); }

Result<std::optional<InFrame>> FrameReader::ReadFrame(bool block) {
  if (!partial_) {
    if (body_remaining_ != 0) return Errno(EPROTO);  // Mixed with the piecewise API.
    P9_ASSIGN_OR_RETURN(bool have, Fill(kHeaderSize, block));
    if (!have) return std::optional<InFrame>();
    P9_ASSIGN_OR_RETURN(FrameHeader h, TakeHeader());
    partial_.emplace();
    partial_->header = h;
    partial_->fds = TakeFds();
    partial_->body.resize(body_remaining_);
    size_t have_now = std::min(buffered(), body_remaining_);
    if (have_now > 0) std::memcpy(partial_->body.data(), buf_.data() + rpos_, have_now);
    Consume(have_now);
    partial_filled_ = have_now;
  }
  // The rest of the body goes straight into the frame's own storage: no second copy.
  while (partial_filled_ < partial_->body.size()) {
    P9_ASSIGN_OR_RETURN(size_t got, Recv(partial_->body.data() + partial_filled_,
                                         partial_->body.size() - partial_filled_, block));
    if (got == 0) return std::optional<InFrame>();
    partial_filled_ += got;
  }
  body_remaining_ = 0;
  std::optional<InFrame> out = std::move(partial_);
  partial_.reset();
  partial_filled_ = 0;
  return out;
}

}  // namespace p9
