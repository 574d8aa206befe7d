// 9P throughput and latency, side by side with the floors they stand on, in one run.
//
//   bazel run -c opt //bench:p9_bench -- [--benchmark_filter=...] [--benchmark_format=csv]
//
// Floors: socketpair bulk throughput, 64-byte socketpair round trips (both threads on one
// CPU, and on two), native pread of a cached file, native stat. Then our p9 client against
// two servers, each a separate process on a unix socketpair/socket over the same temp tree:
//   ours  the gofer binary (io-fd mode, msize 1 MiB and 4 MiB)
//   diod  Debian's diod, 16 threads (it caps msize at 64 KiB: see the msize counter)
// Reads and writes are sequential over a 64 MiB file, one request of the given size at a
// time (the client splits requests above msize-24 into several Treads). "donated" reads go
// through the host fd the gofer passes with Rlopen. Concurrency runs N threads on one
// connection. The gofer's RSS is measured with 10,000 fids walked.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/socket_util.h"
#include "sentry/runsc/launcher.h"

namespace {

namespace fs = std::filesystem;
constexpr size_t kBigFile = 64 << 20;
constexpr char kDiod[] = "/usr/sbin/diod";

fs::path g_dir;

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

void Unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// ---- Floors ------------------------------------------------------------------------------

void BM_SocketpairBulk(benchmark::State& state) {
  size_t size = static_cast<size_t>(state.range(0));
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  int buf_size = 4 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf_size, sizeof(buf_size));
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf_size, sizeof(buf_size));
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    std::vector<char> b(4 << 20);
    while (read(sv[1], b.data(), b.size()) > 0) {
    }
  });
  std::vector<char> data(size, 'x');
  for (auto _ : state) {
    size_t off = 0;
    while (off < size) off += static_cast<size_t>(write(sv[0], data.data() + off, size - off));
  }
  close(sv[0]);
  reader.join();
  close(sv[1]);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

// The echo side of the 64-byte ping-pong, on `cpu`, until the peer goes.
void Echo64(int fd, int cpu) {
  Pin(cpu);
  char b[64];
  while (read(fd, b, sizeof(b)) == 64) {
    if (write(fd, b, 64) != 64) break;
  }
}

// The timed side, from CPU 0; leaves the calling thread unpinned.
void PingPong64(benchmark::State& state, int fd, bool cross) {
  Pin(0);
  char b[64] = {};
  for (auto _ : state) {
    if (write(fd, b, 64) != 64 || read(fd, b, 64) != 64) state.SkipWithError("io");
  }
  Unpin();
  state.SetLabel(cross ? "cross-cpu" : "same-cpu");
}

// 64-byte ping-pong; arg 0: both threads on CPU 0, arg 1: CPUs 0 and 1.
void BM_SocketpairRtt64(benchmark::State& state) {
  bool cross = state.range(0) != 0;
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  std::thread echo([&] { Echo64(sv[1], cross ? 1 : 0); });
  PingPong64(state, sv[0], cross);
  shutdown(sv[0], SHUT_RDWR);
  echo.join();
  close(sv[0]);
  close(sv[1]);
}

// The same ping-pong with the echo in a child process, as the gofer is: a switch between
// processes also changes address spaces (about 0.5 us more per round trip on one CPU here).
void BM_SocketpairRtt64Process(benchmark::State& state) {
  bool cross = state.range(0) != 0;
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    Echo64(sv[1], cross ? 1 : 0);
    _exit(0);
  }
  close(sv[1]);
  PingPong64(state, sv[0], cross);
  close(sv[0]);
  waitpid(pid, nullptr, 0);
}

void BM_NativePread(benchmark::State& state) {
  size_t size = static_cast<size_t>(state.range(0));
  int fd = open((g_dir / "big").c_str(), O_RDONLY);
  std::vector<char> buf(size);
  uint64_t off = 0;
  for (auto _ : state) {
    if (off + size > kBigFile) off = 0;
    benchmark::DoNotOptimize(pread(fd, buf.data(), size, static_cast<off_t>(off)));
    off += size;
  }
  close(fd);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void BM_NativeStat(benchmark::State& state) {
  std::string p = (g_dir / "small").string();
  struct stat st;
  for (auto _ : state) benchmark::DoNotOptimize(stat(p.c_str(), &st));
}

// ---- 9P peers ----------------------------------------------------------------------------

struct Peer {
  pid_t pid = -1;
  std::unique_ptr<p9::Client> client;
  p9::ClientFile root;
  ~Peer() {
    root = p9::ClientFile();
    client.reset();
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
};

std::string g_gofer;

// How long a waiting side polls before sleeping in the "-spin" peers (both client and gofer).
constexpr int kSpinUs = 50;

// Negotiates a session on `sock` and attaches to the bench tree.
std::unique_ptr<Peer> Attach(std::unique_ptr<Peer> peer, p9::UniqueFd sock, uint32_t msize,
                             bool spin) {
  auto c = p9::Client::Create(std::move(sock), msize);
  if (!c.has_value()) return nullptr;
  if (spin) (*c)->set_spin(std::chrono::microseconds(kSpinUs));
  peer->client = std::move(*c);
  auto r = p9::ClientFile::Attach(*peer->client, g_dir.string());
  if (!r.has_value()) return nullptr;
  peer->root = std::move(*r);
  return peer;
}

// cpu >= 0: the gofer (every thread) runs on that CPU only. spin: the gofer and our client
// poll before sleeping (--spin_us, Client::set_spin).
std::unique_ptr<Peer> StartOurs(uint32_t msize, int cpu, bool spin) {
  auto peer = std::make_unique<Peer>();
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  std::string cfg = (g_dir / "gofer.txtpb").string();
  std::ofstream(cfg) << "mounts { path: \"" << g_dir.string() << "\" destination: \"/\" }\n";
  peer->pid = fork();
  if (peer->pid == 0) {
    if (cpu >= 0) Pin(cpu);
    close(sv[0]);
    std::string fds = "--io-fds=" + std::to_string(sv[1]);
    std::string spin_us = "--spin_us=" + std::to_string(spin ? kSpinUs : 0);
    execl(g_gofer.c_str(), g_gofer.c_str(), ("--config=" + cfg).c_str(), fds.c_str(),
          "--max_msize=4194304", "--minloglevel=2", spin_us.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(sv[1]);
  return Attach(std::move(peer), p9::UniqueFd(sv[0]), msize, spin);
}

// spin: our client polls before sleeping (diod itself has no such option).
std::unique_ptr<Peer> StartDiod(bool spin) {
  if (access(kDiod, X_OK) != 0) return nullptr;
  auto peer = std::make_unique<Peer>();
  std::string sock = (g_dir.parent_path() / (g_dir.filename().string() + ".diod.sock")).string();
  unlink(sock.c_str());
  peer->pid = fork();
  if (peer->pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    execl(kDiod, kDiod, "-f", "-n", "-N", "-t", "16", "-c", "/dev/null", "-l", sock.c_str(), "-e",
          g_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 200; ++i) {
    auto s = p9::ConnectUnix(sock);
    if (s.has_value()) return Attach(std::move(peer), std::move(*s), 4u << 20, spin);
    usleep(20000);
  }
  return nullptr;
}

// One peer per (kind, msize), started on first use and kept for the whole run.
Peer* GetPeer(const std::string& kind, uint32_t msize) {
  static std::map<std::pair<std::string, uint32_t>, std::unique_ptr<Peer>> peers;
  auto& p = peers[{kind, msize}];
  if (!p) {
    // kind: "ours" or "diod", then "-spin" (poll before sleeping), then "-cpuN" (gofer pinned).
    bool spin = kind.find("-spin") != std::string::npos;
    int cpu = -1;
    if (auto at = kind.find("-cpu"); at != std::string::npos) cpu = std::stoi(kind.substr(at + 4));
    p = kind.starts_with("diod") ? StartDiod(spin) : StartOurs(msize, cpu, spin);
  }
  return p.get();
}

// Reads (or writes) `size` bytes at `off`, in requests of at most max_read, one at a time
// or (pipelined: Client::ReadFull, WriteFull) with up to Client::kPipelineDepth in flight.
bool Transfer(const p9::ClientFile& f, p9::Client& c, char* buf, size_t size, uint64_t off,
              bool write, bool pipelined) {
  if (pipelined) {
    auto r = write ? f.WriteFullAt(p9::Bytes(buf, size), off)
                   : f.ReadFullAt(std::span<char>(buf, size), off);
    return r.has_value() && *r == size;
  }
  size_t done = 0;
  while (done < size) {
    size_t n = std::min(size - done, write ? c.max_write() : c.max_read());
    auto r = write ? f.WriteAt(p9::Bytes(buf + done, n), off + done)
                   : f.ReadAt(std::span<char>(buf + done, n), off + done);
    if (!r.has_value() || *r == 0) return false;
    done += *r;
  }
  return true;
}

#define PEER_OR_SKIP(KIND, MSIZE)                                      \
  Peer* peer = GetPeer(KIND, MSIZE);                                   \
  if (peer == nullptr) {                                               \
    state.SkipWithError((std::string(KIND) + " unavailable").c_str()); \
    return;                                                            \
  }                                                                    \
  state.counters["msize"] = peer->client->msize();

void IoBench(benchmark::State& state, const std::string& kind, bool write, bool donated,
             bool pipelined = false) {
  size_t size = static_cast<size_t>(state.range(0));
  uint32_t msize = static_cast<uint32_t>(state.range(1));
  PEER_OR_SKIP(kind, msize);
  auto f = peer->root.Walk({write ? "wfile" : "big"});
  if (!f.has_value()) return state.SkipWithError("walk");
  namespace of = p9::open_flags;
  if (!f->Open(write ? of::kWrOnly : of::kRdOnly).has_value()) return state.SkipWithError("open");
  if (donated && f->donated_fd() < 0) return state.SkipWithError("no donated fd");
  std::vector<char> buf(size, 'w');
  uint64_t off = 0;
  for (auto _ : state) {
    if (off + size > kBigFile) off = 0;
    bool ok = donated ? pread(f->donated_fd(), buf.data(), size, static_cast<off_t>(off)) ==
                            static_cast<ssize_t>(size)
                      : Transfer(*f, *peer->client, buf.data(), size, off, write, pipelined);
    if (!ok) return state.SkipWithError("io");
    off += size;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void BM_Read(benchmark::State& s, std::string kind) { IoBench(s, kind, false, false); }
void BM_ReadPipelined(benchmark::State& s, std::string kind) {
  IoBench(s, kind, false, false, true);
}
void BM_WritePipelined(benchmark::State& s, std::string kind) {
  IoBench(s, kind, true, false, true);
}
void BM_Write(benchmark::State& s, std::string kind) { IoBench(s, kind, true, false); }
// Reads on the donated fd, and native preads of the same file on a host fd, alternately in
// one loop: the ratio of the two (counter native_over_donated, 1.0 = as fast) is measured in
// the same seconds, which this machine's drifting memory bandwidth requires.
void BM_DonatedRead(benchmark::State& state, std::string kind) {
  size_t size = static_cast<size_t>(state.range(0));
  PEER_OR_SKIP(kind, static_cast<uint32_t>(state.range(1)));
  auto f = peer->root.Walk({"big"});
  if (!f.has_value() || !f->Open(p9::open_flags::kRdOnly).has_value()) {
    return state.SkipWithError("open");
  }
  if (f->donated_fd() < 0) return state.SkipWithError("no donated fd");
  int native = open((g_dir / "big").c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<char> buf(size, 'w');
  uint64_t off = 0;
  std::chrono::nanoseconds donated_ns{0}, native_ns{0};
  // Each read its own half of the file (the second read of a range would hit the CPU
  // cache the first just filled), and which goes first alternates.
  const uint64_t half = kBigFile / 2;
  bool donated_first = true;
  for (auto _ : state) {
    if (off + size > half) off = 0;
    auto read = [&](int fd, uint64_t at, std::chrono::nanoseconds& spent) {
      auto t0 = std::chrono::steady_clock::now();
      bool ok = pread(fd, buf.data(), size, static_cast<off_t>(at)) == static_cast<ssize_t>(size);
      spent += std::chrono::steady_clock::now() - t0;
      return ok;
    };
    bool ok = donated_first ? read(f->donated_fd(), off, donated_ns) &&
                                  read(native, half + off, native_ns)
                            : read(native, half + off, native_ns) &&
                                  read(f->donated_fd(), off, donated_ns);
    if (!ok) return state.SkipWithError("io");
    donated_first = !donated_first;
    off += size;
  }
  close(native);
  // No bytes_per_second: the loop's time is both reads'. Rates in GB/s (1e9 bytes).
  state.counters["donated_GBps"] = static_cast<double>(state.iterations() * size) /
                                   static_cast<double>(donated_ns.count());
  state.counters["native_GBps"] = static_cast<double>(state.iterations() * size) /
                                  static_cast<double>(native_ns.count());
  state.counters["native_over_donated"] =
      static_cast<double>(donated_ns.count()) / static_cast<double>(native_ns.count());
}

void BM_Getattr(benchmark::State& state, std::string kind) {
  PEER_OR_SKIP(kind, 1u << 20);
  auto f = peer->root.Walk({"small"});
  if (!f.has_value()) return state.SkipWithError("walk");
  for (auto _ : state) {
    if (!f->GetAttr().has_value()) return state.SkipWithError("getattr");
  }
}

// Tgetattr with the client on CPU 0 and the gofer pinned to CPU 0 (arg 0) or CPU 1 (arg 1):
// the same placements as floor/socketpair_rtt64.
void BM_GetattrPinned(benchmark::State& state, std::string base) {
  bool cross = state.range(0) != 0;
  std::string kind = base + (cross ? "-cpu1" : "-cpu0");
  PEER_OR_SKIP(kind, 1u << 20);
  auto f = peer->root.Walk({"small"});
  if (!f.has_value()) return state.SkipWithError("walk");
  Pin(0);
  for (auto _ : state) {
    if (!f->GetAttr().has_value()) return state.SkipWithError("getattr");
  }
  Unpin();
  state.SetLabel(cross ? "cross-cpu" : "same-cpu");
}

void BM_Walk(benchmark::State& state, std::string kind) {
  PEER_OR_SKIP(kind, 1u << 20);
  std::vector<std::string> names;
  for (int i = 0; i < state.range(0); ++i) names.push_back(std::string(1, static_cast<char>('a' + i)));
  for (auto _ : state) {
    auto f = peer->root.Walk(names);  // Walk + Clunk: one fid's life.
    if (!f.has_value()) return state.SkipWithError("walk");
  }
  state.SetLabel(std::to_string(names.size()) + " names, incl. clunk");
}

// Resolving a path and stating its end: Twalk then Tgetattr (plain 9P2000.L, two round
// trips), or one Twalkgetattr (our dialect). range(0) names, range(1) 1 for Twalkgetattr.
void BM_ResolveStat(benchmark::State& state) {
  PEER_OR_SKIP("ours", 1u << 20);
  std::vector<std::string> names;
  for (int i = 0; i < state.range(0); ++i) names.push_back(std::string(1, static_cast<char>('a' + i)));
  bool one = state.range(1) == 1;
  for (auto _ : state) {
    if (one) {
      auto r = peer->root.WalkGetAttr(names);
      if (!r.has_value()) return state.SkipWithError("walkgetattr");
    } else {
      auto f = peer->root.Walk(names);
      if (!f.has_value() || !f->GetAttr().has_value()) return state.SkipWithError("walk");
    }
  }
  state.SetLabel(std::to_string(names.size()) + (one ? " names, Twalkgetattr" : " names, Twalk+Tgetattr"));
}

// One directory of a tree walker's pass ("tree": 20 subdirectories, 40 files): what the
// sandbox asks to list it and to know its subdirectories. range(0): 0 Treaddir (walked fid)
// and a Twalkgetattr per subdirectory, as the sandbox did before Treaddirattr; 1 one
// Treaddirattr (subdirectories' attributes); 2 one Treaddirattr with every entry's.
void BM_ListDir(benchmark::State& state) {
  PEER_OR_SKIP("ours-spin", 1u << 20);
  auto tree = peer->root.Walk({"tree"});
  if (!tree.has_value()) return state.SkipWithError("walk");
  const int mode = static_cast<int>(state.range(0));
  size_t entries = 0;
  for (auto _ : state) {
    if (mode == 0) {
      auto ents = tree->ReaddirAll();
      if (!ents.has_value()) return state.SkipWithError("readdir");
      entries = ents->size();
      for (const auto& e : *ents) {
        if (e.type != DT_DIR || e.name == "." || e.name == "..") continue;
        auto w = tree->WalkGetAttr({e.name});  // Clunked (not waited for) at once.
        if (!w.has_value()) return state.SkipWithError("walkgetattr");
      }
    } else {
      auto l = peer->root.ListAttr({"tree"}, mode == 2 ? p9::readdirattr::kAllEntries : 0);
      if (!l.has_value()) return state.SkipWithError("readdirattr");
      entries = l->entries.size();
    }
  }
  state.SetLabel(std::to_string(entries) + " entries; " +
                 (mode == 0   ? "Treaddir + Twalkgetattr per subdirectory"
                  : mode == 1 ? "Treaddirattr, subdirectories' attributes"
                              : "Treaddirattr, every entry's attributes"));
}

void BM_OpenClunk(benchmark::State& state, std::string kind) {
  PEER_OR_SKIP(kind, 1u << 20);
  auto f = peer->root.Walk({"small"});
  if (!f.has_value()) return state.SkipWithError("walk");
  for (auto _ : state) {
    auto c = f->Walk({});
    if (!c.has_value() || !c->Open(p9::open_flags::kRdOnly).has_value()) return state.SkipWithError("open");
  }
  state.SetLabel("walk(clone)+lopen+clunk");
}

// Opening a walked file as the sandbox does (its inode's fid stays walked): range(0) 0, a
// clone and Tlopen (plain 9P2000.L, two round trips); 1, one Twalkopen (our dialect). The
// opened fid is clunked without waiting, as the sandbox does at close.
void BM_OpenFused(benchmark::State& state) {
  PEER_OR_SKIP("ours-spin", 1u << 20);
  auto f = peer->root.Walk({"small"});
  if (!f.has_value()) return state.SkipWithError("walk");
  const bool fused = state.range(0) == 1;
  for (auto _ : state) {
    if (fused) {
      if (!f->WalkOpen({}, p9::open_flags::kRdOnly).has_value()) {
        return state.SkipWithError("walkopen");
      }
    } else {
      auto c = f->Walk({});
      if (!c.has_value() || !c->Open(p9::open_flags::kRdOnly).has_value()) {
        return state.SkipWithError("open");
      }
    }
  }
  state.SetLabel(fused ? "Twalkopen" : "Twalk(clone)+Tlopen");
}

// Creating a file as the sandbox does (opened, and walked with its attributes for the
// inode), then removing it: range(0) 0, a clone, Tlcreate and a Twalkgetattr of the name;
// 1, one Tlcreateat. Both include the Tunlinkat and the clunks (not waited for).
void BM_CreateFused(benchmark::State& state) {
  PEER_OR_SKIP("ours-spin", 1u << 20);
  auto dir = peer->root.Walk({"scratch"});
  if (!dir.has_value()) return state.SkipWithError("walk");
  const bool fused = state.range(0) == 1;
  const uint32_t flags = p9::open_flags::kRdWr;
  for (auto _ : state) {
    if (fused) {
      auto c = dir->CreateAt("f", flags, 0644);
      if (!c.has_value()) return state.SkipWithError("lcreateat");
    } else {
      auto c = dir->Walk({});
      if (!c.has_value() || !c->Create("f", flags, 0644).has_value()) {
        return state.SkipWithError("lcreate");
      }
      if (!dir->WalkGetAttr({"f"}).has_value()) return state.SkipWithError("walkgetattr");
    }
    if (!dir->UnlinkAt("f").has_value()) return state.SkipWithError("unlinkat");
  }
  state.SetLabel(fused ? "Tlcreateat, incl. Tunlinkat"
                       : "Twalk(clone)+Tlcreate+Twalkgetattr, incl. Tunlinkat");
}

// Getattr from N threads sharing one connection (Threads(N) below).
// utime + stime of every thread of `pid`, in seconds (clock-tick resolution).
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void BM_ConcurrentGetattr(benchmark::State& state, std::string kind) {
  static std::mutex mu;
  Peer* peer;
  {
    std::lock_guard l(mu);
    peer = GetPeer(kind, 1u << 20);
  }
  if (peer == nullptr) return state.SkipWithError("unavailable");
  auto f = peer->root.Walk({"small"});
  if (!f.has_value()) return state.SkipWithError("walk");
  double cpu0 = state.thread_index() == 0 ? CpuSeconds(peer->pid) : 0;
  for (auto _ : state) {
    if (!f->GetAttr().has_value()) return state.SkipWithError("getattr");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    // The server's CPU time (all its threads) per request: the client's cost is the same
    // code for both servers, so this is where they differ.
    double ops = static_cast<double>(state.iterations()) * state.threads();
    state.counters["srv_us_per_op"] = (CpuSeconds(peer->pid) - cpu0) * 1e6 / ops;
  }
}

long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  }
  return -1;
}

void BM_RssWith10kFids(benchmark::State& state, std::string kind) {
  PEER_OR_SKIP(kind, 1u << 20);
  long before = RssKib(peer->pid);
  std::vector<p9::ClientFile> fids;
  for (auto _ : state) {
    fids.clear();
    for (int i = 0; i < 10000; ++i) {
      auto f = peer->root.Walk({"files", "f" + std::to_string(i % 1000)});
      if (!f.has_value()) return state.SkipWithError("walk");
      fids.push_back(std::move(*f));
    }
  }
  state.counters["rss_before_KiB"] = static_cast<double>(before);
  state.counters["rss_10k_fids_KiB"] = static_cast<double>(RssKib(peer->pid));
}

void MakeTree() {
  char tmpl[] = "/tmp/p9_bench.XXXXXX";
  g_dir = mkdtemp(tmpl);
  {
    std::ofstream big(g_dir / "big", std::ios::binary);
    std::string chunk(1 << 20, 'b');
    for (size_t i = 0; i < kBigFile / chunk.size(); ++i) big << chunk;
  }
  {
    std::ofstream w(g_dir / "wfile", std::ios::binary);
    std::string chunk(1 << 20, 'w');
    for (size_t i = 0; i < kBigFile / chunk.size(); ++i) w << chunk;
  }
  std::ofstream(g_dir / "small") << "small";
  fs::path p = g_dir;
  for (char c = 'a'; c < 'a' + 8; ++c) p /= std::string(1, c);
  fs::create_directories(p);
  fs::create_directories(g_dir / "files");
  fs::create_directories(g_dir / "scratch");  // create_fused makes and removes files here.
  for (int i = 0; i < 20; ++i) fs::create_directories(g_dir / "tree" / ("subdirectory" + std::to_string(i)));
  for (int i = 0; i < 40; ++i) std::ofstream(g_dir / "tree" / ("some-file-" + std::to_string(i) + ".txt"));
  for (int i = 0; i < 1000; ++i) std::ofstream(g_dir / "files" / ("f" + std::to_string(i)));
  // Warm the host page cache: every reader measures the cached case.
  std::ifstream in(g_dir / "big", std::ios::binary);
  std::vector<char> b(1 << 20);
  while (in.read(b.data(), static_cast<std::streamsize>(b.size()))) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  g_gofer = sentry::runsc::FindBinary("gofer/gofer");
  if (g_gofer.empty()) {
    fprintf(stderr, "p9_bench: cannot find the gofer binary\n");
    return 1;
  }
  MakeTree();
  // Rates from wall time (UseRealTime): a requester sleeps while its server works, so its
  // CPU time would overstate a round trip's throughput (by 2.5x at 1 MiB here).
  auto sizes = [](benchmark::internal::Benchmark* b, bool msizes) {
    b->UseRealTime();
    for (int64_t s : {4 << 10, 64 << 10, 1 << 20, 4 << 20}) {
      if (msizes) {
        b->Args({s, 1 << 20});
        b->Args({s, 4 << 20});
      } else {
        b->Arg(s);
      }
    }
  };
  sizes(benchmark::RegisterBenchmark("floor/socketpair_bulk", BM_SocketpairBulk), false);
  benchmark::RegisterBenchmark("floor/socketpair_rtt64", BM_SocketpairRtt64)->Arg(0)->Arg(1);
  benchmark::RegisterBenchmark("floor/socketpair_rtt64_process", BM_SocketpairRtt64Process)
      ->Arg(0)->Arg(1);
  sizes(benchmark::RegisterBenchmark("floor/native_pread", BM_NativePread), false);
  benchmark::RegisterBenchmark("floor/native_stat", BM_NativeStat);
  for (std::string kind : {"ours", "diod"}) {
    sizes(benchmark::RegisterBenchmark(("9p/" + kind + "/read").c_str(), BM_Read, kind), true);
    sizes(benchmark::RegisterBenchmark(("9p/" + kind + "/read_pipelined").c_str(),
                                       BM_ReadPipelined, kind),
          true);
    sizes(benchmark::RegisterBenchmark(("9p/" + kind + "/write").c_str(), BM_Write, kind), true);
    sizes(benchmark::RegisterBenchmark(("9p/" + kind + "/write_pipelined").c_str(),
                                       BM_WritePipelined, kind),
          true);
    if (kind == "ours") {
      sizes(benchmark::RegisterBenchmark("9p/ours/donated_read", BM_DonatedRead, kind), true);
    }
    // Reads as the sandbox does them by default: our client (and gofer) poll before sleeping.
    sizes(benchmark::RegisterBenchmark(("9p/" + kind + "-spin/read").c_str(), BM_Read,
                                       kind + "-spin"),
          true);
  }
  // Latency and concurrency, each server also with polling before sleeping ("-spin": our
  // client, and for ours the gofer too).
  for (std::string kind : {"ours", "ours-spin", "diod", "diod-spin"}) {
    const bool ours = kind.starts_with("ours");
    benchmark::RegisterBenchmark(("9p/" + kind + "/getattr").c_str(), BM_Getattr, kind);
    if (ours) {
      benchmark::RegisterBenchmark(("9p/" + kind + "/getattr_pinned").c_str(), BM_GetattrPinned,
                                   kind)->Arg(0)->Arg(1);
    }
    benchmark::RegisterBenchmark(("9p/" + kind + "/walk").c_str(), BM_Walk, kind)->Arg(1)->Arg(8);
    if (kind == "ours") {
      benchmark::RegisterBenchmark("9p/ours/resolve_stat", BM_ResolveStat)
          ->Args({1, 0})->Args({1, 1})->Args({8, 0})->Args({8, 1});
      benchmark::RegisterBenchmark("9p/ours-spin/list_dir", BM_ListDir)->Arg(0)->Arg(1)->Arg(2);
      benchmark::RegisterBenchmark("9p/ours-spin/open_fused", BM_OpenFused)->Arg(0)->Arg(1);
      benchmark::RegisterBenchmark("9p/ours-spin/create_fused", BM_CreateFused)->Arg(0)->Arg(1);
    }
    benchmark::RegisterBenchmark(("9p/" + kind + "/open_clunk").c_str(), BM_OpenClunk, kind);
    benchmark::RegisterBenchmark(("9p/" + kind + "/concurrent_getattr").c_str(), BM_ConcurrentGetattr, kind)
        ->Threads(1)->Threads(2)->Threads(8)->Threads(32)->UseRealTime();
    if (!kind.ends_with("-spin")) {
      benchmark::RegisterBenchmark(("9p/" + kind + "/rss_10k_fids").c_str(), BM_RssWith10kFids, kind)
          ->Iterations(1);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  fs::remove_all(g_dir);
  return 0;
}
