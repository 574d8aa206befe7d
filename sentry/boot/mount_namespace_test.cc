// End to end in process: a spec, our gofer over socketpairs on a temp host tree, and the
// namespace boot builds from them.
#include "sentry/boot/mount_namespace.h"
#include "sentry/boot/executable.h"
#include "sentry/boot/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gofer/attach_point.h"
#include "gtest/gtest.h"
#include "p9/server.h"
#include "p9/socket_util.h"
#include "sentry/vfs/vfs.h"

namespace sentry::boot {
namespace {

namespace hfs = std::filesystem;
using ::testing::HasSubstr;
using vfs::Errno;

Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }

class BootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/boot_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    hfs::create_directories(base_ / "root" / "etc");
    hfs::create_directories(base_ / "root" / "run");
    hfs::create_directories(base_ / "root" / "var");
    hfs::create_symlink("../run", base_ / "root" / "var" / "run");
    std::ofstream(base_ / "root" / "etc" / "motd") << "welcome";
    hfs::create_directories(base_ / "data");
    std::ofstream(base_ / "data" / "d.txt") << "data file";
    hfs::create_directories(base_ / "ro");
    std::ofstream(base_ / "ro" / "r.txt") << "read only";
    hfs::create_directories(base_ / "secrets");
    std::ofstream(base_ / "secrets" / "token") << "s3cret";
  }
  void TearDown() override {
    vfs_.reset();
    ns_.reset();
    for (auto& s : servers_) EXPECT_TRUE(s->WaitNoConnections(std::chrono::seconds(10)));
    servers_.clear();
    attachers_.clear();
    hfs::remove_all(base_);
  }

  std::string SpecJson() {
    std::string b = base_.string();
    return R"({"root": {"path": ")" + b + R"(/root"}, "hostname": "box", "mounts": [
      {"destination": "/data", "type": "bind", "source": ")" + b + R"(/data"},
      {"destination": "/ro", "type": "bind", "source": ")" + b + R"(/ro", "options": ["ro"]},
      {"destination": "/var/run/secrets", "type": "bind", "source": ")" + b + R"(/secrets"},
      {"destination": "/scratch", "type": "tmpfs", "options": ["mode=0700", "size=1m"]},
      {"destination": "/dev/shm", "type": "tmpfs"},
      {"destination": "/dev/mqueue", "type": "mqueue"}]})";
  }
  // One gofer connection per 9P mount, in mount order.
  std::vector<int> Gofer(const std::vector<std::pair<std::string, bool>>& mounts) {
    std::vector<int> fds;
    for (auto& [path, ro] : mounts) {
      auto ap = gofer::AttachPoint::Open(path, ro, nullptr);
      EXPECT_TRUE(ap.has_value()) << path;
      attachers_.push_back(gofer::HostAttacher::ForOne(*ap));
      servers_.push_back(std::make_unique<p9::Server>(*attachers_.back(),
                                                      p9::ServerOptions{.threads = 1}));
      auto pair = p9::SocketPair();
      servers_.back()->AddConnection(std::move(pair->second));
      fds.push_back(pair->first.release());
    }
    return fds;
  }
  std::vector<int> AllFds() {
    std::string b = base_.string();
    return Gofer({{b + "/root", false}, {b + "/data", false}, {b + "/ro", true},
                  {b + "/secrets", false}});
  }
  void Boot(p9fs::RuntimeConfig::FileAccess access, bool overlay, std::vector<int> fds) {
    std::string err;
    auto spec = ParseSpecJson(SpecJson(), &err);
    ASSERT_TRUE(spec.has_value()) << err;
    p9fs::RuntimeConfig c;
    c.set_file_access(access);
    c.set_overlay(overlay);
    auto r = CreateMountNamespace(*spec, c, std::move(fds), &err);
    ASSERT_TRUE(r.has_value()) << err;
    ns_ = r->ns;
    warnings_ = r->warnings;
    vfs_ = std::make_unique<vfs::Vfs>(ns_);
  }
  std::string Read(const std::string& p) {
    auto h = vfs_->Open(vfs_->root(), p, O_RDONLY);
    if (!h.has_value()) return std::string("<") + h.error().name() + ">";
    std::string out(4096, '\0');
    auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), 0);
    out.resize(n.has_value() ? *n : 0);
    return out;
  }
  p9::Result<void> Write(const std::string& p, const std::string& data) {
    P9_ASSIGN_OR_RETURN(auto h, vfs_->Open(vfs_->root(), p, O_WRONLY | O_CREAT | O_TRUNC, 0644));
    P9_RETURN_IF_ERROR(h->WriteAt(std::span<const char>(data.data(), data.size()), 0));
    return p9::Ok();
  }
  std::string Host(const std::string& rel) {
    std::ifstream in(base_ / rel);
    if (!in) return "<missing>";
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  hfs::path base_;
  std::vector<std::unique_ptr<gofer::HostAttacher>> attachers_;
  std::vector<std::unique_ptr<p9::Server>> servers_;
  std::shared_ptr<vfs::MountNamespace> ns_;
  std::unique_ptr<vfs::Vfs> vfs_;
  std::vector<std::string> warnings_;
};

TEST_F(BootTest, EveryMountPointStatsAndLists) {
  Boot(p9fs::RuntimeConfig::SHARED, false, AllFds());
  for (const char* p : {"/", "/dev", "/dev/pts", "/proc", "/sys", "/tmp", "/data", "/ro",
                        "/run/secrets", "/var/run/secrets", "/scratch", "/etc"}) {
    auto a = vfs_->Stat(vfs_->root(), p);
    ASSERT_TRUE(a.has_value()) << p << ": " << a.error();
    EXPECT_TRUE(S_ISDIR(a->mode)) << p;
    EXPECT_TRUE(vfs_->ListDir(vfs_->root(), p).has_value()) << p;
  }
  EXPECT_EQ(Read("/etc/motd"), "welcome");
  EXPECT_EQ(Read("/data/d.txt"), "data file");
  EXPECT_EQ(Read("/run/secrets/token"), "s3cret") << "mkdirAll followed /var/run -> /run";
  EXPECT_EQ(vfs_->Stat(vfs_->root(), "/scratch")->mode & 07777, 0700u);
  EXPECT_EQ(Read("/dev/null"), "");
  std::string mounts = Read("/proc/mounts");
  EXPECT_THAT(mounts, HasSubstr("9pfs-/ / overlay rw"));
  EXPECT_THAT(mounts, HasSubstr("9pfs-/data /data 9p rw"));
  EXPECT_THAT(mounts, HasSubstr("9pfs-/ro /ro 9p ro"));
  EXPECT_THAT(mounts, HasSubstr("none /scratch tmpfs rw"));
  EXPECT_EQ(Read("/proc/sys/kernel/hostname"), "box\n");
  EXPECT_THAT(warnings_, ::testing::Contains(HasSubstr("ignoring dev mount at /dev/shm")));
  EXPECT_THAT(warnings_, ::testing::Contains(HasSubstr("unknown filesystem type mqueue")));
  // The mount points came from the tree, not from the host root.
  EXPECT_FALSE(hfs::exists(base_ / "root" / "data"));
  EXPECT_FALSE(hfs::exists(base_ / "root" / "proc"));
}

TEST_F(BootTest, WritesReachTheHostAndReadOnlyBindsRefuse) {
  Boot(p9fs::RuntimeConfig::SHARED, false, AllFds());
  ASSERT_TRUE(Write("/data/new.txt", "from sandbox").has_value());
  EXPECT_EQ(Host("data/new.txt"), "from sandbox");
  ASSERT_TRUE(Write("/etc/written", "root write").has_value());
  EXPECT_EQ(Host("root/etc/written"), "root write");
  EXPECT_EQ(Err(Write("/ro/x", "no")), Errno(EROFS));
  EXPECT_EQ(Err(vfs_->Unlink(vfs_->root(), "/ro/r.txt")), Errno(EROFS));
  EXPECT_EQ(Host("ro/r.txt"), "read only");
  // Shared access: a host-side change is seen.
  std::ofstream(base_ / "data" / "host.txt") << "host side";
  EXPECT_EQ(Read("/data/host.txt"), "host side");
}

// path -> type, mode, size and contents of every file under the test's host tree.
std::map<std::string, std::string> HostTree(const hfs::path& base) {
  std::map<std::string, std::string> out;
  for (auto& e : hfs::recursive_directory_iterator(base)) {
    struct stat st;
    if (lstat(e.path().c_str(), &st) != 0) continue;
    std::string d = std::to_string(st.st_mode) + " " + std::to_string(st.st_size);
    if (S_ISREG(st.st_mode)) {
      std::ifstream in(e.path());
      d += " " + std::string(std::istreambuf_iterator<char>(in), {});
    }
    out[e.path().string()] = d;
  }
  return out;
}

TEST_F(BootTest, OverlayKeepsTheHostUnchanged) {
  auto before = HostTree(base_);
  Boot(p9fs::RuntimeConfig::EXCLUSIVE, true, AllFds());
  ASSERT_TRUE(Write("/etc/motd", "changed").has_value());
  ASSERT_TRUE(Write("/data/d.txt", "changed too").has_value());
  ASSERT_TRUE(Write("/data/new", "n").has_value());
  ASSERT_TRUE(vfs_->Unlink(vfs_->root(), "/run/secrets/token").has_value());
  ASSERT_TRUE(vfs_->Mkdir(vfs_->root(), "/newdir", 0755).has_value());
  EXPECT_EQ(Read("/etc/motd"), "changed");
  EXPECT_EQ(Read("/data/d.txt"), "changed too");
  EXPECT_EQ(Err(vfs_->Stat(vfs_->root(), "/run/secrets/token")), Errno(ENOENT));
  EXPECT_EQ(Host("root/etc/motd"), "welcome");
  EXPECT_EQ(Host("data/d.txt"), "data file");
  EXPECT_EQ(Host("data/new"), "<missing>");
  EXPECT_EQ(Host("secrets/token"), "s3cret");
  EXPECT_FALSE(hfs::exists(base_ / "root" / "newdir"));
  EXPECT_EQ(Err(Write("/ro/x", "no")), Errno(EROFS)) << "read-only binds stay read-only";
  ASSERT_TRUE(vfs_->Rename(vfs_->root(), "/etc/motd", "/etc/motd2").has_value());
  ASSERT_TRUE(vfs_->Link(vfs_->root(), "/etc/motd2", "/etc/motd3").has_value());
  ASSERT_TRUE(vfs_->Truncate(vfs_->root(), "/etc/motd3", 1).has_value());
  EXPECT_TRUE(HostTree(base_) == before) << "the host tree changed";
}

TEST_F(BootTest, DirectAccessServesTheSameTree) {
  Boot(p9fs::RuntimeConfig::DIRECT, false, {});
  EXPECT_EQ(Read("/etc/motd"), "welcome");
  EXPECT_EQ(Read("/data/d.txt"), "data file");
  EXPECT_EQ(Read("/run/secrets/token"), "s3cret");
  EXPECT_EQ(Err(Write("/ro/x", "no")), Errno(EROFS));
}

TEST_F(BootTest, ExecutableIsResolvedThroughPathInsideTheNamespace) {
  hfs::create_directories(base_ / "root" / "usr" / "bin");
  hfs::create_directories(base_ / "root" / "opt" / "tool");
  std::ofstream(base_ / "root" / "usr" / "bin" / "prog") << "#!/bin/sh";
  hfs::permissions(base_ / "root" / "usr" / "bin" / "prog", hfs::perms::owner_all);
  std::ofstream(base_ / "root" / "opt" / "tool" / "noexec") << "x";
  std::ofstream(base_ / "root" / "opt" / "tool" / "prog") << "#!/bin/sh";
  hfs::permissions(base_ / "root" / "opt" / "tool" / "prog", hfs::perms::owner_all);
  Boot(p9fs::RuntimeConfig::SHARED, false, AllFds());
  p9fs::OciProcess proc;
  proc.add_args("prog");
  std::string err;
  EXPECT_EQ(*ResolveExecutable(*ns_, proc, &err), "/usr/bin/prog") << "default PATH";
  proc.add_env("PATH=/opt/tool:/usr/bin");
  EXPECT_EQ(*ResolveExecutable(*ns_, proc, &err), "/opt/tool/prog") << "PATH order";
  proc.set_args(0, "noexec");
  EXPECT_EQ(Err(ResolveExecutable(*ns_, proc, &err)), Errno(ENOENT));
  EXPECT_THAT(err, HasSubstr("not found in PATH /opt/tool:/usr/bin"));
  proc.set_args(0, "./prog");
  proc.set_cwd("/opt/tool");
  EXPECT_EQ(*ResolveExecutable(*ns_, proc, &err), "/opt/tool/./prog");
  proc.set_args(0, "/usr/bin/prog");
  EXPECT_EQ(*ResolveExecutable(*ns_, proc, &err), "/usr/bin/prog");
  proc.clear_args();
  EXPECT_EQ(Err(ResolveExecutable(*ns_, proc, &err)), Errno(EINVAL));
}

TEST_F(BootTest, CheckpointThenRestoreKeepsUpperLayerFiles) {
  Boot(p9fs::RuntimeConfig::EXCLUSIVE, true, AllFds());
  ASSERT_TRUE(Write("/etc/motd", "changed before checkpoint").has_value());
  ASSERT_TRUE(vfs_->Mkdir(vfs_->root(), "/newdir", 0750).has_value());
  ASSERT_TRUE(Write("/newdir/f", "nested").has_value());
  ASSERT_TRUE(vfs_->Symlink(vfs_->root(), "newdir/f", "/link").has_value());
  ASSERT_TRUE(Write("/data/written", "in the bind overlay").has_value());
  ASSERT_TRUE(vfs_->Unlink(vfs_->root(), "/data/d.txt").has_value());
  ASSERT_TRUE(vfs_->SetXattr(vfs_->root(), "/newdir/f", "user.k", "v", 0).has_value());
  std::string err;
  auto cp = SaveOverlays(*ns_, &err);
  ASSERT_TRUE(cp.has_value()) << err;
  EXPECT_EQ(cp->layers_size(), 3) << "root, /data and /run/secrets are writable with overlays";
  std::string bytes;
  ASSERT_TRUE(cp->SerializeToString(&bytes));
  // The old sandbox goes away; a new one starts on fresh gofer connections.
  vfs_.reset();
  ns_.reset();
  Boot(p9fs::RuntimeConfig::EXCLUSIVE, true, AllFds());
  EXPECT_EQ(Read("/etc/motd"), "welcome") << "not restored yet";
  p9fs::Checkpoint parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  vfs_.reset();
  ns_.reset();
  Boot(p9fs::RuntimeConfig::EXCLUSIVE, true, AllFds());
  ASSERT_TRUE(RestoreOverlays(*ns_, parsed, &err).has_value()) << err;
  EXPECT_EQ(Read("/etc/motd"), "changed before checkpoint");
  EXPECT_EQ(Read("/newdir/f"), "nested");
  EXPECT_EQ(vfs_->Stat(vfs_->root(), "/newdir")->mode & 07777, 0750u);
  EXPECT_EQ(Read("/link"), "nested");
  EXPECT_EQ(*vfs_->GetXattr(vfs_->root(), "/newdir/f", "user.k"), "v");
  EXPECT_EQ(Read("/data/written"), "in the bind overlay");
  EXPECT_EQ(Err(vfs_->Stat(vfs_->root(), "/data/d.txt")), Errno(ENOENT)) << "whiteout restored";
  EXPECT_EQ(Host("data/d.txt"), "data file") << "the host never changed";
  EXPECT_EQ(Host("root/etc/motd"), "welcome");
  // A checkpoint does not fit a sandbox without overlays.
  vfs_.reset();
  ns_.reset();
  Boot(p9fs::RuntimeConfig::EXCLUSIVE, false, AllFds());
  EXPECT_EQ(Err(RestoreOverlays(*ns_, parsed, &err)), Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("has none there"));
}

TEST_F(BootTest, ChildContainersLiveUnderTheContainersDir) {
  hfs::create_directories(base_ / "child" / "etc");
  std::ofstream(base_ / "child" / "etc" / "who") << "child";
  hfs::create_directories(base_ / "childdata");
  std::ofstream(base_ / "childdata" / "x") << "child data";
  std::string err;
  auto spec = ParseSpecJson(SpecJson(), &err);
  p9fs::RuntimeConfig c;
  c.set_file_access(p9fs::RuntimeConfig::SHARED);
  c.set_multi_container(true);
  auto r = CreateMountNamespace(*spec, c, AllFds(), &err);
  ASSERT_TRUE(r.has_value()) << err;
  ns_ = r->ns;
  vfs_ = std::make_unique<vfs::Vfs>(ns_);
  EXPECT_TRUE(vfs_->Stat(vfs_->root(), "/__runsc_containers__").has_value());
  std::string b = base_.string();
  auto child = ParseSpecJson(R"({"root": {"path": ")" + b + R"(/child"}, "mounts": [
      {"destination": "/data", "type": "bind", "source": ")" + b + R"(/childdata"}]})", &err);
  ASSERT_TRUE(child.has_value());
  std::vector<std::string> warnings;
  auto croot = CreateChildContainer(ns_, "c1", *child, c,
                                    Gofer({{b + "/child", false}, {b + "/childdata", false}}),
                                    &warnings, &err);
  ASSERT_TRUE(croot.has_value()) << err;
  EXPECT_EQ(Read("/__runsc_containers__/c1/etc/who"), "child");
  EXPECT_EQ(Read("/__runsc_containers__/c1/data/x"), "child data");
  EXPECT_TRUE(vfs_->Stat(vfs_->root(), "/__runsc_containers__/c1/proc/mounts").has_value());
  EXPECT_TRUE(vfs_->Stat(vfs_->root(), "/__runsc_containers__/c1/dev/null").has_value());
  // The child's process root: relative paths resolve inside it.
  EXPECT_TRUE(vfs_->Stat(*croot, "etc/who").has_value());
  EXPECT_EQ(ns_->PathOf(*croot), "/__runsc_containers__/c1");
  // The parent is untouched.
  EXPECT_EQ(Read("/etc/motd"), "welcome");
  EXPECT_EQ(Err(CreateChildContainer(ns_, "c1", *child, c, {}, &warnings, &err)), Errno(EEXIST));
  EXPECT_EQ(Err(CreateChildContainer(ns_, "../x", *child, c, {}, &warnings, &err)),
            Errno(EINVAL));
  EXPECT_EQ(Err(CreateChildContainer(ns_, "c2", *child, c, Gofer({{b + "/child", false}}),
                                     &warnings, &err)),
            Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("no io fd left for bind mount /data"));
}

TEST_F(BootTest, IoFdMismatchesAreClearErrors) {
  std::string err;
  auto spec = ParseSpecJson(SpecJson(), &err);
  p9fs::RuntimeConfig c;
  c.set_file_access(p9fs::RuntimeConfig::SHARED);
  std::string b = base_.string();
  auto few = Gofer({{b + "/root", false}, {b + "/data", false}});
  EXPECT_EQ(Err(CreateMountNamespace(*spec, c, few, &err)), Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("no io fd left for bind mount /ro"));
  auto many = AllFds();
  many.push_back(Gofer({{b + "/data", false}})[0]);
  EXPECT_EQ(Err(CreateMountNamespace(*spec, c, many, &err)), Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("1 io fds not consumed"));
  close(many.back());
  c.set_file_access(p9fs::RuntimeConfig::FILE_ACCESS_UNSPECIFIED);
  EXPECT_EQ(Err(CreateMountNamespace(*spec, c, {}, &err)), Errno(EINVAL));
  EXPECT_THAT(err, HasSubstr("invalid file access type"));
  c.set_file_access(p9fs::RuntimeConfig::SHARED);
  EXPECT_EQ(Err(CreateMountNamespace(*spec, c, {999}, &err)), Errno(EBADF));
  EXPECT_THAT(err, HasSubstr("root mount"));
}

}  // namespace
}  // namespace sentry::boot
