// runsc: run a program in a sandbox whose files are served by the gofer.
//
//   runsc [global flags] run [--bundle=DIR] [--overlay] [--file-access=MODE] ID
//       Runs the OCI bundle DIR (default: the current directory): its config.json's
//       process, on its root and mounts.
//   runsc [global flags] do [--overlay] [--file-access=MODE] [--bind=SRC:DST[:ro]]...
//                           [--cwd=DIR] [--] CMD [ARGS...]
//       Runs CMD with the host's / as a read-only root (writable in memory with --overlay),
//       /tmp a fresh tmpfs, the caller's environment and working directory, and the given
//       bind mounts (read-write unless :ro).
//
// MODE is exclusive (the default: only this sandbox changes the files; caches everything),
// shared (others may change them: revalidates) or direct (no gofer; weaker isolation).
// With --overlay every write lands in memory: the host is never modified.
//
// Global flags: --debug (verbose logs of every process on stderr), --debug-log=DIR (one log
// file per process in DIR), --gofer=PATH and --sandbox=PATH (binaries), and glog's own
// flags (--v, --vmodule, --log_dir, ...), which are passed on to the gofer and sandbox.
// Flags take --name=value or --name value. Exit code: the workload's; 125 when the sandbox
// could not run it, 126 not executable, 127 not found, 128+N after signal N.
#include <unistd.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "gflags/gflags.h"
#include "glog/logging.h"
#include "sentry/boot/mounts.h"
#include "sentry/runsc/launcher.h"
#include "sentry/runsc/spec_builder.h"

extern char** environ;

namespace sentry::runsc {
namespace {

constexpr char kUsage[] =
    "usage: runsc [--debug] [--debug-log=DIR] run [--bundle=DIR] [--overlay] "
    "[--file-access=exclusive|shared|direct] ID\n"
    "       runsc [--debug] [--debug-log=DIR] do [--overlay] [--file-access=...] "
    "[--bind=SRC:DST[:ro]]... [--cwd=DIR] [--] CMD [ARGS...]\n";

[[noreturn]] void Usage(const std::string& msg) {
  if (!msg.empty()) Error(msg);
  std::cerr << kUsage;
  exit(kExitRuntimeError);
}

struct Args {
  std::string command;
  std::map<std::string, std::vector<std::string>> flags;  // name -> values, in order.
  std::vector<std::string> positional;
  std::vector<std::string> passthrough;  // glog flags for the children.
};

bool Has(const Args& a, const std::string& f) { return a.flags.count(f) != 0; }
std::string Last(const Args& a, const std::string& f, const std::string& def = "") {
  auto it = a.flags.find(f);
  return it == a.flags.end() ? def : it->second.back();
}

// Boolean flags take no value; value flags take "=v" or the next argument.
const std::map<std::string, bool> kFlags = {
    {"debug", false},  {"overlay", false}, {"debug-log", true}, {"gofer", true},
    {"sandbox", true}, {"bundle", true},   {"file-access", true}, {"bind", true},
    {"cwd", true},     {"help", false},
};

Args Parse(int argc, char** argv) {
  Args a;
  int i = 1;
  bool rest = false;  // After "--" or the command of "do": everything is positional.
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (rest) {
      a.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      rest = true;
      continue;
    }
    if (arg.starts_with("-") && arg.size() > 1) {
      std::string body = arg.substr(arg.starts_with("--") ? 2 : 1);
      std::string name = body.substr(0, body.find('='));
      bool has_value = body.find('=') != std::string::npos;
      std::string value = has_value ? body.substr(body.find('=') + 1) : "";
      auto it = kFlags.find(name);
      if (it == kFlags.end()) {
        // glog's flags (and any other gflag): applied here and passed on to the children.
        std::string gname = name;
        for (char& c : gname) c = c == '-' ? '_' : c;
        gflags::CommandLineFlagInfo info;
        if (!gflags::GetCommandLineFlagInfo(gname.c_str(), &info)) Usage("unknown flag " + arg);
        if (!has_value && info.type != "bool") {
          if (i + 1 >= argc) Usage("flag " + arg + " needs a value");
          value = argv[++i];
          has_value = true;
        }
        std::string v = has_value ? value : "true";
        if (gflags::SetCommandLineOption(gname.c_str(), v.c_str()).empty()) {
          Usage("bad value for " + arg);
        }
        a.passthrough.push_back("--" + gname + "=" + v);
        continue;
      }
      if (it->second && !has_value) {
        if (i + 1 >= argc) Usage("flag --" + name + " needs a value");
        value = argv[++i];
      } else if (!it->second && has_value) {
        if (value != "true" && value != "false") Usage("flag --" + name + " takes no value");
        if (value == "false") continue;
      }
      a.flags[name].push_back(value);
      continue;
    }
    if (a.command.empty()) {
      a.command = arg;
      continue;
    }
    a.positional.push_back(arg);
    if (a.command == "do") rest = true;  // CMD ARGS... are the workload's, flags included.
  }
  return a;
}

p9fs::RuntimeConfig Config(const Args& a) {
  p9fs::RuntimeConfig c;
  std::string fa = Last(a, "file-access", "exclusive");
  if (fa == "exclusive") {
    c.set_file_access(p9fs::RuntimeConfig::EXCLUSIVE);
  } else if (fa == "shared") {
    c.set_file_access(p9fs::RuntimeConfig::SHARED);
  } else if (fa == "direct") {
    c.set_file_access(p9fs::RuntimeConfig::DIRECT);
  } else {
    Usage("--file-access=" + fa + ": want exclusive, shared or direct");
  }
  c.set_overlay(Has(a, "overlay"));
  return c;
}

int Main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  if (Has(a, "help")) Usage("");
  if (a.command.empty()) Usage("no command");
  LaunchOptions o;
  o.gofer_path = Last(a, "gofer", FindBinary("gofer/gofer"));
  o.sandbox_path = Last(a, "sandbox", FindBinary("sentry/sandbox/sandbox"));
  o.child_flags = a.passthrough;
  if (Has(a, "debug-log")) {
    std::string dir = Last(a, "debug-log");
    if (access(dir.c_str(), W_OK) != 0) Usage("--debug-log=" + dir + ": not a writable directory");
    o.child_flags.push_back("--log_dir=" + dir);
    o.child_flags.push_back("--logtostderr=false");
    o.child_flags.push_back("--v=1");
  } else if (Has(a, "debug")) {
    o.child_flags.push_back("--logtostderr=true");
    o.child_flags.push_back("--v=1");
  } else {
    // Only errors, on stderr, unless the caller asked for glog settings of their own.
    o.child_flags.insert(o.child_flags.begin(), {"--logtostderr=true", "--minloglevel=2"});
  }
  if (Has(a, "debug") || Has(a, "debug-log")) {
    FLAGS_v = std::max(FLAGS_v, 1);
    FLAGS_minloglevel = 0;
  }
  p9fs::RuntimeConfig config = Config(a);
  std::string error;
  p9fs::OciSpec spec;
  std::string bundle;

  if (a.command == "run") {
    if (a.positional.size() != 1) Usage("run takes exactly one container id");
    for (const char* f : {"bind", "cwd"}) {
      if (Has(a, f)) Usage(std::string("--") + f + " is for do; a bundle's config.json says it");
    }
    o.id = a.positional[0];
    bundle = Last(a, "bundle", ".");
    auto s = boot::LoadBundleSpec(bundle, &error);
    if (!s.has_value()) {
      Error(error);
      return kExitRuntimeError;
    }
    spec = *s;
  } else if (a.command == "do") {
    if (Has(a, "bundle")) Usage("--bundle is for run");
    if (a.positional.empty()) Usage("do needs a command to run");
    DoOptions d;
    d.argv = a.positional;
    for (const auto& b : a.flags["bind"]) {
      auto bs = ParseBind(b, &error);
      if (!bs.has_value()) {
        Error(error);
        return kExitRuntimeError;
      }
      d.binds.push_back(*bs);
    }
    for (char** e = environ; *e != nullptr; ++e) d.env.emplace_back(*e);
    char cwd[4096];
    d.cwd = Last(a, "cwd", getcwd(cwd, sizeof(cwd)) ? cwd : "/");
    d.uid = getuid();
    d.gid = getgid();
    d.overlay = config.overlay();
    spec = DoSpec(d);
    o.id = "do-" + std::to_string(getpid());
  } else {
    Usage("unknown command '" + a.command + "'");
  }
  if (!PrepareSpec(spec, bundle, &error).has_value()) {
    Error(error);
    return kExitRuntimeError;
  }
  std::vector<std::string> warnings;
  boot::CompileMounts(spec, &warnings);
  for (const auto& w : warnings) VLOG(1) << "runsc: " << w;
  return Launch(spec, config, o);
}

}  // namespace
}  // namespace sentry::runsc

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;
  google::InitGoogleLogging(argv[0]);
  return sentry::runsc::Main(argc, argv);
}
