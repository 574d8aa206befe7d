#include "sentry/boot/mounts.h"

#include <fstream>
#include <sstream>

#include "google/protobuf/util/json_util.h"

namespace sentry::boot {

using p9::Errno;
using p9::Result;

Result<p9fs::OciSpec> ParseSpecJson(const std::string& json, std::string* error) {
  p9fs::OciSpec spec;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(json, &spec, opts);
  if (!st.ok()) {
    if (error) *error = "malformed config.json: " + std::string(st.message());
    return Errno(EINVAL);
  }
  return spec;
}

Result<p9fs::OciSpec> LoadBundleSpec(const std::string& bundle, std::string* error) {
  std::string path = bundle + "/config.json";
  std::ifstream in(path);
  if (!in) {
    if (error) *error = "cannot read " + path;
    return Errno(ENOENT);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto spec = ParseSpecJson(ss.str(), error);
  if (!spec.has_value() && error) *error = path + ": " + *error;
  return spec;
}

std::string CleanPath(std::string_view p) {
  bool abs = !p.empty() && p.front() == '/';
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t end = p.find('/', pos);
    if (end == std::string_view::npos) end = p.size();
    std::string_view c = p.substr(pos, end - pos);
    if (c == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!abs) {
        out.emplace_back("..");
      }
    } else if (!c.empty() && c != ".") {
      out.emplace_back(c);
    }
    pos = end + 1;
  }
  std::string r = abs ? "/" : "";
  for (size_t i = 0; i < out.size(); ++i) r += (i ? "/" : "") + out[i];
  return r.empty() ? "." : r;
}

bool IsSupportedDevMount(const p9fs::OciMount& m) {
  // Our /dev provides these; a spec mount over them would hide ours.
  static const char* const kProvided[] = {"/dev/fd",     "/dev/stdin",  "/dev/stdout",
                                          "/dev/stderr", "/dev/null",   "/dev/zero",
                                          "/dev/full",   "/dev/random", "/dev/urandom",
                                          "/dev/shm",    "/dev/pts",    "/dev/ptmx"};
  std::string dst = CleanPath(m.destination());
  if (dst == "/dev") return false;
  for (const char* d : kProvided) {
    if (dst == d || dst.starts_with(std::string(d) + "/")) return false;
  }
  return true;
}

namespace {

p9fs::OciMount MakeMount(const char* type, const char* dest) {
  p9fs::OciMount m;
  m.set_type(type);
  m.set_destination(dest);
  return m;
}

}  // namespace

Mounts CompileMounts(const p9fs::OciSpec& spec, std::vector<std::string>* warnings) {
  Mounts mounts;
  mounts.push_back(MakeMount("devtmpfs", "/dev"));
  mounts.push_back(MakeMount("devpts", "/dev/pts"));
  bool proc = false, sys = false, tmp = false;
  for (const auto& m : spec.mounts()) {
    if (!IsSupportedDevMount(m)) {
      if (warnings) warnings->push_back("ignoring dev mount at " + m.destination());
      continue;
    }
    mounts.push_back(m);
    std::string d = CleanPath(m.destination());
    proc |= d == "/proc";
    sys |= d == "/sys";
    tmp |= d == "/tmp";
  }
  // Mounted even when the spec does not ask (the spec says we SHOULD for proc and sys; a
  // tmpfs /tmp helps programs that mknod there). They go right after the root, so that spec
  // mounts below them land on top.
  Mounts mandatory;
  if (!proc) mandatory.push_back(MakeMount("proc", "/proc"));
  if (!sys) mandatory.push_back(MakeMount("sysfs", "/sys"));
  if (!tmp) mandatory.push_back(MakeMount("tmpfs", "/tmp"));
  mounts.insert(mounts.begin(), mandatory.begin(), mandatory.end());
  return mounts;
}

vfs::MountFlags MountFlagsOf(const google::protobuf::RepeatedPtrField<std::string>& options,
                             std::vector<std::string>* warnings) {
  vfs::MountFlags f;
  for (const auto& o : options) {
    if (o == "rw") {
      f.read_only = false;
    } else if (o == "ro") {
      f.read_only = true;
    } else if (o == "noatime") {
      f.noatime = true;
    } else if (warnings) {
      warnings->push_back("ignoring unknown mount option " + o);
    }
  }
  return f;
}

Result<std::vector<std::string>> FilterOptions(
    const google::protobuf::RepeatedPtrField<std::string>& options,
    const std::vector<std::string>& allowed, std::vector<std::string>* warnings,
    std::string* error) {
  std::vector<std::string> out;
  for (const auto& o : options) {
    size_t eq = o.find('=');
    if (eq != std::string::npos && o.find('=', eq + 1) != std::string::npos) {
      if (error) *error = "invalid mount option " + o;
      return Errno(EINVAL);
    }
    std::string key = o.substr(0, eq);
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
      out.push_back(o);
    } else if (warnings) {
      warnings->push_back("ignoring unsupported option " + key);
    }
  }
  return out;
}

std::vector<std::string> Subtargets(const std::string& root, const Mounts& mounts) {
  std::string r = CleanPath(root);
  if (r.back() != '/') r += '/';
  std::vector<std::string> out;
  for (const auto& m : mounts) {
    std::string t = CleanPath(m.destination());
    if (t.starts_with(r) && t.size() > r.size()) out.push_back(t.substr(r.size()));
  }
  return out;
}

std::string MountDevice(const p9fs::OciMount& m) {
  // Unique per mount and stable across save/restore: it names the connection.
  if (m.type() == "bind") return "9pfs-" + m.destination();
  return "none";
}

std::string P9MountOptions(const p9fs::RuntimeConfig& config, int fd) {
  std::string s = "trans=fd,rfdno=" + std::to_string(fd) + ",wfdno=" + std::to_string(fd) +
                  ",privateunixsocket=true";
  // Only shared access names a policy; exclusive access takes the 9p default (fscache).
  if (config.file_access() == p9fs::RuntimeConfig::SHARED) s += ",cache=remote_revalidating";
  return s;
}

Result<int> FdDispenser::Remove(const std::string& for_what, std::string* error) {
  if (next_ == fds_.size()) {
    if (error) {
      *error = "no io fd left for " + for_what + " (" + std::to_string(fds_.size()) +
               " given): the spec has more 9P mounts than the launcher passed fds";
    }
    return Errno(EINVAL);
  }
  return fds_[next_++];
}

Result<MountPlan> PlanMount(const p9fs::RuntimeConfig& config, const p9fs::OciMount& m,
                            FdDispenser& fds, std::vector<std::string>* warnings,
                            std::string* error) {
  MountPlan p;
  const std::string& t = m.type();
  if (t == "devpts" || t == "devtmpfs" || t == "proc" || t == "sysfs") {
    p.fs_name = t;
  } else if (t == "none") {
    p.fs_name = "sysfs";
  } else if (t == "tmpfs") {
    p.fs_name = "tmpfs";
    P9_ASSIGN_OR_RETURN(std::vector<std::string> opts,
                        FilterOptions(m.options(), {"mode", "uid", "gid"}, warnings, error));
    for (size_t i = 0; i < opts.size(); ++i) p.data += (i ? "," : "") + opts[i];
  } else if (t == "bind") {
    switch (config.file_access()) {
      case p9fs::RuntimeConfig::SHARED:
      case p9fs::RuntimeConfig::EXCLUSIVE: {
        P9_ASSIGN_OR_RETURN(int fd, fds.Remove("bind mount " + m.destination(), error));
        p.fs_name = "9p";
        p.data = P9MountOptions(config, fd);
        break;
      }
      case p9fs::RuntimeConfig::DIRECT:
        p.fs_name = "direct";
        p.data = "root=" + m.source();
        break;
      default:
        if (error) *error = "invalid file access type";
        return Errno(EINVAL);
    }
    p.use_overlay = config.overlay() && !MountFlagsOf(m.options(), nullptr).read_only;
  } else if (warnings) {
    warnings->push_back("ignoring unknown filesystem type " + t + " at " + m.destination());
  }
  return p;
}

std::vector<p9fs::GoferMount> GoferMounts(const p9fs::OciSpec& spec,
                                          const p9fs::RuntimeConfig& config) {
  std::vector<p9fs::GoferMount> out;
  if (config.file_access() == p9fs::RuntimeConfig::DIRECT) return out;
  p9fs::GoferMount root;
  root.set_path(spec.root().path());
  root.set_read_only(spec.root().readonly() || config.overlay());
  root.set_destination("/");
  out.push_back(root);
  for (const auto& m : CompileMounts(spec, nullptr)) {
    if (m.type() != "bind") continue;
    p9fs::GoferMount g;
    g.set_path(m.source());
    g.set_read_only(MountFlagsOf(m.options(), nullptr).read_only || config.overlay());
    g.set_destination(m.destination());
    out.push_back(g);
  }
  return out;
}

Result<RestoreEnvironment> CreateRestoreEnvironment(const p9fs::OciSpec& spec,
                                                    const p9fs::RuntimeConfig& config,
                                                    FdDispenser& fds, std::string* error) {
  if (config.file_access() == p9fs::RuntimeConfig::DIRECT) {
    if (error) *error = "direct host file access cannot be saved and restored";
    return Errno(EINVAL);
  }
  if (config.file_access() != p9fs::RuntimeConfig::SHARED &&
      config.file_access() != p9fs::RuntimeConfig::EXCLUSIVE) {
    if (error) *error = "invalid file access type";
    return Errno(EINVAL);
  }
  RestoreEnvironment env;
  P9_ASSIGN_OR_RETURN(int fd, fds.Remove("the root", error));
  vfs::MountFlags rf;
  rf.read_only = spec.root().readonly();
  env["9p"].push_back(MountArgs{kRootDevice, rf, P9MountOptions(config, fd)});
  for (const auto& m : CompileMounts(spec, nullptr)) {
    P9_ASSIGN_OR_RETURN(MountPlan p, PlanMount(config, m, fds, nullptr, error));
    if (p.fs_name.empty()) continue;
    env[p.fs_name].push_back(MountArgs{MountDevice(m), MountFlagsOf(m.options(), nullptr), p.data});
  }
  if (!fds.empty()) {
    if (error) *error = std::to_string(fds.remaining()) + " io fds left over: the spec has fewer 9P mounts than fds given";
    return Errno(EINVAL);
  }
  return env;
}

}  // namespace sentry::boot
