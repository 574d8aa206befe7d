#include "sentry/runsc/spec_builder.h"

#include <sys/stat.h>

#include <cstring>

#include "sentry/boot/mounts.h"

namespace sentry::runsc {

using p9::Errno;

p9::Result<BindSpec> ParseBind(const std::string& arg, std::string* error) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t colon = arg.find(':', start);
    parts.push_back(arg.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  BindSpec b;
  bool ok = parts.size() == 2 || (parts.size() == 3 && (parts[2] == "ro" || parts[2] == "rw"));
  if (ok) {
    b.source = parts[0];
    b.destination = parts[1];
    b.read_only = parts.size() == 3 && parts[2] == "ro";
    ok = !b.source.empty() && b.destination.starts_with("/");
  }
  if (!ok) {
    if (error) *error = "--bind " + arg + ": want SRC:DST or SRC:DST:ro, DST absolute";
    return Errno(EINVAL);
  }
  b.destination = boot::CleanPath(b.destination);
  if (b.destination == "/") {
    if (error) *error = "--bind " + arg + ": cannot bind over the root";
    return Errno(EINVAL);
  }
  return b;
}

p9fs::OciSpec DoSpec(const DoOptions& o) {
  p9fs::OciSpec spec;
  spec.set_oci_version("1.0.2");
  spec.set_hostname("sandbox");
  spec.mutable_root()->set_path("/");
  spec.mutable_root()->set_readonly(!o.overlay);
  auto* p = spec.mutable_process();
  for (const auto& a : o.argv) p->add_args(a);
  for (const auto& e : o.env) p->add_env(e);
  p->set_cwd(o.cwd.empty() ? "/" : o.cwd);
  p->mutable_user()->set_uid(o.uid);
  p->mutable_user()->set_gid(o.gid);
  for (const auto& b : o.binds) {
    auto* m = spec.add_mounts();
    m->set_destination(b.destination);
    m->set_type("bind");
    m->set_source(b.source);
    m->add_options("rbind");
    m->add_options(b.read_only ? "ro" : "rw");
  }
  return spec;
}

namespace {

// `path` relative to `base` when not absolute; must exist. `what` names it in errors.
p9::Result<std::string> HostPath(const std::string& path, const std::string& base,
                                 const std::string& what, bool want_dir, std::string* error) {
  std::string p = path;
  if (p.empty()) {
    if (error) *error = what + ": no path given";
    return Errno(EINVAL);
  }
  if (!p.starts_with("/")) p = (base.empty() ? std::string(".") : base) + "/" + p;
  char* real = realpath(p.c_str(), nullptr);
  if (real == nullptr) {
    int err = errno;
    if (error) *error = what + ": " + path + ": " + strerror(err);
    return Errno(err);
  }
  std::string r = real;
  free(real);
  struct stat st;
  if (want_dir && (stat(r.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    if (error) *error = what + ": " + path + ": not a directory";
    return Errno(ENOTDIR);
  }
  return r;
}

}  // namespace

p9::Result<void> PrepareSpec(p9fs::OciSpec& spec, const std::string& bundle, std::string* error) {
  if (spec.process().args().empty()) {
    if (error) *error = "the spec has no process args: nothing to run";
    return Errno(EINVAL);
  }
  P9_ASSIGN_OR_RETURN(std::string root, HostPath(spec.root().path(), bundle, "root", true, error));
  spec.mutable_root()->set_path(root);
  for (auto& m : *spec.mutable_mounts()) {
    if (m.type() != "bind") continue;
    if (!m.destination().starts_with("/")) {
      if (error) *error = "bind mount destination " + m.destination() + " is not absolute";
      return Errno(EINVAL);
    }
    P9_ASSIGN_OR_RETURN(std::string src,
                        HostPath(m.source(), bundle, "bind mount " + m.destination() + ": source", false, error));
    m.set_source(src);
  }
  return p9::Ok();
}

}  // namespace sentry::runsc
