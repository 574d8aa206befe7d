#include "p9/server.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <utility>  // Before Asio under C++20.

#include <boost/asio.hpp>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>

#include "glog/logging.h"
#include "p9/messages.h"
#include "p9/transport.h"

namespace p9 {

namespace asio = boost::asio;

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
  asio::io_context io;

  mutable std::mutex mu;
  mutable std::condition_variable cv;  // Signalled when live_connections drops.
  size_t live_connections = 0;         // Guarded by mu.
  bool stopping = false;               // Guarded by mu.
  std::set<std::shared_ptr<Connection>> open;  // Guarded by mu. Not yet closed.
  std::vector<int> listeners;                  // Guarded by mu. Raw fds, owned elsewhere.
};

namespace {

// One fid of a session. Held by shared_ptr: the fid table holds one reference, each request
// using the fid another, so a clunk during a call destroys the File after the call returns.
struct ServerFid {
  enum class Kind { kFile, kXattrRead, kXattrWrite };

  explicit ServerFid(std::shared_ptr<File> f) : file(std::move(f)) {}

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
};

}  // namespace

// One client connection and its session. Lifetime: owned by shared_ptrs held by the server's
// `open` set (until closed), its pending async_wait and every request being handled.
//
// Lock order: send_mu_, then mu_, then ServerFid::mu.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerState> state, UniqueFd fd, Attacher& attacher)
      : state_(std::move(state)),
        attacher_(attacher),
        sd_(state_->io, fd.release()),
        reader_(sd_.native_handle(), kMinMsize) {
    std::lock_guard l(state_->mu);
    ++state_->live_connections;
  }

  ~Connection() {
    // fids_ release their Files here at the latest; do it before counting down so that
    // WaitNoConnections() means "every File released".
    fids_.clear();
    boost::system::error_code ec;
    sd_.close(ec);
    std::lock_guard l(state_->mu);
    --state_->live_connections;
    state_->cv.notify_all();
  }

  int fd() { return sd_.native_handle(); }

  void Start() { ArmWait(); }

  // Makes the reader see EOF and pending sends fail; the reader then closes the connection.
  // Safe from any thread.
  void Shutdown() { ::shutdown(fd(), SHUT_RDWR); }

 private:
  struct Inflight {
    std::vector<Tag> flushers;  // Tflush tags to answer once this request's reply is sent.
  };

  void ArmWait() {
    sd_.async_wait(asio::posix::stream_descriptor::wait_read,
                   [self = shared_from_this()](const boost::system::error_code& ec) {
                     if (ec) {
                       self->Close("wait failed: " + ec.message());
                       return;
                     }
                     self->OnReadable();
                   });
  }

  // Drains complete frames. Runs on one thread at a time: it is only ever started by the
  // single armed wait or by Resume(), never both.
  void OnReadable() {
    std::optional<InFrame> pending;  // The newest frame, handled inline at the end.
    for (;;) {
      {
        std::lock_guard l(mu_);
        if (inflight_.size() >= state_->options.max_inflight) {
          // Backpressure: stop reading; the completion that drops below the limit resumes.
          paused_ = true;
          break;
        }
      }
      auto r = reader_.TryRead();
      if (!r.has_value()) {
        if (pending) Dispatch(std::move(*pending), /*inline_ok=*/true);
        Close(r.error() == Errno(ECONNRESET) ? "" : std::string("read: ") + r.error().name());
        return;
      }
      if (!r->has_value()) {
        ArmWait();
        break;
      }
      InFrame frame = std::move(**r);
      if (frame.header.type == static_cast<uint8_t>(MsgType::kTversion)) {
        // Version changes msize for the frames after it: handle it before reading on.
        if (pending) Dispatch(std::move(*pending), false);
        pending.reset();
        HandleVersion(frame);
        continue;
      }
      if (!Register(frame)) return;  // Protocol violation: closed.
      if (pending) Dispatch(std::move(*pending), false);
      pending = std::move(frame);
    }
    if (pending) Dispatch(std::move(*pending), true);
  }

  // Records the frame's tag as in flight. False (and the connection closed) on tag reuse.
  bool Register(const InFrame& frame) {
    Tag tag = frame.header.tag;
    {
      std::lock_guard l(mu_);
      if (!inflight_.try_emplace(tag).second) {
        // fallthrough to close below
      } else {
        return true;
      }
    }
    Close("tag " + std::to_string(tag) + " reused while in flight");
    return false;
  }

  void Dispatch(InFrame frame, bool inline_ok) {
    if (frame.header.type == static_cast<uint8_t>(MsgType::kTflush)) {
      HandleFlush(frame);  // Cheap and order-sensitive: always on the reader thread.
      return;
    }
    if (inline_ok) {
      Handle(frame);
      return;
    }
    asio::post(state_->io, [self = shared_from_this(), f = std::move(frame)]() mutable {
      self->Handle(f);
    });
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
        Send(tag, *r, extras.fd);
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
  // answered.
  template <typename M>
  void Send(Tag tag, const M& m, const UniqueFd& fd = UniqueFd()) {
    OutFrame f = EncodeFrame(tag, m);
    int fds[1] = {fd.get()};
    std::span<const int> fdspan;
    if (fd.valid()) fdspan = std::span<const int>(fds, 1);
    bool resume = false;
    {
      std::lock_guard s(send_mu_);
      std::vector<Tag> flushers;
      {
        std::lock_guard l(mu_);
        auto it = inflight_.find(tag);
        if (it != inflight_.end()) {  // Not found: Tversion, which is not tracked.
          flushers = std::move(it->second.flushers);
          inflight_.erase(it);
          for (Tag t : flushers) inflight_.erase(t);
          resume = ResumeCheckLocked();
        }
      }
      SendLocked(f, fdspan);
      for (Tag t : flushers) SendLocked(EncodeFrame(t, Rflush{}), {});
    }
    if (resume) Resume();
  }

  void SendError(Tag tag, Errno e) { Send(tag, Rlerror{static_cast<uint32_t>(e.value())}); }

  // REQUIRES: send_mu_ held.
  void SendLocked(const OutFrame& f, std::span<const int> fds) {
    auto r = SendFrame(sd_.native_handle(), f, fds);
    if (!r.has_value()) VLOG(1) << "9p server: send failed: " << r.error();
  }

  // True when reading was paused by backpressure and may go on. REQUIRES: mu_ held.
  bool ResumeCheckLocked() {
    if (paused_ && inflight_.size() < state_->options.max_inflight) {
      paused_ = false;
      return true;
    }
    return false;
  }

  void Resume() {
    // Frames may already sit in the reader's buffer, so drain rather than wait.
    asio::post(state_->io, [self = shared_from_this()] { self->OnReadable(); });
  }

  void HandleFlush(const InFrame& frame) {
    Tag tag = frame.header.tag;
    auto req = DecodeBody<Tflush>(frame.body_view());
    if (!req.has_value()) {
      SendError(tag, Errno(EINVAL));
      return;
    }
    bool resume = false;
    {
      std::lock_guard s(send_mu_);
      {
        std::lock_guard l(mu_);
        auto it = inflight_.find(req->oldtag);
        if (it != inflight_.end() && req->oldtag != tag) {
          it->second.flushers.push_back(tag);  // Answered right after oldtag's reply.
          return;
        }
        inflight_.erase(tag);
        resume = ResumeCheckLocked();
      }
      SendLocked(EncodeFrame(tag, Rflush{}), {});
    }
    if (resume) Resume();
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
    std::string version = kVersionUnknown;
    bool donate = false;
    if (req->version == kVersion9P2000LExt && state_->options.allow_fd_donation) {
      version = kVersion9P2000LExt;
      donate = true;
    } else if (req->version.starts_with(kVersion9P2000L)) {
      version = kVersion9P2000L;
    }
    {
      // A new session: every fid of the old one is clunked.
      std::lock_guard l(mu_);
      fids_.clear();
      fd_donation_ = donate;
    }
    if (version != kVersionUnknown) {
      msize_ = msize;
      reader_.set_msize(msize);
      version_done_ = true;
    }
    Send(tag, Rversion{msize, version});
  }

  void Close(const std::string& why) {
    if (!why.empty()) LOG(WARNING) << "9p server: closing connection: " << why;
    Shutdown();
    std::shared_ptr<Connection> self = shared_from_this();
    std::lock_guard l(state_->mu);
    state_->open.erase(self);
    // Remaining references: handlers in flight. Fids are released in ~Connection.
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
    if (!fd_donation()) return Errno(ENOSYS);  // Our dialect only.
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

  // The fid's opened File; in our dialect a walked, unopened directory fid reads through a
  // private opened clone (one message where Twalk, Tlopen, Treaddir and Tclunk were four).
  Result<std::shared_ptr<File>> ReaddirFile(Fid fid) {
    auto opened = OpenedFile(fid);
    if (opened.has_value() || !fd_donation()) return opened;
    P9_ASSIGN_OR_RETURN(auto f, LookupFid(fid));
    std::shared_ptr<File> file;
    {
      std::lock_guard l(f->mu);
      if (f->kind != ServerFid::Kind::kFile || f->opened) return opened.error();
      file = f->file;
    }
    P9_ASSIGN_OR_RETURN(WalkResult w, file->Walk({}));
    if (!w.file) return Errno(EIO);
    P9_RETURN_IF_ERROR(w.file->Open(open_flags::kRdOnly | open_flags::kDirectory));
    return std::shared_ptr<File>(std::move(w.file));
  }

  Result<Rreaddir> Op(const Treaddir& req, ReplyExtras& x) {
    P9_ASSIGN_OR_RETURN(auto file, ReaddirFile(req.fid));
    size_t count = std::min<size_t>(req.count, msize_ - kIoHeaderSize);
    P9_ASSIGN_OR_RETURN(std::vector<Dirent> ents,
                        file->Readdir(req.offset, static_cast<uint32_t>(count)));
    x.vec.reserve(count);
    for (const Dirent& d : ents) {
      if (!AppendDirent(x.vec, d, count)) break;
    }
    // The first entry does not fit: an empty reply would read as end of directory.
    if (x.vec.empty() && !ents.empty()) return Errno(EINVAL);
    return Rreaddir{Bytes(x.vec.data(), x.vec.size())};
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

  bool fd_donation() {
    std::lock_guard l(mu_);
    return fd_donation_;
  }

  std::shared_ptr<ServerState> state_;
  Attacher& attacher_;
  asio::posix::stream_descriptor sd_;  // Used by the reader only (async_wait); fd is shared.
  FrameReader reader_;                 // Used by the reader only.
  // Written by the reader before any request of the session is read; read by handlers of
  // that session (happens-after via the post/inline dispatch).
  std::atomic<uint32_t> msize_ = kMinMsize;
  std::atomic<bool> version_done_ = false;

  std::mutex send_mu_;  // Serializes frames on the socket.

  std::mutex mu_;
  std::unordered_map<Fid, std::shared_ptr<ServerFid>> fids_;  // Guarded by mu_.
  std::unordered_map<Tag, Inflight> inflight_;                // Guarded by mu_.
  bool paused_ = false;       // Guarded by mu_. Reading stopped by backpressure.
  bool fd_donation_ = false;  // Guarded by mu_.

  friend class Server;
};

Server::Server(Attacher& attacher, ServerOptions options)
    : state_(std::make_shared<ServerState>(attacher, options)) {
  size_t n = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  CHECK_LE(options.max_inflight, 65535u);
  for (size_t i = 0; i < n; ++i) {
    threads_.emplace_back([s = state_, guard = asio::make_work_guard(state_->io)] {
      s->io.run();  // Returns only at Stop(): the work guard keeps it busy.
    });
  }
}

Server::~Server() { Stop(); }

void Server::AddConnection(UniqueFd sock, Attacher* attacher) {
  int flags = fcntl(sock.get(), F_GETFL);
  if (flags >= 0) fcntl(sock.get(), F_SETFL, flags | O_NONBLOCK);
  std::shared_ptr<Connection> conn;
  try {
    conn = std::make_shared<Connection>(state_, std::move(sock),
                                        attacher ? *attacher : state_->attacher);
  } catch (const boost::system::system_error& e) {
    LOG(ERROR) << "9p server: cannot serve fd: " << e.what();  // Not pollable.
    return;
  }
  {
    std::lock_guard l(state_->mu);
    if (state_->stopping) return;  // ~Connection (after this lock) closes the socket.
    state_->open.insert(conn);
  }
  asio::post(state_->io, [conn] { conn->Start(); });
}

void Server::Listen(UniqueFd listener) {
  int flags = fcntl(listener.get(), F_GETFL);
  if (flags >= 0) fcntl(listener.get(), F_SETFL, flags | O_NONBLOCK);
  auto sd = std::make_shared<asio::posix::stream_descriptor>(state_->io, listener.release());
  {
    std::lock_guard l(state_->mu);
    state_->listeners.push_back(sd->native_handle());
  }
  // Accept loop. Stop() sets `stopping` and shuts the listening socket down, which wakes the
  // wait; the loop then ends. Handlers hold only a raw ServerState pointer and a weak
  // reference to the loop: a pending handler lives inside state->io, so a strong reference
  // would be a cycle (and a leak).
  auto loop = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weak = loop;
  ServerState* s = state_.get();
  *loop = [this, sd, weak, s] {
    sd->async_wait(asio::posix::stream_descriptor::wait_read,
                   [this, sd, weak, s](const boost::system::error_code& ec) {
                     auto again = weak.lock();
                     if (ec || !again) return;
                     {
                       std::lock_guard l(s->mu);
                       if (s->stopping) return;
                     }
                     for (;;) {
                       int c = ::accept4(sd->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
                       if (c < 0) {
                         if (errno == EINTR) continue;
                         if (errno == EAGAIN || errno == ECONNABORTED) break;
                         PLOG(WARNING) << "9p server: accept";
                         return;
                       }
                       AddConnection(UniqueFd(c));
                     }
                     (*again)();
                   });
  };
  {
    std::lock_guard l(state_->mu);
    listener_loops_.push_back(loop);  // Keeps the loop (and its descriptor) alive.
  }
  asio::post(state_->io, [weak] {
    if (auto loop = weak.lock()) (*loop)();
  });
}

void Server::Stop() {
  std::call_once(stopped_, [this] {
    std::vector<std::shared_ptr<Connection>> conns;
    {
      std::lock_guard l(state_->mu);
      state_->stopping = true;
      conns.assign(state_->open.begin(), state_->open.end());
      for (int fd : state_->listeners) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& c : conns) c->Shutdown();
    conns.clear();
    // Connections see EOF, close, and drop their last references once their handlers finish.
    {
      std::unique_lock l(state_->mu);
      state_->cv.wait(l, [&] { return state_->live_connections == 0; });
      listener_loops_.clear();
    }
    state_->io.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
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
