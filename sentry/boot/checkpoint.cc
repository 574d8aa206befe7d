#include "sentry/boot/checkpoint.h"

#include <fcntl.h>

#include <algorithm>
#include <map>

#include "sentry/fs/overlay/overlay.h"
#include "sentry/fs/tmpfs/tmpfs.h"
#include "sentry/vfs/vfs.h"

namespace sentry::boot {

using p9::Errno;
using p9::Result;

namespace {

// The tmpfs upper of an --overlay mount, or null.
std::shared_ptr<vfs::Filesystem> UpperOf(const vfs::Mount& m) {
  auto ov = std::dynamic_pointer_cast<fs::OverlayFs>(m.fs);
  if (!ov) return nullptr;
  auto up = ov->upper();
  return std::dynamic_pointer_cast<fs::Tmpfs>(up) ? up : nullptr;
}

std::string MountPath(vfs::MountNamespace& ns, const vfs::Mount& m) {
  if (!m.parent) return "/";
  return ns.PathOf(vfs::VirtualDentry{m.parent, m.mountpoint});
}

Result<void> SaveTree(vfs::Vfs& v, const std::string& rel, p9fs::LayerSnapshot* out) {
  std::string abs = "/" + rel;
  P9_ASSIGN_OR_RETURN(vfs::Attr a, v.Stat(v.root(), abs, false));
  p9fs::FileSnapshot* f = out->add_files();
  f->set_path(rel);
  f->set_mode(a.mode);
  f->set_uid(a.uid);
  f->set_gid(a.gid);
  f->set_rdev(a.rdev);
  f->set_atime_sec(a.atime.tv_sec);
  f->set_atime_nsec(a.atime.tv_nsec);
  f->set_mtime_sec(a.mtime.tv_sec);
  f->set_mtime_nsec(a.mtime.tv_nsec);
  if (S_ISLNK(a.mode)) {
    P9_ASSIGN_OR_RETURN(std::string t, v.Readlink(v.root(), abs));
    f->set_target(t);
    return p9::Ok();
  }
  P9_ASSIGN_OR_RETURN(std::vector<std::string> names, v.ListXattr(v.root(), abs));
  for (const auto& n : names) {
    P9_ASSIGN_OR_RETURN(std::string val, v.GetXattr(v.root(), abs, n));
    (*f->mutable_xattrs())[n] = val;
  }
  if (S_ISREG(a.mode)) {
    P9_ASSIGN_OR_RETURN(auto h, v.Open(v.root(), abs, O_RDONLY));
    std::string data(a.size, '\0');
    size_t done = 0;
    while (done < data.size()) {
      P9_ASSIGN_OR_RETURN(size_t n, h->ReadAt(std::span<char>(data.data() + done, data.size() - done), done));
      if (n == 0) break;
      done += n;
    }
    data.resize(done);
    f->set_data(std::move(data));
  } else if (S_ISDIR(a.mode)) {
    P9_ASSIGN_OR_RETURN(std::vector<vfs::DirEntry> ents, v.ListDir(v.root(), abs));
    std::sort(ents.begin(), ents.end(),
              [](const auto& x, const auto& y) { return x.name < y.name; });
    for (const auto& e : ents) {
      if (e.name == "." || e.name == "..") continue;
      P9_RETURN_IF_ERROR(SaveTree(v, rel.empty() ? e.name : rel + "/" + e.name, out));
    }
  }
  return p9::Ok();
}

Result<void> RestoreFile(vfs::Vfs& v, const p9fs::FileSnapshot& f) {
  std::string abs = "/" + f.path();
  uint32_t type = f.mode() & S_IFMT;
  // Boot may already have put directories in the upper layer (mkdirAll of mount points);
  // the saved state wins over anything else it finds there.
  if (!f.path().empty()) {
    auto existing = v.Stat(v.root(), abs, false);
    if (existing.has_value() && !(S_ISDIR(existing->mode) && type == S_IFDIR)) {
      P9_RETURN_IF_ERROR(S_ISDIR(existing->mode) ? v.Rmdir(v.root(), abs)
                                                 : v.Unlink(v.root(), abs));
      existing = Errno(ENOENT);
    }
    if (existing.has_value()) {
      // A directory already there: only its attributes are restored below.
    } else if (type == S_IFDIR) {
      P9_RETURN_IF_ERROR(v.Mkdir(v.root(), abs, f.mode() & 07777));
    } else if (type == S_IFLNK) {
      P9_RETURN_IF_ERROR(v.Symlink(v.root(), f.target(), abs));
    } else if (type == S_IFREG) {
      P9_ASSIGN_OR_RETURN(auto h, v.Open(v.root(), abs, O_WRONLY | O_CREAT | O_EXCL, f.mode() & 07777));
      P9_RETURN_IF_ERROR(h->WriteAt(std::span<const char>(f.data().data(), f.data().size()), 0));
    } else {
      P9_RETURN_IF_ERROR(v.Mknod(v.root(), abs, f.mode(), f.rdev()));
    }
  }
  if (type == S_IFLNK) return p9::Ok();
  for (const auto& [k, val] : f.xattrs()) {
    P9_RETURN_IF_ERROR(v.SetXattr(v.root(), abs, k, val, 0));
  }
  vfs::SetAttrRequest r;
  r.mask = vfs::SetAttrRequest::kMode | vfs::SetAttrRequest::kUid | vfs::SetAttrRequest::kGid |
           vfs::SetAttrRequest::kAtime | vfs::SetAttrRequest::kMtime;
  r.mode = f.mode() & 07777;
  r.uid = f.uid();
  r.gid = f.gid();
  r.atime = {static_cast<time_t>(f.atime_sec()), static_cast<long>(f.atime_nsec())};
  r.mtime = {static_cast<time_t>(f.mtime_sec()), static_cast<long>(f.mtime_nsec())};
  return v.SetAttr(v.root(), abs, r, false);
}

}  // namespace

Result<p9fs::Checkpoint> SaveOverlays(vfs::MountNamespace& ns, std::string* error) {
  p9fs::Checkpoint cp;
  for (const auto& m : ns.AllMounts()) {
    auto upper = UpperOf(*m);
    if (!upper) continue;
    P9_ASSIGN_OR_RETURN(auto uns, vfs::MountNamespace::Create(upper, {}, "upper"));
    vfs::Vfs v(uns);
    p9fs::LayerSnapshot* layer = cp.add_layers();
    layer->set_mount_path(MountPath(ns, *m));
    layer->set_device(m->source);
    auto r = SaveTree(v, "", layer);
    if (!r.has_value()) {
      if (error) *error = "saving the overlay at " + layer->mount_path() + ": " + r.error().name();
      return r.error();
    }
  }
  return cp;
}

Result<void> RestoreOverlays(vfs::MountNamespace& ns, const p9fs::Checkpoint& cp,
                             std::string* error) {
  std::map<std::string, std::shared_ptr<vfs::Filesystem>> uppers;
  for (const auto& m : ns.AllMounts()) {
    if (auto up = UpperOf(*m)) uppers[MountPath(ns, *m)] = up;
  }
  for (const auto& layer : cp.layers()) {
    auto it = uppers.find(layer.mount_path());
    if (it == uppers.end()) {
      if (error) *error = "the checkpoint has an overlay at " + layer.mount_path() +
                          " but the restored sandbox has none there";
      return Errno(EINVAL);
    }
    P9_ASSIGN_OR_RETURN(auto uns, vfs::MountNamespace::Create(it->second, {}, "upper"));
    vfs::Vfs v(uns);
    for (const auto& f : layer.files()) {
      auto r = RestoreFile(v, f);
      if (!r.has_value()) {
        if (error) *error = "restoring " + layer.mount_path() + " " + f.path() + ": " + r.error().name();
        return r.error();
      }
    }
  }
  return p9::Ok();
}

}  // namespace sentry::boot
