// The specs the launcher runs: a bundle's config.json made ready to run (paths resolved
// against the bundle, sources checked), or the spec `runsc do` builds from its command line
// (the host's / as a read-only root, the caller's cwd, env and ids, bind mounts).
#ifndef SENTRY_RUNSC_SPEC_BUILDER_H_
#define SENTRY_RUNSC_SPEC_BUILDER_H_

#include <string>
#include <vector>

#include "p9/result.h"
#include "proto/oci_spec.pb.h"

namespace sentry::runsc {

struct BindSpec {
  std::string source;       // Absolute host path.
  std::string destination;  // Absolute path in the sandbox.
  bool read_only = false;
};

// "SRC:DST" or "SRC:DST:ro" (or ":rw"). EINVAL with `error` for anything else.
p9::Result<BindSpec> ParseBind(const std::string& arg, std::string* error);

struct DoOptions {
  std::vector<std::string> argv;
  std::vector<BindSpec> binds;
  std::vector<std::string> env;
  std::string cwd;
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool overlay = false;  // The root is writable (in memory) only with the overlay.
};
p9fs::OciSpec DoSpec(const DoOptions& o);

// Makes `spec` (from `bundle`, "" for none) ready to run: a relative root or bind source is
// taken relative to the bundle, and made absolute; the root and every bind source must
// exist; process args must be given. ENOENT/EINVAL with a one-line `error`.
p9::Result<void> PrepareSpec(p9fs::OciSpec& spec, const std::string& bundle, std::string* error);

}  // namespace sentry::runsc

#endif  // SENTRY_RUNSC_SPEC_BUILDER_H_
