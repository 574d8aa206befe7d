#include "p9/splice_pipes.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace p9 {
namespace {

constexpr int kPipeSize = 1 << 20;  // Linux's default pipe-max-size.

// Pipe capacity held by every thread's SplicePipes.
std::atomic<size_t> g_pipe_bytes{0};
std::atomic<uint64_t> g_drained{0};

}  // namespace

SplicePipes::~SplicePipes() {
  for (Pipe& p : pipes_) Release(p);
}

SplicePipes::Pipe* SplicePipes::PipeAt(size_t i) {
  if (i < pipes_.size()) return &pipes_[i];
  if (i >= kMaxPipes) return nullptr;
  // Reserve the most a pipe may take before making one, so that racing threads cannot pass
  // the budget together; the unused part is given back once the pipe's size is known.
  if (g_pipe_bytes.fetch_add(kPipeSize) + kPipeSize > kMaxPipeBytes) {
    g_pipe_bytes.fetch_sub(kPipeSize);
    return nullptr;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    g_pipe_bytes.fetch_sub(kPipeSize);
    return nullptr;
  }
  Pipe p;
  p.r.reset(fds[0]);
  p.w.reset(fds[1]);
  // Fails beyond pipe-max-size without CAP_SYS_RESOURCE: the default size (64 KiB) then.
  int size = fcntl(fds[1], F_SETPIPE_SZ, kPipeSize);
  if (size < 0) size = fcntl(fds[1], F_GETPIPE_SZ);
  if (size <= 0) {
    g_pipe_bytes.fetch_sub(kPipeSize);
    return nullptr;
  }
  p.capacity = static_cast<size_t>(size);
  g_pipe_bytes.fetch_sub(kPipeSize - p.capacity);
  pipes_.push_back(std::move(p));
  return &pipes_.back();
}

void SplicePipes::Release(Pipe& p) {
  if (!p.r.valid()) return;
  p.r.reset();
  p.w.reset();
  g_pipe_bytes.fetch_sub(p.capacity);
  p.held = 0;
}

size_t SplicePipes::held() const {
  size_t n = 0;
  for (const Pipe& p : pipes_) n += p.held;
  return n;
}

void SplicePipes::Discard() {
  for (Pipe& p : pipes_) Release(p);
  pipes_.clear();
}

Result<size_t> SplicePipes::Fill(size_t count, uint64_t offset, const Source& source) {
  size_t total = 0;
  size_t i = 0;
  while (total < count) {
    Pipe* p = PipeAt(i);
    if (p == nullptr) {
      if (total == 0) return Errno(ENOBUFS);
      break;
    }
    if (p->held >= p->capacity) {
      ++i;
      continue;
    }
    auto r = source(p->w.get(), count - total, offset + total);
    if (!r.has_value()) {
      // EAGAIN: this pipe is full (an unaligned offset fills its slots with partial pages).
      if (r.error() == Errno(EAGAIN) && p->held > 0) {
        ++i;
        continue;
      }
      if (total == 0) return r.error();
      break;  // What was moved is a short read; the error comes again on the next Tread.
    }
    if (*r == 0) break;  // End of file.
    p->held += *r;
    total += *r;
  }
  return total;
}

Result<void> SplicePipes::Drain(int sock) {
  sigset_t sigpipe, old;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, &old);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  Result<void> out = Ok();
  for (size_t i = 0; i < pipes_.size() && out.has_value(); ++i) {
    Pipe& p = pipes_[i];
    while (p.held > 0) {
      const bool more = i + 1 < pipes_.size() && pipes_[i + 1].held > 0;
      ssize_t n = splice(p.r.get(), nullptr, sock, nullptr, p.held, more ? SPLICE_F_MORE : 0);
      if (n > 0) {
        p.held -= static_cast<size_t>(n);
        g_drained.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      out = n < 0 ? LastErrno() : Errno(EIO);
      break;
    }
  }
  if (!out.has_value()) {
    if (out.error() == Errno(EPIPE) && !was_pending) {
      // The SIGPIPE this thread just raised on itself, taken before the mask comes off.
      timespec zero{0, 0};
      sigtimedwait(&sigpipe, nullptr, &zero);
    }
    Discard();
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return out;
}

uint64_t SplicePipes::bytes_drained() { return g_drained.load(std::memory_order_relaxed); }

SplicePipes& ThisThreadPipes() {
  thread_local SplicePipes pipes;
  return pipes;
}

}  // namespace p9
