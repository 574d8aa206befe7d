#include "p9/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <unordered_map>

#include "glog/logging.h"
#include "p9/dialect.h"
#include "p9/leader_follower.h"
#include "p9/messages.h"
#include "p9/splice_pipes.h"
#include "p9/transport.h"

namespace p9 {

Result<void> ValidateName(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return Errno(EINVAL);
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    return Errno(EINVAL);
  }
  if (name.size() > 255) return Errno(ENAMETOOLONG);
  return Ok();
}

// Shared between the Server object and its connections (which may outlive ~Server's body for
// the few instants it takes their last handlers to finish).
struct ServerState {
  ServerState(Attacher& a, ServerOptions o) : attacher(a), options(o) {}
  Attacher& attacher;
  const ServerOptions options;

  mutable std::mutex mu;
  mutable std::condition_variable cv;  // Signalled when live_connections or live_threads drops.
  size_t live_connections = 0;         // Guarded by mu.
  size_t live_threads = 0;             // Guarded by mu. Connection threads not yet ended.
  bool stopping = false;               // Guarded by mu.
  std::set<std::shared_ptr<Connection>> open;  // Guarded by mu. Not yet closed.
  std::vector<UniqueFd> listeners;             // Guarded by mu. Closed by Stop() after joins.
};

namespace {

// One fid of a session. Held by shared_ptr: the fid table holds one reference, each request
// using the fid another, so a clunk during a call destroys the File after the call returns.
struct ServerFid {
  enum class Kind { kFile, kXattrRead, kXattrWrite };

  explicit ServerFid(std::shared_ptr<File> f) : file(std::move(f)) {}
  // A fid of `f`, opened with `flags` (Tlcreateat, Twalkopen: never shared before this).
  static std::shared_ptr<ServerFid> Opened(std::shared_ptr<File> f, uint32_t flags) {
    auto fid = std::make_shared<ServerFid>(std::move(f));
    fid->opened = true;
    fid->open_flags = flags;
    return fid;
  }

  std::mutex mu;
  // The backend file. Replaced by Tlcreate (the fid then names the new file). Guarded by mu;
  // callers copy the pointer under mu and call outside it.
  std::shared_ptr<File> file;
  Kind kind = Kind::kFile;  // Guarded by mu.
  bool opened = false;      // Guarded by mu. Tlopen/Tlcreate succeeded.
  uint32_t open_flags = 0;  // Guarded by mu.
  // Txattrwalk: the value (or name list) to read. Txattrcreate: the value being written.
  std::string xattr_data;   // Guarded by mu.
  std::string xattr_name;   // Guarded by mu.
  uint64_t xattr_size = 0;  // Guarded by mu. Txattrcreate's announced size.
  uint32_t xattr_flags = 0;  // Guarded by mu.

  std::shared_ptr<File> GetFile() {
    std::lock_guard l(mu);
    return file;
  }
};

// Storage that must live until a reply is sent: bulk data and a donated fd.
struct ReplyExtras {
  std::unique_ptr<char[]> buf;
  std::vector<char> vec;
  UniqueFd fd;
  // Rread: this many bytes of data wait in the thread's SplicePipes instead (the Rread's
  // own data is then empty). See Connection::SendSpliced.
  size_t spliced = 0;
};

// The connection whose leader is serving a batch of buffered frames on this thread: its
// replies are queued rather than sent one by one (see Connection::Send).
thread_local Connection* tls_batching = nullptr;

}  // namespace

// One client connection and its session. Lifetime: owned by shared_ptrs held by the server's
// `open` set (until closed) and by each of its threads.
//
// Threads (leader/follower, per connection): exactly one of the connection's threads, the
// leader, reads the socket with a blocking recvmsg. It serves requests that do not wait on
// anything but the host's metadata (Tgetattr, Twalk, Tclunk, Treaddir, ...) itself, inline, and
// sends their replies; a lone request thus costs one recvmsg and one sendmsg on one thread, with
// no wake-up of any other (DESIGN.md: a cross-CPU wake-up costs ~70 us here). A request that
// may keep its thread long (Tfsync, a large Tread, a read of a FIFO...; see HowLong) makes
// the leader pass the reader role to an available follower (or a new thread, up to
// ServerOptions::threads; see LeaderFollower) before serving it, so a slow request never
// stops the connection's other requests. At the limit, with every other thread busy, it
// serves a finite one itself, and queues one that may wait for good (a FIFO read) for the
// first of them to finish (Defer), reading on. While more complete frames are already
// buffered, inline replies are queued and leave together in one sendmsg once the buffer is
// drained (see Send).
//
// Lock order: lf_'s lock before state_->mu (StartThread runs under it) and before mu_ (Defer
// does); send_mu_, then mu_, then ServerFid::mu.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerState> state, UniqueFd fd, Attacher& attacher)
      : state_(std::move(state)),
        attacher_(attacher),
        sock_(std::move(fd)),
        reader_(sock_.get(), kMinMsize) {
    reader_.set_spin(state_->options.spin);
    std::lock_guard l(state_->mu);
    ++state_->live_connections;
  }

  ~Connection() {
    // fids_ release their Files here at the latest; do it before counting down so that
    // WaitNoConnections() means "every File released".
    fids_.clear();
    sock_.reset();
    std::lock_guard l(state_->mu);
    --state_->live_connections;
    state_->cv.notify_all();
  }

  int fd() { return sock_.get(); }

  // Starts the first thread, which becomes the leader. False if no thread could be started.
  bool Start() {
    return lf_.Spawn([this] { return StartThread(); });
  }

  // Makes the leader see EOF and pending sends fail; the leader then closes the connection.
  // Safe from any thread.
  void Shutdown() { ::shutdown(fd(), SHUT_RDWR); }

 private:
  struct Inflight {
    std::vector<Tag> flushers;  // Tflush tags to answer once this request's reply is sent.
    uint64_t queued = 0;  // Nonzero while the request waits for a thread: its Defer serial.
  };

  // Starts a thread for this connection (lf_'s StartThread). The thread holds a reference to
  // the connection and counts in state_->live_threads until its very end, so Stop() can wait
  // for it without joining.
  bool StartThread() {
    {
      std::lock_guard l(state_->mu);
      ++state_->live_threads;
    }
    try {
      std::thread([self = shared_from_this(), state = state_]() mutable {
        self->ThreadMain();
        self.reset();  // Maybe the last reference: ~Connection runs here.
        std::lock_guard l(state->mu);
        --state->live_threads;
        state->cv.notify_all();
      }).detach();
    } catch (const std::system_error& e) {
      LOG(ERROR) << "9p server: cannot start a thread: " << e.what();
      std::lock_guard l(state_->mu);
      --state_->live_threads;
      return false;
    }
    return true;
  }

  // Each thread of the connection: wait to become the leader, lead, repeat; until closed.
  void ThreadMain() {
    while (lf_.AwaitLead()) Lead();
  }

  // The leader's loop. Returns when it has passed the reader role on (having served one
  // request that may block) or when the connection closed.
  void Lead() {
    for (;;) {
      if (!WaitForRoom()) return;  // Closed meanwhile.
      // The next read may block: replies queued so far leave first.
      if (!reader_.HasFrame()) FlushOut();
      auto r = reader_.Read();
      if (!r.has_value()) {
        FlushOut();
        Close(r.error() == Errno(ECONNRESET) ? "" : std::string("read: ") + r.error().name());
        return;
      }
      InFrame frame = std::move(*r);
      const auto type = static_cast<MsgType>(frame.header.type);
      if (type == MsgType::kTversion) {
        // Version changes msize for the frames after it: handled before reading on.
        FlushOut();
        HandleVersion(frame);
        continue;
      }
      if (!Register(frame)) return;  // Protocol violation: closed.
      if (type == MsgType::kTflush) {
        HandleFlush(frame);  // Cheap and order-sensitive: always by the leader.
        continue;
      }
      if (Wait w = HowLong(frame); w != Wait::kBrief) {
        LeaderFollower::Defer defer;
        if (w == Wait::kUnbound) defer = [&] { return Defer(std::move(frame)); };
        auto how = lf_.PassLead([this] { return StartThread(); }, defer);
        if (how == LeaderFollower::Handoff::kPassed) {
          FlushOut();
          Handle(frame);
          lf_.Done();
          return;
        }
        if (how == LeaderFollower::Handoff::kQueued) continue;
      }
      InlineBatched([&] { Handle(frame); });
    }
  }

  // A request that may wait for good (Wait::kUnbound), met while every other thread is busy
  // at the limit: it waits in lf_ for the first of them to finish, and the leader reads on.
  // Until it starts, a Tflush cancels it (HandleFlush) and a Tversion aborts it. Called
  // under lf_'s lock (PassLead).
  LeaderFollower::Task Defer(InFrame frame) {
    uint64_t serial;
    {
      std::lock_guard l(mu_);
      serial = ++serial_;
      inflight_[frame.header.tag].queued = serial;
    }
    return [this, serial, f = std::make_shared<InFrame>(std::move(frame))] {
      {
        std::lock_guard l(mu_);
        auto it = inflight_.find(f->header.tag);
        // Gone or another request's: flushed while it waited (and the tag maybe reused).
        if (it == inflight_.end() || it->second.queued != serial) return;
        it->second.queued = 0;
      }
      Handle(*f);
    };
  }

  // Runs `serve` on the leader; the replies it sends are queued (see Send) while more
  // complete frames wait in the buffer, so a burst's replies leave in one sendmsg.
  template <typename F>
  void InlineBatched(F&& serve) {
    Connection* was = tls_batching;
    tls_batching = reader_.HasFrame() ? this : nullptr;
    serve();
    tls_batching = was;
  }

  // How long serving a request may keep its thread.
  enum class Wait {
    kBrief,    // Host metadata work of a few microseconds: served by the leader.
    kLong,     // Finite but long: fsync, locks, truncation, attach, bulk I/O of a file that
               // does not block (its copy runs while the next request is read). Handed to
               // another thread if one is to be had, else served by the leader.
    kUnbound,  // Opens and I/O of files whose backend says they may block (a FIFO, a
               // device; File::MayBlock): they may wait for good. At the thread limit they
               // wait for a busy thread (Defer) rather than stop the leader.
  };
  Wait HowLong(const InFrame& f) {
    const Bytes b = f.body_view();
    auto u32 = [&](size_t off) -> uint32_t {
      return off + 4 <= b.size() ? LoadU32(b.data() + off) : 0;
    };
    auto io = [&](size_t size) {
      if (FileMayBlock(u32(0))) return Wait::kUnbound;
      return size > kInlineIoMax ? Wait::kLong : Wait::kBrief;
    };
    switch (static_cast<MsgType>(f.header.type)) {
      case MsgType::kTfsync:
      case MsgType::kTlock:
      case MsgType::kTgetlock:
      case MsgType::kTattach:
        return Wait::kLong;
      case MsgType::kTsetattr:  // fid[4] valid[4] ...
        return (u32(4) & setattr::kSize) != 0 ? Wait::kLong : Wait::kBrief;
      case MsgType::kTread:  // fid[4] offset[8] count[4]
        return io(u32(12));
      case MsgType::kTwrite:  // fid[4] offset[8] count[4] data
        return io(b.size());
      case MsgType::kTlopen:
      case MsgType::kTlcreate:
      case MsgType::kTlcreateat:
        return FileMayBlock(u32(0)) ? Wait::kUnbound : Wait::kBrief;
      case MsgType::kTwalkopen: {  // fid[4] newfid[4] flags[4] nwname[2] ...
        // A clone opens the fid's own file, whose backend says whether it may block; what a
        // walk reaches is known only after it, so it may be a FIFO: away from the leader.
        const bool clone = b.size() >= 14 && LoadU16(b.data() + 12) == 0;
        if (!clone) return Wait::kUnbound;
        return FileMayBlock(u32(0)) ? Wait::kUnbound : Wait::kBrief;
      }
      default:
        return Wait::kBrief;
    }
  }

  // False for an unknown fid: the request fails at once.
  bool FileMayBlock(Fid fid) {
    auto f = LookupFid(fid);
    if (!f.has_value()) return false;
    std::shared_ptr<File> file = (*f)->GetFile();
    return file && file->MayBlock();
  }

  size_t max_threads() const {
    return state_->options.threads ? state_->options.threads : kDefaultThreads;
  }

  // Backpressure: while max_inflight requests are unanswered, the leader stops reading (the
  // socket fills and the client's sends block) until one is answered. False when closed.
  bool WaitForRoom() {
    std::unique_lock l(mu_);
    room_cv_.wait(l, [&] {
      return inflight_.size() < state_->options.max_inflight || closed_;
    });
    return !closed_;
  }

  // Records the frame's tag as in flight. False (and the connection closed) on tag reuse.
  bool Register(const InFrame& frame) {
    Tag tag = frame.header.tag;
    {
      std::lock_guard l(mu_);
      if (inflight_.try_emplace(tag).second) return true;
    }
    FlushOut();
    Close("tag " + std::to_string(tag) + " reused while in flight");
    return false;
  }

  void Handle(InFrame& frame) {
    Tag tag = frame.header.tag;
    if (!version_done_) {
      SendError(tag, Errno(EPROTO));
      return;
    }
    auto r = VisitRequest(frame.header.type, frame.body_view(),
                          [&](const auto& req) { Serve(tag, req); });
    if (!r.has_value()) {
      SendError(tag, r.error() == Errno(EOPNOTSUPP) ? Errno(ENOSYS) : Errno(EINVAL));
    }
  }

  template <typename T>
  void Serve(Tag tag, const T& req) {
    if constexpr (requires(ReplyExtras& x) { this->Op(req, x); }) {
      ReplyExtras extras;
      auto r = Op(req, extras);
      if (r.has_value()) {
        if (extras.spliced > 0) {
          SendSpliced(tag, extras.spliced);
        } else {
          Send(tag, *r, extras.fd);
        }
      } else {
        SendError(tag, r.error());
      }
    } else {
      SendError(tag, Errno(ENOSYS));
    }
  }

  // Sends the reply for `tag`, then the Rflush of every Tflush that waited for it. The tags
  // are freed before the bytes leave, since the client may reuse a tag the moment it reads
  // its reply; send_mu_ makes "free the tag and send" atomic with respect to HandleFlush, so a
  // Tflush either sees the request in flight (and is answered after its reply) or sees it
  // answered. The leader, while it serves a batch inline (tls_batching), queues small replies
  // in out_; everything else flushes out_ and goes straight out. Frames in out_ come before
  // any later frame, so an Rflush never overtakes the reply it follows.
  template <typename M>
  void Send(Tag tag, const M& m, const UniqueFd& fd = UniqueFd()) {
    OutFrame f = EncodeFrame(tag, m);
    int fds[1] = {fd.get()};
    std::span<const int> fdspan;
    if (fd.valid()) fdspan = std::span<const int>(fds, 1);
    std::lock_guard s(send_mu_);
    std::vector<Tag> flushers = RetireLocked(tag);
    const bool queue = tls_batching == this && fdspan.empty() && f.tail.size() <= kQueueMax;
    if (queue) {
      out_.insert(out_.end(), f.head.begin(), f.head.end());
      out_.insert(out_.end(), f.tail.begin(), f.tail.end());
    } else {
      FlushOutLocked();
      SendLocked(f, fdspan);
    }
    SendFlushersLocked(flushers, queue);
    if (out_.size() >= kQueueMax) FlushOutLocked();
  }

  // Sends the Rread for `tag` whose `count` data bytes wait in this thread's SplicePipes
  // (Op(Tread)), as Send does otherwise: the header with sendmsg, the data with splice. A
  // failure after the header has cut a frame short, so the connection ends.
  void SendSpliced(Tag tag, size_t count) {
    Encoder e;
    e.Put(static_cast<uint32_t>(kRreadHeaderSize + count));
    e.Put(static_cast<uint8_t>(MsgType::kRread));
    e.Put(static_cast<uint16_t>(tag));
    e.Put(static_cast<uint32_t>(count));
    OutFrame head;
    head.head = std::move(e.buffer());
    std::lock_guard s(send_mu_);
    std::vector<Tag> flushers = RetireLocked(tag);
    FlushOutLocked();
    SplicePipes& pipes = ThisThreadPipes();
    Result<void> r = SendFrame(fd(), head, {});
    if (r.has_value()) {
      r = pipes.Drain(fd());
    } else {
      pipes.Discard();
    }
    if (!r.has_value()) {
      VLOG(1) << "9p server: send failed: " << r.error();
      Shutdown();
      return;
    }
    SendFlushersLocked(flushers, false);
  }

  // Frees `tag` (and the Tflush tags waiting on it, returned) for reuse. REQUIRES: send_mu_.
  std::vector<Tag> RetireLocked(Tag tag) {
    std::vector<Tag> flushers;
    std::lock_guard l(mu_);
    auto it = inflight_.find(tag);
    if (it == inflight_.end()) return flushers;  // Tversion, which is not tracked.
    flushers = std::move(it->second.flushers);
    inflight_.erase(it);
    for (Tag t : flushers) inflight_.erase(t);
    if (inflight_.size() + 1 + flushers.size() >= state_->options.max_inflight) {
      room_cv_.notify_all();
    }
    return flushers;
  }

  // The Rflush of each of `flushers`, queued (see Send) or sent. REQUIRES: send_mu_.
  void SendFlushersLocked(const std::vector<Tag>& flushers, bool queue) {
    for (Tag t : flushers) {
      OutFrame r = EncodeFrame(t, Rflush{});
      if (queue) {
        out_.insert(out_.end(), r.head.begin(), r.head.end());
      } else {
        SendLocked(r, {});
      }
    }
  }

  void SendError(Tag tag, Errno e) { Send(tag, Rlerror{static_cast<uint32_t>(e.value())}); }

  // REQUIRES: send_mu_ held.
  void SendLocked(const OutFrame& f, std::span<const int> fds) {
    auto r = SendFrame(fd(), f, fds);
    if (!r.has_value()) VLOG(1) << "9p server: send failed: " << r.error();
  }

  // Sends the queued replies. REQUIRES: send_mu_ held.
  void FlushOutLocked() {
    if (out_.empty()) return;
    OutFrame all;
    all.tail = Bytes(out_.data(), out_.size());
    SendLocked(all, {});
    out_.clear();
  }

  void FlushOut() {
    std::lock_guard s(send_mu_);
    FlushOutLocked();
  }

  void HandleFlush(const InFrame& frame) {
    Tag tag = frame.header.tag;
    auto req = DecodeBody<Tflush>(frame.body_view());
    if (!req.has_value()) {
      SendError(tag, Errno(EINVAL));
      return;
    }
    {
      std::lock_guard s(send_mu_);
      std::lock_guard l(mu_);
      auto it = inflight_.find(req->oldtag);
      if (it != inflight_.end() && req->oldtag != tag) {
        if (it->second.queued == 0) {
          it->second.flushers.push_back(tag);  // Answered right after oldtag's reply.
          return;
        }
        // Not started (Defer): it never will be, and only the Rflush is sent.
        inflight_.erase(it);
        room_cv_.notify_all();
      }
    }
    // oldtag was answered (its reply may still be queued; ours queues behind it) or unknown.
    InlineBatched([&] { Send(tag, Rflush{}); });
  }

  void HandleVersion(const InFrame& frame) {
    Tag tag = frame.header.tag;
    auto req = DecodeBody<Tversion>(frame.body_view());
    if (!req.has_value()) {
      Send(tag, Rlerror{EINVAL});
      return;
    }
    if (req->msize < kMinMsize) {
      Send(tag, Rlerror{EINVAL});
      return;
    }
    uint32_t msize = std::min(req->msize, state_->options.max_msize);
    // Our dialect at the lower of the client's level and ours (dialect.h); plain 9P2000.L
    // for any other "9P2000.L..." string, and when our dialect is off.
    std::string version = kVersionUnknown;
    Dialect dialect = Dialect::kPlain;
    if (auto d = ParseDialect(req->version);
        d.has_value() && *d != Dialect::kPlain && state_->options.max_dialect != Dialect::kPlain) {
      dialect = AtLeast(*d, state_->options.max_dialect) ? state_->options.max_dialect : *d;
      version = DialectVersion(dialect);
    } else if (req->version.starts_with(kVersion9P2000L)) {
      version = kVersion9P2000L;
    }
    {
      // A new session: every fid of the old one is clunked, and its requests still queued
      // for a thread (Defer) are aborted unanswered; they would run against the new
      // session's fids, which may reuse the numbers. (Requests already running finish.)
      std::lock_guard l(mu_);
      fids_.clear();
      dialect_ = dialect;
      std::erase_if(inflight_, [](const auto& e) { return e.second.queued != 0; });
      room_cv_.notify_all();
    }
    if (version != kVersionUnknown) {
      msize_ = msize;
      reader_.set_msize(msize);
      FitSendBuffer(fd(), msize);
      version_done_ = true;
    }
    Send(tag, Rversion{msize, version});
  }

  // Idempotent. Safe from any thread.
  void Close(const std::string& why) {
    if (!why.empty()) LOG(WARNING) << "9p server: closing connection: " << why;
    Shutdown();
    {
      std::lock_guard l(mu_);
      closed_ = true;
    }
    room_cv_.notify_all();
    lf_.Close();
    std::shared_ptr<Connection> self = shared_from_this();
    std::lock_guard l(state_->mu);
    state_->open.erase(self);
    // Remaining references: the connection's threads. Fids are released in ~Connection.
  }

  // ---- Fid table -------------------------------------------------------------------------

  Result<std::shared_ptr<ServerFid>> LookupFid(Fid fid) {
    std::lock_guard l(mu_);
    auto it = fids_.find(fid);
    if (it == fids_.end()) return Errno(EBADF);
    return it->second;
  }

  // A fid that names a file (not an xattr fid), with its File.
  Result<std::pair<std::shared_ptr<ServerFid>, std::shared_ptr<File>>> LookupFile(Fid fid) {
    P9_ASSIGN_OR_RETURN(auto f, LookupFid(fid));
    std::lock_guard l(f->mu);
    if (f->kind != ServerFid::Kind::kFile || !f->file) return Errno(EINVAL);
    return std::make_pair(f, f->file);
  }

  // The File of an opened fid, checking the access mode for reads (`want_read`) or writes.
  Result<std::shared_ptr<File>> OpenedFile(Fid fid) {
    P9_ASSIGN_OR_RETURN(auto f, LookupFid(fid));
    std::lock_guard l(f->mu);
    if (f->kind != ServerFid::Kind::kFile || !f->opened) return Errno(EBADF);
    return f->file;
  }

  Result<void> InsertFid(Fid fid, std::shared_ptr<ServerFid> f, bool replace = false) {
    if (fid == kNoFid) return Errno(EBADF);
    std::lock_guard l(mu_);
    auto it = fids_.find(fid);
    if (it != fids_.end()) {
      if (!replace) return Errno(EBADF);
      it->second = std::move(f);
      return Ok();
    }
    if (fids_.size() >= state_->options.max_fids) return Errno(EMFILE);
    fids_.emplace(fid, std::move(f));
    return Ok();
  }

  Result<std::shared_ptr<ServerFid>> RemoveFid(Fid fid) {
    std::lock_guard l(mu_);
    auto it = fids_.find(fid);
    if (it == fids_.end()) return Errno(EBADF);
    auto f = std::move(it->second);
    fids_.erase(it);
    return f;
  }

  bool FidInUse(Fid fid) {
    std::lock_guard l(mu_);
    return fids_.contains(fid);
  }

  // ---- Operations ------------------------------------------------------------------------
  // One Op per request type; a request without one answers ENOSYS (see Serve).

  Result<Rattach> Op(const Tattach& req, ReplyExtras&) {
    if (req.afid != kNoFid) return Errno(EINVAL);  // No authentication: afid must be NOFID.
    if (FidInUse(req.fid)) return Errno(EBADF);
    P9_ASSIGN_OR_RETURN(std::unique_ptr<File> root,
                        attacher_.Attach(req.aname, req.uname, req.n_uname));
    P9_ASSIGN_OR_RETURN(Rgetattr attr, root->GetAttr(getattr::kMode));
    P9_RETURN_IF_ERROR(InsertFid(req.fid, std::make_shared<ServerFid>(std::move(root))));
    return Rattach{attr.qid};
  }

  Result<Rwalk> Op(const Twalk& req, ReplyExtras&) {
    for (const auto& n : req.names) P9_RETURN_IF_ERROR(ValidateName(n));
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    if (req.newfid != req.fid && FidInUse(req.newfid)) return Errno(EBADF);
    P9_ASSIGN_OR_RETURN(WalkResult w, ff.second->Walk(req.names));
    if (w.qids.size() > req.names.size()) return Errno(EIO);  // Backend bug; never trust it.
    if (w.qids.size() < req.names.size() || !w.file) return Rwalk{std::move(w.qids)};
    P9_RETURN_IF_ERROR(InsertFid(req.newfid, std::make_shared<ServerFid>(std::move(w.file)),
                                 /*replace=*/req.newfid == req.fid));
    return Rwalk{std::move(w.qids)};
  }

  Result<Rwalkgetattr> Op(const Twalkgetattr& req, ReplyExtras& x) {
    if (!AtLeast(dialect(), Dialect::kWalkGetattr)) return Errno(ENOSYS);  // Our dialect only.
    P9_ASSIGN_OR_RETURN(Rwalk w, Op(Twalk{req.fid, req.newfid, req.names}, x));
    Rwalkgetattr r;
    r.wqids = std::move(w.wqids);
    if (r.wqids.size() < req.names.size()) return r;
    auto attr = [&]() -> Result<Rgetattr> {
      P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.newfid));
      return ff.second->GetAttr(req.request_mask);
    }();
    if (!attr.has_value()) {
      // All or nothing, as a Tgetattr error would be: no newfid is left behind.
      if (req.newfid != req.fid) (void)RemoveFid(req.newfid);
      return attr.error();
    }
    r.attr = std::move(*attr);
    return r;
  }

  Result<Rgetattr> Op(const Tgetattr& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    return ff.second->GetAttr(req.request_mask);
  }

  Result<Rsetattr> Op(const Tsetattr& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    P9_RETURN_IF_ERROR(ff.second->SetAttr(req));
    return Rsetattr{};
  }

  Result<Rlopen> Op(const Tlopen& req, ReplyExtras& x) {
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    auto& [fid, file] = ff;
    {
      std::lock_guard l(fid->mu);
      if (fid->opened) return Errno(EINVAL);
    }
    P9_ASSIGN_OR_RETURN(OpenResult o, file->Open(req.flags));
    {
      std::lock_guard l(fid->mu);
      if (fid->opened) return Errno(EINVAL);  // Lost a race with another Tlopen.
      fid->opened = true;
      fid->open_flags = req.flags;
    }
    if (fd_donation()) x.fd = std::move(o.donate);
    return Rlopen{o.qid, o.iounit};
  }

  Result<Rlcreate> Op(const Tlcreate& req, ReplyExtras& x) {
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    auto& [fid, dir] = ff;
    {
      std::lock_guard l(fid->mu);
      if (fid->opened) return Errno(EINVAL);
    }
    P9_ASSIGN_OR_RETURN(CreateResult c, dir->Create(req.name, req.flags, req.mode, req.gid));
    if (!c.file) return Errno(EIO);
    {
      std::lock_guard l(fid->mu);
      fid->file = std::move(c.file);  // The fid now names the new, opened file.
      fid->opened = true;
      fid->open_flags = req.flags;
    }
    if (fd_donation()) x.fd = std::move(c.donate);
    return Rlcreate{c.qid, c.iounit};
  }

  Result<Rlcreateat> Op(const Tlcreateat& req, ReplyExtras& x) {
    if (!AtLeast(dialect(), Dialect::kFusedOpen)) return Errno(ENOSYS);  // Our dialect only.
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.dfid));
    const bool path = req.pathfid != kNoFid;
    if (req.newfid == kNoFid || req.newfid == req.dfid ||
        (path && (req.pathfid == req.dfid || req.pathfid == req.newfid))) {
      return Errno(EBADF);
    }
    {
      // Checked before creating, so that a file is not made for fids that cannot hold it.
      // (A concurrent request of the same session taking the numbers or the last room
      // meanwhile makes the insertion below fail after the create, as the client asked.)
      std::lock_guard l(mu_);
      if (fids_.contains(req.newfid) || (path && fids_.contains(req.pathfid))) {
        return Errno(EBADF);
      }
      if (fids_.size() + (path ? 2 : 1) > state_->options.max_fids) return Errno(EMFILE);
    }
    P9_ASSIGN_OR_RETURN(CreateResult c,
                        ff.second->Create(req.name, req.flags, req.mode, req.gid));
    if (!c.file) return Errno(EIO);
    Rlcreateat r{c.qid, c.iounit, {}};
    // The file created, not whatever its name may name by now: from the opened File.
    if (auto a = c.file->GetAttr(getattr::kBasic); a.has_value()) r.attr = std::move(*a);
    std::unique_ptr<File> walked;
    if (path) {
      P9_ASSIGN_OR_RETURN(WalkResult w, c.file->Walk({}));
      if (!w.file) return Errno(EIO);
      walked = std::move(w.file);
    }
    P9_RETURN_IF_ERROR(InsertFid(req.newfid, ServerFid::Opened(std::move(c.file), req.flags)));
    if (path) {
      if (auto ok = InsertFid(req.pathfid, std::make_shared<ServerFid>(std::move(walked)));
          !ok.has_value()) {
        (void)RemoveFid(req.newfid);
        return ok.error();
      }
    }
    x.fd = std::move(c.donate);
    return r;
  }

  Result<Rwalkopen> Op(const Twalkopen& req, ReplyExtras& x) {
    if (!AtLeast(dialect(), Dialect::kFusedOpen)) return Errno(ENOSYS);  // Our dialect only.
    for (const auto& n : req.names) P9_RETURN_IF_ERROR(ValidateName(n));
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    if (req.newfid == req.fid || FidInUse(req.newfid)) return Errno(EBADF);
    P9_ASSIGN_OR_RETURN(WalkResult w, ff.second->Walk(req.names));
    if (w.qids.size() != req.names.size() || !w.file) return Errno(ENOENT);  // Partial.
    P9_ASSIGN_OR_RETURN(OpenResult o, w.file->Open(req.flags));
    P9_RETURN_IF_ERROR(InsertFid(req.newfid, ServerFid::Opened(std::move(w.file), req.flags)));
    x.fd = std::move(o.donate);
    return Rwalkopen{o.qid, o.iounit};
  }

  Result<Rread> Op(const Tread& req, ReplyExtras& x) {
    P9_ASSIGN_OR_RETURN(auto fid, LookupFid(req.fid));
    size_t count = std::min<size_t>(req.count, msize_ - kRreadHeaderSize);
    std::shared_ptr<File> file;
    {
      std::lock_guard l(fid->mu);
      if (fid->kind == ServerFid::Kind::kXattrRead) {
        const std::string& d = fid->xattr_data;
        if (req.offset >= d.size()) return Rread{};
        size_t n = std::min<size_t>(count, d.size() - req.offset);
        x.vec.assign(d.data() + req.offset, d.data() + req.offset + n);
        return Rread{Bytes(x.vec.data(), n)};
      }
      if (fid->kind != ServerFid::Kind::kFile || !fid->opened) return Errno(EBADF);
      if ((fid->open_flags & open_flags::kAccMode) == open_flags::kWrOnly) return Errno(EBADF);
      file = fid->file;
    }
    if (count >= kSpliceMin) {
      // Pages move from the page cache to the socket (p9/splice_pipes.h). ENOSYS and the
      // like: the file cannot, and is copied.
      auto n = ThisThreadPipes().Fill(count, req.offset, [&](int pipe, size_t c, uint64_t at) {
        return file->SpliceRead(pipe, c, at);
      });
      if (n.has_value()) {
        if (*n > count) {
          ThisThreadPipes().Discard();
          return Errno(EIO);
        }
        x.spliced = *n;
        return Rread{};
      }
    }
    x.buf.reset(new char[count]);  // Not zero-filled: ReadAt writes what it reports.
    P9_ASSIGN_OR_RETURN(size_t n, file->ReadAt(std::span<char>(x.buf.get(), count), req.offset));
    if (n > count) return Errno(EIO);
    return Rread{Bytes(x.buf.get(), n)};
  }

  Result<Rwrite> Op(const Twrite& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto fid, LookupFid(req.fid));
    std::shared_ptr<File> file;
    {
      std::lock_guard l(fid->mu);
      if (fid->kind == ServerFid::Kind::kXattrWrite) {
        uint64_t end = req.offset + req.data.size();
        if (end < req.offset || end > fid->xattr_size) return Errno(EINVAL);
        if (fid->xattr_data.size() < end) fid->xattr_data.resize(end);
        if (!req.data.empty()) {
          std::memcpy(fid->xattr_data.data() + req.offset, req.data.data(), req.data.size());
        }
        return Rwrite{static_cast<uint32_t>(req.data.size())};
      }
      if (fid->kind != ServerFid::Kind::kFile || !fid->opened) return Errno(EBADF);
      if ((fid->open_flags & open_flags::kAccMode) == open_flags::kRdOnly) return Errno(EBADF);
      file = fid->file;
    }
    P9_ASSIGN_OR_RETURN(size_t n, file->WriteAt(req.data, req.offset));
    if (n > req.data.size()) return Errno(EIO);
    return Rwrite{static_cast<uint32_t>(n)};
  }

  // Treaddir's entries: from the fid's opened File; in our dialect a walked, unopened
  // directory fid is listed too (one message where Twalk, Tlopen, Treaddir and Tclunk were
  // four), by the backend directly (File::ReaddirUnopened) or through a private opened clone.
  Result<std::vector<Dirent>> ReaddirEntries(Fid fid, uint64_t offset, uint32_t count) {
    auto opened = OpenedFile(fid);
    if (opened.has_value()) return (*opened)->Readdir(offset, count);
    if (!AtLeast(dialect(), Dialect::kWalkGetattr)) return opened.error();
    P9_ASSIGN_OR_RETURN(auto f, LookupFid(fid));
    std::shared_ptr<File> file;
    {
      std::lock_guard l(f->mu);
      if (f->kind != ServerFid::Kind::kFile || f->opened) return opened.error();
      file = f->file;
    }
    auto direct = file->ReaddirUnopened(offset, count);
    if (direct.has_value() || direct.error() != Errno(ENOSYS)) return direct;
    P9_ASSIGN_OR_RETURN(WalkResult w, file->Walk({}));
    if (!w.file) return Errno(EIO);
    P9_RETURN_IF_ERROR(w.file->Open(open_flags::kRdOnly | open_flags::kDirectory));
    return w.file->Readdir(offset, count);
  }

  Result<Rreaddir> Op(const Treaddir& req, ReplyExtras& x) {
    size_t count = std::min<size_t>(req.count, msize_ - kIoHeaderSize);
    P9_ASSIGN_OR_RETURN(std::vector<Dirent> ents,
                        ReaddirEntries(req.fid, req.offset, static_cast<uint32_t>(count)));
    P9_ASSIGN_OR_RETURN(Bytes data, PackEntries(ents, count, x, DirentSize, AppendDirent));
    return Rreaddir{data};
  }

  // Packs as many of `ents` as fit in `count` bytes into x.vec (a listing reply's data).
  template <typename E, typename SizeFn, typename AppendFn>
  static Result<Bytes> PackEntries(const std::vector<E>& ents, size_t count, ReplyExtras& x,
                                   SizeFn size, AppendFn append) {
    size_t need = 0;
    for (const E& e : ents) need += size(e);
    x.vec.reserve(std::min(need, count));  // Not count: an msize buffer per listing costs faults.
    for (const E& e : ents) {
      if (!append(x.vec, e, count)) break;
    }
    // The first entry does not fit: an empty reply would read as end of directory.
    if (x.vec.empty() && !ents.empty()) return Errno(EINVAL);
    return Bytes(x.vec.data(), x.vec.size());
  }

  Result<Rreaddirattr> Op(const Treaddirattr& req, ReplyExtras& x) {
    if (!AtLeast(dialect(), Dialect::kReaddirAttr)) return Errno(ENOSYS);  // Our dialect only.
    for (const auto& n : req.names) P9_RETURN_IF_ERROR(ValidateName(n));
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    const bool keep = req.newfid != kNoFid;
    if (keep && FidInUse(req.newfid)) return Errno(EBADF);
    std::shared_ptr<File> dir = ff.second;
    Rreaddirattr r;
    if (!req.names.empty() || keep) {
      // Walked for this listing (and kept as newfid once it succeeded).
      P9_ASSIGN_OR_RETURN(WalkResult w, dir->Walk(req.names));
      if (w.qids.size() > req.names.size()) return Errno(EIO);  // Backend bug.
      if (w.qids.size() != req.names.size() || !w.file) return Errno(ENOENT);
      if (!w.qids.empty()) r.qid = w.qids.back();
      dir = std::move(w.file);
    }
    size_t count = std::min<size_t>(req.count, msize_ - kIoHeaderSize);
    P9_ASSIGN_OR_RETURN(std::vector<DirentAttr> ents,
                        dir->ReaddirAttr(req.offset, static_cast<uint32_t>(count),
                                         (req.flags & readdirattr::kAllEntries) != 0));
    P9_ASSIGN_OR_RETURN(r.data,
                        PackEntries(ents, count, x, DirentAttrSize, AppendDirentAttr));
    if (keep) P9_RETURN_IF_ERROR(InsertFid(req.newfid, std::make_shared<ServerFid>(dir)));
    return r;
  }

  Result<Rmkdir> Op(const Tmkdir& req, ReplyExtras&) {
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.dfid));
    P9_ASSIGN_OR_RETURN(Qid q, ff.second->Mkdir(req.name, req.mode, req.gid));
    return Rmkdir{q};
  }

  Result<Rsymlink> Op(const Tsymlink& req, ReplyExtras&) {
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    if (req.symtgt.find('\0') != std::string::npos) return Errno(EINVAL);
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    P9_ASSIGN_OR_RETURN(Qid q, ff.second->Symlink(req.name, req.symtgt, req.gid));
    return Rsymlink{q};
  }

  Result<Rmknod> Op(const Tmknod& req, ReplyExtras&) {
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.dfid));
    P9_ASSIGN_OR_RETURN(Qid q,
                        ff.second->Mknod(req.name, req.mode, req.major, req.minor, req.gid));
    return Rmknod{q};
  }

  Result<Rlink> Op(const Tlink& req, ReplyExtras&) {
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    P9_ASSIGN_OR_RETURN(auto dir, LookupFile(req.dfid));
    P9_ASSIGN_OR_RETURN(auto target, LookupFile(req.fid));
    P9_RETURN_IF_ERROR(dir.second->Link(*target.second, req.name));
    return Rlink{};
  }

  Result<Rrename> Op(const Trename& req, ReplyExtras&) {
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    P9_ASSIGN_OR_RETURN(auto file, LookupFile(req.fid));
    P9_ASSIGN_OR_RETURN(auto dir, LookupFile(req.dfid));
    P9_RETURN_IF_ERROR(file.second->Rename(*dir.second, req.name));
    return Rrename{};
  }

  Result<Rrenameat> Op(const Trenameat& req, ReplyExtras&) {
    P9_RETURN_IF_ERROR(ValidateName(req.oldname));
    P9_RETURN_IF_ERROR(ValidateName(req.newname));
    P9_ASSIGN_OR_RETURN(auto olddir, LookupFile(req.olddirfid));
    P9_ASSIGN_OR_RETURN(auto newdir, LookupFile(req.newdirfid));
    P9_RETURN_IF_ERROR(olddir.second->RenameAt(req.oldname, *newdir.second, req.newname));
    return Rrenameat{};
  }

  Result<Runlinkat> Op(const Tunlinkat& req, ReplyExtras&) {
    P9_RETURN_IF_ERROR(ValidateName(req.name));
    if (req.flags & ~kAtRemoveDir) return Errno(EINVAL);
    P9_ASSIGN_OR_RETURN(auto dir, LookupFile(req.dirfd));
    P9_RETURN_IF_ERROR(dir.second->UnlinkAt(req.name, req.flags));
    return Runlinkat{};
  }

  Result<Rreadlink> Op(const Treadlink& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    P9_ASSIGN_OR_RETURN(std::string target, ff.second->Readlink());
    return Rreadlink{std::move(target)};
  }

  Result<Rfsync> Op(const Tfsync& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto file, OpenedFile(req.fid));
    P9_RETURN_IF_ERROR(file->Fsync(req.datasync != 0));
    return Rfsync{};
  }

  Result<Rstatfs> Op(const Tstatfs& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    return ff.second->StatFs();
  }

  Result<Rlock> Op(const Tlock& req, ReplyExtras&) {
    if (req.type > lock::kTypeUnLck) return Errno(EINVAL);
    P9_ASSIGN_OR_RETURN(auto file, OpenedFile(req.fid));
    P9_ASSIGN_OR_RETURN(uint8_t status, file->Lock(req));
    return Rlock{status};
  }

  Result<Rgetlock> Op(const Tgetlock& req, ReplyExtras&) {
    if (req.type > lock::kTypeUnLck) return Errno(EINVAL);
    P9_ASSIGN_OR_RETURN(auto file, OpenedFile(req.fid));
    return file->GetLock(req);
  }

  Result<Rxattrwalk> Op(const Txattrwalk& req, ReplyExtras&) {
    if (req.name.size() > 255) return Errno(ERANGE);
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    if (FidInUse(req.newfid) && req.newfid != req.fid) return Errno(EBADF);
    std::string data;
    if (req.name.empty()) {
      P9_ASSIGN_OR_RETURN(data, ff.second->ListXattr());
    } else {
      P9_ASSIGN_OR_RETURN(data, ff.second->GetXattr(req.name));
    }
    if (data.size() > kMaxXattrSize) return Errno(E2BIG);
    auto nf = std::make_shared<ServerFid>(ff.second);
    nf->kind = ServerFid::Kind::kXattrRead;
    uint64_t size = data.size();
    nf->xattr_data = std::move(data);
    P9_RETURN_IF_ERROR(InsertFid(req.newfid, std::move(nf), req.newfid == req.fid));
    return Rxattrwalk{size};
  }

  Result<Rxattrcreate> Op(const Txattrcreate& req, ReplyExtras&) {
    if (req.name.empty() || req.name.find('\0') != std::string::npos) return Errno(EINVAL);
    if (req.name.size() > 255) return Errno(ERANGE);
    if (req.attr_size > kMaxXattrSize) return Errno(E2BIG);
    if (req.flags & ~(kXattrCreate | kXattrReplace)) return Errno(EINVAL);
    P9_ASSIGN_OR_RETURN(auto ff, LookupFile(req.fid));
    auto& fid = ff.first;
    std::lock_guard l(fid->mu);
    if (fid->opened || fid->kind != ServerFid::Kind::kFile) return Errno(EINVAL);
    fid->kind = ServerFid::Kind::kXattrWrite;
    fid->xattr_name = req.name;
    fid->xattr_size = req.attr_size;
    fid->xattr_flags = req.flags;
    fid->xattr_data.clear();
    return Rxattrcreate{};
  }

  Result<Rclunk> Op(const Tclunk& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto fid, RemoveFid(req.fid));
    std::string name, value;
    uint32_t flags;
    std::shared_ptr<File> file;
    {
      std::lock_guard l(fid->mu);
      if (fid->kind != ServerFid::Kind::kXattrWrite) return Rclunk{};
      if (fid->xattr_data.size() != fid->xattr_size) return Errno(EINVAL);
      name = fid->xattr_name;
      value = std::move(fid->xattr_data);
      flags = fid->xattr_flags;
      file = fid->file;
    }
    // Linux removexattr(2) arrives as an empty XATTR_REPLACE create (as QEMU treats it).
    if (value.empty() && (flags & kXattrReplace)) {
      P9_RETURN_IF_ERROR(file->RemoveXattr(name));
    } else {
      P9_RETURN_IF_ERROR(file->SetXattr(name, value, flags));
    }
    return Rclunk{};
  }

  Result<Rremove> Op(const Tremove& req, ReplyExtras&) {
    P9_ASSIGN_OR_RETURN(auto fid, RemoveFid(req.fid));  // Clunked whatever the result.
    std::shared_ptr<File> file = fid->GetFile();
    if (!file) return Errno(EINVAL);
    P9_RETURN_IF_ERROR(file->Remove());
    return Rremove{};
  }

  // The session's level of our dialect (kPlain for 9P2000.L).
  Dialect dialect() {
    std::lock_guard l(mu_);
    return dialect_;
  }
  bool fd_donation() { return AtLeast(dialect(), Dialect::kFdDonation); }

  static constexpr size_t kDefaultThreads = 16;
  static constexpr size_t kQueueMax = 64 * 1024;
  static constexpr size_t kInlineIoMax = 128 * 1024;  // Larger reads and writes hand off.
  // Smaller Treads are copied. Measured (docs/BENCHMARKS.md, session 17): 16 and 32 KiB
  // reads spliced took as long as copied or less, 4 KiB ones no less.
  static constexpr size_t kSpliceMin = 16 * 1024;

  std::shared_ptr<ServerState> state_;
  Attacher& attacher_;
  UniqueFd sock_;       // Blocking. Read by the leader only; written under send_mu_.
  FrameReader reader_;  // Used by the leader only (handed over through lf_).
  // Written by the leader before any request of the session is read; read by the threads
  // serving that session's requests.
  std::atomic<uint32_t> msize_ = kMinMsize;
  std::atomic<bool> version_done_ = false;

  LeaderFollower lf_{max_threads()};  // The reader role among this connection's threads.

  std::mutex send_mu_;     // Serializes frames on the socket.
  std::vector<char> out_;  // Guarded by send_mu_. Queued whole reply frames (see Send).

  std::mutex mu_;
  std::condition_variable room_cv_;  // Signalled when inflight_ shrinks below the limit.
  std::unordered_map<Fid, std::shared_ptr<ServerFid>> fids_;  // Guarded by mu_.
  std::unordered_map<Tag, Inflight> inflight_;                // Guarded by mu_.
  uint64_t serial_ = 0;                                        // Guarded by mu_. Defer's.
  bool closed_ = false;       // Guarded by mu_.
  Dialect dialect_ = Dialect::kPlain;  // Guarded by mu_.

  friend class Server;
};

Server::Server(Attacher& attacher, ServerOptions options)
    : state_(std::make_shared<ServerState>(attacher, options)) {
  CHECK_LE(options.max_inflight, 65535u);
  CHECK_GE(options.max_inflight, 1u);
}

Server::~Server() { Stop(); }

void Server::AddConnection(UniqueFd sock, Attacher* attacher) {
  // The leader blocks in recvmsg; senders block in sendmsg until the peer reads.
  int flags = fcntl(sock.get(), F_GETFL);
  if (flags >= 0) fcntl(sock.get(), F_SETFL, flags & ~O_NONBLOCK);
  auto conn = std::make_shared<Connection>(state_, std::move(sock),
                                           attacher ? *attacher : state_->attacher);
  {
    std::lock_guard l(state_->mu);
    if (state_->stopping) return;  // ~Connection (after this lock) closes the socket.
    state_->open.insert(conn);
  }
  if (!conn->Start()) {
    std::lock_guard l(state_->mu);
    state_->open.erase(conn);
  }
}

void Server::Listen(UniqueFd listener) {
  int flags = fcntl(listener.get(), F_GETFL);
  if (flags >= 0) fcntl(listener.get(), F_SETFL, flags | O_NONBLOCK);
  std::lock_guard l(state_->mu);
  if (state_->stopping) return;
  const int lfd = listener.get();
  state_->listeners.push_back(std::move(listener));
  // Accept loop. Stop() shuts the listening socket down, which wakes poll() (POLLHUP); the
  // loop then sees `stopping` and ends. Stop() joins it, then closes the socket.
  listen_threads_.emplace_back([this, lfd] {
    for (;;) {
      pollfd p{lfd, POLLIN, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) {
        PLOG(WARNING) << "9p server: poll on listener";
        return;
      }
      {
        std::lock_guard l(state_->mu);
        if (state_->stopping) return;
      }
      for (;;) {
        int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == ECONNABORTED) break;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            PLOG(WARNING) << "9p server: accept";
            ::usleep(10000);  // Out of resources: back off instead of spinning.
            break;
          }
          PLOG(WARNING) << "9p server: accept";
          return;
        }
        AddConnection(UniqueFd(c));
      }
    }
  });
}

void Server::Stop() {
  std::call_once(stopped_, [this] {
    std::vector<std::shared_ptr<Connection>> conns;
    std::vector<std::thread> listeners;
    {
      std::lock_guard l(state_->mu);
      state_->stopping = true;
      conns.assign(state_->open.begin(), state_->open.end());
      for (auto& fd : state_->listeners) ::shutdown(fd.get(), SHUT_RDWR);
      listeners.swap(listen_threads_);
    }
    for (auto& t : listeners) t.join();
    for (auto& c : conns) c->Shutdown();
    conns.clear();
    // Connections see EOF, close, and drop their last references once their threads end.
    std::unique_lock l(state_->mu);
    state_->cv.wait(l, [&] { return state_->live_connections == 0 && state_->live_threads == 0; });
    state_->listeners.clear();
  });
}

size_t Server::connection_count() const {
  std::lock_guard l(state_->mu);
  return state_->live_connections;
}

bool Server::WaitNoConnections(std::chrono::milliseconds timeout) const {
  std::unique_lock l(state_->mu);
  return state_->cv.wait_for(l, timeout, [&] { return state_->live_connections == 0; });
}

}  // namespace p9
