// The 9P2000.L client: one connection, many concurrent requests matched by tag.
//
// Receiving without a reader thread (leader/follower): a caller sends its request and, if no
// one is reading the socket, becomes the reader itself: it reads replies, hands each to the
// call waiting for its tag, and stops once its own reply has come, waking another waiter to
// take over. With one caller at a time a round trip therefore involves no thread switch on
// this side (cross-CPU wake-ups cost ~70 us on these machines, see DESIGN.md).
//
// Bulk data: Read() receives Rread payloads straight into the caller's buffer and Write()
// sends Twrite data from the caller's buffer (a second iovec), so neither is copied.
//
// Failure: if the server closes the connection every pending and later call fails with
// ECONNRESET; if it breaks the protocol (bad frame, unknown tag, wrong reply type, malformed
// body) every call fails with EIO. No call waits forever on a dead connection.
//
// Thread-safe. The Client must outlive every call in progress.
#ifndef P9_CLIENT_H_
#define P9_CLIENT_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <vector>

#include "p9/dialect.h"
#include "p9/messages.h"
#include "p9/p9.h"
#include "p9/result.h"
#include "p9/transport.h"
#include "p9/unique_fd.h"

namespace p9 {

class Client {
 public:
  // Negotiates the session on a connected stream socket: Tversion with `msize` and `version`.
  // Accepts the server's smaller msize (>= kMinMsize), a lower level of our dialect than
  // offered, and a fallback from our dialect to plain "9P2000.L" (then no fd donation);
  // "unknown" is EPROTONOSUPPORT.
  static Result<std::unique_ptr<Client>> Create(UniqueFd sock, uint32_t msize = kDefaultMsize,
                                                std::string version = kVersion9P2000LExt);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  uint32_t msize() const { return msize_; }
  const std::string& version() const { return version_; }
  // The level of our dialect negotiated (dialect.h; kPlain for 9P2000.L): what the
  // session's messages may use. A message above it is answered ENOSYS.
  Dialect dialect() const { return dialect_; }
  bool Has(Dialect level) const { return AtLeast(dialect_, level); }
  // True when the server donates host fds with Rlopen/Rlcreate (our dialect's level 1).
  bool fd_donation() const { return Has(Dialect::kFdDonation); }
  // Requests sent so far (each took a tag): for tests and benchmarks that count round trips.
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

  // Sends `req` and waits for its reply. Rlerror becomes its errno. Fds that arrive with the
  // reply go to `fds_out` (closed when null). When `stop` is requested before the reply, a
  // Tflush is sent and the call returns ECANCELED (or the reply, if it won the race).
  // Rread/Rreaddir/Rreaddirattr carry views of the receive buffer: use Read()/Readdir()/
  // ReaddirAttr() for those.
  template <Request T>
  Result<typename T::Response> Call(const T& req, std::vector<UniqueFd>* fds_out = nullptr,
                                    std::stop_token stop = {}) {
    using R = typename T::Response;
    static_assert(!std::is_same_v<R, Rread> && !std::is_same_v<R, Rreaddir> &&
                      !std::is_same_v<R, Rreaddirattr>,
                  "Rread/Rreaddir alias the receive buffer: use Client::Read/Readdir");
    CallState c;
    P9_RETURN_IF_ERROR(RoundTrip(c, [&](Tag tag) { return EncodeFrame(tag, req); }, stop));
    P9_ASSIGN_OR_RETURN(R r, DecodeReply<R>(c));
    if (fds_out) *fds_out = std::move(c.fds);
    return r;
  }

  // Tread into `dst` (at most max_read() bytes per call); returns the count.
  Result<size_t> Read(Fid fid, uint64_t offset, std::span<char> dst, std::stop_token stop = {});
  // Reads dst.size() bytes at `offset` in Treads of max_read(), up to kPipelineDepth of them
  // in flight at once, so a read larger than one message costs about one round trip, not one
  // per message. Returns the count: fewer than asked only at the end of the file or when a
  // Tread after the first failed (the first one's error is returned). Regular files only:
  // the Treads name distinct offsets and the server may serve them in any order, which a
  // FIFO or socket would mix up. Bytes of dst past the count may have been written.
  Result<size_t> ReadFull(Fid fid, uint64_t offset, std::span<char> dst,
                          std::stop_token stop = {});
  // Writes all of `src` at `offset` the same way, in Twrites of max_write(). Returns the
  // count: fewer only when a Twrite came back short or one after the first failed (the
  // first one's error is returned); bytes past the count may have been written too. Regular
  // files not opened O_APPEND only (an append lands wherever the server serves it).
  Result<size_t> WriteFull(Fid fid, uint64_t offset, Bytes src, std::stop_token stop = {});
  static constexpr size_t kPipelineDepth = 4;
  // Twrite of `src` (at most max_write() bytes per call); returns the count.
  Result<size_t> Write(Fid fid, uint64_t offset, Bytes src, std::stop_token stop = {});
  // Treaddir, decoded.
  Result<std::vector<Dirent>> Readdir(Fid fid, uint64_t offset, uint32_t count,
                                      std::stop_token stop = {});
  // Treaddirattr (our dialect), decoded: the qid of the directory `names` leads to from
  // `fid` (zero without names) and its entries, with attributes as `flags` asks
  // (readdirattr::). `newfid` (kNoFid: none) is left at that directory if it succeeded.
  Result<std::pair<Qid, std::vector<DirentAttr>>> ReaddirAttr(
      Fid fid, Fid newfid, uint32_t flags, const std::vector<std::string>& names,
      uint64_t offset, uint32_t count, std::stop_token stop = {});

  // A Treaddirattr sent ahead of need (StartReaddirAttr), so that the server works on it
  // while the caller does other things. Its reply is received by whichever call reads the
  // socket next and kept in here until ReaddirAttrResult takes it. Destroying one whose
  // reply was not taken waits for the reply (its tag, and a newfid the reply may have left,
  // must be settled first; the caller clunks such a fid). Must not outlive the Client.
  class Ahead;
  Result<std::unique_ptr<Ahead>> StartReaddirAttr(Fid fid, Fid newfid, uint32_t flags,
                                                  const std::vector<std::string>& names,
                                                  uint64_t offset, uint32_t count);
  // Several, sent in one write (one system call, and the server reads them at once): one
  // result per request, in order (E2BIG for one with too many names; once the connection
  // is broken, its error for the rest).
  std::vector<Result<std::unique_ptr<Ahead>>> StartReaddirAttrs(
      std::span<const Treaddirattr> reqs);
  // Whether the reply of `a` has been received (ReaddirAttrResult would not wait).
  bool Arrived(const Ahead& a);
  // The reply of `a`, as ReaddirAttr returns it; waits for it (leading reads when no one
  // is). Once per Ahead.
  Result<std::pair<Qid, std::vector<DirentAttr>>> ReaddirAttrResult(Ahead& a,
                                                                    std::stop_token stop = {});

  // Tclunk without waiting for Rclunk: the caller has nothing to learn from it (the server
  // frees the fid whatever the reply), so a close costs no round trip. The reply is read by
  // whichever call leads next; `fid` becomes reusable only then. At most kMaxDetached such
  // replies are ever unanswered: past that, this call first reads (or waits for a reader),
  // so a burst of clunks can never fill both socket buffers and stall the connection.
  void ClunkAsync(Fid fid);

 private:
  // A listing request `req` whose reply `Rep` holds data aliasing the receive buffer,
  // decoded with `decode(const Rep&)` before the buffer goes.
  template <typename Rep, typename Req, typename Decode>
  auto CallListing(const Req& req, Decode decode, std::stop_token stop)
      -> decltype(decode(std::declval<const Rep&>()));

 public:

  // A caller waiting for its reply polls the socket for up to `spin` before sleeping in the
  // kernel (FrameReader::set_spin): a reply within it costs no wake-up. Call before the
  // Client is shared between threads.
  void set_spin(std::chrono::nanoseconds spin) { reader_.set_spin(spin); }

  // Fid numbers: unused ones, reusing released numbers first.
  Fid NewFid();
  void ReleaseFid(Fid fid);

  // Breaks the connection: every pending and later call fails with ECONNRESET.
  void Shutdown();

  // Largest payload of one Read/Write: msize - P9_IOHDRSZ, as Linux uses for iounit 0.
  // (diod, for one, refuses counts that would only fit without the 24-byte allowance.)
  size_t max_read() const { return msize_ - kIoHeaderSize; }
  size_t max_write() const { return msize_ - kIoHeaderSize; }

 private:
  // One request in flight. Lives on the caller's stack; fields guarded by mu_ unless noted.
  struct CallState {
    // How the caller sleeps: it clears this under mu_, unlocks and waits for it to change
    // (std::atomic::wait: libstdc++ polls the word briefly, yielding, then sleeps on a futex
    // on it; the polling is most of the gain with many callers on two CPUs: a raw futex
    // wait instead measured half the throughput at 32 callers). kWakeLook: something
    // changed, look again under mu_.
    // kWakeFinished: the reply is in and its tag is freed; the caller returns without
    // taking mu_, so a woken caller does not queue for the lock the reader needs next. Once
    // kWakeFinished is stored the state may be gone: the waker only notifies after that.
    std::atomic<uint32_t> wake{0};
    Tag tag = kNoTag;
    Tag flush_tag = kNoTag;
    bool done = false;      // The reply arrived (header, body, fds filled).
    bool finished = false;  // done, and the reader has erased it from pending_ and freed its tag.
    bool filling = false;   // The reader is writing into body/read_dst: do not leave.
    bool flush_sent = false;
    bool flushed = false;   // Rflush arrived.
    bool waiting = false;   // Its caller sleeps in Wait (not merely has it in flight).
    FrameHeader header;
    std::vector<char> body;          // Reply body, unless it went to read_dst.
    std::vector<UniqueFd> fds;
    std::span<char> read_dst;        // Rread payload destination (Read()).
    size_t read_n = 0;
    // ClunkAsync: no one waits; the reader frees this state (heap) and releases `fid`.
    bool detached = false;
    Fid fid = kNoFid;
  };
  struct Pending {
    CallState* call;
    bool is_flush;  // The tag of the Tflush sent for `call`.
  };

  Client(UniqueFd sock, uint32_t msize);

  // Allocates a tag, sends encode(tag), waits for the reply (leading reads when no one is),
  // handles cancellation. On success c holds the reply.
  template <typename Encode>
  Result<void> RoundTrip(CallState& c, Encode&& encode, std::stop_token stop) {
    P9_RETURN_IF_ERROR(Register(c));
    OutFrame f = encode(c.tag);
    return SendAndWait(c, f, stop);
  }
  // Gives `c` a tag (waiting for a free one) and enters it in pending_, in one critical
  // section: with many callers, every acquisition of mu_ is a chance to contend.
  Result<void> Register(CallState& c);
  // REQUIRES: Register(c) succeeded.
  Result<void> SendAndWait(CallState& c, const OutFrame& f, std::stop_token stop);
  // Waits for the reply of `c`, whose request was sent (leading reads when no one is).
  Result<void> Wait(CallState& c, std::stop_token stop);
  // Registers and sends a Tread of c.read_dst.size() bytes at `offset` into c.read_dst.
  Result<void> StartRead(CallState& c, Fid fid, uint64_t offset);
  // The count of c's finished Tread, or its error (Rlerror's errno).
  Result<size_t> ReadResult(CallState& c);
  // ReadFull and WriteFull: `size` bytes in pieces of `piece`, up to kPipelineDepth in
  // flight. start(c, at, len) registers and sends piece [at, at + len) as c's request;
  // result(c) is the count of its reply. Returns the bytes of the leading full pieces (and
  // of the first short one), or the first piece's error.
  template <typename Start, typename Result_>
  Result<size_t> Pipelined(size_t size, size_t piece, std::stop_token stop, Start start,
                           Result_ result);
  // Rlerror -> its errno; a type other than `want` -> EIO (connection broken).
  Result<void> CheckReply(const CallState& c, MsgType want);
  // c's reply decoded as R: CheckReply, then a body that does not decode breaks the
  // connection (EIO).
  template <typename R>
  Result<R> DecodeReply(const CallState& c) {
    P9_RETURN_IF_ERROR(CheckReply(c, R::kType));
    auto r = DecodeBody<R>(Bytes(c.body.data(), c.body.size()));
    if (!r.has_value()) return Break(Errno(EIO));
    return r;
  }

  // The listing reply in `c` (of a call that finished) decoded, as CallListing returns it.
  template <typename Rep, typename Decode>
  auto DecodeListing(const CallState& c, Decode decode)
      -> decltype(decode(std::declval<const Rep&>()));

  Result<Tag> AllocTag(bool wait);
  // REQUIRES: `l` holds mu_ (released while waiting for a free tag).
  Result<Tag> AllocTagLocked(std::unique_lock<std::mutex>& l, bool wait);
  void FreeTagLocked(Tag t);
  void SendFlush(CallState& c);
  // Takes the reader role for one frame (ReadOne without mu_), breaking the connection on a
  // read error. REQUIRES: `l` holds mu_ and no one else is reading.
  void LeadOneRead(std::unique_lock<std::mutex>& l);
  // Sends `f`; a failed send breaks the connection (EPIPE reads as ECONNRESET). Combining:
  // while one caller is in sendmsg, small frames of others are queued, and it sends them
  // all in its next sendmsg before leaving; so a burst of callers makes few syscalls (and the
  // server reads the burst at once). A frame queued here is sent before any frame a later
  // Send of the same thread queues, so a Tflush never overtakes its request.
  void Send(const OutFrame& f);
  // Reads one frame and delivers it. Called by the leader without mu_.
  Result<void> ReadOne();
  // Marks the connection broken with `e` (first error wins) and wakes everyone.
  Errno Break(Errno e);
  void BreakLocked(Errno e);
  // When no one reads: wakes a waiting caller, or a ClunkAsync waiting for room, to lead.
  // REQUIRES: mu_ held.
  void HandOffReadingLocked();
  // A detached call's reply came (or never will): forget it. REQUIRES: mu_ held.
  void FinishDetachedLocked(CallState* c);
  // Wakes c's caller to look again. REQUIRES: mu_ held.
  static void WakeLocked(CallState* c);
  // c's reply is in (done): unless a Tflush is outstanding, finishes the call for its caller
  // (pending_ entry and tag released) and wakes it to return at once; else wakes it to look.
  // REQUIRES: mu_ held. c may be gone when this returns.
  void DeliverLocked(CallState* c);

  UniqueFd fd_;
  uint32_t msize_;
  std::string version_;
  Dialect dialect_ = Dialect::kPlain;
  FrameReader reader_;  // Used only by the current leader.

  std::atomic<uint64_t> requests_{0};
  std::mutex send_mu_;  // Guards the three below. Leaf lock.
  bool sending_ = false;             // A caller is writing to the socket.
  std::vector<char> send_queue_;     // Whole frames waiting for that caller to send them.
  std::condition_variable send_cv_;  // Signalled when sending_ clears.

  // Lock order: mu_ before send_mu_ is never needed; they are not held together.
  std::mutex mu_;
  std::unordered_map<Tag, Pending> pending_;  // Guarded by mu_.
  std::vector<Tag> free_tags_;                // Guarded by mu_.
  std::condition_variable tags_cv_;           // Signalled when a tag is freed.
  bool reading_ = false;                      // Guarded by mu_. A leader is reading.
  size_t detached_ = 0;                       // Guarded by mu_. Unanswered ClunkAsync calls.
  std::condition_variable detached_cv_;       // Signalled when detached_ drops or no one reads.
  Errno broken_{0};                           // Guarded by mu_. Non-zero once broken.

  std::mutex fid_mu_;
  std::vector<Fid> free_fids_;  // Guarded by fid_mu_.
  Fid next_fid_ = 0;            // Guarded by fid_mu_.
};

class Client::Ahead {
 public:
  ~Ahead();
  Ahead(const Ahead&) = delete;
  Ahead& operator=(const Ahead&) = delete;

 private:
  friend class Client;
  explicit Ahead(Client& client) : client_(&client) {}
  Client* const client_;
  CallState c_;         // In client_->pending_ until its reply is in (address stable: heap).
  bool taken_ = false;  // ReaddirAttrResult waited for it.
};

}  // namespace p9

#endif  // P9_CLIENT_H_
