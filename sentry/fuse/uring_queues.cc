#include "sentry/fuse/uring_queues.h"

#include <fuse3/fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <system_error>

#include "glog/logging.h"
#include "sentry/fuse/io_uring.h"
#include "sentry/fuse/kernel_io.h"

namespace sentry::fuse {
namespace {

// The kernel ABI of FUSE over io_uring (protocol 7.42) that Debian 12's <linux/fuse.h> lacks.
constexpr uint32_t kCmdRegister = 1;       // FUSE_IO_URING_CMD_REGISTER
constexpr uint32_t kCmdCommitAndFetch = 2;  // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
struct EntInOut {  // fuse_uring_ent_in_out
  uint64_t flags;
  uint64_t commit_id;   // To name the request in our commit.
  uint32_t payload_sz;  // Request: bytes in the payload buffer. Reply: ours.
  uint32_t padding;
  uint64_t reserved;
};
struct ReqHeader {  // fuse_uring_req_header
  char in_out[128];  // fuse_in_header, then our fuse_out_header.
  char op_in[128];   // The request's first argument (its per-opcode header), if any.
  EntInOut ent;
};
struct CmdReq {  // fuse_uring_cmd_req, in the SQE's 80-byte command area.
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
static_assert(sizeof(ReqHeader) == 288 && sizeof(CmdReq) == 24);

// Room in front of an entry's payload for the in header and the opcode header, so that
// libfuse (which parses one contiguous buffer) gets the request without the payload moving.
constexpr size_t kPrefix = 4096;
constexpr uint64_t kEventTag = 1;  // user_data of the eventfd read; entries are index + 2.

// Possible CPUs (the kernel makes one queue each): the highest in
// /sys/devices/system/cpu/possible, plus one.
size_t PossibleCpus() {
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string s;
  if (f >> s) {
    size_t last = s.find_last_of("-,");
    try {
      return std::stoul(last == std::string::npos ? s : s.substr(last + 1)) + 1;
    } catch (const std::exception&) {
    }
  }
  long n = sysconf(_SC_NPROCESSORS_CONF);
  return n > 0 ? static_cast<size_t>(n) : 1;
}

// Pins the calling thread to `cpu` if the process may run there (else it floats: requests
// of that CPU are then served from wherever it runs).
void PinTo(unsigned cpu) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || !CPU_ISSET(cpu, &allowed)) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (sched_setaffinity(0, sizeof(one), &one) != 0) {
    VLOG(1) << "fuse: ring thread not pinned to CPU " << cpu << ": " << strerror(errno);
  }
}

void ReplyError(ReqHeader& h, uint64_t unique, int error) {
  fuse_out_header o{sizeof(o), -error, unique};
  std::memcpy(h.in_out, &o, sizeof(o));
  h.ent.payload_sz = 0;
}

}  // namespace

struct UringQueues::Queue {
  struct Entry {
    ReqHeader* header = nullptr;  // A page of its own.
    char* region = nullptr;       // kPrefix, then the payload buffer.
    iovec iov[2] = {};            // Header and payload, as registered.
    uint64_t commit_id = 0;       // The request it holds.
    uint32_t last = 0;            // The command last submitted for it.
    bool live = false;            // Registered, and its command has not failed.
  };

  explicit Queue(unsigned id) : qid(id) {}
  ~Queue() {
    ring.reset();  // First: the kernel lets go of the buffers.
    for (Entry& e : entries) {
      if (e.header) munmap(e.header, kPrefix);
      if (e.region) munmap(e.region, region_len);
    }
    if (efd >= 0) close(efd);
  }
  char* Payload(Entry& e) const { return e.region + kPrefix; }

  const unsigned qid;
  std::unique_ptr<IoUring> ring;  // Used by this queue's thread only.
  std::vector<Entry> entries;     // Each entry is owned by the thread serving it.
  size_t region_len = 0;
  size_t live = 0;  // Entries live. Ring thread only.
  int efd = -1;     // Hand-off threads signal replies here.
  uint64_t efd_value = 0;
  std::mutex done_mu;
  std::vector<size_t> done;         // Guarded by done_mu. Entries replied to by hand-offs.
  std::atomic<int> handoffs{0};     // Hand-off threads not yet finished with their entry.
};

UringQueues::UringQueues(fuse_session* se, Options options)
    : se_(se), options_(std::move(options)) {}

std::unique_ptr<UringQueues> UringQueues::Start(fuse_session* se, Options options) {
  std::unique_ptr<UringQueues> u(new UringQueues(se, std::move(options)));
  u->dev_fd_ = fuse_session_fd(se);
  const size_t n = PossibleCpus();
  for (size_t i = 0; i < n; ++i) u->queues_.push_back(std::make_unique<Queue>(i));
  for (size_t i = 0; i < n; ++i) {
    Queue* q = u->queues_[i].get();
    try {
      u->threads_.emplace_back([raw = u.get(), q] { raw->Run(*q); });
    } catch (const std::system_error& e) {
      LOG(WARNING) << "fuse: cannot start a ring thread: " << e.what();
      std::lock_guard l(u->mu_);
      u->set_up_ += n - i;
      u->setup_failed_ += n - i;
      break;
    }
  }
  return u;
}

UringQueues::~UringQueues() {
  Abandon();
  Join();
}

bool UringQueues::Ready() {
  std::unique_lock l(mu_);
  cv_.wait(l, [&] { return set_up_ == queues_.size(); });
  return setup_failed_ == 0;
}

bool UringQueues::Register() {
  std::unique_lock l(mu_);
  if (phase_ != Phase::kSetup) return false;
  phase_ = Phase::kRegister;
  cv_.notify_all();
  cv_.wait(l, [&] { return registered_ == threads_.size(); });
  return register_failed_ == 0;
}

void UringQueues::Abandon() {
  std::lock_guard l(mu_);
  if (phase_ == Phase::kSetup) phase_ = Phase::kAbandon;
  cv_.notify_all();
}

void UringQueues::Join() {
  {
    std::lock_guard l(mu_);
    if (joined_) return;
    joined_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void UringQueues::Run(Queue& q) {
  char name[16];
  snprintf(name, sizeof(name), "fuse-ring-%u", q.qid);
  pthread_setname_np(pthread_self(), name);
  PinTo(q.qid);

  // Set up on this thread: a single-issuer ring belongs to the thread that creates it.
  bool ok = true;
  const unsigned depth = options_.depth;
  auto ring = IoUring::Create(depth + 2, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                             IORING_SETUP_SUBMIT_ALL);
  if (!ring.has_value()) {
    LOG(WARNING) << "fuse: no io_uring for queue " << q.qid << ": " << ring.error();
    ok = false;
  } else {
    q.ring = std::move(*ring);
  }
  q.efd = eventfd(0, EFD_CLOEXEC);
  if (q.efd < 0) ok = false;
  q.region_len = kPrefix + options_.payload;
  q.entries.resize(ok ? depth : 0);
  for (Queue::Entry& e : q.entries) {
    void* h = mmap(nullptr, kPrefix, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* r = mmap(nullptr, q.region_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (h == MAP_FAILED || r == MAP_FAILED) {
      if (h != MAP_FAILED) munmap(h, kPrefix);
      if (r != MAP_FAILED) munmap(r, q.region_len);
      ok = false;
      break;
    }
    e.header = static_cast<ReqHeader*>(h);
    e.region = static_cast<char*>(r);
    e.iov[0] = {e.header, sizeof(ReqHeader)};
    e.iov[1] = {q.Payload(e), options_.payload};
  }

  Phase phase;
  {
    std::unique_lock l(mu_);
    ++set_up_;
    if (!ok) ++setup_failed_;
    cv_.notify_all();
    cv_.wait(l, [&] { return phase_ != Phase::kSetup; });
    phase = phase_;
    if (phase == Phase::kAbandon || !ok) {
      if (phase == Phase::kRegister) ++registered_, ++register_failed_;
      cv_.notify_all();
      return;
    }
  }

  auto read_events = [&] {
    io_uring_sqe* sqe = q.ring->NextSqe();
    CHECK(sqe != nullptr);
    sqe->opcode = IORING_OP_READ;
    sqe->fd = q.efd;
    sqe->addr = reinterpret_cast<uint64_t>(&q.efd_value);
    sqe->len = sizeof(q.efd_value);
    sqe->user_data = kEventTag;
  };
  // One completion: a request in entry i (res 0), or the end of it, or a hand-off's signal.
  std::vector<std::pair<uint64_t, int>> batch;
  auto handle = [&](uint64_t tag, int res) {
    if (tag == kEventTag) {
      std::vector<size_t> replied;
      {
        std::lock_guard l(q.done_mu);
        replied.swap(q.done);
      }
      for (size_t i : replied) Submit(q, i, kCmdCommitAndFetch);
      read_events();
      return;
    }
    const size_t i = tag - 2;
    if (i >= q.entries.size()) return;
    Queue::Entry& e = q.entries[i];
    if (res == 0) {
      Serve(q, i);
      return;
    }
    if (res == -EINTR || res == -EAGAIN) {
      Submit(q, i, e.last);
      return;
    }
    // The connection ended (ENOTCONN, ECONNABORTED), or the kernel refused the entry.
    if (res != -ENOTCONN && res != -ECONNABORTED && res != -ECANCELED) {
      LOG(WARNING) << "fuse: ring " << q.qid << " entry " << i << " ended: " << strerror(-res);
    }
    if (e.live) --q.live;
    e.live = false;
  };

  for (size_t i = 0; i < q.entries.size(); ++i) {
    Submit(q, i, kCmdRegister);
    q.entries[i].live = true;
  }
  q.live = q.entries.size();
  read_events();
  int rc = q.ring->Enter(0);
  // A refused registration completes at once; an accepted one only with a request.
  q.ring->ForEachCompletion([&](uint64_t tag, int res) { handle(tag, res); });
  {
    std::lock_guard l(mu_);
    ++registered_;
    if (rc < 0 || q.live < q.entries.size()) ++register_failed_;
    cv_.notify_all();
  }
  if (rc < 0) LOG(WARNING) << "fuse: ring " << q.qid << " registration: " << strerror(-rc);

  // Submits our replies, then waits for the next request. Polling first: a requester
  // woken by our reply while this CPU is busy and the other idle is put on the idle one, at
  // the price of waking it (an IPI and a halt exit here, DESIGN.md); and so is this thread
  // when the next request comes and it sleeps. Polling (yielding, so the requester runs
  // here) keeps the CPU from going idle between requests, which a workload issuing them one
  // after another (tar, find) does every few microseconds.
  auto next = [&]() -> int {
    if (options_.spin.count() > 0) {
      const auto until = std::chrono::steady_clock::now() + options_.spin;
      do {
        int r = q.ring->Enter(0, /*run=*/true);
        if (r < 0 || q.ring->Ready() > 0) return r;
        sched_yield();
      } while (std::chrono::steady_clock::now() < until);
    }
    return q.ring->Enter(1);
  };
  while (rc >= 0 && q.live > 0) {
    rc = next();
    if (rc == -EINTR) {
      rc = 0;
      continue;
    }
    if (rc < 0) {
      LOG(ERROR) << "fuse: ring " << q.qid << " failed: " << strerror(-rc);
      break;
    }
    batch.clear();
    q.ring->ForEachCompletion([&](uint64_t tag, int res) { batch.emplace_back(tag, res); });
    for (size_t k = 0; k < batch.size(); ++k) {
      handle(batch[k].first, batch[k].second);
      // A requester waits for each reply: send it now if others are still to be served.
      if (k + 1 < batch.size()) q.ring->Enter(0);
    }
  }
  // Hand-offs still own entries (and q): wait for them before the ring and buffers go.
  while (q.handoffs.load(std::memory_order_acquire) > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void UringQueues::Serve(Queue& q, size_t i) {
  Queue::Entry& e = q.entries[i];
  ReqHeader& h = *e.header;
  fuse_in_header in;
  std::memcpy(&in, h.in_out, sizeof(in));
  e.commit_id = h.ent.commit_id;
  const uint32_t psz = h.ent.payload_sz;
  if (in.opcode < kCounted) received_[in.opcode].fetch_add(1, std::memory_order_relaxed);
  // The request's first argument is in op_in, the rest in the payload; in.len counts all.
  if (psz > options_.payload || in.len < sizeof(in) + psz ||
      in.len - sizeof(in) - psz > sizeof(h.op_in)) {
    LOG(ERROR) << "fuse: malformed ring request (opcode " << in.opcode << ", len " << in.len
               << ", payload " << psz << ")";
    ReplyError(h, in.unique, EIO);
    return Submit(q, i, kCmdCommitAndFetch);
  }
  if (options_.may_block && options_.may_block(in.opcode)) {
    q.handoffs.fetch_add(1, std::memory_order_relaxed);
    try {
      std::thread([this, &q, i] {
        ServeNow(q, i);
        {
          std::lock_guard l(q.done_mu);
          q.done.push_back(i);
        }
        uint64_t one = 1;
        (void)!write(q.efd, &one, sizeof(one));
        q.handoffs.fetch_sub(1, std::memory_order_release);  // Last touch of q.
      }).detach();
      return;
    } catch (const std::system_error& err) {
      q.handoffs.fetch_sub(1, std::memory_order_relaxed);
      LOG(WARNING) << "fuse: cannot hand a request off (" << err.what() << "): serving it here";
    }
  }
  ServeNow(q, i);
  Submit(q, i, kCmdCommitAndFetch);
}

void UringQueues::ServeNow(Queue& q, size_t i) {
  Queue::Entry& e = q.entries[i];
  ReqHeader& h = *e.header;
  fuse_in_header in;
  std::memcpy(&in, h.in_out, sizeof(in));
  const uint32_t psz = h.ent.payload_sz;
  const size_t arg0 = in.len - sizeof(in) - psz;
  char* payload = q.Payload(e);
  char* start = payload - arg0 - sizeof(in);
  std::memcpy(start, &in, sizeof(in));
  std::memcpy(start + sizeof(in), h.op_in, arg0);
  fuse_buf buf{};
  buf.mem = start;
  buf.size = in.len;
  RingReply reply;
  reply.unique = in.unique;
  reply.out_header = h.in_out;
  reply.payload = payload;
  reply.capacity = options_.payload;
  reply.payload_len = &h.ent.payload_sz;
  SetRingReply(&reply);
  fuse_session_process_buf(se_, &buf);
  SetRingReply(nullptr);
  if (!reply.replied) {
    // Every handler replies before it returns; a request left unanswered would hang its caller.
    LOG(ERROR) << "fuse: no reply to ring request (opcode " << in.opcode << ")";
    ReplyError(h, in.unique, EIO);
  }
}

void UringQueues::Submit(Queue& q, size_t i, uint32_t cmd) {
  Queue::Entry& e = q.entries[i];
  io_uring_sqe* sqe = q.ring->NextSqe();
  // Each entry has at most one command in flight, and the ring has depth + 2 slots.
  CHECK(sqe != nullptr) << "a ring entry without a submission slot";
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = dev_fd_;
  sqe->cmd_op = cmd;
  sqe->user_data = i + 2;
  if (cmd == kCmdRegister) {
    sqe->addr = reinterpret_cast<uint64_t>(e.iov);
    sqe->len = 2;
  }
  CmdReq c{};
  c.commit_id = cmd == kCmdRegister ? 0 : e.commit_id;
  c.qid = static_cast<uint16_t>(q.qid);
  std::memcpy(sqe->cmd, &c, sizeof(c));
  e.last = cmd;
}

}  // namespace sentry::fuse
