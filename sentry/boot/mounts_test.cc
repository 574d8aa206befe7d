// Table tests of the mount compilation, including the bundle `runc spec` writes.
#include "sentry/boot/mounts.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sentry::boot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

p9::Errno Err(const auto& r) { return r.has_value() ? p9::Errno(0) : r.error(); }

// The config.json `runc spec` writes (runc 1.1), verbatim in its mount section.
constexpr char kRuncSpec[] = R"({
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": true,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "runc",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "maskedPaths": ["/proc/kcore"]}
})";

std::vector<std::string> Dests(const Mounts& ms) {
  std::vector<std::string> out;
  for (auto& m : ms) out.push_back(m.type() + ":" + m.destination());
  return out;
}

p9fs::OciSpec Spec(const std::string& json) {
  std::string err;
  auto s = ParseSpecJson(json, &err);
  EXPECT_TRUE(s.has_value()) << err;
  return s.has_value() ? *s : p9fs::OciSpec();
}

TEST(SpecTest, ParsesARuncBundleIgnoringUnknownFields) {
  char tmpl[] = "/tmp/bundle.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::ofstream(std::string(tmpl) + "/config.json") << kRuncSpec;
  std::string err;
  auto s = LoadBundleSpec(tmpl, &err);
  std::filesystem::remove_all(tmpl);
  ASSERT_TRUE(s.has_value()) << err;
  EXPECT_EQ(s->root().path(), "rootfs");
  EXPECT_TRUE(s->root().readonly());
  EXPECT_EQ(s->hostname(), "runc");
  EXPECT_THAT(s->process().args(), ElementsAre("sh"));
  EXPECT_EQ(s->process().cwd(), "/");
  EXPECT_EQ(s->mounts_size(), 7);
  EXPECT_EQ(Err(LoadBundleSpec("/nonexistent-bundle", &err)), p9::Errno(ENOENT));
  EXPECT_THAT(err, HasSubstr("/nonexistent-bundle/config.json"));
  EXPECT_EQ(Err(ParseSpecJson("{\"mounts\": [", &err)), p9::Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("malformed config.json"));
  EXPECT_EQ(Err(ParseSpecJson("{\"process\": {\"args\": 5}}", &err)), p9::Errno(EINVAL));
}

TEST(CompileMountsTest, RuncSpec) {
  std::vector<std::string> warnings;
  Mounts ms = CompileMounts(Spec(kRuncSpec), &warnings);
  // /tmp added first (proc and sys are in the spec); /dev, /dev/pts and /dev/shm are ours.
  EXPECT_THAT(Dests(ms), ElementsAre("tmpfs:/tmp", "devtmpfs:/dev", "devpts:/dev/pts",
                                     "proc:/proc", "mqueue:/dev/mqueue", "sysfs:/sys",
                                     "cgroup:/sys/fs/cgroup"));
  EXPECT_THAT(warnings, ElementsAre("ignoring dev mount at /dev", "ignoring dev mount at /dev/pts",
                                    "ignoring dev mount at /dev/shm"));
}

struct Case {
  const char* name;
  const char* mounts_json;
  std::vector<std::string> want;
};

class CompileTable : public ::testing::TestWithParam<Case> {};

TEST_P(CompileTable, Compiles) {
  std::string json = std::string("{\"mounts\": ") + GetParam().mounts_json + "}";
  EXPECT_EQ(Dests(CompileMounts(Spec(json), nullptr)), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Specs, CompileTable,
    ::testing::Values(
        Case{"empty", "[]",
             {"proc:/proc", "sysfs:/sys", "tmpfs:/tmp", "devtmpfs:/dev", "devpts:/dev/pts"}},
        Case{"all_mandatory_present",
             R"([{"destination":"/tmp","type":"tmpfs"},{"destination":"/proc","type":"proc"},
                 {"destination":"/sys/","type":"sysfs"}])",
             {"devtmpfs:/dev", "devpts:/dev/pts", "tmpfs:/tmp", "proc:/proc", "sysfs:/sys/"}},
        Case{"unclean_paths_count",
             R"([{"destination":"/proc/../proc/.","type":"proc"}])",
             {"sysfs:/sys", "tmpfs:/tmp", "devtmpfs:/dev", "devpts:/dev/pts",
              "proc:/proc/../proc/."}},
        Case{"dev_entries_dropped_others_kept",
             R"([{"destination":"/dev/null","type":"bind"},{"destination":"/dev/fd/3","type":"bind"},
                 {"destination":"/dev/ptmx","type":"bind"},{"destination":"/dev/fuse","type":"bind"},
                 {"destination":"/devices","type":"bind"}])",
             {"proc:/proc", "sysfs:/sys", "tmpfs:/tmp", "devtmpfs:/dev", "devpts:/dev/pts",
              "bind:/dev/fuse", "bind:/devices"}},
        Case{"binds_in_order",
             R"([{"destination":"/data","type":"bind","source":"/srv"},
                 {"destination":"/data/sub","type":"bind","source":"/srv2"},
                 {"destination":"/etc/hostname","type":"bind","source":"/h"}])",
             {"proc:/proc", "sysfs:/sys", "tmpfs:/tmp", "devtmpfs:/dev", "devpts:/dev/pts",
              "bind:/data", "bind:/data/sub", "bind:/etc/hostname"}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(MountsTest, FlagsAndOptionFiltering) {
  std::vector<std::string> w;
  p9fs::OciMount m;
  for (const char* o : {"ro", "noatime", "nosuid", "rw"}) m.add_options(o);
  vfs::MountFlags f = MountFlagsOf(m.options(), &w);
  EXPECT_FALSE(f.read_only) << "the last of ro/rw wins";
  EXPECT_TRUE(f.noatime);
  EXPECT_THAT(w, ElementsAre("ignoring unknown mount option nosuid"));
  p9fs::OciMount t;
  for (const char* o : {"mode=1777", "size=64k", "uid=5", "nosuid"}) t.add_options(o);
  std::string err;
  auto kept = FilterOptions(t.options(), {"mode", "uid", "gid"}, &w, &err);
  ASSERT_TRUE(kept.has_value());
  EXPECT_THAT(*kept, ElementsAre("mode=1777", "uid=5"));
  t.add_options("mode=1=2");
  EXPECT_EQ(Err(FilterOptions(t.options(), {"mode"}, &w, &err)), p9::Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("mode=1=2"));
}

TEST(MountsTest, SubtargetsDevicesAndP9Options) {
  Mounts ms(4);
  ms[0].set_destination("/a");
  ms[1].set_destination("/a/b/../c");
  ms[2].set_destination("/ab");
  ms[3].set_destination("/a/d/e/");
  EXPECT_THAT(Subtargets("/a", ms), ElementsAre("c", "d/e"));
  EXPECT_THAT(Subtargets("/", ms), ElementsAre("a", "a/c", "ab", "a/d/e"));
  ms[0].set_type("bind");
  EXPECT_EQ(MountDevice(ms[0]), "9pfs-/a");
  ms[0].set_type("tmpfs");
  EXPECT_EQ(MountDevice(ms[0]), "none");
  p9fs::RuntimeConfig c;
  c.set_file_access(p9fs::RuntimeConfig::SHARED);
  EXPECT_EQ(P9MountOptions(c, 7),
            "trans=fd,rfdno=7,wfdno=7,privateunixsocket=true,cache=remote_revalidating");
  c.set_file_access(p9fs::RuntimeConfig::EXCLUSIVE);
  EXPECT_EQ(P9MountOptions(c, 7), "trans=fd,rfdno=7,wfdno=7,privateunixsocket=true")
      << "exclusive access takes the 9p default policy";
  EXPECT_EQ(CleanPath("/a//b/./c/../"), "/a/b");
  EXPECT_EQ(CleanPath("/.."), "/");
}

TEST(MountsTest, PlanMountTakesFdsForBindsOnly) {
  p9fs::RuntimeConfig c;
  c.set_file_access(p9fs::RuntimeConfig::SHARED);
  c.set_overlay(true);
  FdDispenser fds({10, 11});
  std::string err;
  std::vector<std::string> w;
  auto mk = [](const char* type, const char* dest, std::vector<std::string> opts = {}) {
    p9fs::OciMount m;
    m.set_type(type);
    m.set_destination(dest);
    for (auto& o : opts) m.add_options(o);
    return m;
  };
  auto p = PlanMount(c, mk("bind", "/data"), fds, &w, &err);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->fs_name, "9p");
  EXPECT_THAT(p->data, HasSubstr("rfdno=10"));
  EXPECT_TRUE(p->use_overlay);
  p = PlanMount(c, mk("bind", "/ro", {"ro"}), fds, &w, &err);
  EXPECT_FALSE(p->use_overlay) << "read-only binds get no overlay";
  EXPECT_EQ(Err(PlanMount(c, mk("bind", "/more"), fds, &w, &err)), p9::Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("no io fd left for bind mount /more"));
  p = PlanMount(c, mk("none", "/sys2"), fds, &w, &err);
  EXPECT_EQ(p->fs_name, "sysfs");
  p = PlanMount(c, mk("tmpfs", "/t", {"mode=0700", "size=1m"}), fds, &w, &err);
  EXPECT_EQ(p->data, "mode=0700");
  p = PlanMount(c, mk("cgroup", "/sys/fs/cgroup"), fds, &w, &err);
  EXPECT_EQ(p->fs_name, "");
  EXPECT_THAT(w.back(), HasSubstr("unknown filesystem type cgroup"));
  c.set_file_access(p9fs::RuntimeConfig::FILE_ACCESS_UNSPECIFIED);
  FdDispenser more({3});
  EXPECT_EQ(Err(PlanMount(c, mk("bind", "/x"), more, &w, &err)), p9::Errno(EINVAL));
}

TEST(MountsTest, RestoreEnvironment) {
  p9fs::OciSpec spec = Spec(R"({"root": {"path": "/r", "readonly": true}, "mounts": [
      {"destination": "/data", "type": "bind", "source": "/srv", "options": ["ro"]},
      {"destination": "/t", "type": "tmpfs", "options": ["mode=0700"]}]})");
  p9fs::RuntimeConfig c;
  c.set_file_access(p9fs::RuntimeConfig::EXCLUSIVE);
  std::string err;
  FdDispenser fds({4, 5});
  auto env = CreateRestoreEnvironment(spec, c, fds, &err);
  ASSERT_TRUE(env.has_value()) << err;
  ASSERT_EQ((*env)["9p"].size(), 2u);
  EXPECT_EQ((*env)["9p"][0].dev, "9pfs-/");
  EXPECT_TRUE((*env)["9p"][0].flags.read_only);
  EXPECT_THAT((*env)["9p"][0].data, HasSubstr("rfdno=4"));
  EXPECT_EQ((*env)["9p"][1].dev, "9pfs-/data");
  EXPECT_THAT((*env)["9p"][1].data, HasSubstr("rfdno=5"));
  EXPECT_EQ((*env)["tmpfs"].size(), 2u);  // /tmp and /t.
  EXPECT_EQ((*env)["tmpfs"][1].data, "mode=0700");
  EXPECT_EQ((*env)["devtmpfs"][0].dev, "none");
  // Fd mismatches and direct access are clear errors.
  FdDispenser few({4});
  EXPECT_EQ(Err(CreateRestoreEnvironment(spec, c, few, &err)), p9::Errno(EINVAL));
  FdDispenser many({4, 5, 6});
  EXPECT_EQ(Err(CreateRestoreEnvironment(spec, c, many, &err)), p9::Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("left over"));
  c.set_file_access(p9fs::RuntimeConfig::DIRECT);
  FdDispenser none({});
  EXPECT_EQ(Err(CreateRestoreEnvironment(spec, c, none, &err)), p9::Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("direct host file access"));
}

TEST(MountsTest, GoferMountsFollowIoFdOrder) {
  p9fs::OciSpec spec = Spec(R"({"root": {"path": "/r"}, "mounts": [
      {"destination": "/data", "type": "bind", "source": "/srv", "options": ["ro"]},
      {"destination": "/t", "type": "tmpfs"},
      {"destination": "/w", "type": "bind", "source": "/home/w"},
      {"destination": "/dev/null", "type": "bind", "source": "/dev/null"}]})");
  p9fs::RuntimeConfig c;
  c.set_file_access(p9fs::RuntimeConfig::SHARED);
  auto g = GoferMounts(spec, c);
  ASSERT_EQ(g.size(), 3u);  // The root and two binds; /dev/null is our own /dev's.
  EXPECT_EQ(g[0].path(), "/r");
  EXPECT_EQ(g[0].destination(), "/");
  EXPECT_FALSE(g[0].read_only());
  EXPECT_EQ(g[1].path(), "/srv");
  EXPECT_TRUE(g[1].read_only());
  EXPECT_EQ(g[2].destination(), "/w");
  EXPECT_FALSE(g[2].read_only());
  // They are exactly the fds the namespace (and the restore) consume.
  FdDispenser fds({7, 8, 9});
  std::string err;
  EXPECT_TRUE(CreateRestoreEnvironment(spec, c, fds, &err).has_value()) << err;
  // With the overlay, the gofer refuses writes too; direct access needs no gofer.
  c.set_overlay(true);
  for (const auto& m : GoferMounts(spec, c)) EXPECT_TRUE(m.read_only()) << m.destination();
  c.set_file_access(p9fs::RuntimeConfig::DIRECT);
  EXPECT_TRUE(GoferMounts(spec, c).empty());
}

}  // namespace
}  // namespace sentry::boot
