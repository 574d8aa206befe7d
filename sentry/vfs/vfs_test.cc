// The VFS core over tmpfs: path resolution, mounts, and the file operations' POSIX errnos.
#include "sentry/vfs/vfs.h"

#include <sys/xattr.h>

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sentry/fs/tmpfs/tmpfs.h"

namespace sentry::vfs {
namespace {

using fs::Tmpfs;

Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }

class VfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ns = MountNamespace::Create(std::make_shared<Tmpfs>(), {}, "none");
    ASSERT_TRUE(ns.has_value());
    vfs_ = std::make_unique<Vfs>(*ns);
    root_ = vfs_->root();
  }
  void Write(const std::string& path, const std::string& data, int extra = O_TRUNC) {
    auto h = vfs_->Open(root_, path, O_WRONLY | O_CREAT | extra, 0644);
    ASSERT_TRUE(h.has_value()) << path << ": " << h.error();
    ASSERT_TRUE((*h)->WriteAt(std::span<const char>(data.data(), data.size()), 0).has_value());
  }
  std::string Read(const std::string& path) {
    auto h = vfs_->Open(root_, path, O_RDONLY);
    if (!h.has_value()) return std::string("<") + h.error().name() + ">";
    std::string out(1 << 16, '\0');
    auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), 0);
    out.resize(n.has_value() ? *n : 0);
    return out;
  }
  std::set<std::string> List(const std::string& path) {
    auto ents = vfs_->ListDir(root_, path);
    std::set<std::string> out;
    if (!ents.has_value()) return {std::string("<") + ents.error().name() + ">"};
    for (auto& e : *ents) {
      if (e.name != "." && e.name != "..") out.insert(e.name);
    }
    return out;
  }
  std::unique_ptr<Vfs> vfs_;
  VirtualDentry root_;
};

TEST_F(VfsTest, CreateWriteReadAndOpenFlags) {
  Write("/a", "hello");
  EXPECT_EQ(Read("/a"), "hello");
  EXPECT_EQ(Err(vfs_->Open(root_, "/a", O_WRONLY | O_CREAT | O_EXCL)), Errno(EEXIST));
  Write("/a", "xy", O_APPEND);
  EXPECT_EQ(Read("/a"), "helloxy") << "O_APPEND writes at the end";
  Write("/a", "z", O_TRUNC);
  EXPECT_EQ(Read("/a"), "z");
  EXPECT_EQ(Err(vfs_->Open(root_, "/a", O_RDONLY | O_DIRECTORY)), Errno(ENOTDIR));
  EXPECT_EQ(Err(vfs_->Open(root_, "/missing", O_RDONLY)), Errno(ENOENT));
  EXPECT_EQ(Err(vfs_->Open(root_, "/a/x", O_RDONLY)), Errno(ENOTDIR));
  EXPECT_EQ(Err(vfs_->Open(root_, "/a/", O_RDONLY)), Errno(ENOTDIR));
  EXPECT_EQ(Err(vfs_->Open(root_, "/", O_WRONLY)), Errno(EISDIR));
  auto h = vfs_->Open(root_, "/a", O_RDONLY);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(Err((*h)->WriteAt(std::span<const char>("q", 1), 0)), Errno(EBADF));
  EXPECT_EQ(Err(vfs_->Open(root_, std::string(300, 'n'), O_RDONLY)), Errno(ENAMETOOLONG));
}

TEST_F(VfsTest, DirectoriesAndErrnos) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/d", 0755).has_value());
  EXPECT_EQ(Err(vfs_->Mkdir(root_, "/d", 0755)), Errno(EEXIST));
  EXPECT_EQ(Err(vfs_->Mkdir(root_, "/d/.", 0755)), Errno(EEXIST));
  EXPECT_EQ(Err(vfs_->Mkdir(root_, "/nope/x", 0755)), Errno(ENOENT));
  Write("/d/f", "1");
  EXPECT_EQ(Err(vfs_->Rmdir(root_, "/d")), Errno(ENOTEMPTY));
  EXPECT_EQ(Err(vfs_->Unlink(root_, "/d")), Errno(EISDIR));
  EXPECT_EQ(Err(vfs_->Rmdir(root_, "/d/f")), Errno(ENOTDIR));
  EXPECT_EQ(Err(vfs_->Rmdir(root_, "/d/.")), Errno(EINVAL));
  ASSERT_TRUE(vfs_->Unlink(root_, "/d/f").has_value());
  ASSERT_TRUE(vfs_->Rmdir(root_, "/d").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/d")), Errno(ENOENT));
  auto a = vfs_->Stat(root_, "/");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->mode & 07777, 01777u);
  EXPECT_EQ(a->nlink, 2u);
}

TEST_F(VfsTest, SymlinksAreFollowedWithALimit) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/d", 0755).has_value());
  Write("/d/target", "T");
  ASSERT_TRUE(vfs_->Symlink(root_, "d/target", "/rel").has_value());
  ASSERT_TRUE(vfs_->Symlink(root_, "/d", "/abs").has_value());
  ASSERT_TRUE(vfs_->Symlink(root_, "../d/target", "/d/up").has_value());
  EXPECT_EQ(Read("/rel"), "T");
  EXPECT_EQ(Read("/abs/target"), "T");
  EXPECT_EQ(Read("/d/up"), "T");
  EXPECT_EQ(*vfs_->Readlink(root_, "/rel"), "d/target");
  EXPECT_EQ(Err(vfs_->Readlink(root_, "/d")), Errno(EINVAL));
  EXPECT_EQ(vfs_->Stat(root_, "/rel", false)->mode & S_IFMT, static_cast<uint32_t>(S_IFLNK));
  EXPECT_EQ(Err(vfs_->Open(root_, "/rel", O_RDONLY | O_NOFOLLOW)), Errno(ELOOP));
  // A chain of 40 links resolves; 41 is ELOOP. A loop is ELOOP.
  for (int i = 1; i <= 41; ++i) {
    ASSERT_TRUE(vfs_->Symlink(root_, "l" + std::to_string(i - 1), "/l" + std::to_string(i)).has_value());
  }
  Write("/l0", "end");
  EXPECT_EQ(Read("/l40"), "end");
  EXPECT_EQ(Err(vfs_->Stat(root_, "/l41")), Errno(ELOOP));
  ASSERT_TRUE(vfs_->Symlink(root_, "loop2", "/loop1").has_value());
  ASSERT_TRUE(vfs_->Symlink(root_, "loop1", "/loop2").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/loop1")), Errno(ELOOP));
  // Dangling, and creating through a dangling link with O_CREAT.
  ASSERT_TRUE(vfs_->Symlink(root_, "/d/new", "/dangling").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/dangling")), Errno(ENOENT));
}

TEST_F(VfsTest, NameLengthsAndTrailingSlashes) {
  std::string n255(255, 'n');
  Write("/" + n255, "long");
  EXPECT_EQ(Read("/" + n255), "long");
  EXPECT_EQ(Err(vfs_->Stat(root_, "/" + std::string(256, 'n'))), Errno(ENAMETOOLONG));
  EXPECT_EQ(Err(vfs_->Mkdir(root_, "/" + std::string(256, 'd'), 0755)), Errno(ENAMETOOLONG));
  ASSERT_TRUE(vfs_->Mkdir(root_, "/dir/", 0755).has_value()) << "trailing slash on mkdir";
  EXPECT_TRUE(vfs_->Stat(root_, "/dir/").has_value());
  EXPECT_TRUE(vfs_->Stat(root_, "/dir//.//").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/" + n255 + "/")), Errno(ENOTDIR));
  ASSERT_TRUE(vfs_->Symlink(root_, "dir", "/dl").has_value());
  EXPECT_TRUE(S_ISDIR(vfs_->Stat(root_, "/dl/", false)->mode)) << "a trailing slash follows";
  ASSERT_TRUE(vfs_->Rmdir(root_, "/dir/").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/dl/")), Errno(ENOENT)) << "dangling now";
}

TEST_F(VfsTest, RelativeResolutionFromADirectory) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/a", 0755).has_value());
  ASSERT_TRUE(vfs_->Mkdir(root_, "/a/b", 0755).has_value());
  Write("/a/b/f", "F");
  Write("/top", "TOP");
  auto cwd = vfs_->ns().Resolve(root_, "/a/b");
  ASSERT_TRUE(cwd.has_value());
  EXPECT_TRUE(vfs_->Stat(*cwd, "f").has_value());
  EXPECT_TRUE(vfs_->Stat(*cwd, "../../top").has_value());
  EXPECT_TRUE(vfs_->Stat(*cwd, "../../../../top").has_value()) << "'..' stops at the root";
  EXPECT_EQ(vfs_->ns().PathOf(*cwd), "/a/b");
}

TEST_F(VfsTest, MountsShadowAndDotDotCrossesThem) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/mnt", 0755).has_value());
  Write("/mnt/hidden", "under the mount");
  Write("/outside", "O");
  ASSERT_TRUE(vfs_->MountAt("/mnt", std::make_shared<Tmpfs>(), {}, "none").has_value());
  EXPECT_EQ(List("/mnt"), std::set<std::string>{}) << "the mount shadows what was there";
  Write("/mnt/inner", "I");
  EXPECT_EQ(Read("/mnt/../outside"), "O");
  ASSERT_TRUE(vfs_->Mkdir(root_, "/mnt/sub", 0755).has_value());
  auto sub = vfs_->ns().Resolve(root_, "/mnt/sub");
  ASSERT_TRUE(sub.has_value());
  EXPECT_EQ(Read("/mnt/sub/../../outside"), "O");
  EXPECT_EQ(vfs_->ns().PathOf(*sub), "/mnt/sub");
  EXPECT_NE(vfs_->Stat(root_, "/mnt")->dev, vfs_->Stat(root_, "/")->dev);
  // Stacked mounts: the last one wins.
  ASSERT_TRUE(vfs_->MountAt("/mnt", std::make_shared<Tmpfs>(), {}, "none").has_value());
  EXPECT_EQ(List("/mnt"), std::set<std::string>{});
  auto mounts = vfs_->ns().Mounts();
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_EQ(mounts[1].path, "/mnt");
  // Mount points cannot be removed or renamed.
  EXPECT_EQ(Err(vfs_->Rmdir(root_, "/mnt")), Errno(EBUSY));
  EXPECT_EQ(Err(vfs_->Rename(root_, "/mnt", "/mnt2")), Errno(EBUSY));
}

TEST_F(VfsTest, ReadOnlyMountsRefuseMutations) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/ro", 0755).has_value());
  auto inner = std::make_shared<Tmpfs>();
  ASSERT_TRUE(vfs_->MountAt("/ro", inner, MountFlags{.read_only = true}, "none").has_value());
  EXPECT_EQ(Err(vfs_->Open(root_, "/ro/f", O_WRONLY | O_CREAT)), Errno(EROFS));
  EXPECT_EQ(Err(vfs_->Mkdir(root_, "/ro/d", 0755)), Errno(EROFS));
  EXPECT_EQ(Err(vfs_->Symlink(root_, "x", "/ro/s")), Errno(EROFS));
  EXPECT_EQ(Err(vfs_->SetAttr(root_, "/ro", SetAttrRequest{.mask = SetAttrRequest::kMode})),
            Errno(EROFS));
  EXPECT_EQ(Err(vfs_->SetXattr(root_, "/ro", "user.a", "1", 0)), Errno(EROFS));
  EXPECT_TRUE(vfs_->Stat(root_, "/ro").has_value());
  EXPECT_EQ(Err(vfs_->Rename(root_, "/ro", "/x")), Errno(EBUSY));
}

TEST_F(VfsTest, RenameRules) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/a", 0755).has_value());
  ASSERT_TRUE(vfs_->Mkdir(root_, "/b", 0755).has_value());
  Write("/a/f", "F");
  Write("/b/g", "G");
  ASSERT_TRUE(vfs_->Rename(root_, "/a/f", "/b/g").has_value());
  EXPECT_EQ(Read("/b/g"), "F");
  EXPECT_EQ(Err(vfs_->Stat(root_, "/a/f")), Errno(ENOENT));
  ASSERT_TRUE(vfs_->Mkdir(root_, "/a/sub", 0755).has_value());
  EXPECT_EQ(Err(vfs_->Rename(root_, "/a", "/a/sub/x")), Errno(EINVAL));
  EXPECT_EQ(Err(vfs_->Rename(root_, "/b/g", "/a")), Errno(EISDIR));
  EXPECT_EQ(Err(vfs_->Rename(root_, "/a", "/b/g")), Errno(ENOTDIR));
  EXPECT_EQ(Err(vfs_->Open(root_, "/b/sub2/x", O_WRONLY | O_CREAT)), Errno(ENOENT));
  EXPECT_EQ(Err(vfs_->Stat(root_, "/b/sub2")), Errno(ENOENT));
  ASSERT_TRUE(vfs_->Mkdir(root_, "/c", 0755).has_value());
  Write("/c/keep", "k");
  EXPECT_EQ(Err(vfs_->Rename(root_, "/a", "/c")), Errno(ENOTEMPTY));
  ASSERT_TRUE(vfs_->Rename(root_, "/a", "/b/moved").has_value());
  EXPECT_EQ(List("/b/moved"), std::set<std::string>{"sub"});
  EXPECT_TRUE(vfs_->Stat(root_, "/b/moved/sub/..").has_value());
  // Across mounts.
  ASSERT_TRUE(vfs_->Mkdir(root_, "/m", 0755).has_value());
  ASSERT_TRUE(vfs_->MountAt("/m", std::make_shared<Tmpfs>(), {}, "none").has_value());
  EXPECT_EQ(Err(vfs_->Rename(root_, "/b/g", "/m/g")), Errno(EXDEV));
  EXPECT_EQ(Err(vfs_->Link(root_, "/b/g", "/m/g")), Errno(EXDEV));
}

TEST_F(VfsTest, HardLinksShareTheInode) {
  Write("/f", "data");
  ASSERT_TRUE(vfs_->Link(root_, "/f", "/g").has_value());
  EXPECT_EQ(vfs_->Stat(root_, "/f")->nlink, 2u);
  EXPECT_EQ(vfs_->Stat(root_, "/f")->ino, vfs_->Stat(root_, "/g")->ino);
  ASSERT_TRUE(vfs_->Unlink(root_, "/f").has_value());
  EXPECT_EQ(Read("/g"), "data");
  EXPECT_EQ(vfs_->Stat(root_, "/g")->nlink, 1u);
  EXPECT_EQ(Err(vfs_->Link(root_, "/", "/rootlink")), Errno(EPERM));
}

TEST_F(VfsTest, UnlinkedOpenFileKeepsWorking) {
  Write("/f", "0123");
  auto h = vfs_->Open(root_, "/f", O_RDWR);
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE(vfs_->Unlink(root_, "/f").has_value());
  ASSERT_TRUE((*h)->WriteAt(std::span<const char>("45", 2), 4).has_value());
  char buf[8];
  auto n = (*h)->ReadAt(buf, 0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string(buf, *n), "012345");
  EXPECT_EQ((*h)->at.dentry->inode()->GetAttr()->nlink, 0u);
}

TEST_F(VfsTest, ReaddirOffsetsSurviveConcurrentChanges) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/d", 0755).has_value());
  for (int i = 0; i < 50; ++i) Write("/d/f" + std::to_string(i), "");
  auto h = vfs_->Open(root_, "/d", O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(h.has_value());
  auto first = (*h)->file->Readdir(0);
  ASSERT_TRUE(first.has_value());
  ASSERT_GE(first->size(), 12u);
  uint64_t resume = (*first)[11].offset;  // After ".", "..", f0..f9.
  // Remove entries already seen and some not yet seen, add new ones.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(vfs_->Unlink(root_, "/d/f" + std::to_string(i)).has_value());
  ASSERT_TRUE(vfs_->Unlink(root_, "/d/f20").has_value());
  Write("/d/new", "");
  auto rest = (*h)->file->Readdir(resume);
  ASSERT_TRUE(rest.has_value());
  std::set<std::string> names;
  for (auto& e : *rest) names.insert(e.name);
  EXPECT_FALSE(names.contains("f3")) << "already returned before the resume point";
  EXPECT_FALSE(names.contains("f20")) << "removed";
  EXPECT_TRUE(names.contains("f10"));
  EXPECT_TRUE(names.contains("f49"));
  EXPECT_TRUE(names.contains("new"));
  EXPECT_EQ(names.size(), 39u + 1);
}

TEST_F(VfsTest, SetattrTruncateAndXattrs) {
  Write("/f", "abcdef");
  ASSERT_TRUE(vfs_->Truncate(root_, "/f", 2).has_value());
  EXPECT_EQ(Read("/f"), "ab");
  ASSERT_TRUE(vfs_->Truncate(root_, "/f", 4).has_value());
  EXPECT_EQ(Read("/f"), std::string("ab\0\0", 4));
  SetAttrRequest r;
  r.mask = SetAttrRequest::kMode | SetAttrRequest::kUid | SetAttrRequest::kMtime;
  r.mode = 0600;
  r.uid = 42;
  r.mtime = {1000, 5};
  ASSERT_TRUE(vfs_->SetAttr(root_, "/f", r).has_value());
  auto a = vfs_->Stat(root_, "/f");
  EXPECT_EQ(a->mode, S_IFREG | 0600u);
  EXPECT_EQ(a->uid, 42u);
  EXPECT_EQ(a->mtime.tv_sec, 1000);
  EXPECT_EQ(Err(vfs_->Truncate(root_, "/", 0)), Errno(EISDIR));
  ASSERT_TRUE(vfs_->SetXattr(root_, "/f", "user.k", "v", XATTR_CREATE).has_value());
  EXPECT_EQ(Err(vfs_->SetXattr(root_, "/f", "user.k", "v", XATTR_CREATE)), Errno(EEXIST));
  EXPECT_EQ(Err(vfs_->SetXattr(root_, "/f", "user.z", "v", XATTR_REPLACE)), Errno(ENODATA));
  EXPECT_EQ(*vfs_->GetXattr(root_, "/f", "user.k"), "v");
  EXPECT_THAT(*vfs_->ListXattr(root_, "/f"), ::testing::ElementsAre("user.k"));
  ASSERT_TRUE(vfs_->RemoveXattr(root_, "/f", "user.k").has_value());
  EXPECT_EQ(Err(vfs_->GetXattr(root_, "/f", "user.k")), Errno(ENODATA));
}

TEST(TmpfsOptionsTest, ParsesModeUidGidAndRejectsTheRest) {
  std::string err;
  auto o = fs::ParseTmpfsOptions("mode=0755,uid=1000,gid=100", &err);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->mode, 0755u);
  EXPECT_EQ(o->uid, 1000u);
  EXPECT_EQ(o->gid, 100u);
  EXPECT_EQ(Err(fs::ParseTmpfsOptions("size=1g", &err)), Errno(EINVAL));
  EXPECT_NE(err.find("unknown option 'size'"), std::string::npos);
  EXPECT_EQ(Err(fs::ParseTmpfsOptions("mode=a=b", &err)), Errno(EINVAL));
  EXPECT_EQ(Err(fs::ParseTmpfsOptions("mode=999", &err)), Errno(EINVAL));
  EXPECT_EQ(Err(fs::ParseTmpfsOptions("uid=x", &err)), Errno(EINVAL));
  EXPECT_EQ(Err(fs::ParseTmpfsOptions("mode", &err)), Errno(EINVAL));
  auto root = fs::Tmpfs(*fs::ParseTmpfsOptions("mode=0700,uid=5", &err)).root()->GetAttr();
  EXPECT_EQ(root->mode, S_IFDIR | 0700u);
  EXPECT_EQ(root->uid, 5u);
}

}  // namespace
}  // namespace sentry::vfs
