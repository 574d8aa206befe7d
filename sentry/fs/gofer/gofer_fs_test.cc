// The sentry VFS over a "9p" mount of our gofer (in process, real socketpair, real temp
// tree), run for each cache policy; host-side changes are checked against what each policy
// promises.
#include "sentry/fs/gofer/gofer_fs.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gofer/attach_point.h"
#include "gtest/gtest.h"
#include "p9/server.h"
#include "p9/socket_util.h"
#include "sentry/vfs/vfs.h"

namespace sentry::fs {
namespace {

namespace hfs = std::filesystem;
using vfs::Errno;
using vfs::MountNamespace;
using vfs::Vfs;

Errno Err(const auto& r) { return r.has_value() ? Errno(0) : r.error(); }

class GoferFsTest : public ::testing::TestWithParam<CachePolicy> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gofer_fs_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    hfs::create_directories(dir_ / "sub");
    std::ofstream(dir_ / "hello") << "hello host";
    auto ap = gofer::AttachPoint::Open(dir_.string(), false, nullptr);
    ASSERT_TRUE(ap.has_value());
    attacher_ = gofer::HostAttacher::ForOne(*ap);
    Mount(p9::ServerOptions{.threads = 2});
  }
  // (Re)mounts the tree from a new server with `options`.
  void Mount(p9::ServerOptions options) {
    root_ = {};
    vfs_.reset();
    fs_.reset();
    if (server_) {
      EXPECT_TRUE(server_->WaitNoConnections(std::chrono::seconds(10)));
    }
    server_ = std::make_unique<p9::Server>(*attacher_, options);
    auto pair = p9::SocketPair();
    ASSERT_TRUE(pair.has_value());
    server_->AddConnection(std::move(pair->second));
    int fd = pair->first.release();
    std::string data = "trans=fd,rfdno=" + std::to_string(fd) + ",wfdno=" + std::to_string(fd) +
                       ",privateunixsocket=true,cache=" + CachePolicyName(GetParam());
    std::string error;
    auto fs = GoferFs::Mount(data, &error);
    ASSERT_TRUE(fs.has_value()) << error;
    fs_ = *fs;
    auto ns = MountNamespace::Create(fs_, {}, "9pfs-/");
    ASSERT_TRUE(ns.has_value());
    vfs_ = std::make_unique<Vfs>(*ns);
    root_ = vfs_->root();
  }
  void TearDown() override {
    root_ = {};  // Holds the mount, hence the file system and its client.
    vfs_.reset();
    fs_.reset();
    if (server_) {
      EXPECT_TRUE(server_->WaitNoConnections(std::chrono::seconds(10)));
    }
    server_.reset();
    hfs::remove_all(dir_);
  }
  std::string Read(const std::string& path) {
    auto h = vfs_->Open(root_, path, O_RDONLY);
    if (!h.has_value()) return std::string("<") + h.error().name() + ">";
    std::string out(1 << 16, '\0');
    auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), 0);
    out.resize(n.has_value() ? *n : 0);
    return out;
  }
  p9::Result<void> Write(const std::string& path, const std::string& data) {
    P9_ASSIGN_OR_RETURN(auto h, vfs_->Open(root_, path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
    P9_RETURN_IF_ERROR(h->WriteAt(std::span<const char>(data.data(), data.size()), 0));
    return p9::Ok();
  }
  std::string HostRead(const std::string& rel) {
    std::ifstream in(dir_ / rel);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  bool revalidates() const {
    return GetParam() == CachePolicy::kRemoteRevalidating || GetParam() == CachePolicy::kNone;
  }

  hfs::path dir_;
  std::unique_ptr<gofer::HostAttacher> attacher_;
  std::unique_ptr<p9::Server> server_;
  std::shared_ptr<GoferFs> fs_;
  std::unique_ptr<Vfs> vfs_;
  vfs::VirtualDentry root_;
};

INSTANTIATE_TEST_SUITE_P(Policies, GoferFsTest,
                         ::testing::Values(CachePolicy::kRemoteRevalidating, CachePolicy::kFscache,
                                           CachePolicy::kFscacheWritethrough, CachePolicy::kNone),
                         [](const auto& info) { return std::string(CachePolicyName(info.param)); });

TEST_P(GoferFsTest, ReadsAndWritesReachTheHost) {
  EXPECT_TRUE(fs_->fd_donation());
  EXPECT_EQ(Read("/hello"), "hello host");
  ASSERT_TRUE(Write("/sub/new", "from the sandbox").has_value());
  EXPECT_EQ(HostRead("sub/new"), "from the sandbox");
  EXPECT_EQ(Read("/sub/new"), "from the sandbox");
  auto a = vfs_->Stat(root_, "/sub/new");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size, 16u);
  EXPECT_EQ(a->mode & 0777, 0644u & ~[] { mode_t m = umask(0); umask(m); return m; }());
}

// A server that donates no fds (plain 9P2000.L): file data comes by Tread, several in flight
// for a read larger than one message (p9::Client::ReadFull), and arrives whole and in order.
TEST_P(GoferFsTest, WithoutDonatedFdsLargeReadsComeWholeByTread) {
  Mount(p9::ServerOptions{.threads = 2, .max_dialect = p9::Dialect::kPlain});
  ASSERT_FALSE(fs_->fd_donation());
  std::string data((3u << 20) + 4321, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13 % 251);
  std::ofstream(dir_ / "big", std::ios::binary) << data;
  auto h = vfs_->Open(root_, "/big", O_RDONLY);
  ASSERT_TRUE(h.has_value()) << h.error();
  for (auto [off, len] : {std::pair<uint64_t, size_t>{0, data.size() + 100}, {777, 2u << 20},
                          {data.size() - 10, 1u << 20}}) {
    std::string out(len, '\0');
    auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), off);
    ASSERT_TRUE(n.has_value()) << n.error();
    size_t want = std::min<size_t>(len, data.size() - off);
    ASSERT_EQ(*n, want) << "offset " << off;
    EXPECT_TRUE(out.substr(0, want) == data.substr(off, want)) << "offset " << off;
  }
  // Writes go by Twrite the same way, several in flight (p9::Client::WriteFull); under the
  // fscache policies when the handle closes.
  std::string patch((5u << 19) + 99, '\0');
  for (size_t i = 0; i < patch.size(); ++i) patch[i] = static_cast<char>(i * 29 % 241);
  {
    auto w = vfs_->Open(root_, "/big", O_WRONLY);
    ASSERT_TRUE(w.has_value()) << w.error();
    auto n = (*w)->WriteAt(std::span<const char>(patch.data(), patch.size()), 100);
    ASSERT_TRUE(n.has_value()) << n.error();
  }
  data.replace(100, patch.size(), patch);
  EXPECT_TRUE(HostRead("big") == data);
}

TEST_P(GoferFsTest, NamespaceOperationsKeepHostErrnos) {
  ASSERT_TRUE(vfs_->Mkdir(root_, "/d", 0755).has_value());
  EXPECT_TRUE(hfs::is_directory(dir_ / "d"));
  EXPECT_EQ(Err(vfs_->Mkdir(root_, "/d", 0755)), Errno(EEXIST));
  ASSERT_TRUE(Write("/d/f", "x").has_value());
  EXPECT_EQ(Err(vfs_->Rmdir(root_, "/d")), Errno(ENOTEMPTY));
  ASSERT_TRUE(vfs_->Rename(root_, "/d/f", "/g").has_value());
  EXPECT_TRUE(hfs::exists(dir_ / "g"));
  EXPECT_FALSE(hfs::exists(dir_ / "d" / "f"));
  ASSERT_TRUE(vfs_->Symlink(root_, "g", "/ln").has_value());
  EXPECT_EQ(hfs::read_symlink(dir_ / "ln"), "g");
  EXPECT_EQ(Read("/ln"), "x") << "the sentry follows symlinks itself";
  ASSERT_TRUE(vfs_->Link(root_, "/g", "/g2").has_value());
  EXPECT_EQ(vfs_->Stat(root_, "/g")->nlink, 2u);
  ASSERT_TRUE(vfs_->Unlink(root_, "/g2").has_value());
  ASSERT_TRUE(vfs_->Rmdir(root_, "/d").has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/d")), Errno(ENOENT));
  EXPECT_EQ(Err(vfs_->Unlink(root_, "/nothing")), Errno(ENOENT));
  ASSERT_TRUE(vfs_->Truncate(root_, "/g", 0).has_value());
  EXPECT_EQ(HostRead("g"), "");
  auto ents = vfs_->ListDir(root_, "/");
  ASSERT_TRUE(ents.has_value());
  std::set<std::string> names;
  for (auto& e : *ents) names.insert(e.name);
  EXPECT_EQ(names, (std::set<std::string>{".", "..", "hello", "sub", "g", "ln"}));
  auto sfs = vfs_->StatFs(root_, "/");
  ASSERT_TRUE(sfs.has_value());
  EXPECT_EQ(sfs->namelen, 255u);
}

TEST_P(GoferFsTest, XattrsPassThrough) {
  if (setxattr((dir_ / "hello").c_str(), "user.probe", "1", 1, 0) != 0) {
    GTEST_SKIP() << "host fs has no user xattrs";
  }
  ASSERT_TRUE(vfs_->SetXattr(root_, "/hello", "user.k", "v", 0).has_value());
  EXPECT_EQ(*vfs_->GetXattr(root_, "/hello", "user.k"), "v");
  EXPECT_THAT(*vfs_->ListXattr(root_, "/hello"), ::testing::Contains("user.k"));
  ASSERT_TRUE(vfs_->RemoveXattr(root_, "/hello", "user.k").has_value());
  EXPECT_EQ(Err(vfs_->GetXattr(root_, "/hello", "user.k")), Errno(ENODATA));
}

TEST_P(GoferFsTest, HostChangesAreSeenAsThePolicyPromises) {
  // Prime the caches.
  ASSERT_EQ(Read("/hello"), "hello host");
  ASSERT_TRUE(vfs_->Stat(root_, "/sub").has_value());
  auto before = vfs_->Stat(root_, "/hello");
  ASSERT_TRUE(before.has_value());
  // Writes on the host: a new open reads them (under fscache only because nothing kept the
  // inode, and with it its page cache, alive in between).
  std::ofstream(dir_ / "hello", std::ios::trunc) << "rewritten on the host";
  EXPECT_EQ(Read("/hello"), "rewritten on the host");
  // From here a dentry of /hello is held, as a kernel node would hold it.
  auto held = vfs_->ns().Resolve(root_, "/hello", true);
  ASSERT_TRUE(held.has_value());
  // Create on the host: never looked up before, so every policy sees it.
  std::ofstream(dir_ / "sub" / "created") << "c";
  EXPECT_TRUE(vfs_->Stat(root_, "/sub/created").has_value());
  // Replace on the host (a new inode under the old name).
  hfs::remove(dir_ / "hello");
  std::ofstream(dir_ / "hello") << "replaced";
  // Delete and rename on the host.
  hfs::rename(dir_ / "sub" / "created", dir_ / "sub" / "renamed");
  if (revalidates()) {
    EXPECT_EQ(Read("/hello"), "replaced");
    // (No inode-number check: ext4 hands the freed number to the new file at once.)
    EXPECT_EQ(vfs_->Stat(root_, "/hello")->size, 8u);
    EXPECT_EQ(Err(vfs_->Stat(root_, "/sub/created")), Errno(ENOENT));
    EXPECT_TRUE(vfs_->Stat(root_, "/sub/renamed").has_value());
  } else {
    // fscache: the held dentry and its cached attributes are trusted (exclusive access), so
    // the replaced name is stale until evicted. This is the documented trade. (Not the inode
    // number: ext4 may or may not give the freed one to the new file.)
    EXPECT_EQ(vfs_->Stat(root_, "/hello")->size, 21u) << "stale by design";
    EXPECT_TRUE(vfs_->Stat(root_, "/sub/renamed").has_value()) << "new names are looked up";
  }
}

TEST_P(GoferFsTest, UnlinkedOpenFileKeepsWorking) {
  ASSERT_TRUE(Write("/tmpf", "abc").has_value());
  auto h = vfs_->Open(root_, "/tmpf", O_RDWR);
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE(vfs_->Unlink(root_, "/tmpf").has_value());
  EXPECT_FALSE(hfs::exists(dir_ / "tmpf"));
  ASSERT_TRUE((*h)->WriteAt(std::span<const char>("de", 2), 3).has_value());
  char buf[8];
  auto n = (*h)->ReadAt(buf, 0);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string(buf, *n), "abcde");
}

TEST_P(GoferFsTest, GoferDeathIsAnErrorNotAHang) {
  server_->Stop();
  server_.reset();
  auto r = vfs_->Stat(root_, "/hello");
  if (GetParam() == CachePolicy::kFscache || GetParam() == CachePolicy::kFscacheWritethrough) {
    // Cached attributes may still answer; anything that needs the gofer fails.
    EXPECT_EQ(Err(vfs_->Mkdir(root_, "/newdir", 0755)), Errno(ECONNRESET));
  } else {
    EXPECT_EQ(Err(r), Errno(ECONNRESET));
  }
  EXPECT_EQ(Read("/hello").substr(0, 1), "<");
}

TEST_P(GoferFsTest, NegativeLookupsAndListingsFollowThePolicy) {
  auto names = [&] {
    std::set<std::string> out;
    auto ents = vfs_->ListDir(root_, "/sub");
    if (ents.has_value()) {
      for (auto& e : *ents) out.insert(e.name);
    }
    return out;
  };
  auto sub = vfs_->ns().Resolve(root_, "/sub");  // Keeps the directory's inode cached.
  ASSERT_TRUE(sub.has_value());
  EXPECT_EQ(Err(vfs_->Stat(root_, "/sub/later")), Errno(ENOENT));
  EXPECT_EQ(names(), (std::set<std::string>{".", ".."}));
  std::ofstream(dir_ / "sub" / "later") << "l";
  if (revalidates()) {
    EXPECT_TRUE(vfs_->Stat(root_, "/sub/later").has_value());
    EXPECT_TRUE(names().contains("later"));
  } else {
    EXPECT_EQ(Err(vfs_->Stat(root_, "/sub/later")), Errno(ENOENT)) << "negative entry cached";
    EXPECT_FALSE(names().contains("later")) << "listing cached";
    // Our own change refreshes both.
    ASSERT_TRUE(Write("/sub/mine", "m").has_value());
    EXPECT_TRUE(names().contains("later"));
    EXPECT_TRUE(names().contains("mine"));
  }
}

TEST_P(GoferFsTest, WritesReachTheHostAsThePolicySays) {
  auto h = vfs_->Open(root_, "/hello", O_WRONLY);
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE((*h)->WriteAt(std::span<const char>("HELLO", 5), 0).has_value());
  if (GetParam() == CachePolicy::kFscache) {
    EXPECT_EQ(HostRead("hello"), "hello host") << "write-back: still only in the sentry";
    EXPECT_EQ(Read("/hello"), "HELLO host") << "but the sandbox sees its own write";
    ASSERT_TRUE((*h)->file->Fsync().has_value());
  }
  EXPECT_EQ(HostRead("hello"), "HELLO host");
  // Close writes back too.
  ASSERT_TRUE((*h)->WriteAt(std::span<const char>("!", 1), 10).has_value());
  h->reset();
  EXPECT_EQ(HostRead("hello"), "HELLO host!");
}

TEST_P(GoferFsTest, RandomWritesMatchAModel) {
  std::string model(20000, '\0');
  for (size_t i = 0; i < model.size(); ++i) model[i] = static_cast<char>('a' + i % 23);
  ASSERT_TRUE(Write("/big", model).has_value());
  auto h = vfs_->Open(root_, "/big", O_RDWR);
  ASSERT_TRUE(h.has_value());
  uint32_t seed = 12345;
  auto rnd = [&] { return seed = seed * 1103515245 + 12345, (seed >> 8); };
  for (int i = 0; i < 200; ++i) {
    size_t off = rnd() % 30000, len = 1 + rnd() % 6000;
    std::string data(len, static_cast<char>('A' + i % 26));
    ASSERT_TRUE((*h)->WriteAt(std::span<const char>(data.data(), len), off).has_value());
    if (model.size() < off + len) model.resize(off + len, '\0');
    model.replace(off, len, data);
    if (i % 50 == 49) {
      size_t to = rnd() % model.size();
      ASSERT_TRUE(vfs_->Truncate(root_, "/big", to).has_value());
      model.resize(to);
    }
  }
  EXPECT_EQ(vfs_->Stat(root_, "/big")->size, model.size());
  std::string back(model.size() + 10, 'x');
  auto n = (*h)->ReadAt(std::span<char>(back.data(), back.size()), 0);
  ASSERT_TRUE(n.has_value());
  back.resize(*n);
  EXPECT_TRUE(back == model) << "read back differs";
  h->reset();  // Close: write-back.
  EXPECT_TRUE(HostRead("big") == model) << "host copy differs after close";
}

// Whatever the policy, attributes after chown, chmod and utimens are the host's (with
// attribute caching they are computed locally, without asking: they must still agree).
TEST_P(GoferFsTest, AttributesAfterSetattrMatchTheHost) {
  std::ofstream(dir_ / "s") << "x";
  ASSERT_EQ(chmod((dir_ / "s").c_str(), 06755), 0);
  // Held, so the same inode (and its cached attributes, where the policy caches) serves
  // every step; an unheld dentry would be walked afresh each time.
  auto vd = vfs_->ns().Resolve(root_, "/s", false);
  ASSERT_TRUE(vd.has_value());
  ASSERT_TRUE(vfs_->StatAt(*vd).has_value());
  using S = vfs::SetAttrRequest;
  std::vector<S> steps(4);
  steps[0].mask = S::kUid | S::kGid, steps[0].uid = 1234, steps[0].gid = 4321;  // Drops s-bits.
  steps[1].mask = S::kMode, steps[1].mode = 02710;
  steps[2].mask = S::kGid, steps[2].gid = 99;  // Drops set-group-ID (group can execute).
  steps[3].mask = S::kAtime | S::kMtime, steps[3].atime = {1000, 5}, steps[3].mtime = {2000, 7};
  for (size_t i = 0; i < steps.size(); ++i) {
    auto r = vfs_->SetAttrAt(*vd, steps[i]);
    ASSERT_TRUE(r.has_value()) << "step " << i << ": " << r.error();
    auto a = vfs_->StatAt(*vd);
    ASSERT_TRUE(a.has_value());
    struct stat h;
    ASSERT_EQ(lstat((dir_ / "s").c_str(), &h), 0);
    EXPECT_EQ(a->mode, h.st_mode) << "step " << i << " " << std::oct << a->mode << " " << h.st_mode;
    EXPECT_EQ(a->uid, h.st_uid) << "step " << i;
    EXPECT_EQ(a->gid, h.st_gid) << "step " << i;
    EXPECT_EQ(a->mtime.tv_sec, h.st_mtim.tv_sec) << "step " << i;
    EXPECT_EQ(a->mtime.tv_nsec, h.st_mtim.tv_nsec) << "step " << i;
    EXPECT_EQ(a->atime.tv_sec, h.st_atim.tv_sec) << "step " << i;
  }
}

// Xattrs through the sentry: an absence is remembered only until we set the name.
TEST_P(GoferFsTest, XattrCacheFollowsOurChanges) {
  if (setxattr((dir_ / "hello").c_str(), "user.probe", "1", 1, 0) != 0) {
    GTEST_SKIP() << "host fs has no user xattrs";
  }
  auto vd = vfs_->ns().Resolve(root_, "/hello", false);  // Held: one inode, one cache.
  ASSERT_TRUE(vd.has_value());
  EXPECT_EQ(Err(vfs_->GetXattrAt(*vd, "user.k")), Errno(ENODATA));
  ASSERT_TRUE(vfs_->SetXattrAt(*vd, "user.k", "v1", 0).has_value());
  EXPECT_EQ(vfs_->GetXattrAt(*vd, "user.k").value(), "v1");
  ASSERT_TRUE(vfs_->SetXattrAt(*vd, "user.k", "v2", 0).has_value());
  EXPECT_EQ(vfs_->GetXattrAt(*vd, "user.k").value(), "v2");
  ASSERT_TRUE(vfs_->RemoveXattrAt(*vd, "user.k").has_value());
  EXPECT_EQ(Err(vfs_->GetXattrAt(*vd, "user.k")), Errno(ENODATA));
  char buf[8];
  EXPECT_LT(getxattr((dir_ / "hello").c_str(), "user.k", buf, sizeof(buf)), 0);
  // A file we create has no capabilities; the host agrees.
  ASSERT_TRUE(vfs_->Open(root_, "/new", O_WRONLY | O_CREAT, 0755).has_value());
  EXPECT_EQ(Err(vfs_->GetXattr(root_, "/new", "security.capability")), Errno(ENODATA));
}

// Under fscache a directory made (or listed) by the sandbox knows all its names: absent ones
// need no walk (so a file put there behind its back stays unseen, as the policy allows), and
// the sandbox's own creates, unlinks and renames stay exact.
TEST_P(GoferFsTest, KnownNamesFollowOurChanges) {
  // As Vfs::Mkdir does, but keeping the new dentry (as the FUSE frontend's node does): an
  // unheld dentry is dropped, and a fresh walk makes an inode that knows nothing yet.
  auto made = root_.dentry->inode()->Mkdir("d", 0755, 0, 0);
  ASSERT_TRUE(made.has_value());
  std::optional<vfs::VirtualDentry> d =
      vfs::VirtualDentry{root_.mount, root_.dentry->AddChild("d", *made, S_IFDIR)};
  std::ofstream(dir_ / "d" / "behind") << "x";
  bool caches = GetParam() == CachePolicy::kFscache ||
                GetParam() == CachePolicy::kFscacheWritethrough;
  EXPECT_EQ(vfs_->Stat(*d, "behind").has_value(), !caches);
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(vfs_->Open(*d, "f", O_WRONLY | O_CREAT | O_EXCL, 0644).has_value()) << round;
    EXPECT_TRUE(vfs_->Stat(*d, "f").has_value());
    ASSERT_TRUE(vfs_->Rename(*d, "f", "g").has_value());
    EXPECT_EQ(Err(vfs_->Stat(*d, "f")), Errno(ENOENT));
    EXPECT_TRUE(vfs_->Stat(*d, "g").has_value());
    ASSERT_TRUE(vfs_->Unlink(*d, "g").has_value());
    EXPECT_EQ(Err(vfs_->Stat(*d, "g")), Errno(ENOENT));
  }
  ASSERT_TRUE(vfs_->Mkdir(*d, "sub", 0755).has_value());
  EXPECT_TRUE(vfs_->Stat(*d, "sub").has_value());
  EXPECT_EQ(hfs::exists(dir_ / "d" / "sub"), true);
}

// In our dialect a file is created, opened and known in one round trip (Tlcreateat), not
// three (a clone of the directory's fid, Tlcreate, a walk of the new name); under the
// caching policies its attributes come along, so the stat after it asks nothing.
TEST_P(GoferFsTest, CreatingAFileIsOneRoundTrip) {
  auto made = root_.dentry->inode()->Mkdir("d", 0755, 0, 0);
  ASSERT_TRUE(made.has_value());
  vfs::Inode& d = **made;
  const bool caches = GetParam() == CachePolicy::kFscache ||
                      GetParam() == CachePolicy::kFscacheWritethrough;
  uint64_t before = fs_->requests();
  auto c = d.Create("f", 0640, O_RDWR, 0, 0);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(fs_->requests() - before, 1u);
  before = fs_->requests();
  auto a = c->inode->GetAttr();
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(S_ISREG(a->mode));
  EXPECT_EQ(a->mode & 0777, 0640u & ~[] { mode_t m = umask(0); umask(m); return m; }());
  EXPECT_EQ(a->size, 0u);
  EXPECT_EQ(fs_->requests() - before, caches ? 0u : 1u);
  // The low 56 bits of a qid path are the host's inode number (gofer/attach_point.h).
  struct stat st;
  ASSERT_EQ(stat((dir_ / "d" / "f").c_str(), &st), 0);
  EXPECT_EQ(a->ino & ((uint64_t{1} << 56) - 1), st.st_ino) << "the inode is the file created";
  ASSERT_TRUE(c->file->WriteAt(std::span<const char>("data", 4), 0).has_value());
  c->file.reset();  // Writes back (fscache).
  EXPECT_EQ(HostRead("d/f"), "data");
  EXPECT_TRUE(vfs_->Stat(root_, "/d/f").has_value()) << "the name is known";
  // A regular file made by mknod: the same message, its opened fid clunked without waiting.
  before = fs_->requests();
  auto m = d.Mknod("n", S_IFREG | 0600, 0, 0, 0);
  ASSERT_TRUE(m.has_value()) << m.error();
  EXPECT_EQ(fs_->requests() - before, 2u);
  EXPECT_TRUE(hfs::is_regular_file(dir_ / "d" / "n"));
  EXPECT_EQ(Err(d.Create("f", 0644, O_RDWR, 0, 0)), Errno(EEXIST));
  EXPECT_EQ(Err(d.Mknod("n", S_IFREG | 0644, 0, 0, 0)), Errno(EEXIST));
}

// In our dialect opening a known file is one round trip (Twalkopen: the clone of the
// inode's fid and its Tlopen), and the file opened is the inode's.
TEST_P(GoferFsTest, OpeningAKnownFileIsOneRoundTrip) {
  auto made = root_.dentry->inode()->Lookup("hello");
  ASSERT_TRUE(made.has_value());
  vfs::Inode& f = **made;
  for (int flags : {O_RDONLY, O_RDWR}) {
    const uint64_t before = fs_->requests();
    auto h = f.Open(flags);
    ASSERT_TRUE(h.has_value()) << h.error();
    EXPECT_EQ(fs_->requests() - before, revalidates() ? 2u : 1u)
        << "(and a Tgetattr where attributes are not cached)";
    std::string out(32, '\0');
    auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), 0);
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(out.substr(0, *n), "hello host");
  }
  std::ofstream(dir_ / "hello", std::ios::trunc) << "changed";
  hfs::remove(dir_ / "hello");
  EXPECT_EQ(Err(f.Open(O_RDONLY)), Errno(0)) << "the inode's file, unlinked but walked";
}

// A gofer of an older release (dialect level 3: no Tlcreateat, no Twalkopen): the sandbox
// creates and opens the way that level allows, in more round trips, with the same results.
TEST_P(GoferFsTest, AnOlderGoferIsServedAtItsLevel) {
  Mount(p9::ServerOptions{.threads = 2, .max_dialect = p9::Dialect::kReaddirAttr});
  ASSERT_TRUE(fs_->fd_donation());
  auto made = root_.dentry->inode()->Mkdir("d", 0755, 0, 0);
  ASSERT_TRUE(made.has_value());
  uint64_t before = fs_->requests();
  auto c = (*made)->Create("f", 0640, O_RDWR, 0, 0);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(fs_->requests() - before, 3u) << "a clone, Tlcreate and a Twalkgetattr";
  ASSERT_TRUE(c->file->WriteAt(std::span<const char>("data", 4), 0).has_value());
  c->file.reset();
  EXPECT_EQ(HostRead("d/f"), "data");
  auto m = (*made)->Mknod("n", S_IFREG | 0600, 0, 0, 0);
  ASSERT_TRUE(m.has_value()) << m.error();
  EXPECT_TRUE(hfs::is_regular_file(dir_ / "d" / "n"));
  auto f = root_.dentry->inode()->Lookup("hello");
  ASSERT_TRUE(f.has_value());
  before = fs_->requests();
  auto h = (*f)->Open(O_RDONLY);
  ASSERT_TRUE(h.has_value()) << h.error();
  EXPECT_EQ(fs_->requests() - before, revalidates() ? 3u : 2u) << "a clone and Tlopen";
  std::string out(32, '\0');
  auto n = (*h)->ReadAt(std::span<char>(out.data(), out.size()), 0);
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(out.substr(0, *n), "hello host");
}

// fsx-style: random creates, opens, writes, reads, truncates, renames, unlinks and closes on
// a few files through the sentry VFS, with several handles open at once, against a model;
// every read and size is checked as it happens, and the host holds the model once every
// handle is closed (write-back included).
// Our own changes to a directory move its cached attributes as the host moves the real ones
// (times, nlink for subdirectories), so the stat that follows each create costs nothing
// under fscache; the other policies ask the host.
size_t OpenFdCount() {
  size_t n = 0;
  for (auto& e : hfs::directory_iterator("/proc/self/fd")) (void)e, ++n;
  return n;
}

// Lists `dir` through the VFS (every entry).
std::set<std::string> ListNames(Vfs& v, const vfs::VirtualDentry& dir) {
  std::set<std::string> names;
  auto h = v.OpenAt(dir, O_RDONLY | O_DIRECTORY);
  if (!h.has_value()) return names;
  uint64_t off = 0;
  for (;;) {
    auto ents = (*h)->file->Readdir(off);
    if (!ents.has_value() || ents->empty()) break;
    for (const auto& e : *ents) names.insert(e.name);
    off = ents->back().offset;
  }
  return names;
}

// Under the caching policies a directory's listing says what its subdirectories are, so
// looking them up costs no walk: no fid, no host fd in the gofer (here, in this process)
// until one is used. What they report is what a walk would have said.
TEST_P(GoferFsTest, ListedSubdirectoriesNeedNoWalk) {
  for (int i = 0; i < 40; ++i) hfs::create_directories(dir_ / "many" / ("d" + std::to_string(i)));
  auto many = vfs_->ns().Resolve(root_, "/many", true);
  ASSERT_TRUE(many.has_value());
  EXPECT_EQ(ListNames(*vfs_, *many).size(), 42u);
  const size_t before = OpenFdCount();
  std::vector<vfs::VirtualDentry> held;
  for (int i = 0; i < 40; ++i) {
    auto d = vfs_->ns().Resolve(*many, "d" + std::to_string(i), false);
    ASSERT_TRUE(d.has_value()) << i;
    auto a = vfs_->StatAt(*d);
    ASSERT_TRUE(a.has_value());
    struct stat st;
    ASSERT_EQ(lstat((dir_ / "many" / ("d" + std::to_string(i))).c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(a->mode));
    EXPECT_EQ(a->mode, st.st_mode);
    EXPECT_EQ(a->nlink, st.st_nlink);
    EXPECT_EQ(a->mtime.tv_sec, st.st_mtim.tv_sec);
    held.push_back(*d);
  }
  const size_t after = OpenFdCount();
  if (revalidates()) {
    EXPECT_GE(after, before + 30) << "every lookup walks (fds shared or transient aside)";
  } else {
    EXPECT_LE(after, before + 2) << "known from the listing, unwalked";
  }
  // Used, they walk: a listing of one and a file made in another work as on the host.
  std::ofstream(dir_ / "many" / "d3" / "inside") << "in d3";
  EXPECT_EQ(ListNames(*vfs_, held[3]), (std::set<std::string>{".", "..", "inside"}));
  EXPECT_EQ(Read("/many/d3/inside"), "in d3");
  ASSERT_TRUE(vfs_->Open(held[7], "made", O_WRONLY | O_CREAT | O_EXCL, 0600).has_value());
  EXPECT_TRUE(hfs::exists(dir_ / "many" / "d7" / "made"));
}

// A tree walker's next listings are sent ahead (where the policy caches attributes), and a
// listing taken is the directory's as it is now: changes made through the sandbox after
// the listing was sent, in the directory or to its name, are never hidden by it.
TEST_P(GoferFsTest, ListingsSentAheadOfAWalkerFollowOurChanges) {
  for (int i = 0; i < 10; ++i) {
    hfs::create_directories(dir_ / "t" / "a" / ("s" + std::to_string(i)));
    std::ofstream(dir_ / "t" / "a" / ("s" + std::to_string(i)) / "f") << i;
  }
  auto t = vfs_->ns().Resolve(root_, "/t", true);
  ASSERT_TRUE(t.has_value());
  ListNames(*vfs_, *t);
  auto a = vfs_->ns().Resolve(*t, "a", false);  // Known from t's listing.
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(ListNames(*vfs_, *a).size(), 12u);
  if (revalidates()) {
    EXPECT_EQ(fs_->listings_ahead(), 0u);
    return;
  }
  EXPECT_EQ(fs_->listings_ahead(), 10u) << "a's subdirectories, each listed ahead";
  const std::set<std::string> just_f{".", "..", "f"};
  auto s0 = vfs_->ns().Resolve(*a, "s0", false);
  ASSERT_TRUE(s0.has_value());
  EXPECT_EQ(ListNames(*vfs_, *s0), just_f);
  EXPECT_LE(fs_->listings_ahead(), 9u) << "taken";
  // A file made in s3 through the sandbox, after s3's listing was sent.
  auto s3 = vfs_->ns().Resolve(*a, "s3", false);
  ASSERT_TRUE(s3.has_value());
  ASSERT_TRUE(vfs_->Open(*s3, "new", O_WRONLY | O_CREAT | O_EXCL, 0600).has_value());
  EXPECT_EQ(ListNames(*vfs_, *s3), (std::set<std::string>{".", "..", "f", "new"}));
  // s5 removed and replaced by a new directory under its name, through the sandbox.
  ASSERT_TRUE(vfs_->Unlink(*a, "s5/f").has_value());
  ASSERT_TRUE(vfs_->Rmdir(*a, "s5").has_value());
  ASSERT_TRUE(vfs_->Mkdir(*a, "s5", 0755).has_value());
  auto s5 = vfs_->ns().Resolve(*a, "s5", false);
  ASSERT_TRUE(s5.has_value());
  EXPECT_EQ(ListNames(*vfs_, *s5), (std::set<std::string>{".", ".."}));
  // A change through another inode of s7 than the one that takes its listing: after any
  // change, s7 is walked afresh (a's listing no longer vouches for it); a file made through
  // that inode; then a's listing again, and s7 from it (the walked inode dropped).
  ASSERT_TRUE(vfs_->Open(*a, "zz", O_WRONLY | O_CREAT | O_EXCL, 0600).has_value());
  {
    auto walked = vfs_->ns().Resolve(*a, "s7", false);
    ASSERT_TRUE(walked.has_value());
    ASSERT_TRUE(vfs_->Open(*walked, "new7", O_WRONLY | O_CREAT | O_EXCL, 0600).has_value());
  }
  ListNames(*vfs_, *a);
  auto s7 = vfs_->ns().Resolve(*a, "s7", false);
  ASSERT_TRUE(s7.has_value());
  EXPECT_EQ(ListNames(*vfs_, *s7), (std::set<std::string>{".", "..", "f", "new7"}));
  // The rest list as on the host, from what was sent ahead or not.
  for (int i : {1, 2, 4, 6, 8, 9}) {
    auto d = vfs_->ns().Resolve(*a, "s" + std::to_string(i), false);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(ListNames(*vfs_, *d), just_f) << i;
  }
}

// An unwalked inode depends on the name it was listed under: renamed, it follows its new
// name (the rename walks it first); unlinked, it never reaches whatever takes the name next.
TEST_P(GoferFsTest, UnwalkedInodesFollowRenamesAndUnlinks) {
  hfs::create_directories(dir_ / "p" / "moved");
  hfs::create_directories(dir_ / "p" / "gone");
  hfs::create_directories(dir_ / "p" / "target");
  std::ofstream(dir_ / "p" / "moved" / "m") << "moved's";
  auto p = vfs_->ns().Resolve(root_, "/p", true);
  ASSERT_TRUE(p.has_value());
  ListNames(*vfs_, *p);
  auto moved = vfs_->ns().Resolve(*p, "moved", false);
  auto gone = vfs_->ns().Resolve(*p, "gone", false);
  auto target = vfs_->ns().Resolve(*p, "target", false);
  ASSERT_TRUE(moved.has_value() && gone.has_value() && target.has_value());
  // Renamed over another listed directory, which is replaced.
  ASSERT_TRUE(vfs_->Rename(*p, "moved", "target").has_value());
  ASSERT_TRUE(hfs::exists(dir_ / "p" / "target" / "m"));
  EXPECT_EQ(ListNames(*vfs_, *moved), (std::set<std::string>{".", "..", "m"}))
      << "the moved inode is the moved directory";
  ASSERT_TRUE(vfs_->Open(*moved, "n", O_WRONLY | O_CREAT, 0600).has_value());
  EXPECT_TRUE(hfs::exists(dir_ / "p" / "target" / "n"));
  EXPECT_FALSE(vfs_->Open(*target, "x", O_WRONLY | O_CREAT, 0600).has_value())
      << "the replaced directory is gone, not the one now under its name";
  EXPECT_FALSE(hfs::exists(dir_ / "p" / "target" / "x"));
  // Removed, then the name taken by a new directory.
  ASSERT_TRUE(vfs_->Rmdir(*p, "gone").has_value());
  hfs::create_directories(dir_ / "p" / "gone");
  EXPECT_FALSE(vfs_->Open(*gone, "y", O_WRONLY | O_CREAT, 0600).has_value());
  EXPECT_FALSE(hfs::exists(dir_ / "p" / "gone" / "y"));
}

// A listing's attributes stand for an entry only while nothing changed: a change made
// since, through an inode dropped meanwhile, is never hidden by the older listing.
TEST_P(GoferFsTest, ListingAttributesNeverHideLaterChanges) {
  hfs::create_directories(dir_ / "q" / "sub");
  hfs::permissions(dir_ / "q" / "sub", hfs::perms(0755));
  auto q = vfs_->ns().Resolve(root_, "/q", true);
  ASSERT_TRUE(q.has_value());
  ListNames(*vfs_, *q);
  {
    auto sub = vfs_->ns().Resolve(*q, "sub", false);
    ASSERT_TRUE(sub.has_value());
    vfs::SetAttrRequest r;
    r.mask = vfs::SetAttrRequest::kMode;
    r.mode = 0700;
    ASSERT_TRUE(vfs_->SetAttrAt(*sub, r).has_value());
  }  // Dropped: the next lookup makes a new inode.
  auto again = vfs_->Stat(*q, "sub");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->mode & 07777, 0700u);
  EXPECT_EQ(hfs::status(dir_ / "q" / "sub").permissions(), hfs::perms(0700));
}

TEST_P(GoferFsTest, DirectoryAttributesFollowOurChanges) {
  // Held, as the kernel's FUSE node holds it: an unheld dentry is looked up afresh.
  auto sub = vfs_->ns().Resolve(root_, "/sub", true);
  ASSERT_TRUE(sub.has_value());
  auto before = vfs_->StatAt(*sub);
  ASSERT_TRUE(before.has_value());
  ASSERT_TRUE(vfs_->Mkdir(*sub, "d1", 0755).has_value());
  ASSERT_TRUE(vfs_->Open(*sub, "f", O_WRONLY | O_CREAT, 0644).has_value());
  ASSERT_TRUE(vfs_->Mkdir(*sub, "d2", 0755).has_value());
  ASSERT_TRUE(vfs_->Rmdir(*sub, "d2").has_value());
  ASSERT_TRUE(vfs_->Symlink(*sub, "f", "l").has_value());
  // A change behind the sandbox's back shows who answers the next stat.
  ASSERT_EQ(chmod((dir_ / "sub").c_str(), 0700), 0);
  auto after = vfs_->StatAt(*sub);
  ASSERT_TRUE(after.has_value());
  struct stat host;
  ASSERT_EQ(stat((dir_ / "sub").c_str(), &host), 0);
  EXPECT_EQ(after->nlink, host.st_nlink);
  EXPECT_EQ(after->nlink, before->nlink + 1);
  EXPECT_GE(after->mtime.tv_sec, before->mtime.tv_sec);
  EXPECT_GE(after->ctime.tv_sec, host.st_mtim.tv_sec - 1);
  if (revalidates()) {
    EXPECT_EQ(after->mode & 07777, 0700u) << "asked the host";
  } else {
    EXPECT_EQ(after->mode & 07777, before->mode & 07777) << "computed, no round trip";
  }
}

TEST_P(GoferFsTest, FsxThroughTheSentryMatchesAModel) {
  std::map<std::string, std::string> model;
  std::vector<std::pair<std::string, std::unique_ptr<vfs::FileHandle>>> open;
  uint32_t seed = 4242;
  auto rnd = [&] { return seed = seed * 1103515245 + 12345, (seed >> 8); };
  auto drop_handles = [&](const std::string& name) {
    std::erase_if(open, [&](const auto& h) { return h.first == name; });
  };
  for (int op = 0; op < 1500; ++op) {
    std::string name = "/x" + std::to_string(rnd() % 4);
    bool exists = model.contains(name);
    switch (rnd() % 8) {
      case 0: {  // Open (creating when missing), kept open for a while.
        auto h = vfs_->Open(root_, name, O_RDWR | O_CREAT, 0644);
        ASSERT_TRUE(h.has_value()) << op << " " << h.error();
        if (!exists) model[name] = "";
        open.emplace_back(name, std::move(*h));
        break;
      }
      case 1:
      case 2: {  // Write through one of its open handles.
        for (auto& [n, h] : open) {
          if (n != name) continue;
          size_t off = rnd() % 40000, len = 1 + rnd() % 9000;
          std::string data(len, static_cast<char>('A' + op % 26));
          ASSERT_TRUE(h->WriteAt(std::span<const char>(data.data(), len), off).has_value()) << op;
          std::string& m = model[name];
          if (m.size() < off + len) m.resize(off + len, '\0');
          m.replace(off, len, data);
          break;
        }
        break;
      }
      case 3: {  // Read a random range through any handle, compare.
        for (auto& [n, h] : open) {
          if (n != name) continue;
          size_t off = rnd() % 45000, len = rnd() % 12000;
          std::string got(len, 'x');
          auto r = h->ReadAt(std::span<char>(got.data(), len), off);
          ASSERT_TRUE(r.has_value()) << op;
          got.resize(*r);
          const std::string& m = model[name];
          std::string want = off < m.size() ? m.substr(off, len) : "";
          ASSERT_TRUE(got == want) << "op " << op << ": read of " << name << " differs";
          break;
        }
        break;
      }
      case 4:  // Truncate by path.
        if (exists) {
          uint64_t to = rnd() % 30000;
          ASSERT_TRUE(vfs_->Truncate(root_, name, to).has_value()) << op;
          model[name].resize(to, '\0');
        }
        break;
      case 5: {  // Size as stat sees it.
        auto a = vfs_->Stat(root_, name);
        ASSERT_EQ(a.has_value(), exists) << op;
        if (exists) {
          ASSERT_EQ(a->size, model[name].size()) << "op " << op << " " << name;
        }
        break;
      }
      case 6:  // Close one handle (write-back of what it held).
        if (!open.empty()) open.erase(open.begin() + static_cast<long>(rnd() % open.size()));
        break;
      case 7:  // Rename over another name, or unlink; handles of the old names go too.
        if (!exists) break;
        if (rnd() % 2) {
          std::string to = "/x" + std::to_string(rnd() % 4);
          if (to == name) break;
          drop_handles(name);
          drop_handles(to);
          ASSERT_TRUE(vfs_->Rename(root_, name, to).has_value()) << op;
          model[to] = std::move(model[name]);
          model.erase(name);
        } else {
          drop_handles(name);
          ASSERT_TRUE(vfs_->Unlink(root_, name).has_value()) << op;
          model.erase(name);
        }
        break;
    }
  }
  open.clear();
  for (const auto& [name, data] : model) {
    EXPECT_TRUE(HostRead(name.substr(1)) == data) << name << " differs on the host";
  }
  for (int i = 0; i < 4; ++i) {
    std::string n = "/x" + std::to_string(i);
    EXPECT_EQ(hfs::exists(dir_ / n.substr(1)), model.contains(n)) << n;
  }
}

TEST_P(GoferFsTest, AppendWritesAtTheEnd) {
  auto h = vfs_->Open(root_, "/hello", O_WRONLY | O_APPEND);
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE((*h)->WriteAt(std::span<const char>("+1", 2), 0).has_value());
  ASSERT_TRUE((*h)->WriteAt(std::span<const char>("+2", 2), 0).has_value());
  h->reset();
  EXPECT_EQ(HostRead("hello"), "hello host+1+2");
}

// Host I/O (what FUSE passthrough does): the file's data is written on its host fd, unseen
// by the file system. Size and times must still be the host's, while the writer is open and
// after it closed, and data the sandbox had not written back must reach the host first.
TEST_P(GoferFsTest, HostIoKeepsSizeAndDataCoherent) {
  auto cached = vfs_->Open(root_, "/hello", O_WRONLY);
  ASSERT_TRUE(cached.has_value());
  ASSERT_TRUE((*cached)->WriteAt(std::span<const char>("HELLO", 5), 0).has_value());
  auto h = vfs_->Open(root_, "/hello", O_RDWR);
  ASSERT_TRUE(h.has_value());
  auto io = (*h)->file->HostIoFile();
  ASSERT_TRUE(io.has_value()) << "our gofer donates host fds";
  EXPECT_EQ(io->inode, (*h)->at.dentry->inode().get());
  ASSERT_TRUE((*h)->file->StartHostIo().has_value());
  cached->reset();
  EXPECT_EQ(HostRead("hello"), "HELLO host") << "written back when host I/O started";
  ASSERT_EQ(pwrite(io->fd, "0123456789abcdef", 16, 100), 16);
  auto a = vfs_->Stat(root_, "/hello");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size, 116u) << "while the host I/O writer is open";
  ASSERT_EQ(ftruncate(io->fd, 3), 0);
  EXPECT_EQ(vfs_->Stat(root_, "/hello")->size, 3u);
  ASSERT_EQ(pwrite(io->fd, "LOxyz", 5, 3), 5);
  h->reset();
  EXPECT_EQ(vfs_->Stat(root_, "/hello")->size, 8u) << "after it closed";
  EXPECT_EQ(Read("/hello"), "HELLOxyz") << "the sandbox's own reads see it too";
}

TEST(GoferMountOptionsTest, ParsesRunscOptionsAndRejectsBadOnes) {
  std::string err;
  auto o = ParseGoferMountOptions(
      "trans=fd,rfdno=5,wfdno=5,privateunixsocket=true,cache=remote_revalidating", &err);
  ASSERT_TRUE(o.has_value()) << err;
  EXPECT_EQ(o->rfd, 5);
  EXPECT_TRUE(o->private_unix_socket);
  EXPECT_EQ(o->cache, CachePolicy::kRemoteRevalidating);
  auto d = ParseGoferMountOptions("trans=fd,rfdno=5,wfdno=5", &err);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->cache, CachePolicy::kFscache) << "the default policy";
  EXPECT_EQ(d->spin_us, 50u) << "polls for replies by default";
  auto s = ParseGoferMountOptions("trans=fd,rfdno=5,wfdno=5,spin_us=0", &err);
  ASSERT_TRUE(s.has_value()) << err;
  EXPECT_EQ(s->spin_us, 0u);
  EXPECT_EQ(d->prefetch, 16u) << "lists ahead of tree walkers by default";
  auto pf = ParseGoferMountOptions("trans=fd,rfdno=5,wfdno=5,prefetch=0", &err);
  ASSERT_TRUE(pf.has_value()) << err;
  EXPECT_EQ(pf->prefetch, 0u);
  struct Bad {
    const char* data;
    const char* msg;
  };
  for (auto b : std::vector<Bad>{{"trans=tcp,rfdno=1,wfdno=1", "only fd"},
                                 {"trans=fd,rfdno=1,wfdno=2", "same socket"},
                                 {"trans=fd,rfdno=1", "required"},
                                 {"rfdno=1,wfdno=1", "trans=fd is required"},
                                 {"trans=fd,rfdno=x,wfdno=1", "bad rfdno"},
                                 {"trans=fd,rfdno=1,wfdno=1,cache=weird", "unknown cache policy"},
                                 {"trans=fd,rfdno=1,wfdno=1,bogus=1", "unknown option 'bogus'"},
                                 {"trans=fd,rfdno=1,wfdno=1,noval", "has no value"},
                                 {"trans=fd,rfdno=1,wfdno=1,msize=12", "bad msize"},
                                 {"trans=fd,rfdno=1,wfdno=1,spin_us=1001", "bad spin_us"},
                                 {"trans=fd,rfdno=1,wfdno=1,spin_us=-1", "bad spin_us"},
                                 {"trans=fd,rfdno=1,wfdno=1,prefetch=257", "bad prefetch"}}) {
    err.clear();
    EXPECT_EQ(Err(ParseGoferMountOptions(b.data, &err)), Errno(EINVAL)) << b.data;
    EXPECT_NE(err.find(b.msg), std::string::npos) << b.data << " -> " << err;
  }
  err.clear();
  EXPECT_EQ(Err(GoferFs::Mount("trans=fd,rfdno=999,wfdno=999", &err)), Errno(EBADF));
  EXPECT_NE(err.find("not an open fd"), std::string::npos);
}

}  // namespace
}  // namespace sentry::fs
