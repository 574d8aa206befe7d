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

namespace {

// The memory layer of an overlay. Its files keep their bytes in memory, not in memfds: the
// FUSE frontend passes through only a node's own file system's files, never a layer's.
std::shared_ptr<vfs::Filesystem> UpperLayer() {
  return std::make_shared<fs::Tmpfs>(fs::TmpfsOptions{.memfd_files = 0});
}

// The root file system of a container: 9P (or direct), under it the mount-point tree for
// `mounts`, and the tmpfs overlay if configured.
Result<std::shared_ptr<vfs::Filesystem>> CreateRootFs(const p9fs::OciSpec& spec,
                                                      const p9fs::RuntimeConfig& config,
                                                      const Mounts& mounts, FdDispenser& fds,
                                                      std::string* error) {
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
  P9_ASSIGN_OR_RETURN(std::shared_ptr<fs::OverlayFs> with_tree,
                      fs::OverlayFs::Create(root, fs::MakeMountPointTree(WithMandatory(Subtargets("/", mounts))),
                                              fs::OverlayFs::Kind::kSubmounts));
  root = with_tree;
  if (config.overlay() && !spec.root().readonly()) {
    P9_ASSIGN_OR_RETURN(std::shared_ptr<fs::OverlayFs> ov,
                        fs::OverlayFs::Create(UpperLayer(), root));
    root = ov;
  }
  return root;
}

// mountSubmount: mounts `m` at `dest` (its destination, or below a child's root).
Result<void> MountOne(vfs::MountNamespace& ns,
                      std::shared_ptr<std::weak_ptr<vfs::MountNamespace>> ns_slot,
                      const p9fs::OciSpec& spec, const p9fs::RuntimeConfig& config,
                      FdDispenser& fds, const p9fs::OciMount& m, const Mounts& mounts,
                      const std::string& dest, std::vector<std::string>* warnings,
                      std::string* error) {
  P9_ASSIGN_OR_RETURN(MountPlan p, PlanMount(config, m, fds, warnings, error));
  if (p.fs_name.empty()) return p9::Ok();
  P9_ASSIGN_OR_RETURN(std::shared_ptr<vfs::Filesystem> f, MakeFs(p, m, spec, ns_slot.get(), error));
  if (p.fs_name == "proc") {
    // proc reads the mount table through a weak pointer; tie that slot to the fs object.
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
                        fs::OverlayFs::Create(f, fs::MakeMountPointTree(below),
                                              fs::OverlayFs::Kind::kSubmounts));
    f = t;
  }
  vfs::MountFlags flags = MountFlagsOf(m.options(), nullptr);
  if (p.use_overlay) {
    // All writes go to the tmpfs upper; the bind mount below is only read.
    P9_ASSIGN_OR_RETURN(std::shared_ptr<fs::OverlayFs> ov,
                        fs::OverlayFs::Create(UpperLayer(), f));
    f = ov;
  }
  P9_RETURN_IF_ERROR(MkdirAll(ns, dest, error));
  auto where = ns.Resolve(ns.root(), dest, true);
  if (!where.has_value()) {
    if (error) *error = "mount destination " + dest + ": " + where.error().name();
    return where.error();
  }
  auto r = ns.MountAt(*where, f, flags, MountDevice(m));
  if (!r.has_value()) {
    if (error) *error = "mount at " + dest + ": " + r.error().name();
    return r.error();
  }
  LOG(INFO) << "boot: mounted " << m.type() << " " << m.source() << " at " << dest;
  return p9::Ok();
}

Result<void> AllConsumed(const FdDispenser& fds, std::string* error) {
  if (fds.empty()) return p9::Ok();
  if (error) {
    *error = std::to_string(fds.remaining()) + " io fds not consumed (" +
             std::to_string(fds.used()) + " used): the spec has fewer 9P mounts than fds given";
  }
  return Errno(EINVAL);
}

}  // namespace

Result<BootResult> CreateMountNamespace(const p9fs::OciSpec& spec,
                                        const p9fs::RuntimeConfig& config,
                                        std::vector<int> io_fds, std::string* error) {
  BootResult out;
  FdDispenser fds(std::move(io_fds));
  vfs::MountFlags root_flags;
  root_flags.read_only = spec.root().readonly();
  Mounts mounts = CompileMounts(spec, &out.warnings);
  if (config.multi_container()) {
    // A tmpfs where each child container's root is mounted (newer seed).
    p9fs::OciMount c;
    c.set_type("tmpfs");
    c.set_destination(kChildContainersDir);
    mounts.push_back(c);
  }
  P9_ASSIGN_OR_RETURN(std::shared_ptr<vfs::Filesystem> root,
                      CreateRootFs(spec, config, mounts, fds, error));
  P9_ASSIGN_OR_RETURN(out.ns, vfs::MountNamespace::Create(root, root_flags, kRootDevice));
  auto ns_slot = std::make_shared<std::weak_ptr<vfs::MountNamespace>>(out.ns);
  for (const auto& m : mounts) {
    P9_RETURN_IF_ERROR(MountOne(*out.ns, ns_slot, spec, config, fds, m, mounts, m.destination(),
                                &out.warnings, error));
  }
  P9_RETURN_IF_ERROR(AllConsumed(fds, error));
  return out;
}

Result<vfs::VirtualDentry> CreateChildContainer(const std::shared_ptr<vfs::MountNamespace>& nsp,
                                                const std::string& cid,
                                                const p9fs::OciSpec& spec,
                                                const p9fs::RuntimeConfig& config,
                                                std::vector<int> io_fds,
                                                std::vector<std::string>* warnings,
                                                std::string* error) {
  if (cid.empty() || cid == "." || cid == ".." || cid.find('/') != std::string::npos ||
      cid.find('\0') != std::string::npos) {
    if (error) *error = "invalid container id '" + cid + "'";
    return Errno(EINVAL);
  }
  if (!config.multi_container()) {
    if (error) *error = "child containers need multi_container";
    return Errno(EINVAL);
  }
  vfs::MountNamespace& ns = *nsp;
  std::string croot = std::string(kChildContainersDir) + "/" + cid;
  if (ns.Resolve(ns.root(), croot, false).has_value()) {
    if (error) *error = "container " + cid + " already exists";
    return Errno(EEXIST);
  }
  FdDispenser fds(std::move(io_fds));
  Mounts mounts = CompileMounts(spec, warnings);
  P9_ASSIGN_OR_RETURN(std::shared_ptr<vfs::Filesystem> root,
                      CreateRootFs(spec, config, mounts, fds, error));
  P9_RETURN_IF_ERROR(MkdirAll(ns, croot, error));
  P9_ASSIGN_OR_RETURN(vfs::VirtualDentry where, ns.Resolve(ns.root(), croot, false));
  vfs::MountFlags rf;
  rf.read_only = spec.root().readonly();
  P9_RETURN_IF_ERROR(ns.MountAt(where, root, rf, std::string(kRootDevice) + cid));
  // The child's mounts go below its root; its symlinks resolve from the sandbox root (as in
  // the seed), so a child's absolute symlink on a destination path points outside it.
  auto slot = std::make_shared<std::weak_ptr<vfs::MountNamespace>>(nsp);
  for (const auto& m : mounts) {
    P9_RETURN_IF_ERROR(MountOne(ns, slot, spec, config, fds, m, mounts,
                                croot + CleanPath(m.destination()), warnings, error));
  }
  P9_RETURN_IF_ERROR(AllConsumed(fds, error));
  return ns.Resolve(ns.root(), croot, false);
}

}  // namespace sentry::boot
