// gofer: the trusted host-side 9P2000.L file server.
//
//   gofer --config=FILE|--config-fd=N --io-fds=A,B,...   serve each mount of a GoferConfig on
//                                                         its inherited socket (runsc's shape)
//   gofer --root=DIR [--read-only] --listen=unix:PATH|tcp:HOST:PORT
//                                                         serve one directory to any client
//
// In io-fd mode the gofer exits 0 once every connection is gone (the sandbox exited).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "gflags/gflags.h"
#include "glog/logging.h"
#include "gofer/attach_point.h"
#include "gofer/jail.h"
#include "gofer/seccomp.h"
#include "google/protobuf/text_format.h"
#include "p9/server.h"
#include "p9/socket_util.h"
#include "proto/gofer_config.pb.h"

DEFINE_string(config, "", "GoferConfig file (binary protobuf, or text format if it ends in .txtpb)");
DEFINE_int32(config_fd, -1, "Inherited fd to read a binary GoferConfig from");
DEFINE_string(io_fds, "", "Comma-separated inherited socket fds, one per mount, in config order");
DEFINE_string(root, "", "With --listen: the directory to serve");
DEFINE_bool(read_only, false, "With --listen: refuse every mutation with EROFS");
DEFINE_string(listen, "", "unix:PATH or tcp:HOST:PORT: serve --root to external clients");
DEFINE_int32(threads, 0, "Threads per connection, at most (0: 16)");
DEFINE_uint32(spin_us, 50,
              "Poll for the next request this many microseconds before sleeping (0..1000; 0: "
              "never). Cheaper than being woken when requests come in quick succession.");
DEFINE_uint32(max_msize, p9::kMaxMsize, "Largest msize the gofer accepts");
DEFINE_uint64(max_fids, 1u << 20, "Fids per connection");
DEFINE_uint64(max_inflight, 1024, "Requests in flight per connection");
DEFINE_bool(jail, true,
            "Once the served trees are open, pivot_root into an empty root (only /proc) and drop "
            "capabilities file serving does not need (as root)");
DEFINE_bool(seccomp, true, "After start-up, allow only the system calls serving needs (EPERM else)");

namespace gofer {
namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::cerr << "gofer: " << msg << std::endl;
  std::exit(1);
}

// Once the attach points are open and before any thread exists: the host's tree goes away.
void Jail() {
  if (!FLAGS_jail) return;
  if (geteuid() != 0) {
    LOG(WARNING) << "gofer: not root: serving without an empty root (--jail needs root)";
    return;
  }
  std::string error;
  if (!EnterEmptyRoot(&error).has_value()) Die(error);
}

// Once everything is open and serving: from here on the gofer needs no new sockets, no exec,
// no privilege or namespace change (gofer/seccomp.h).
void Confine() {
  if (!FLAGS_seccomp) return;
  std::string error;
  if (!InstallSeccompFilter(&error).has_value()) Die(error);
}

p9fs::GoferConfig ReadConfig() {
  p9fs::GoferConfig cfg;
  if (FLAGS_config_fd >= 0) {
    auto data = p9::ReadToEnd(FLAGS_config_fd);
    if (!data.has_value()) Die(std::string("reading --config-fd: ") + data.error().name());
    close(FLAGS_config_fd);
    if (!cfg.ParseFromString(*data)) Die("--config-fd: not a valid GoferConfig");
    return cfg;
  }
  std::ifstream in(FLAGS_config, std::ios::binary);
  if (!in) Die("cannot read --config " + FLAGS_config);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string data = ss.str();
  bool ok = FLAGS_config.ends_with(".txtpb")
                ? google::protobuf::TextFormat::ParseFromString(data, &cfg)
                : cfg.ParseFromString(data);
  if (!ok) Die("--config " + FLAGS_config + ": not a valid GoferConfig");
  return cfg;
}

int Main() {
  signal(SIGPIPE, SIG_IGN);
  p9::RaiseFdLimit();  // One host fd per file the client knows.
  p9::ServerOptions opts{.max_msize = FLAGS_max_msize,
                         .threads = static_cast<size_t>(FLAGS_threads),
                         .max_fids = FLAGS_max_fids,
                         .max_inflight = FLAGS_max_inflight,
                         .spin = std::chrono::microseconds(FLAGS_spin_us)};
  if (opts.max_inflight == 0 || opts.max_inflight > 65535) Die("--max-inflight: 1..65535");
  if (opts.max_msize < p9::kMinMsize) Die("--max-msize below 4096");
  if (FLAGS_spin_us > 1000) Die("--spin_us: 0..1000");
  auto qids = std::make_shared<QidMap>();

  if (!FLAGS_listen.empty()) {
    if (FLAGS_root.empty()) Die("--listen needs --root");
    char* real = realpath(FLAGS_root.c_str(), nullptr);
    if (real == nullptr) Die("--root " + FLAGS_root + ": " + strerror(errno));
    FLAGS_root = real;
    free(real);
    auto ap = AttachPoint::Open(FLAGS_root, FLAGS_read_only, qids);
    if (!ap.has_value()) Die("--root " + FLAGS_root + ": " + ap.error().name());
    HostAttacher attacher({*ap});
    auto l = p9::ListenAddress(FLAGS_listen);
    if (!l.has_value()) Die("--listen " + FLAGS_listen + ": " + l.error().name());
    // The socket file's directory, held so the file can be removed from inside the jail.
    int sock_dir = -1;
    std::string sock_name;
    if (FLAGS_listen.starts_with("unix:")) {
      std::string path = FLAGS_listen.substr(5);
      size_t slash = path.rfind('/');
      std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
      sock_name = slash == std::string::npos ? path : path.substr(slash + 1);
      sock_dir = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    Jail();
    // Blocked before any server thread exists, so every thread inherits the mask and the
    // signal waits for sigwait below. (Blocked later, a SIGTERM arriving before this thread
    // reached sigwait went to a server thread and killed the process: a CI failure.)
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    p9::Server server(attacher, opts);
    server.Listen(std::move(*l));
    Confine();
    LOG(INFO) << "gofer: serving " << FLAGS_root << " on " << FLAGS_listen;
    int sig = 0;
    sigwait(&set, &sig);
    LOG(INFO) << "gofer: signal " << sig << ", stopping";
    server.Stop();
    if (sock_dir >= 0) unlinkat(sock_dir, sock_name.c_str(), 0);
    return 0;
  }

  if (FLAGS_config.empty() && FLAGS_config_fd < 0) Die("need --config/--config-fd or --listen");
  p9fs::GoferConfig cfg = ReadConfig();
  std::string error;
  auto parsed = p9::ParseSocketFds(FLAGS_io_fds, &error);
  if (!parsed.has_value()) Die("--io-fds: " + error);
  std::vector<int> fds = std::move(*parsed);
  if (static_cast<size_t>(cfg.mounts_size()) != fds.size()) {
    Die("config has " + std::to_string(cfg.mounts_size()) + " mounts but --io-fds has " +
        std::to_string(fds.size()) + " fds");
  }
  std::vector<std::unique_ptr<HostAttacher>> attachers;
  for (const auto& m : cfg.mounts()) {
    auto ap = AttachPoint::Open(m.path(), m.read_only(), qids);
    if (!ap.has_value()) Die("mount " + m.destination() + ": " + m.path() + ": " + ap.error().name());
    attachers.push_back(HostAttacher::ForOne(*ap));
  }
  Jail();
  HostAttacher unused({});
  p9::Server server(unused, opts);
  for (size_t i = 0; i < fds.size(); ++i) {
    server.AddConnection(p9::UniqueFd(fds[i]), attachers[i].get());
  }
  Confine();
  // Every connection gone: the sandbox is done with us.
  while (!server.WaitNoConnections(std::chrono::hours(24))) {
  }
  server.Stop();
  return 0;
}

}  // namespace
}  // namespace gofer

int main(int argc, char** argv) {
  // Accept --io-fds as runsc spells it (gflags wants underscores).
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.starts_with("--")) {
      size_t end = a.find('=');
      for (size_t j = 2; j < (end == std::string::npos ? a.size() : end); ++j) {
        if (argv[i][j] == '-') argv[i][j] = '_';
      }
    }
  }
  gflags::SetUsageMessage("the host-side 9P2000.L file server");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  return gofer::Main();
}
