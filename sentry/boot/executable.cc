#include "sentry/boot/executable.h"

#include <sstream>

#include "sentry/vfs/vfs.h"

namespace sentry::boot {

p9::Result<std::string> ResolveExecutable(vfs::MountNamespace& ns, const p9fs::OciProcess& proc,
                                          std::string* error) {
  if (proc.args_size() == 0 || proc.args(0).empty()) {
    if (error) *error = "the spec has no process args";
    return p9::Errno(EINVAL);
  }
  const std::string& argv0 = proc.args(0);
  std::string cwd = proc.cwd().empty() ? "/" : proc.cwd();
  auto is_exec = [&](const std::string& path) {
    auto vd = ns.Resolve(ns.root(), path, true);
    if (!vd.has_value()) return false;
    auto a = vd->dentry->inode()->GetAttr();
    return a.has_value() && S_ISREG(a->mode) && (a->mode & 0111) != 0;
  };
  if (argv0.find('/') != std::string::npos) {
    std::string path = argv0[0] == '/' ? argv0 : (cwd == "/" ? "" : cwd) + "/" + argv0;
    if (is_exec(path)) return path;
    if (error) *error = "executable " + argv0 + " not found or not executable";
    return p9::Errno(ENOENT);
  }
  std::string path_var = kDefaultPath;
  for (const auto& e : proc.env()) {
    if (e.starts_with("PATH=")) path_var = e.substr(5);
  }
  std::stringstream ss(path_var);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) dir = cwd;  // An empty entry means the working directory.
    if (dir[0] != '/') dir = (cwd == "/" ? "" : cwd) + "/" + dir;
    std::string candidate = (dir == "/" ? "" : dir) + "/" + argv0;
    if (is_exec(candidate)) return candidate;
  }
  if (error) *error = "executable " + argv0 + " not found in PATH " + path_var;
  return p9::Errno(ENOENT);
}

}  // namespace sentry::boot
