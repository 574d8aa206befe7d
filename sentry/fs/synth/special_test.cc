// proc, sysfs, devtmpfs, devpts and the mount-point tree, mounted as boot mounts them: every
// entry lists, stats and reads; devices behave; nothing can be changed.
#include "sentry/fs/synth/special.h"

#include <fcntl.h>
#include <sys/sysmacros.h>

#include <functional>
#include <set>

#include "gtest/gtest.h"
#include "sentry/fs/tmpfs/tmpfs.h"
#include "sentry/vfs/vfs.h"

namespace sentry::fs {
namespace {

using vfs::Errno;
using vfs::MountNamespace;
using vfs::Vfs;

Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }

class SpecialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ns = MountNamespace::Create(std::make_shared<Tmpfs>(), {}, "none");
    vfs_ = std::make_unique<Vfs>(*ns);
    for (const char* d : {"/proc", "/sys", "/dev"}) {
      ASSERT_TRUE(vfs_->Mkdir(vfs_->root(), d, 0755).has_value());
    }
    Vfs* v = vfs_.get();
    auto mounts = [v] {
      std::string out;
      for (auto& m : v->ns().Mounts()) out += m.source + " " + m.path + " " + m.type + "\n";
      return out;
    };
    ASSERT_TRUE(vfs_->MountAt("/proc", MakeProcFs(mounts, "sandbox"), {}, "proc").has_value());
    ASSERT_TRUE(vfs_->MountAt("/sys", MakeSysFs(), {}, "sysfs").has_value());
    ASSERT_TRUE(vfs_->MountAt("/dev", MakeDevFs(), {}, "none").has_value());
    ASSERT_TRUE(vfs_->MountAt("/dev/pts", MakeDevptsFs(), {}, "devpts").has_value());
  }
  std::string Read(const std::string& path, size_t max = 4096) {
    auto h = vfs_->Open(vfs_->root(), path, O_RDONLY);
    if (!h.has_value()) return std::string("<") + h.error().name() + ">";
    std::string out(max, '\x7f');
    auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), 0);
    if (!n.has_value()) return std::string("<") + n.error().name() + ">";
    out.resize(*n);
    return out;
  }
  // Walks a tree: every entry stats; every regular file reads.
  void Crawl(const std::string& dir, int* files) {
    auto ents = vfs_->ListDir(vfs_->root(), dir);
    ASSERT_TRUE(ents.has_value()) << dir << ": " << ents.error();
    for (auto& e : *ents) {
      if (e.name == "." || e.name == "..") continue;
      std::string p = dir + "/" + e.name;
      auto a = vfs_->Stat(vfs_->root(), p, false);
      ASSERT_TRUE(a.has_value()) << p;
      EXPECT_EQ(vfs::DirentType(a->mode), e.type) << p;
      if (S_ISREG(a->mode)) {
        EXPECT_NE(Read(p).substr(0, 1), "<") << p;
        ++*files;
      }
      if (S_ISDIR(a->mode)) Crawl(p, files);
    }
  }
  std::unique_ptr<Vfs> vfs_;
};

TEST_F(SpecialTest, EveryEntryListsStatsAndReads) {
  int files = 0;
  for (const char* d : {"/proc", "/sys", "/dev"}) Crawl(d, &files);
  EXPECT_GE(files, 8);
}

TEST_F(SpecialTest, ProcShowsTheMountTableAndSelf) {
  std::string m = Read("/proc/mounts");
  EXPECT_NE(m.find("proc /proc proc"), std::string::npos) << m;
  EXPECT_NE(m.find("devpts /dev/pts devpts"), std::string::npos) << m;
  EXPECT_EQ(Read("/proc/self/mounts"), m);
  EXPECT_EQ(Read("/proc/sys/kernel/hostname"), "sandbox\n");
  EXPECT_EQ(*vfs_->Readlink(vfs_->root(), "/proc/self"), "1");
}

TEST_F(SpecialTest, DevicesBehave) {
  EXPECT_EQ(Read("/dev/null"), "");
  EXPECT_EQ(Read("/dev/zero", 16), std::string(16, '\0'));
  EXPECT_EQ(Read("/dev/urandom", 64).size(), 64u);
  auto null = vfs_->Open(vfs_->root(), "/dev/null", O_WRONLY);
  ASSERT_TRUE(null.has_value());
  EXPECT_EQ(*(*null)->WriteAt(std::span<const char>("abc", 3), 0), 3u);
  auto full = vfs_->Open(vfs_->root(), "/dev/full", O_WRONLY);
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(Err((*full)->WriteAt(std::span<const char>("abc", 3), 0)), Errno(ENOSPC));
  auto a = vfs_->Stat(vfs_->root(), "/dev/null");
  EXPECT_EQ(a->mode, S_IFCHR | 0666u);
  EXPECT_EQ(a->rdev, makedev(1, 3));
  EXPECT_TRUE(vfs_->Stat(vfs_->root(), "/dev/pts/ptmx").has_value());
  EXPECT_EQ(*vfs_->Readlink(vfs_->root(), "/dev/ptmx"), "pts/ptmx");
}

TEST_F(SpecialTest, NothingCanBeChanged) {
  EXPECT_EQ(Err(vfs_->Mkdir(vfs_->root(), "/proc/x", 0755)), Errno(EROFS));
  EXPECT_EQ(Err(vfs_->Open(vfs_->root(), "/proc/version", O_WRONLY)), Errno(EACCES));
  EXPECT_EQ(Err(vfs_->Unlink(vfs_->root(), "/dev/null")), Errno(EROFS));
  EXPECT_EQ(Err(vfs_->Rename(vfs_->root(), "/sys/fs", "/sys/fs2")), Errno(EROFS));
}

TEST(MountPointTreeTest, HoldsExactlyThePaths) {
  auto ns = MountNamespace::Create(MakeMountPointTree({"/a/b/c", "/a/d", "x"}), {}, "none");
  ASSERT_TRUE(ns.has_value());
  Vfs v(*ns);
  for (const char* p : {"/a", "/a/b", "/a/b/c", "/a/d", "/x"}) {
    auto a = v.Stat(v.root(), p);
    ASSERT_TRUE(a.has_value()) << p;
    EXPECT_TRUE(S_ISDIR(a->mode)) << p;
  }
  auto ents = v.ListDir(v.root(), "/a");
  std::set<std::string> names;
  for (auto& e : *ents) names.insert(e.name);
  EXPECT_EQ(names, (std::set<std::string>{".", "..", "b", "d"}));
  EXPECT_EQ(Err(v.Mkdir(v.root(), "/y", 0755)), Errno(EROFS));
}

}  // namespace
}  // namespace sentry::fs
