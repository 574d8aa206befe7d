#include "sentry/boot/mount_namespace.h"

#include <fcntl.h>
#include <unistd.h>

#include "glog/logging.h"
#include "gofer/attach_point.h"
#include "p9/server.h"
#include "p9/socket_util.h"
#include "sentry/fs/gofer/gofer_fs.h"
#include "sentry/fs/overlay/overlay.h"
#include "sentry/fs/synth/special.h"
#include "sentry/fs/tmpfs/tmpfs.h"
#include "sentry/vfs/vfs.h"

namespace sentry::boot {

using p9::Errno;
using p9::Result;

namespace {

// file_access=direct: the gofer's host backend served in this process over a socketpair,
// mounted like any 9P tree. Owns the server; lives as long as the file system.
class DirectFs : public vfs::Filesystem {
 public:
  static Result<std::shared_ptr<DirectFs>> Create(const std::string& root, bool read_only,
                                                  std::string* error) {
    auto fs = std::shared_ptr<DirectFs>(new DirectFs());
    auto ap = gofer::AttachPoint::Open(root, read_only, nullptr);
    if (!ap.has_value()) {
      if (error) *error = "direct: cannot open " + root + ": " + ap.error().name();
      return ap.error();
    }
    fs->attacher_ = gofer::HostAttacher::ForOne(*ap);
    fs->server_ = std::make_unique<p9::Server>(*fs->attacher_, p9::ServerOptions{.threads = 1});
    P9_ASSIGN_OR_RETURN(auto pair, p9::SocketPair());
    fs->server_->AddConnection(std::move(pair.second));
    fs::GoferMountOptions o;
    o.cache = fs::CachePolicy::kRemoteRevalidating;
    P9_ASSIGN_OR_RETURN(fs->inner_, fs::GoferFs::Create(std::move(pair.first), o));
    return fs;
  }
  std::string type() const override { return "direct"; }
  std::shared_ptr<vfs::Inode> root() override { return inner_->root(); }

 private:
  std::unique_ptr<gofer::HostAttacher> attacher_;
  std::unique_ptr<p9::Server> server_;
  std::shared_ptr<fs::GoferFs> inner_;
};

Result<std::shared_ptr<vfs::Filesystem>> MakeFs(const MountPlan& p, const p9fs::OciMount& m,
                                                const p9fs::OciSpec& spec,
                                                std::weak_ptr<vfs::MountNamespace>* ns_slot,
                                                std::string* error) {
  if (p.fs_name == "devtmpfs") return std::shared_ptr<vfs::Filesystem>(fs::MakeDevFs());
  if (p.fs_name == "devpts") return std::shared_ptr<vfs::Filesystem>(fs::MakeDevptsFs());
  if (p.fs_name == "sysfs") return std::shared_ptr<vfs::Filesystem>(fs::MakeSysFs());
  if (p.fs_name == "proc") {
    auto slot = ns_slot;
    auto mounts = [slot]() {
      std::string out;
      if (auto ns = slot->lock()) {
        for (const auto& mi : ns->Mounts()) {
          out += mi.source + " " + mi.path + " " + mi.type + " " +
                 (mi.flags.read_only ? "ro" : "rw") + " 0 0\n";
        }
      }
      return out;
    };
    return std::shared_ptr<vfs::Filesystem>(fs::MakeProcFs(mounts, spec.hostname()));
  }
  if (p.fs_name == "tmpfs") {
    P9_ASSIGN_OR_RETURN(fs::TmpfsOptions o, fs::ParseTmpfsOptions(p.data, error));
    return std::shared_ptr<vfs::Filesystem>(std::make_shared<fs::Tmpfs>(o));
  }
  if (p.fs_name == "9p") {
    auto g = fs::GoferFs::Mount(p.data, error);
    if (!g.has_value()) {
      if (error) *error = "mount " + m.destination() + ": " + *error;
      return g.error();
    }
    return std::shared_ptr<vfs::Filesystem>(*g);
  }
  if (p.fs_name == "direct") {
    P9_ASSIGN_OR_RETURN(auto d, DirectFs::Create(m.source(), MountFlagsOf(m.options(), nullptr).read_only, error));
    return std::shared_ptr<vfs::Filesystem>(d);
  }
  if (error) *error = "no file system " + p.fs_name;
  return Errno(EINVAL);
}

// Destination paths relative to a mount's root, for its mount-point tree.
std::vector<std::string> WithMandatory(std::vector<std::string> subs) {
  for (const char* d : {"dev", "sys", "proc", "tmp"}) subs.emplace_back(d);
  return subs;
}

}  // namespace

Result<void> MkdirAll(vfs::MountNamespace& ns, const std::string& path, std::string* error) {
  vfs::Vfs v(std::shared_ptr<vfs::MountNamespace>(&ns, [](vfs::MountNamespace*) {}));
  std::string clean = CleanPath(path);
  std::string prefix;
  size_t pos = 1;
  while (pos <= clean.size()) {
    size_t end = clean.find('/', pos);
    if (end == std::string::npos) end = clean.size();
    prefix = clean.substr(0, end);
    pos = end + 1;
    if (prefix.empty()) continue;
    auto r = ns.Resolve(ns.root(), prefix, true);
    if (r.has_value()) continue;
    if (r.error() != Errno(ENOENT)) {
      if (error) *error = "mkdirAll " + path + ": " + prefix + ": " + r.error().name();
      return r.error();
    }
    auto m = v.Mkdir(ns.root(), prefix, 0755);
    if (!m.has_value()) {
      if (error) *error = "mkdirAll " + path + ": cannot create " + prefix + ": " + m.error().name();
      return m.error();
    }
  }
  return p9::Ok();
}

Result<BootResult> CreateMountNamespace(const p9fs::OciSpec& spec,
                                        const p9fs::RuntimeConfig& config,
                                        std::vector<int> io_fds, std::string* error) {
  BootResult out;
  FdDispenser fds(std::move(io_fds));
  vfs::MountFlags root_flags;
  root_flags.read_only = spec.root().readonly();

  // The root file system.
  std::shared_ptr<vfs::Filesystem> root;
  switch (config.file_access()) {
    case p9fs::RuntimeConfig::SHARED:
    case p9fs::RuntimeConfig::EXCLUSIVE: {
      P9_ASSIGN_OR_RETURN(int fd, fds.Remove("the root", error));
      auto g = fs::GoferFs::Mount(P9MountOptions(config, fd), error);
      if (!g.has_value()) {
        if (error) *error = "root mount: " + *error;
        return g.error();
      }
      root = *g;
      break;
    }
    case p9fs::RuntimeConfig::DIRECT: {
      P9_ASSIGN_OR_RETURN(auto d, DirectFs::Create(spec.root().path(), spec.root().readonly(), error));
      root = d;
      break;
    }
    default:
      if (error) *error = "invalid file access type (want shared, exclusive or direct)";
      return Errno(EINVAL);
  }

  // Mount points for every mount, supplied by a read-only tree under the root.
  std::vector<std::string> subs = WithMandatory(Subtargets("/", [&] {
    Mounts ms(spec.mounts().begin(), spec.mounts().end());
    return ms;
  }()));
  P9_ASSIGN_OR_RETURN(std::shared_ptr<fs::OverlayFs> with_tree,
                      fs::OverlayFs::Create(root, fs::MakeMountPointTree(subs), false));
  root = with_tree;
  if (config.overlay() && !spec.root().readonly()) {
    P9_ASSIGN_OR_RETURN(std::shared_ptr<fs::OverlayFs> ov,
                        fs::OverlayFs::Create(std::make_shared<fs::Tmpfs>(), root));
    root = ov;
  }
  P9_ASSIGN_OR_RETURN(out.ns, vfs::MountNamespace::Create(root, root_flags, kRootDevice));
  auto ns_slot = std::make_shared<std::weak_ptr<vfs::MountNamespace>>(out.ns);

  Mounts mounts = CompileMounts(spec, &out.warnings);
  for (const auto& m : mounts) {
    P9_ASSIGN_OR_RETURN(MountPlan p, PlanMount(config, m, fds, &out.warnings, error));
    if (p.fs_name.empty()) continue;
    // The proc file system reads the mount table through a weak pointer owned here.
    P9_ASSIGN_OR_RETURN(std::shared_ptr<vfs::Filesystem> f, MakeFs(p, m, spec, ns_slot.get(), error));
    if (p.fs_name == "proc") {
      // Keep the slot alive as long as the namespace: tie it to the file system object.
      struct Holder : vfs::Filesystem {
        std::shared_ptr<vfs::Filesystem> inner;
        std::shared_ptr<std::weak_ptr<vfs::MountNamespace>> slot;
        std::string type() const override { return inner->type(); }
        std::shared_ptr<vfs::Inode> root() override { return inner->root(); }
      };
      auto h = std::make_shared<Holder>();
      h->inner = f;
      h->slot = ns_slot;
      f = h;
    }
    std::vector<std::string> below = Subtargets(m.destination(), mounts);
    if (!below.empty()) {
      P9_ASSIGN_OR_RETURN(std::shared_ptr<fs::OverlayFs> t,
                          fs::OverlayFs::Create(f, fs::MakeMountPointTree(below), false));
      f = t;
    }
    vfs::MountFlags flags = MountFlagsOf(m.options(), nullptr);
    if (p.use_overlay) {
      // All writes go to the tmpfs upper; the bind mount below is only read.
      P9_ASSIGN_OR_RETURN(std::shared_ptr<fs::OverlayFs> ov,
                          fs::OverlayFs::Create(std::make_shared<fs::Tmpfs>(), f));
      f = ov;
    }
    P9_RETURN_IF_ERROR(MkdirAll(*out.ns, m.destination(), error));
    auto where = out.ns->Resolve(out.ns->root(), m.destination(), true);
    if (!where.has_value()) {
      if (error) *error = "mount destination " + m.destination() + ": " + where.error().name();
      return where.error();
    }
    auto r = out.ns->MountAt(*where, f, flags, MountDevice(m));
    if (!r.has_value()) {
      if (error) *error = "mount at " + m.destination() + ": " + r.error().name();
      return r.error();
    }
    LOG(INFO) << "boot: mounted " << m.type() << " " << m.source() << " at " << m.destination();
  }
  if (!fds.empty()) {
    if (error) {
      *error = std::to_string(fds.remaining()) + " io fds not consumed (" +
               std::to_string(fds.used()) + " used): the spec has fewer 9P mounts than fds given";
    }
    return Errno(EINVAL);
  }
  return out;
}

}  // namespace sentry::boot
