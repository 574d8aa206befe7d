#include "p9/client.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <optional>

#include "glog/logging.h"

namespace p9 {
namespace {

constexpr uint32_t kWakeLook = 1;
constexpr uint32_t kWakeFinished = 2;

// Tags in use at once; callers beyond this wait for a free one.
constexpr size_t kMaxTags = 4096;
// Unanswered ClunkAsync calls at most. A unix socket holds only a couple of hundred small
// messages (each costs a whole skb), and a server blocked sending replies stops reading
// requests; so the replies no caller waits for must stay well below that.
constexpr size_t kMaxDetached = 32;
// Frames up to this size are copied into the send queue when another caller is sending.
constexpr size_t kCombineMax = 4096;

}  // namespace

Client::Client(UniqueFd sock, uint32_t msize)
    : fd_(std::move(sock)), msize_(msize), reader_(fd_.get(), msize) {
  free_tags_.reserve(kMaxTags);
  // Low tags first: pop_back() takes from the end.
  for (size_t t = kMaxTags; t-- > 0;) free_tags_.push_back(static_cast<Tag>(t));
}

Client::~Client() { Shutdown(); }

Result<std::unique_ptr<Client>> Client::Create(UniqueFd sock, uint32_t msize,
                                               std::string version) {
  if (!sock.valid()) return Errno(EBADF);
  msize = std::clamp(msize, kMinMsize, kMaxMsize);
  std::unique_ptr<Client> c(new Client(std::move(sock), msize));
  // One Tversion exchange; Rlerror becomes its errno.
  auto negotiate = [&](const std::string& v) -> Result<Rversion> {
    P9_RETURN_IF_ERROR(SendFrame(c->fd_.get(), EncodeFrame(kNoTag, Tversion{msize, v})));
    P9_ASSIGN_OR_RETURN(InFrame f, c->reader_.Read());
    if (f.header.tag != kNoTag) return Errno(EIO);
    if (f.header.type == static_cast<uint8_t>(MsgType::kRlerror)) {
      auto e = DecodeBody<Rlerror>(f.body_view());
      if (!e.has_value() || e->ecode == 0 || e->ecode > 4095) return Errno(EIO);
      return Errno(static_cast<int>(e->ecode));
    }
    if (f.header.type != static_cast<uint8_t>(MsgType::kRversion)) return Errno(EIO);
    return DecodeBody<Rversion>(f.body_view());
  };
  // What we offer: a level of our dialect (dialect.h; `offered`), plain 9P2000.L, or (for
  // tests of other peers) any string, which the server must then answer with the same.
  std::optional<Dialect> offered = DialectNamed(version);
  auto rvr = negotiate(version);
  // A server that does not know our dialect should answer "9P2000.L" or "unknown"; diod
  // answers Rlerror instead. Either way, fall back to plain 9P2000.L on the same connection.
  if (offered.has_value() && (!rvr.has_value() || rvr->version == kVersionUnknown)) {
    if (!rvr.has_value() && rvr.error() == Errno(ECONNRESET)) return rvr.error();
    version = kVersion9P2000L;
    offered.reset();  // What is offered now is plain 9P2000.L, and only it may be answered.
    rvr = negotiate(version);
  }
  if (!rvr.has_value()) return rvr.error();
  Rversion rv = std::move(*rvr);
  if (rv.version == kVersionUnknown) return Errno(EPROTONOSUPPORT);
  Dialect dialect = Dialect::kPlain;
  if (rv.version != version) {
    // Only our dialect may be answered with another string: a level at most the one offered
    // (an older server's), or plain 9P2000.L. Never a higher level than asked for.
    std::optional<Dialect> got =
        rv.version == kVersion9P2000L ? Dialect::kPlain : DialectNamed(rv.version);
    if (!offered.has_value() || !got.has_value() || !AtLeast(*offered, *got)) {
      return Errno(EPROTONOSUPPORT);
    }
    dialect = *got;
  } else if (offered.has_value()) {
    dialect = *offered;
  }
  if (rv.msize < kMinMsize || rv.msize > msize) return Errno(EIO);
  c->msize_ = rv.msize;
  c->version_ = rv.version;
  c->dialect_ = dialect;
  c->reader_.set_msize(rv.msize);
  FitSendBuffer(c->fd_.get(), rv.msize);
  return c;
}

Fid Client::NewFid() {
  std::lock_guard l(fid_mu_);
  if (!free_fids_.empty()) {
    Fid f = free_fids_.back();
    free_fids_.pop_back();
    return f;
  }
  return next_fid_++;
}

void Client::ReleaseFid(Fid fid) {
  std::lock_guard l(fid_mu_);
  free_fids_.push_back(fid);
}

void Client::Shutdown() {
  std::lock_guard l(mu_);
  BreakLocked(Errno(ECONNRESET));
}

Errno Client::Break(Errno e) {
  std::lock_guard l(mu_);
  BreakLocked(e);
  return broken_;
}

void Client::BreakLocked(Errno e) {
  if (broken_.value() == 0) {
    broken_ = e;
    if (e != Errno(ECONNRESET)) LOG(WARNING) << "9p client: connection broken: " << e;
    // Wakes a leader blocked in recvmsg and fails senders blocked in poll.
    ::shutdown(fd_.get(), SHUT_RDWR);
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    CallState* c = it->second.call;
    ++it;
    if (c->detached) {
      if (!c->filling) FinishDetachedLocked(c);  // Else the reader finishes it.
    } else {
      WakeLocked(c);
    }
  }
  tags_cv_.notify_all();
  detached_cv_.notify_all();
}

void Client::HandOffReadingLocked() {
  if (reading_ || broken_.value() != 0) return;
  // A caller asleep in Wait: not a call of Pipelined's that its thread has yet to wait for
  // (that thread leads when it gets to it), which would leave the sleepers unwoken.
  for (auto& [tag, p] : pending_) {
    if (!p.is_flush && !p.call->detached && p.call->waiting) {
      WakeLocked(p.call);
      break;
    }
  }
  detached_cv_.notify_one();
}

void Client::WakeLocked(CallState* c) {
  c->wake.store(kWakeLook, std::memory_order_release);
  c->wake.notify_one();
}

void Client::DeliverLocked(CallState* c) {
  if (c->flush_sent) {  // Its caller also waits for the Rflush, and cleans up itself.
    WakeLocked(c);
    return;
  }
  c->finished = true;
  pending_.erase(c->tag);
  FreeTagLocked(c->tag);
  std::atomic<uint32_t>& wake = c->wake;
  wake.store(kWakeFinished, std::memory_order_release);
  // From here the caller may have returned: only the futex word's address is used (the
  // wake syscall does not touch the memory).
  wake.notify_one();
}

void Client::FinishDetachedLocked(CallState* c) {
  pending_.erase(c->tag);
  FreeTagLocked(c->tag);
  --detached_;
  detached_cv_.notify_one();
  ReleaseFid(c->fid);  // Lock order: mu_ before fid_mu_, as everywhere.
  delete c;
}

void Client::ClunkAsync(Fid fid) {
  {
    // Room for one more unanswered reply first: read them ourselves if no one is reading.
    std::unique_lock l(mu_);
    while (detached_ >= kMaxDetached && broken_.value() == 0) {
      if (reading_) {
        detached_cv_.wait(l);
        continue;
      }
      LeadOneRead(l);
    }
    HandOffReadingLocked();  // A caller may be waiting for a reply no one else will read.
  }
  auto t = AllocTag(/*wait=*/true);
  if (!t.has_value()) {
    ReleaseFid(fid);  // Dead connection: the server has dropped every fid.
    return;
  }
  const Tag tag = *t;
  auto* c = new CallState;
  c->tag = tag;
  c->detached = true;
  c->fid = fid;
  {
    std::lock_guard l(mu_);
    if (broken_.value() != 0) {
      FreeTagLocked(tag);
      delete c;
      ReleaseFid(fid);
      return;
    }
    pending_[tag] = Pending{c, false};
    ++detached_;
  }
  // From here on `c` belongs to whichever thread reads the reply: never touch it again.
  Send(EncodeFrame(tag, Tclunk{fid}));
}

void Client::LeadOneRead(std::unique_lock<std::mutex>& l) {
  reading_ = true;
  l.unlock();
  // Frames already buffered are delivered before reading is handed on: a burst of replies
  // (the server sends those of a burst in one sendmsg) then costs no hand-off wake-ups.
  Result<void> r = ReadOne();
  while (r.has_value() && reader_.HasFrame()) r = ReadOne();
  l.lock();
  reading_ = false;
  if (!r.has_value()) BreakLocked(r.error());
}

void Client::Send(const OutFrame& f) {
  std::unique_lock l(send_mu_);
  if (sending_) {
    if (f.size() <= kCombineMax) {
      // The active sender takes it along with its next sendmsg.
      send_queue_.insert(send_queue_.end(), f.head.begin(), f.head.end());
      send_queue_.insert(send_queue_.end(), f.tail.begin(), f.tail.end());
      return;
    }
    // Too big to copy: wait to be the sender (frames queued meanwhile may go first; no
    // caller depends on the order of frames still inside Send).
    send_cv_.wait(l, [&] { return !sending_; });
  }
  sending_ = true;
  l.unlock();
  Result<void> r = SendFrame(fd_.get(), f);
  std::vector<char> batch;
  l.lock();
  while (r.has_value() && !send_queue_.empty()) {
    batch.clear();
    batch.swap(send_queue_);
    l.unlock();
    OutFrame all;
    all.tail = Bytes(batch.data(), batch.size());
    r = SendFrame(fd_.get(), all);
    l.lock();
  }
  if (!r.has_value()) send_queue_.clear();
  sending_ = false;
  l.unlock();
  send_cv_.notify_one();
  if (!r.has_value()) Break(r.error() == Errno(EPIPE) ? Errno(ECONNRESET) : r.error());
}

Result<Tag> Client::AllocTag(bool wait) {
  std::unique_lock l(mu_);
  return AllocTagLocked(l, wait);
}

Result<Tag> Client::AllocTagLocked(std::unique_lock<std::mutex>& l, bool wait) {
  for (;;) {
    if (broken_.value() != 0) return broken_;
    if (!free_tags_.empty()) {
      Tag t = free_tags_.back();
      free_tags_.pop_back();
      requests_.fetch_add(1, std::memory_order_relaxed);
      return t;
    }
    if (!wait) return Errno(EAGAIN);
    tags_cv_.wait(l);
  }
}

void Client::FreeTagLocked(Tag t) {
  if (t == kNoTag) return;
  free_tags_.push_back(t);
  tags_cv_.notify_one();
}

// Sends a Tflush for `c` unless one was sent or the call is over. Runs in the thread that
// requested the stop (a stop_callback), so it works even when c's own thread is the leader
// blocked reading the socket.
void Client::SendFlush(CallState& c) {
  auto ft = AllocTag(/*wait=*/false);
  if (!ft.has_value()) return;  // No tag to spare: the call simply completes normally.
  {
    std::lock_guard l(mu_);
    if (c.done || c.flush_sent || broken_.value() != 0) {
      FreeTagLocked(*ft);
      return;
    }
    c.flush_sent = true;
    c.flush_tag = *ft;
    pending_[*ft] = Pending{&c, true};
  }
  Send(EncodeFrame(*ft, Tflush{c.tag}));
}

Result<void> Client::Register(CallState& c) {
  std::unique_lock l(mu_);
  P9_ASSIGN_OR_RETURN(c.tag, AllocTagLocked(l, /*wait=*/true));
  pending_[c.tag] = Pending{&c, false};
  return Ok();
}

Result<void> Client::SendAndWait(CallState& c, const OutFrame& f, std::stop_token stop) {
  Send(f);
  return Wait(c, stop);
}

Result<void> Client::Wait(CallState& c, std::stop_token stop) {
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (stop.stop_possible()) {
    on_stop.emplace(stop, std::function<void()>([this, &c] {
                      SendFlush(c);
                      std::lock_guard l(mu_);
                      if (!c.finished) WakeLocked(&c);
                    }));
  }

  std::unique_lock l(mu_);
  Result<void> result = Ok();
  for (;;) {
    if (c.finished) break;
    if (!c.filling) {
      if (c.flush_sent ? c.flushed : c.done) {
        if (!c.done) result = Errno(ECANCELED);
        break;
      }
      if (broken_.value() != 0) {
        result = broken_;
        break;
      }
      if (!reading_) {
        LeadOneRead(l);
        continue;
      }
    }
    c.wake.store(0, std::memory_order_relaxed);
    c.waiting = true;
    l.unlock();
    c.wake.wait(0, std::memory_order_acquire);
    if (c.wake.load(std::memory_order_acquire) == kWakeFinished) {
      // The reader finished the call (DeliverLocked): nothing is left to do under mu_, and
      // we never led (a leader finds its own reply finished under mu_, below). Nothing
      // reads `waiting` of a finished call.
      on_stop.reset();
      return Ok();
    }
    l.lock();
    c.waiting = false;
  }
  if (!c.finished) {
    pending_.erase(c.tag);
    if (c.flush_sent) pending_.erase(c.flush_tag);
    // The old tag is free once its reply or Rflush came (or the connection is dead), the
    // flush tag once Rflush came.
    FreeTagLocked(c.tag);
    if (c.flush_sent) FreeTagLocked(c.flush_tag);
  }
  HandOffReadingLocked();
  l.unlock();
  on_stop.reset();  // Waits for a running SendFlush; it sees c.done or flush_sent.
  return result;
}

Result<void> Client::ReadOne() {
  auto hr = reader_.ReadHeader();
  if (!hr.has_value()) {
    return hr.error() == Errno(ECONNRESET) ? Errno(ECONNRESET) : Errno(EIO);
  }
  FrameHeader h = *hr;
  CallState* c;
  {
    std::lock_guard l(mu_);
    auto it = pending_.find(h.tag);
    if (it == pending_.end() || (it->second.call->done && !it->second.is_flush)) {
      LOG(WARNING) << "9p client: reply for unknown tag " << h.tag;
      return Errno(EIO);
    }
    c = it->second.call;
    if (it->second.is_flush) {
      bool ok = h.type == static_cast<uint8_t>(MsgType::kRflush) && reader_.BodyRemaining() == 0;
      if (!ok) return Errno(EIO);
      reader_.TakeFds();  // Closed.
      c->flushed = true;
      pending_.erase(it);
      WakeLocked(c);
      return Ok();
    }
    const bool into_dst =
        h.type == static_cast<uint8_t>(MsgType::kRread) && c->read_dst.data() != nullptr;
    if (!into_dst && !c->detached && reader_.BodyBuffered()) {
      // The usual small reply, already received: deliver it in this same critical section
      // (copying from the buffer makes no syscall), saving a second acquisition of mu_.
      size_t n = reader_.BodyRemaining();
      c->body.resize(n);
      auto r = reader_.ReadInto(std::span<char>(c->body.data(), n));
      if (!r.has_value()) return Errno(EIO);  // Cannot happen: the bytes are buffered.
      c->fds = reader_.TakeFds();
      c->header = h;
      c->done = true;
      DeliverLocked(c);
      return Ok();
    }
    c->filling = true;
  }
  // Fill outside the lock: the caller waits while `filling` is set.
  Result<void> r = Ok();
  size_t n = reader_.BodyRemaining();
  if (h.type == static_cast<uint8_t>(MsgType::kRread) && c->read_dst.data() != nullptr) {
    if (n < 4) {
      r = Errno(EIO);
    } else {
      auto cnt = reader_.ReadView(4);
      if (!cnt.has_value()) {
        r = cnt.error();
      } else {
        uint32_t count;
        std::memcpy(&count, cnt->data(), 4);  // Little-endian wire, little-endian host.
        if (count != n - 4 || count > c->read_dst.size()) {
          r = Errno(EIO);
        } else {
          r = reader_.ReadInto(c->read_dst.first(count));
          c->read_n = count;
        }
      }
    }
  } else {
    c->body.resize(n);
    r = reader_.ReadInto(std::span<char>(c->body.data(), n));
  }
  std::vector<UniqueFd> fds = reader_.TakeFds();
  std::lock_guard l(mu_);
  c->filling = false;
  if (c->detached) {
    // Rclunk or Rlerror: either way the server has let the fid go.
    FinishDetachedLocked(c);
    if (!r.has_value()) return r.error() == Errno(ECONNRESET) ? Errno(ECONNRESET) : Errno(EIO);
    return Ok();
  }
  if (!r.has_value()) {
    WakeLocked(c);  // It sees the connection broken, once our caller breaks it.
    return r.error() == Errno(ECONNRESET) ? Errno(ECONNRESET) : Errno(EIO);
  }
  c->header = h;
  c->fds = std::move(fds);
  c->done = true;
  DeliverLocked(c);
  return Ok();
}

Result<void> Client::CheckReply(const CallState& c, MsgType want) {
  if (c.header.type == static_cast<uint8_t>(MsgType::kRlerror)) {
    auto e = DecodeBody<Rlerror>(Bytes(c.body.data(), c.body.size()));
    if (!e.has_value() || e->ecode == 0 || e->ecode > 4095) return Break(Errno(EIO));
    return Errno(static_cast<int>(e->ecode));
  }
  if (c.header.type != static_cast<uint8_t>(want)) {
    LOG(WARNING) << "9p client: expected " << MsgTypeName(static_cast<uint8_t>(want))
                 << ", got type " << int(c.header.type);
    return Break(Errno(EIO));
  }
  return Ok();
}

Result<size_t> Client::Read(Fid fid, uint64_t offset, std::span<char> dst,
                            std::stop_token stop) {
  dst = dst.first(std::min(dst.size(), max_read()));
  if (dst.empty()) return size_t{0};
  CallState c;
  c.read_dst = dst;
  P9_RETURN_IF_ERROR(StartRead(c, fid, offset));
  P9_RETURN_IF_ERROR(Wait(c, stop));
  return ReadResult(c);
}

Result<void> Client::StartRead(CallState& c, Fid fid, uint64_t offset) {
  P9_RETURN_IF_ERROR(Register(c));
  Send(EncodeFrame(c.tag, Tread{fid, offset, static_cast<uint32_t>(c.read_dst.size())}));
  return Ok();
}

Result<size_t> Client::ReadResult(CallState& c) {
  // A payload received into read_dst leaves body empty; an Rlerror or odd reply lands in body.
  if (c.header.type == static_cast<uint8_t>(MsgType::kRread) && c.body.empty()) {
    return c.read_n;
  }
  P9_RETURN_IF_ERROR(CheckReply(c, MsgType::kRread));
  return Break(Errno(EIO));  // An Rread we could not place: cannot happen with read_dst set.
}

template <typename Start, typename Result_>
Result<size_t> Client::Pipelined(size_t size, size_t piece, std::stop_token stop, Start start,
                                 Result_ result) {
  // Piece i waits in slot i % kPipelineDepth. Every started piece is waited for before
  // returning: until its reply is in, the reader may write into (or the server read from)
  // the caller's buffer.
  std::array<std::optional<CallState>, kPipelineDepth> slots;
  std::array<size_t, kPipelineDepth> wants{};
  const size_t pieces = (size + piece - 1) / piece;
  size_t started = 0, done = 0, total = 0;
  bool issue = true;     // More pieces may be started.
  bool counting = true;  // Every piece waited for so far came back full.
  Errno error{0};        // The first piece's error, returned as the call's.
  while (done < started || (issue && started < pieces)) {
    while (issue && started < pieces && started < done + kPipelineDepth) {
      std::optional<CallState>& s = slots[started % kPipelineDepth];
      s.emplace();
      const size_t at = started * piece;
      const size_t len = std::min(piece, size - at);
      Result<void> r = start(*s, at, len);
      if (r.has_value()) {
        wants[started % kPipelineDepth] = len;
        ++started;
        continue;
      }
      s.reset();
      if (started == 0) return r.error();  // Nothing in flight.
      issue = false;
    }
    if (done == started) break;
    std::optional<CallState>& s = slots[done % kPipelineDepth];
    Result<void> w = Wait(*s, stop);
    Result<size_t> n = w.has_value() ? result(*s) : Result<size_t>(w.error());
    const size_t want = wants[done % kPipelineDepth];
    if (n.has_value() && *n > want) n = Break(Errno(EIO));  // More than asked: broken.
    s.reset();
    ++done;
    if (!counting) continue;  // Past a short or failed piece: only collecting the rest.
    if (!n.has_value()) {
      if (done == 1) error = n.error();
      counting = issue = false;
      continue;
    }
    total += *n;
    if (*n < want) counting = issue = false;
  }
  if (error.value() != 0) return error;
  return total;
}

Result<size_t> Client::ReadFull(Fid fid, uint64_t offset, std::span<char> dst,
                                std::stop_token stop) {
  if (dst.size() <= max_read()) return Read(fid, offset, dst, stop);
  return Pipelined(
      dst.size(), max_read(), stop,
      [&](CallState& c, size_t at, size_t len) {
        c.read_dst = dst.subspan(at, len);
        return StartRead(c, fid, offset + at);
      },
      [&](CallState& c) { return ReadResult(c); });
}

Result<size_t> Client::WriteFull(Fid fid, uint64_t offset, Bytes src, std::stop_token stop) {
  if (src.size() <= max_write()) return Write(fid, offset, src, stop);
  return Pipelined(
      src.size(), max_write(), stop,
      [&](CallState& c, size_t at, size_t len) -> Result<void> {
        P9_RETURN_IF_ERROR(Register(c));
        Send(EncodeFrame(c.tag, Twrite{fid, offset + at, src.subspan(at, len)}));
        return Ok();
      },
      [&](CallState& c) -> Result<size_t> {
        P9_ASSIGN_OR_RETURN(Rwrite w, DecodeReply<Rwrite>(c));
        return static_cast<size_t>(w.count);
      });
}

Result<size_t> Client::Write(Fid fid, uint64_t offset, Bytes src, std::stop_token stop) {
  src = src.first(std::min(src.size(), max_write()));
  P9_ASSIGN_OR_RETURN(Rwrite w, Call(Twrite{fid, offset, src}, nullptr, stop));
  if (w.count > src.size()) return Break(Errno(EIO));
  return static_cast<size_t>(w.count);
}

template <typename Rep, typename Req, typename Decode>
auto Client::CallListing(const Req& req, Decode decode, std::stop_token stop)
    -> decltype(decode(std::declval<const Rep&>())) {
  CallState c;
  P9_RETURN_IF_ERROR(RoundTrip(c, [&](Tag tag) { return EncodeFrame(tag, req); }, stop));
  return DecodeListing<Rep>(c, decode);
}

template <typename Rep, typename Decode>
auto Client::DecodeListing(const CallState& c, Decode decode)
    -> decltype(decode(std::declval<const Rep&>())) {
  P9_ASSIGN_OR_RETURN(Rep r, DecodeReply<Rep>(c));
  auto ents = decode(r);
  if (!ents.has_value()) return Break(Errno(EIO));
  return ents;
}

Result<std::vector<Dirent>> Client::Readdir(Fid fid, uint64_t offset, uint32_t count,
                                            std::stop_token stop) {
  count = std::min<uint32_t>(count, msize_ - kIoHeaderSize);
  return CallListing<Rreaddir>(
      Treaddir{fid, offset, count}, [](const Rreaddir& r) { return DecodeDirents(r.data); },
      stop);
}

namespace {

Result<std::pair<Qid, std::vector<DirentAttr>>> DecodeAttrListing(const Rreaddirattr& r) {
  P9_ASSIGN_OR_RETURN(std::vector<DirentAttr> ents, DecodeDirentAttrs(r.data));
  return std::make_pair(r.qid, std::move(ents));
}

}  // namespace

Result<std::pair<Qid, std::vector<DirentAttr>>> Client::ReaddirAttr(
    Fid fid, Fid newfid, uint32_t flags, const std::vector<std::string>& names,
    uint64_t offset, uint32_t count, std::stop_token stop) {
  if (names.size() > kMaxWalkElements) return Errno(E2BIG);
  count = std::min<uint32_t>(count, msize_ - kIoHeaderSize);
  return CallListing<Rreaddirattr>(Treaddirattr{fid, newfid, flags, names, offset, count},
                                   DecodeAttrListing, stop);
}

Result<std::unique_ptr<Client::Ahead>> Client::StartReaddirAttr(
    Fid fid, Fid newfid, uint32_t flags, const std::vector<std::string>& names,
    uint64_t offset, uint32_t count) {
  Treaddirattr req{fid, newfid, flags, names, offset, count};
  return std::move(StartReaddirAttrs(std::span<const Treaddirattr>(&req, 1)).front());
}

std::vector<Result<std::unique_ptr<Client::Ahead>>> Client::StartReaddirAttrs(
    std::span<const Treaddirattr> reqs) {
  std::vector<Result<std::unique_ptr<Ahead>>> out;
  out.reserve(reqs.size());
  OutFrame all;
  for (const Treaddirattr& req : reqs) {
    if (req.names.size() > kMaxWalkElements) {
      out.push_back(Errno(E2BIG));
      continue;
    }
    std::unique_ptr<Ahead> a(new Ahead(*this));
    if (auto r = Register(a->c_); !r.has_value()) {
      out.push_back(r.error());
      continue;
    }
    Treaddirattr clamped = req;
    clamped.count = std::min<uint32_t>(req.count, msize_ - kIoHeaderSize);
    OutFrame f = EncodeFrame(a->c_.tag, clamped);
    all.head.insert(all.head.end(), f.head.begin(), f.head.end());
    out.push_back(std::move(a));
  }
  // A failed send breaks the connection: every Ahead then sees the error.
  if (!all.head.empty()) Send(all);
  return out;
}

Result<std::pair<Qid, std::vector<DirentAttr>>> Client::ReaddirAttrResult(Ahead& a,
                                                                          std::stop_token stop) {
  if (a.taken_) return Errno(EINVAL);
  a.taken_ = true;
  P9_RETURN_IF_ERROR(Wait(a.c_, stop));
  return DecodeListing<Rreaddirattr>(a.c_, DecodeAttrListing);
}

bool Client::Arrived(const Ahead& a) {
  std::lock_guard l(mu_);
  return a.c_.done || broken_.value() != 0;
}

Client::Ahead::~Ahead() {
  if (!taken_) (void)client_->Wait(c_, {});
}

}  // namespace p9
