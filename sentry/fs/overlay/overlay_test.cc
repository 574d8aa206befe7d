// Overlay semantics over tmpfs layers; the lower layer is checked byte for byte afterwards.
#include "sentry/fs/overlay/overlay.h"

#include <fcntl.h>
#include <sys/xattr.h>

#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sentry/fs/synth/special.h"
#include "sentry/fs/tmpfs/tmpfs.h"
#include "sentry/vfs/vfs.h"

namespace sentry::fs {
namespace {

using vfs::Errno;
using vfs::MountNamespace;
using vfs::SetAttrRequest;
using vfs::Vfs;

Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }

// A file system whose root is a given inode (to overlay a single file).
class OneInodeFs : public vfs::Filesystem {
 public:
  explicit OneInodeFs(std::shared_ptr<vfs::Inode> i) : i_(std::move(i)) {}
  std::string type() const override { return "one"; }
  std::shared_ptr<vfs::Inode> root() override { return i_; }

 private:
  std::shared_ptr<vfs::Inode> i_;
};

class OverlayTest : public ::testing::Test {
 public:
  void SetUp() override {
    lower_ = std::make_shared<Tmpfs>(TmpfsOptions{.mode = 0755});
    auto lns = MountNamespace::Create(lower_, {}, "lower");
    lower_vfs_ = std::make_unique<Vfs>(*lns);
    // The lower tree.
    Mkdir(*lower_vfs_, "/d1");
    Mkdir(*lower_vfs_, "/d1/d2");
    Put(*lower_vfs_, "/d1/d2/f", "deep");
    Put(*lower_vfs_, "/a", "lower a");
    Mkdir(*lower_vfs_, "/dir");
    Put(*lower_vfs_, "/dir/x", "x");
    Put(*lower_vfs_, "/dir/y", "y");
    ASSERT_TRUE(lower_vfs_->Symlink(lower_vfs_->root(), "a", "/sl").has_value());
    SetAttrRequest r;
    r.mask = SetAttrRequest::kMode | SetAttrRequest::kUid;
    r.mode = 0640;
    r.uid = 7;
    ASSERT_TRUE(lower_vfs_->SetAttr(lower_vfs_->root(), "/a", r).has_value());
    ASSERT_TRUE(lower_vfs_->SetXattr(lower_vfs_->root(), "/a", "user.k", "kv", 0).has_value());
    r.mask = SetAttrRequest::kMode;
    r.mode = 0711;
    ASSERT_TRUE(lower_vfs_->SetAttr(lower_vfs_->root(), "/d1", r).has_value());
    before_ = Snapshot(*lower_vfs_, "/");

    auto ov = OverlayFs::Create(std::make_shared<Tmpfs>(), lower_);
    ASSERT_TRUE(ov.has_value());
    ov_ = *ov;
    auto ns = MountNamespace::Create(ov_, {}, "overlay");
    ASSERT_TRUE(ns.has_value());
    vfs_ = std::make_unique<Vfs>(*ns);
    root_ = vfs_->root();
  }
  void TearDown() override {
    EXPECT_EQ(Snapshot(*lower_vfs_, "/"), before_) << "the lower layer was written";
  }

  static void Mkdir(Vfs& v, const std::string& p) { ASSERT_TRUE(v.Mkdir(v.root(), p, 0755).has_value()); }
  static void Put(Vfs& v, const std::string& p, const std::string& data, int extra = O_TRUNC) {
    auto h = v.Open(v.root(), p, O_WRONLY | O_CREAT | extra, 0644);
    ASSERT_TRUE(h.has_value()) << p << " " << h.error();
    ASSERT_TRUE((*h)->WriteAt(std::span<const char>(data.data(), data.size()), 0).has_value());
  }
  static std::string Get(Vfs& v, const std::string& p) {
    auto h = v.Open(v.root(), p, O_RDONLY);
    if (!h.has_value()) return std::string("<") + h.error().name() + ">";
    std::string out(4096, '\0');
    auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), 0);
    out.resize(n.has_value() ? *n : 0);
    return out;
  }
  static std::set<std::string> Names(Vfs& v, const std::string& p) {
    auto ents = v.ListDir(v.root(), p);
    std::set<std::string> out;
    if (!ents.has_value()) return {std::string("<") + ents.error().name() + ">"};
    for (auto& e : *ents) {
      if (e.name != "." && e.name != "..") {
        EXPECT_TRUE(out.insert(e.name).second) << "dup " << e.name;
      }
    }
    return out;
  }
  // path -> "mode uid size data" of every file in a tree.
  static std::map<std::string, std::string> Snapshot(Vfs& v, const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& n : Names(v, dir)) {
      std::string p = (dir == "/" ? "" : dir) + "/" + n;
      auto a = v.Stat(v.root(), p, false);
      std::string desc = std::to_string(a->mode) + " " + std::to_string(a->uid) + " " +
                         std::to_string(a->size);
      if (S_ISREG(a->mode)) desc += " " + Get(v, p);
      out[p] = desc;
      if (S_ISDIR(a->mode)) {
        auto sub = Snapshot(v, p);
        out.insert(sub.begin(), sub.end());
      }
    }
    return out;
  }

  std::shared_ptr<Tmpfs> lower_;
  std::unique_ptr<Vfs> lower_vfs_;
  std::map<std::string, std::string> before_;
  std::shared_ptr<OverlayFs> ov_;
  std::unique_ptr<Vfs> vfs_;
  vfs::VirtualDentry root_;
};

TEST_F(OverlayTest, ReadsComeFromTheLowerLayer) {
  EXPECT_EQ(Get(*vfs_, "/a"), "lower a");
  EXPECT_EQ(Get(*vfs_, "/d1/d2/f"), "deep");
  EXPECT_EQ(Get(*vfs_, "/sl"), "lower a");
  EXPECT_EQ(Names(*vfs_, "/"), (std::set<std::string>{"a", "d1", "dir", "sl"}));
  EXPECT_EQ(vfs_->Stat(root_, "/")->mode & 07777, 0755u) << "root looks like the lower root";
}

TEST_F(OverlayTest, FirstWriteCopiesUpDataModeOwnerXattrs) {
  auto ino = vfs_->Stat(root_, "/a")->ino;
  auto h = vfs_->Open(root_, "/a", O_WRONLY | O_APPEND);
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE((*h)->WriteAt(std::span<const char>("+more", 5), 0).has_value());
  EXPECT_EQ(Get(*vfs_, "/a"), "lower a+more");
  auto a = vfs_->Stat(root_, "/a");
  EXPECT_EQ(a->mode & 07777, 0640u);
  EXPECT_EQ(a->uid, 7u);
  EXPECT_EQ(a->ino, ino) << "inode numbers are stable across copy-up";
  EXPECT_EQ(*vfs_->GetXattr(root_, "/a", "user.k"), "kv");
  EXPECT_EQ(Get(*lower_vfs_, "/a"), "lower a");
}

TEST_F(OverlayTest, MetadataChangeCopiesUpParentsToo) {
  SetAttrRequest r;
  r.mask = SetAttrRequest::kMode;
  r.mode = 0600;
  ASSERT_TRUE(vfs_->SetAttr(root_, "/d1/d2/f", r).has_value());
  EXPECT_EQ(vfs_->Stat(root_, "/d1/d2/f")->mode & 07777, 0600u);
  EXPECT_EQ(vfs_->Stat(root_, "/d1")->mode & 07777, 0711u) << "parent copied with its mode";
  auto upper = MountNamespace::Create(ov_->upper(), {}, "upper");
  Vfs up(*upper);
  EXPECT_EQ(Get(up, "/d1/d2/f"), "deep");
  EXPECT_EQ(up.Stat(up.root(), "/d1")->mode & 07777, 0711u);
}

TEST_F(OverlayTest, DeletedLowerFilesStayDeleted) {
  ASSERT_TRUE(vfs_->Unlink(root_, "/a").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/a")), Errno(ENOENT));
  EXPECT_FALSE(Names(*vfs_, "/").contains("a"));
  EXPECT_EQ(Err(vfs_->Unlink(root_, "/a")), Errno(ENOENT));
  // Re-creating the name gives a new, empty file.
  Put(*vfs_, "/a", "new");
  EXPECT_EQ(Get(*vfs_, "/a"), "new");
}

// A lower file copied up and then forgotten (nothing holds its inode, as after the kernel
// drops its dentries) resolves from the upper layer alone. Deleting or renaming it must
// still hide the lower file: whether to leave a whiteout is the lower layer's to say, not
// what the inode remembers.
TEST_F(OverlayTest, CopiedUpFilesStayGoneWhenDeletedOrRenamed) {
  Put(*vfs_, "/dir/x", "changed x");
  Put(*vfs_, "/a", "changed a");
  ASSERT_TRUE(vfs_->Unlink(root_, "/dir/x").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/dir/x")), Errno(ENOENT));
  EXPECT_EQ(Names(*vfs_, "/dir"), std::set<std::string>{"y"});
  ASSERT_TRUE(vfs_->Rename(root_, "/a", "/moved").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/a")), Errno(ENOENT));
  EXPECT_FALSE(Names(*vfs_, "/").contains("a"));
  EXPECT_EQ(Get(*vfs_, "/moved"), "changed a");
}

TEST_F(OverlayTest, RecreatedDirectoryIsOpaque) {
  EXPECT_EQ(Err(vfs_->Rmdir(root_, "/dir")), Errno(ENOTEMPTY));
  ASSERT_TRUE(vfs_->Unlink(root_, "/dir/x").has_value());
  ASSERT_TRUE(vfs_->Unlink(root_, "/dir/y").has_value());
  EXPECT_EQ(Names(*vfs_, "/dir"), std::set<std::string>{});
  ASSERT_TRUE(vfs_->Rmdir(root_, "/dir").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/dir")), Errno(ENOENT));
  Mkdir(*vfs_, "/dir");
  EXPECT_EQ(Names(*vfs_, "/dir"), std::set<std::string>{}) << "the lower dir shows through";
  EXPECT_EQ(Err(vfs_->Stat(root_, "/dir/x")), Errno(ENOENT));
  EXPECT_THAT(*vfs_->ListXattr(root_, "/dir"), ::testing::IsEmpty());
}

TEST_F(OverlayTest, ReaddirMergesWithoutDuplicates) {
  Put(*vfs_, "/dir/z", "z");
  Put(*vfs_, "/dir/x", "changed");
  EXPECT_EQ(Names(*vfs_, "/dir"), (std::set<std::string>{"x", "y", "z"}));
  EXPECT_EQ(Get(*vfs_, "/dir/x"), "changed");
  ASSERT_TRUE(vfs_->Unlink(root_, "/dir/y").has_value());
  EXPECT_EQ(Names(*vfs_, "/dir"), (std::set<std::string>{"x", "z"}));
}

TEST_F(OverlayTest, RenameWithinTheOverlay) {
  ASSERT_TRUE(vfs_->Rename(root_, "/a", "/dir/a2").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/a")), Errno(ENOENT));
  EXPECT_EQ(Get(*vfs_, "/dir/a2"), "lower a");
  ASSERT_TRUE(vfs_->Rename(root_, "/dir/a2", "/dir/x").has_value()) << "over a lower file";
  EXPECT_EQ(Get(*vfs_, "/dir/x"), "lower a");
  EXPECT_EQ(Names(*vfs_, "/dir"), (std::set<std::string>{"x", "y"}));
  EXPECT_EQ(Err(vfs_->Rename(root_, "/d1", "/d1moved")), Errno(EXDEV)) << "merged directory";
  Mkdir(*vfs_, "/newdir");
  Put(*vfs_, "/newdir/f", "nf");
  ASSERT_TRUE(vfs_->Rename(root_, "/newdir", "/d3").has_value());
  EXPECT_EQ(Get(*vfs_, "/d3/f"), "nf");
}

TEST_F(OverlayTest, HardLinkOfALowerFile) {
  ASSERT_TRUE(vfs_->Link(root_, "/a", "/a_link").has_value());
  EXPECT_EQ(Get(*vfs_, "/a_link"), "lower a");
  EXPECT_EQ(vfs_->Stat(root_, "/a_link")->nlink, 2u);
}

TEST_F(OverlayTest, UnlinkWhileOpen) {
  // A lower file opened for reading keeps its data after the name is deleted.
  auto lo = vfs_->Open(root_, "/a", O_RDONLY);
  ASSERT_TRUE(lo.has_value());
  ASSERT_TRUE(vfs_->Unlink(root_, "/a").has_value());
  char buf[16];
  auto n = (*lo)->ReadAt(buf, 0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string(buf, *n), "lower a");
  // A copied-up file opened for writing keeps working after unlink.
  auto up = vfs_->Open(root_, "/d1/d2/f", O_RDWR);
  ASSERT_TRUE(up.has_value());
  ASSERT_TRUE(vfs_->Unlink(root_, "/d1/d2/f").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/d1/d2/f")), Errno(ENOENT));
  ASSERT_TRUE((*up)->WriteAt(std::span<const char>("!!", 2), 4).has_value());
  n = (*up)->ReadAt(buf, 0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string(buf, *n), "deep!!");
}

TEST_F(OverlayTest, TruncateAndCreateExclusive) {
  ASSERT_TRUE(vfs_->Truncate(root_, "/d1/d2/f", 2).has_value());
  EXPECT_EQ(Get(*vfs_, "/d1/d2/f"), "de");
  EXPECT_EQ(Err(vfs_->Open(root_, "/a", O_CREAT | O_EXCL | O_WRONLY)), Errno(EEXIST));
  EXPECT_EQ(Err(vfs_->Mkdir(root_, "/dir", 0755)), Errno(EEXIST));
}

TEST_F(OverlayTest, OverlayOverASingleFile) {
  auto file = lower_->root()->Lookup("a");
  ASSERT_TRUE(file.has_value());
  auto ov = OverlayFs::Create(std::make_shared<Tmpfs>(), std::make_shared<OneInodeFs>(*file));
  ASSERT_TRUE(ov.has_value());
  // Mount it over a file of the merged tree, as a bind-mounted /etc/hostname would be.
  ASSERT_TRUE(vfs_->MountAt("/dir/x", *ov, {}, "none").has_value());
  EXPECT_EQ(Get(*vfs_, "/dir/x"), "lower a");
  Put(*vfs_, "/dir/x", "rewritten");
  EXPECT_EQ(Get(*vfs_, "/dir/x"), "rewritten");
  EXPECT_EQ(Get(*lower_vfs_, "/a"), "lower a");
}

// The submount overlay: the real tree is the upper and is never reinterpreted or marked.
TEST(SubmountOverlayTest, UpperIsAuthoritativeAndNeverMarked) {
  auto real = std::make_shared<Tmpfs>(TmpfsOptions{.mode = 0755});
  auto rns = MountNamespace::Create(real, {}, "real");
  Vfs rv(*rns);
  // What an overlayfs upper would read as a whiteout and an opaque directory.
  ASSERT_TRUE(rv.Mknod(rv.root(), "/w", S_IFCHR | 0600, 0).has_value());
  ASSERT_TRUE(rv.Mkdir(rv.root(), "/proc", 0755).has_value());
  ASSERT_TRUE(rv.SetXattr(rv.root(), "/proc", kOpaqueXattr, "y", 0).has_value());
  OverlayTest::Put(rv, "/proc/keep", "k");
  ASSERT_TRUE(rv.Mkdir(rv.root(), "/tmp", 0700).has_value());

  auto tree = MakeMountPointTree({"/proc/self", "/tmp", "/dev/pts"});
  auto ov = OverlayFs::Create(real, tree, OverlayFs::Kind::kSubmounts);
  ASSERT_TRUE(ov.has_value());
  auto ns = MountNamespace::Create(*ov, {}, "sub");
  Vfs v(*ns);
  EXPECT_EQ(OverlayTest::Names(v, "/"), (std::set<std::string>{"w", "proc", "tmp", "dev"}));
  EXPECT_TRUE(S_ISCHR(v.Stat(v.root(), "/w", false)->mode)) << "a 0:0 device is just a device";
  EXPECT_EQ(OverlayTest::Names(v, "/proc"), (std::set<std::string>{"keep", "self"}))
      << "the opaque xattr does not hide the mount points";
  EXPECT_EQ(v.Stat(v.root(), "/tmp", false)->mode & 07777, 0700u) << "the real dir wins";
  EXPECT_EQ(v.Stat(v.root(), "/", false)->mode & 07777, 0755u);

  // Removing the real /tmp leaves no whiteout: the mount point shows again.
  ASSERT_TRUE(v.Rmdir(v.root(), "/tmp").has_value());
  EXPECT_EQ(OverlayTest::Names(rv, "/"), (std::set<std::string>{"w", "proc"}));
  EXPECT_TRUE(v.Stat(v.root(), "/tmp", false).has_value());
  ASSERT_TRUE(v.Unlink(v.root(), "/w").has_value());
  EXPECT_EQ(OverlayTest::Names(rv, "/"), (std::set<std::string>{"proc"}));
  EXPECT_EQ(Err(v.Mkdir(v.root(), "/tmp", 0755)), Errno(EEXIST)) << "the mount point is there";
  // Creating in a merged directory writes the new file and nothing else.
  OverlayTest::Put(v, "/proc/new", "n");
  EXPECT_EQ(OverlayTest::Names(rv, "/proc"), (std::set<std::string>{"keep", "new"}));
}

}  // namespace
}  // namespace sentry::fs
