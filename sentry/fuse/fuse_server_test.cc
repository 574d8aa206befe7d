// The FUSE frontend under real syscalls: a FUSE mount (in this test's private mount
// namespace) of a sentry VFS whose root is 9p over our gofer (in process, real socketpair,
// real temp tree), with a tmpfs and a read-only tmpfs mounted inside. Run for the shared
// (remote_revalidating) and exclusive (fscache) policies, each with requests through
// /dev/fuse and through the io_uring queues (the latter skipped where the kernel does not
// offer FUSE over io_uring: tools/test.sh turns the fuse module's enable_uring on).
#include "sentry/fuse/fuse_server.h"

#include <dirent.h>
#include <linux/fuse.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gofer/attach_point.h"
#include "gtest/gtest.h"
#include "p9/server.h"
#include "p9/socket_util.h"
#include "p9/unique_fd.h"
#include "sentry/fs/gofer/gofer_fs.h"
#include "sentry/fs/tmpfs/tmpfs.h"

namespace sentry::fuse {
namespace {

namespace hfs = std::filesystem;
using fs::CachePolicy;

// Before any thread exists (unshare(CLONE_NEWNS) only moves the calling thread): a private
// mount namespace, so our FUSE mounts are never seen by the host and vanish with us.
const bool kPrivateMounts = [] {
  if (unshare(CLONE_NEWNS) != 0) return false;
  return mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}();

bool KernelOffersUring() {
  std::ifstream f("/sys/module/fuse/parameters/enable_uring");
  char c = 'N';
  return (f >> c) && c == 'Y';
}

struct Variant {
  CachePolicy policy;
  bool uring;  // FuseOptions::uring
};
void PrintTo(const Variant& v, std::ostream* os) {
  *os << fs::CachePolicyName(v.policy) << (v.uring ? "/uring" : "/dev");
}

std::string Slurp(const hfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FuseServerTest : public ::testing::TestWithParam<Variant> {
 protected:
  CachePolicy policy() const { return GetParam().policy; }
  bool uring() const { return GetParam().uring; }

  void SetUp() override {
    if (uring() && !KernelOffersUring()) {
      GTEST_SKIP() << "the kernel does not offer FUSE over io_uring (enable_uring=N)";
    }
    ASSERT_TRUE(kPrivateMounts) << "needs root: unshare(CLONE_NEWNS) failed";
    char host[] = "/tmp/fuse_test_host.XXXXXX";
    ASSERT_NE(mkdtemp(host), nullptr);
    host_ = host;
    char mnt[] = "/tmp/fuse_test_mnt.XXXXXX";
    ASSERT_NE(mkdtemp(mnt), nullptr);
    mnt_ = mnt;
    hfs::create_directories(host_ / "sub");
    hfs::create_directories(host_ / "t");
    hfs::create_directories(host_ / "ro");
    hfs::create_directories(host_ / "u");
    std::ofstream(host_ / "hello") << "hello host";

    auto ap = gofer::AttachPoint::Open(host_.string(), false, nullptr);
    ASSERT_TRUE(ap.has_value());
    attacher_ = gofer::HostAttacher::ForOne(*ap);
    server_ = std::make_unique<p9::Server>(*attacher_, p9::ServerOptions{.threads = 2});
    auto pair = p9::SocketPair();
    ASSERT_TRUE(pair.has_value());
    server_->AddConnection(std::move(pair->second));
    int fd = pair->first.release();
    std::string data = "trans=fd,rfdno=" + std::to_string(fd) + ",wfdno=" + std::to_string(fd) +
                       ",cache=" + fs::CachePolicyName(policy());
    std::string error;
    auto g = fs::GoferFs::Mount(data, &error);
    ASSERT_TRUE(g.has_value()) << error;
    auto ns = vfs::MountNamespace::Create(*g, {}, "9pfs-/");
    ASSERT_TRUE(ns.has_value());
    vfs_ = std::make_shared<vfs::Vfs>(*ns);
    ASSERT_TRUE(vfs_->MountAt("/t", std::make_shared<fs::Tmpfs>(), {}, "none").has_value());
    ASSERT_TRUE(vfs_->MountAt("/ro", std::make_shared<fs::Tmpfs>(), {.read_only = true}, "none")
                    .has_value());
    ASSERT_TRUE(vfs_->MountAt("/u", std::make_shared<fs::Tmpfs>(fs::TmpfsOptions{.memfd_files = 0}),
                              {}, "none")
                    .has_value());
    auto s = FuseServer::Mount(vfs_, mnt_.string(), {.uring = uring()}, &error);
    ASSERT_TRUE(s.has_value()) << error;
    fuse_ = std::move(*s);
    fuse_->Start();
    if (uring()) {
      ASSERT_TRUE(AwaitRings()) << "the rings never took over";
    }
  }
  // After Start(): waits until the rings have taken over (FuseOptions::uring). A request of
  // ours can be served by them just before the server notes it, so this polls.
  bool AwaitRings() {
    struct stat st;
    if (stat(mnt_.c_str(), &st) != 0) return false;
    for (int i = 0; i < 500 && !fuse_->uring(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return fuse_->uring();
  }
  void TearDown() override {
    if (fuse_) {
      EXPECT_TRUE(fuse_->Stop());
    }
    fuse_.reset();
    vfs_.reset();
    if (server_) {
      EXPECT_TRUE(server_->WaitNoConnections(std::chrono::seconds(10)));
    }
    server_.reset();
    hfs::remove_all(host_);
    rmdir(mnt_.c_str());
  }
  hfs::path M(const std::string& rel) const { return mnt_ / rel; }
  // Serves the same VFS again, with `o` (tests of the paths passthrough bypasses).
  void Remount(FuseOptions o) {
    ASSERT_TRUE(fuse_->Stop());
    fuse_.reset();
    std::string error;
    o.uring = uring();
    auto s = FuseServer::Mount(vfs_, mnt_.string(), o, &error);
    ASSERT_TRUE(s.has_value()) << error;
    fuse_ = std::move(*s);
    fuse_->Start();
    if (uring()) {
      ASSERT_TRUE(AwaitRings());
    }
  }

  hfs::path host_, mnt_;
  std::unique_ptr<gofer::HostAttacher> attacher_;
  std::unique_ptr<p9::Server> server_;
  std::shared_ptr<vfs::Vfs> vfs_;
  std::unique_ptr<FuseServer> fuse_;
};

TEST_P(FuseServerTest, ReadsHostFileAndListsRoot) {
  EXPECT_EQ(Slurp(M("hello")), "hello host");
  std::set<std::string> names;
  for (const auto& e : hfs::directory_iterator(mnt_)) names.insert(e.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"hello", "sub", "t", "ro", "u"}));
}

TEST_P(FuseServerTest, WritesReachTheHostByClose) {
  {
    std::ofstream out(M("sub/new"));
    out << "written through fuse";
  }
  EXPECT_EQ(Slurp(host_ / "sub/new"), "written through fuse");
  // Append, then truncate through the fd.
  int fd = open(M("sub/new").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "!", 1), 1);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(Slurp(host_ / "sub/new"), "written through fuse!");
  ASSERT_EQ(truncate(M("sub/new").c_str(), 7), 0);
  EXPECT_EQ(Slurp(host_ / "sub/new"), "written");
  struct stat st;
  ASSERT_EQ(stat(M("sub/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 7);
}

TEST_P(FuseServerTest, NamespaceOperations) {
  ASSERT_EQ(mkdir(M("sub/d").c_str(), 0750), 0);
  struct stat st;
  ASSERT_EQ(stat((host_ / "sub/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(symlink("../hello", M("sub/link").c_str()), 0);
  char buf[64] = {};
  ASSERT_EQ(readlink(M("sub/link").c_str(), buf, sizeof(buf)), 8);
  EXPECT_STREQ(buf, "../hello");
  EXPECT_EQ(Slurp(M("sub/link")), "hello host");  // The kernel follows it through us.
  ASSERT_EQ(rename(M("hello").c_str(), M("sub/d/moved").c_str()), 0);
  EXPECT_TRUE(hfs::exists(host_ / "sub/d/moved"));
  EXPECT_FALSE(hfs::exists(host_ / "hello"));
  EXPECT_EQ(Slurp(M("sub/d/moved")), "hello host");
  // Hard links share st_ino, and that differs from every other file's.
  ASSERT_EQ(link(M("sub/d/moved").c_str(), M("sub/hard").c_str()), 0);
  struct stat a, b, c;
  ASSERT_EQ(stat(M("sub/d/moved").c_str(), &a), 0);
  ASSERT_EQ(stat(M("sub/hard").c_str(), &b), 0);
  ASSERT_EQ(stat(M("sub/d").c_str(), &c), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_NE(a.st_ino, c.st_ino);
  ASSERT_EQ(unlink(M("sub/hard").c_str()), 0);
  EXPECT_EQ(rmdir(M("sub/d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(unlink(M("sub/d/moved").c_str()), 0);
  ASSERT_EQ(rmdir(M("sub/d").c_str()), 0);
  EXPECT_FALSE(hfs::exists(host_ / "sub/d"));
  EXPECT_EQ(stat(M("sub/d").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  ASSERT_EQ(mkfifo(M("sub/fifo").c_str(), 0600), 0);
  ASSERT_EQ(lstat((host_ / "sub/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(chmod(M("sub/fifo").c_str(), 0640), 0);
  ASSERT_EQ(lstat((host_ / "sub/fifo").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_P(FuseServerTest, UnlinkedOpenFileKeepsWorking) {
  int fd = open(M("sub/tmp").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(M("sub/tmp").c_str()), 0);
  ASSERT_EQ(pwrite(fd, "abcdef", 6, 0), 6);
  ASSERT_EQ(ftruncate(fd, 4), 0);
  char buf[8] = {};
  ASSERT_EQ(pread(fd, buf, sizeof(buf), 0), 4);
  EXPECT_STREQ(buf, "abcd");
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 4);
  EXPECT_EQ(close(fd), 0);
}

TEST_P(FuseServerTest, LargeFileRoundTrip) {
  std::string data(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) ^ (i >> 9));
  {
    std::ofstream out(M("t/big"), std::ios::binary);
    out << data;
  }
  EXPECT_EQ(Slurp(M("t/big")), data);
  {
    std::ofstream out(M("sub/big"), std::ios::binary);
    out << data;
  }
  EXPECT_EQ(Slurp(host_ / "sub/big"), data);
  EXPECT_EQ(Slurp(M("sub/big")), data);
}

// Reads are spliced from the donated host fd only when the sentry holds nothing newer: a
// write not yet written back (fscache) must be what an uncached reader sees. (Data goes
// through the sentry only without passthrough.)
TEST_P(FuseServerTest, ReadsSeeWritesNotYetWrittenBack) {
  Remount({.passthrough = false});
  std::string old(64 * 1024, 'o');
  std::ofstream(host_ / "sub/f", std::ios::binary) << old;
  p9::UniqueFd w(open(M("sub/f").c_str(), O_WRONLY));
  ASSERT_GE(w.get(), 0);
  ASSERT_EQ(pwrite(w.get(), "NEW", 3, 40000), 3);
  if (policy() == CachePolicy::kFscache) {
    EXPECT_EQ(Slurp(host_ / "sub/f"), old) << "write-back: the host has not seen it yet";
  }
  // O_DIRECT: past the kernel's page cache, so the READ reaches us.
  p9::UniqueFd r(open(M("sub/f").c_str(), O_RDONLY | O_DIRECT));
  ASSERT_GE(r.get(), 0);
  std::unique_ptr<char, decltype(&free)> buf(
      static_cast<char*>(aligned_alloc(4096, old.size())), &free);
  ASSERT_EQ(pread(r.get(), buf.get(), old.size(), 0), static_cast<ssize_t>(old.size()))
      << strerror(errno);
  std::string want = old;
  want.replace(40000, 3, "NEW");
  EXPECT_TRUE(std::string(buf.get(), old.size()) == want);
  r.reset();
  w.reset();
  EXPECT_EQ(Slurp(host_ / "sub/f"), want);
}

TEST_P(FuseServerTest, ReaddirOfManyEntriesIsComplete) {
  for (int i = 0; i < 1000; ++i) std::ofstream(M("t/f" + std::to_string(i)));
  DIR* d = opendir(M("t").c_str());
  ASSERT_NE(d, nullptr);
  std::set<std::string> seen;
  int dots = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") {
      ++dots;
      continue;
    }
    EXPECT_TRUE(seen.insert(n).second) << "duplicate " << n;
  }
  closedir(d);
  EXPECT_EQ(dots, 2);
  EXPECT_EQ(seen.size(), 1000u);
}

// Every entry once per pass, from `d`'s current position to the end.
std::vector<std::string> ReadRest(DIR* d, size_t max = SIZE_MAX) {
  std::vector<std::string> out;
  while (out.size() < max) {
    dirent* e = readdir(d);
    if (e == nullptr) break;
    out.push_back(e->d_name);
  }
  return out;
}

// Listings span several READDIR replies; readers interleave, start over, seek back and
// outnumber the listings the server keeps, and the directory changes under one (under
// fscache the kernel opens directories without OPENDIR and the server keeps listings per
// node, named in the offsets).
TEST_P(FuseServerTest, InterleavedReadersAndSeeksSeeEveryEntryOnce) {
  const std::string pad(40, 'x');
  hfs::create_directories(host_ / "big");
  std::set<std::string> want = {".", ".."};
  for (int i = 0; i < 3000; ++i) {
    std::string n = "f" + std::to_string(i) + pad;
    std::ofstream(host_ / "big" / n);
    want.insert(n);
  }
  auto as_set = [](const std::vector<std::string>& v) {
    std::set<std::string> s(v.begin(), v.end());
    EXPECT_EQ(s.size(), v.size()) << "duplicates";
    return s;
  };
  // More readers part-way through than the server keeps listings for: the oldest are
  // listed again and continue by position, which is exact while nothing changes.
  {
    std::vector<DIR*> ds;
    std::vector<std::vector<std::string>> got;
    for (int i = 0; i < 7; ++i) {
      DIR* d = opendir(M("big").c_str());
      ASSERT_NE(d, nullptr);
      ds.push_back(d);
      got.push_back(ReadRest(d, 100 + 10 * i));
    }
    for (size_t i = 0; i < ds.size(); ++i) {
      auto rest = ReadRest(ds[i]);
      got[i].insert(got[i].end(), rest.begin(), rest.end());
      EXPECT_EQ(as_set(got[i]), want) << "reader " << i;
      closedir(ds[i]);
    }
  }
  // A reader part-way through stays in its listing while 50 names it has already passed go
  // away and another reader lists the directory anew: continuing by position in the newer
  // listing would skip 50 other names.
  {
    DIR* d = opendir(M("big").c_str());
    ASSERT_NE(d, nullptr);
    std::vector<std::string> got = ReadRest(d, 300);
    std::set<std::string> now = want;
    for (const auto& n : got) {
      if (want.size() - now.size() == 50) break;
      if (n == "." || n == "..") continue;
      ASSERT_EQ(unlink(M("big/" + n).c_str()), 0) << n;
      now.erase(n);
    }
    DIR* fresh = opendir(M("big").c_str());
    ASSERT_NE(fresh, nullptr);
    EXPECT_EQ(as_set(ReadRest(fresh)), now);
    closedir(fresh);
    auto rest = ReadRest(d);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(as_set(got), want) << "the reader that passed the names before they went";
    closedir(d);
    want = now;
  }
  // telldir/seekdir inside the listing: the same entries again.
  {
    DIR* d = opendir(M("big").c_str());
    ASSERT_NE(d, nullptr);
    ReadRest(d, 1500);
    long pos = telldir(d);
    std::vector<std::string> after = ReadRest(d, 700);
    ASSERT_EQ(after.size(), 700u);
    seekdir(d, pos);
    EXPECT_EQ(ReadRest(d, 700), after);
    // From another stream too (its own listing, or the kernel's copy).
    DIR* d2 = opendir(M("big").c_str());
    ASSERT_NE(d2, nullptr);
    seekdir(d2, pos);
    EXPECT_EQ(ReadRest(d2, 700), after);
    closedir(d2);
    closedir(d);
  }
  // A name made through us shows in the next listing (the kernel drops its copy).
  std::ofstream(M("big/late"));
  want.insert("late");
  DIR* d = opendir(M("big").c_str());
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(as_set(ReadRest(d)), want);
  closedir(d);
}

// Requests the kernel need not send: OPENDIR/RELEASEDIR where every mount caches (one
// OPENDIR, answered ENOSYS, turns them off), and FLUSH at the close of a read-only file.
TEST_P(FuseServerTest, RequestsTheKernelNeedNotSend) {
  const bool caching = policy() == CachePolicy::kFscache;
  for (int round = 0; round < 3; ++round) {
    for (const char* d : {"", "sub", "t", "ro"}) {
      DIR* dir = opendir(M(d).c_str());
      ASSERT_NE(dir, nullptr) << d;
      EXPECT_FALSE(ReadRest(dir).empty());
      closedir(dir);
    }
  }
  if (caching) {
    EXPECT_EQ(fuse_->received(FUSE_OPENDIR), 1u);
    EXPECT_EQ(fuse_->received(FUSE_RELEASEDIR), 0u);
  } else {
    EXPECT_GE(fuse_->received(FUSE_OPENDIR), 12u);
  }
  const uint64_t flushes = fuse_->received(FUSE_FLUSH);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Slurp(M("hello")), "hello host");
  EXPECT_EQ(fuse_->received(FUSE_FLUSH), flushes);
  // Nor at the close of a written file that nothing holds back: tmpfs, created or opened.
  for (int i = 0; i < 2; ++i) {
    std::ofstream out(M("t/w"), std::ios::app);
    out << "x";
  }
  EXPECT_EQ(fuse_->received(FUSE_FLUSH), flushes);
  EXPECT_EQ(Slurp(M("t/w")), "xx");
  // A 9p file written through the sentry's page cache (fscache, no passthrough) is written
  // back at its close, so the kernel must ask; without a page cache there is nothing to ask.
  // Either way the host has the bytes once close returns.
  Remount({.passthrough = false});
  const uint64_t before = fuse_->received(FUSE_FLUSH);
  {
    std::ofstream out(M("sub/w"));
    out << "y";
  }
  EXPECT_EQ(Slurp(host_ / "sub/w"), "y");
  {
    std::ofstream out(M("sub/w"), std::ios::app);
    out << "z";
  }
  EXPECT_EQ(Slurp(host_ / "sub/w"), "yz");
  EXPECT_EQ(fuse_->received(FUSE_FLUSH), before + (caching ? 2 : 0));
  // Symlink targets are kept by the kernel where every mount caches; a replaced link is a
  // new file and reads its own target.
  ASSERT_EQ(symlink("target-one", M("sub/ln").c_str()), 0);
  const uint64_t readlinks = fuse_->received(FUSE_READLINK);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(hfs::read_symlink(M("sub/ln")), "target-one");
  EXPECT_EQ(fuse_->received(FUSE_READLINK) - readlinks, caching ? 1u : 5u);
  ASSERT_EQ(unlink(M("sub/ln").c_str()), 0);
  ASSERT_EQ(symlink("target-two", M("sub/ln").c_str()), 0);
  EXPECT_EQ(hfs::read_symlink(M("sub/ln")), "target-two");
  EXPECT_EQ(hfs::read_symlink(host_ / "sub/ln"), "target-two");
}

TEST_P(FuseServerTest, FsyncOfADirectory) {
  for (const char* p : {"sub", "t", ""}) {
    int fd = open(M(p).c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0) << p;
    EXPECT_EQ(fsync(fd), 0) << p << ": " << strerror(errno);
    EXPECT_EQ(fdatasync(fd), 0) << p;
    close(fd);
  }
}

TEST_P(FuseServerTest, MountRulesHold) {
  int fd = open(M("ro/x").c_str(), O_WRONLY | O_CREAT, 0644);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(mkdir(M("ro/d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  std::ofstream(M("t/a")) << "a";
  EXPECT_EQ(rename(M("t/a").c_str(), M("sub/a").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);
  EXPECT_EQ(link(M("t/a").c_str(), M("sub/a").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);
  EXPECT_EQ(rmdir(M("t").c_str()), -1);
  EXPECT_EQ(errno, EBUSY);
  // Files in different mounts never share st_ino, even with equal inode numbers below.
  std::set<ino_t> inos;
  for (const char* p : {"t", "ro", "sub", "hello", "t/a"}) {
    struct stat st;
    ASSERT_EQ(stat(M(p).c_str(), &st), 0) << p;
    EXPECT_TRUE(inos.insert(st.st_ino).second) << p;
  }
}

TEST_P(FuseServerTest, XattrsAndStatfs) {
  std::ofstream(M("sub/x")) << "x";
  ASSERT_EQ(setxattr(M("sub/x").c_str(), "user.k", "value", 5, 0), 0);
  char buf[32] = {};
  EXPECT_EQ(getxattr(M("sub/x").c_str(), "user.k", nullptr, 0), 5);
  EXPECT_EQ(getxattr(M("sub/x").c_str(), "user.k", buf, sizeof(buf)), 5);
  EXPECT_STREQ(buf, "value");
  EXPECT_EQ(getxattr(M("sub/x").c_str(), "user.k", buf, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  char host_buf[32] = {};
  EXPECT_EQ(getxattr((host_ / "sub/x").c_str(), "user.k", host_buf, sizeof(host_buf)), 5);
  ASSERT_EQ(removexattr(M("sub/x").c_str(), "user.k"), 0);
  EXPECT_EQ(getxattr(M("sub/x").c_str(), "user.k", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  struct statvfs v;
  ASSERT_EQ(statvfs(mnt_.c_str(), &v), 0);
  struct statvfs h;
  ASSERT_EQ(statvfs(host_.c_str(), &h), 0);
  EXPECT_EQ(v.f_blocks * v.f_frsize, h.f_blocks * h.f_frsize);
}

TEST_P(FuseServerTest, HostChangesSeenWhenShared) {
  EXPECT_EQ(Slurp(M("hello")), "hello host");
  std::ofstream(host_ / "hello") << "changed on the host";
  std::ofstream(host_ / "sub/born") << "new";
  if (policy() == CachePolicy::kRemoteRevalidating) {
    EXPECT_EQ(Slurp(M("hello")), "changed on the host");
    // Listings too, though one of the same directory was read before the change.
    auto names = [&] {
      std::set<std::string> s;
      for (const auto& e : hfs::directory_iterator(M("sub"))) s.insert(e.path().filename());
      return s;
    };
    EXPECT_EQ(names(), std::set<std::string>{"born"});
    std::ofstream(host_ / "sub/second") << "new";
    EXPECT_EQ(names(), (std::set<std::string>{"born", "second"}));
    hfs::remove(host_ / "sub/second");
    EXPECT_EQ(names(), std::set<std::string>{"born"});
    // Even where the directory's mtime says nothing changed (the kernel's own copy of a
    // listing is trusted until the mtime moves).
    struct stat before;
    ASSERT_EQ(stat((host_ / "sub").c_str(), &before), 0);
    std::ofstream(host_ / "sub/third") << "new";
    timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(utimensat(AT_FDCWD, (host_ / "sub").c_str(), times, 0), 0);
    EXPECT_EQ(names(), (std::set<std::string>{"born", "third"}));
    hfs::remove(host_ / "sub/third");
    EXPECT_TRUE(hfs::exists(M("sub/born")));
    hfs::remove(host_ / "sub/born");
    EXPECT_FALSE(hfs::exists(M("sub/born")));
  } else {
    // fscache (exclusive access) promises nothing about changes behind its back; it must
    // still serve what it has without error.
    EXPECT_FALSE(Slurp(M("hello")).empty());
  }
}

// A directory made through the sandbox starts empty, so under exclusive access a missing name
// in it is answered without asking the gofer. That knowledge must reach the entry the kernel
// gets for the new directory (a second lookup of it would make a fresh inode that knows
// nothing); a file made on the host behind the sandbox's back shows which inode answered.
TEST_P(FuseServerTest, MadeDirectoryKnowsItsNames) {
  hfs::create_directory(M("made"));
  std::ofstream(host_ / "made" / "behind") << "x";
  if (policy() == CachePolicy::kFscache || policy() == CachePolicy::kFscacheWritethrough) {
    EXPECT_FALSE(hfs::exists(M("made/behind"))) << "the lookup was sent to the gofer";
  } else {
    EXPECT_TRUE(hfs::exists(M("made/behind")));
  }
  std::ofstream(M("made/ours")) << "y";
  EXPECT_EQ(Slurp(M("made/ours")), "y");
  EXPECT_EQ(Slurp(host_ / "made" / "ours"), "y");
}

// A file system with one file whose fsync waits until the test opens a gate.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;
};
class GatedFile : public vfs::OpenFile {
 public:
  explicit GatedFile(std::shared_ptr<Gate> g) : g_(std::move(g)) {}
  p9::Result<size_t> ReadAt(std::span<char>, uint64_t) override { return size_t{0}; }
  p9::Result<size_t> WriteAt(std::span<const char> s, uint64_t) override { return s.size(); }
  p9::Result<void> Fsync() override {
    std::unique_lock l(g_->mu);
    ++g_->waiting;
    g_->cv.notify_all();
    g_->cv.wait(l, [&] { return g_->open; });
    return p9::Ok();
  }

 private:
  std::shared_ptr<Gate> g_;
};
class GatedInode : public vfs::Inode {
 public:
  GatedInode(std::shared_ptr<Gate> g, bool dir) : g_(std::move(g)), dir_(dir) {}
  p9::Result<vfs::Attr> GetAttr() override {
    vfs::Attr a;
    a.ino = dir_ ? 1 : 2;
    a.mode = dir_ ? (S_IFDIR | 0755) : (S_IFREG | 0644);
    return a;
  }
  p9::Result<void> SetAttr(const vfs::SetAttrRequest&) override { return p9::Errno(EPERM); }
  p9::Result<std::unique_ptr<vfs::OpenFile>> Open(int) override {
    if (dir_) return p9::Errno(EISDIR);
    return std::unique_ptr<vfs::OpenFile>(new GatedFile(g_));
  }
  p9::Result<std::shared_ptr<vfs::Inode>> Lookup(const std::string& name) override {
    if (!dir_) return p9::Errno(ENOTDIR);
    if (name != "f") return p9::Errno(ENOENT);
    return std::shared_ptr<vfs::Inode>(std::make_shared<GatedInode>(g_, false));
  }

 private:
  std::shared_ptr<Gate> g_;
  bool dir_;
};
class GatedFs : public vfs::Filesystem {
 public:
  explicit GatedFs(std::shared_ptr<Gate> g) : root_(std::make_shared<GatedInode>(g, true)) {}
  std::string type() const override { return "gated"; }
  std::shared_ptr<vfs::Inode> root() override { return root_; }

 private:
  std::shared_ptr<vfs::Inode> root_;
};

// An fsync stuck in its handler does not stop the other requests: the session loop hands
// reading /dev/fuse to another thread before serving it.
TEST_P(FuseServerTest, StuckFsyncDoesNotStallOtherRequests) {
  auto gate = std::make_shared<Gate>();
  hfs::create_directories(host_ / "g");
  ASSERT_TRUE(vfs_->MountAt("/g", std::make_shared<GatedFs>(gate), {}, "none").has_value());
  int fd = open(M("g/f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);
  auto syncing = std::async(std::launch::async, [fd] { return fsync(fd); });
  {
    std::unique_lock l(gate->mu);
    ASSERT_TRUE(gate->cv.wait_for(l, std::chrono::seconds(10), [&] { return gate->waiting > 0; }));
  }
  auto others = std::async(std::launch::async, [&] {
    for (int i = 0; i < 20; ++i) {
      if (Slurp(M("hello")) != "hello host") return false;
      std::ofstream(M("sub/f" + std::to_string(i))) << i;
    }
    return true;
  });
  bool served = others.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  {
    std::lock_guard l(gate->mu);
    gate->open = true;
  }
  gate->cv.notify_all();
  EXPECT_TRUE(served) << "requests waited for the stuck fsync";
  EXPECT_TRUE(others.get());
  EXPECT_EQ(syncing.get(), 0);
  close(fd);
}

// Where every mount caches, a listing carries its subdirectories' entries (READDIRPLUS): a
// walker that descends asks for no LOOKUP, the attributes are the host's, and the nodes it
// created are forgotten like any other.
TEST_P(FuseServerTest, ListingsCarrySubdirectoryEntries) {
  const bool caching = policy() == CachePolicy::kFscache;
  for (int i = 0; i < 30; ++i) {
    hfs::create_directories(host_ / "tree" / ("d" + std::to_string(i)) / "inner");
    std::ofstream(host_ / "tree" / ("f" + std::to_string(i))) << i;
  }
  chmod((host_ / "tree/d7").c_str(), 0701);
  const size_t base = fuse_->live_nodes();
  auto list = [](const hfs::path& p) {
    DIR* d = opendir(p.c_str());
    if (d == nullptr) return std::vector<std::string>{"<" + std::string(strerror(errno)) + ">"};
    auto names = ReadRest(d);
    closedir(d);
    return names;
  };
  EXPECT_EQ(list(M("tree")).size(), 62u);  // With "." and "..".
  const uint64_t lookups = fuse_->received(FUSE_LOOKUP);
  for (int i = 0; i < 30; ++i) {
    std::string d = "tree/d" + std::to_string(i);
    struct stat st, host;
    ASSERT_EQ(lstat(M(d).c_str(), &st), 0) << d;
    ASSERT_EQ(lstat((host_ / d).c_str(), &host), 0);
    EXPECT_EQ(st.st_mode, host.st_mode) << d;
    EXPECT_EQ(st.st_nlink, host.st_nlink) << d;
    EXPECT_EQ(st.st_mtim.tv_sec, host.st_mtim.tv_sec) << d;
    EXPECT_EQ(list(M(d)).size(), 3u) << d;  // ".", "..", "inner".
  }
  if (caching) {
    EXPECT_EQ(fuse_->received(FUSE_LOOKUP), lookups) << "no LOOKUP for listed directories";
    EXPECT_GT(fuse_->received(FUSE_READDIRPLUS), 0u);
  } else {
    EXPECT_GE(fuse_->received(FUSE_LOOKUP), lookups + 30) << "revalidating: every name asks";
    EXPECT_EQ(fuse_->received(FUSE_READDIRPLUS), 0u);
  }
  // Files come without an entry: looking one up still asks (and finds it).
  struct stat st;
  ASSERT_EQ(stat(M("tree/f3").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1);
  // The nodes READDIRPLUS gave the kernel are forgotten when it drops them: a lookup
  // count the kernel never got would keep them forever.
  for (int tries = 0; tries < 50 && fuse_->live_nodes() > base; ++tries) {
    std::ofstream("/proc/sys/vm/drop_caches") << "2";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_LE(fuse_->live_nodes(), base);
}

TEST_P(FuseServerTest, ForgottenNodesAreFreed) {
  for (int i = 0; i < 50; ++i) std::ofstream(M("t/n" + std::to_string(i))) << i;
  struct stat st;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(stat(M("t/n" + std::to_string(i)).c_str(), &st), 0);
  size_t before = fuse_->live_nodes();
  EXPECT_GE(before, 50u);
  // Ask the kernel to drop unused dentries and inodes: it sends FORGET for each.
  for (int tries = 0; tries < 50 && fuse_->live_nodes() >= before; ++tries) {
    std::ofstream("/proc/sys/vm/drop_caches") << "2";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_LT(fuse_->live_nodes(), before - 40);
}

TEST_P(FuseServerTest, KernelNodesAreBoundedByEviction) {
  Remount({.max_nodes = 100});
  for (int i = 0; i < 400; ++i) std::ofstream(host_ / "sub" / ("e" + std::to_string(i))) << i;
  size_t peak = 0;
  for (int i = 0; i < 400; ++i) {
    struct stat st;
    ASSERT_EQ(stat(M("sub/e" + std::to_string(i)).c_str(), &st), 0);
    peak = std::max(peak, fuse_->live_nodes());
  }
  // The kernel would keep all 400; eviction keeps them near the bound (it runs beside the
  // lookups, so the peak may pass it a little).
  for (int tries = 0; tries < 50 && fuse_->live_nodes() > 100; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_LE(fuse_->live_nodes(), 100u);
  EXPECT_LT(peak, 400u);
  // Evicted names still work: they are looked up again.
  EXPECT_EQ(Slurp(M("sub/e0")), "0");
  EXPECT_EQ(Slurp(M("sub/e399")), "399");
}

// The kernel detaches what is mounted on an entry the server invalidates: eviction must
// leave pinned entries (the sandbox's /proc, /sys and /dev) and their parents alone.
TEST_P(FuseServerTest, MountsOverPinnedEntriesSurviveEviction) {
  Remount({.max_nodes = 100});
  hfs::create_directories(host_ / "sub/m");
  fuse_->Pin("/sub/m");
  ASSERT_EQ(mount("tmpfs", M("sub/m").c_str(), "tmpfs", 0, "size=64k"), 0) << strerror(errno);
  std::ofstream(M("sub/m/marker")) << "here";
  for (int i = 0; i < 400; ++i) std::ofstream(host_ / "sub" / ("e" + std::to_string(i))) << i;
  for (int i = 0; i < 400; ++i) {
    struct stat st;
    ASSERT_EQ(stat(M("sub/e" + std::to_string(i)).c_str(), &st), 0);
  }
  for (int tries = 0; tries < 50 && fuse_->live_nodes() > 100; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_LE(fuse_->live_nodes(), 100u) << "eviction ran";
  EXPECT_EQ(Slurp(M("sub/m/marker")), "here") << "the tmpfs is still mounted";
  EXPECT_FALSE(hfs::exists(host_ / "sub/m/marker"));
  umount2(M("sub/m").c_str(), MNT_DETACH);
}

TEST_P(FuseServerTest, DeadGoferIsEio) {
  std::ofstream(M("sub/f")) << "x";
  server_->Stop();  // Closes every connection: the sandbox's gofer is gone.
  int fd = open(M("sub/never").c_str(), O_WRONLY | O_CREAT, 0644);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EIO);
  struct stat st;
  if (policy() == CachePolicy::kRemoteRevalidating) {
    EXPECT_EQ(stat(M("sub/f").c_str(), &st), -1);
    EXPECT_EQ(errno, EIO);
  }
  if (policy() == CachePolicy::kFscache) {
    // The in-memory mount still works where the kernel need not ask the dead root for the
    // attributes of the path to it (under remote_revalidating every traversal of the root
    // asks for them, and gets EIO, as with the kernel's own 9p client).
    std::ofstream(M("t/alive")) << "yes";
    EXPECT_EQ(Slurp(M("t/alive")), "yes");
  }
}

// True on kernels with FUSE passthrough (6.9 and later).
bool KernelHasPassthrough() {
  struct utsname u;
  if (uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 9);
}

// File data never passes through the sentry where a host fd holds it: the kernel reads
// and writes it on that fd itself (FUSE passthrough). That is a host file (9p with fd
// donation), or a tmpfs file's memfd. Sizes and times stay right although the sentry sees
// none of the writes, under both policies; a tmpfs without memfds goes through the sentry.
TEST_P(FuseServerTest, PassthroughDoesFileIoInTheKernel) {
  if (!KernelHasPassthrough()) GTEST_SKIP() << "kernel without FUSE passthrough";
  const uint64_t reads = fuse_->received(FUSE_READ);
  const uint64_t writes = fuse_->received(FUSE_WRITE);
  EXPECT_EQ(Slurp(M("hello")), "hello host");
  EXPECT_TRUE(fuse_->passthrough());  // Known once INIT is done, before the first request.

  // `rel` through the mount; `host` the same file seen on the host ("" for tmpfs).
  auto check = [&](const std::string& rel, const hfs::path& host) {
    SCOPED_TRACE(rel);
    std::string data(100000, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
    int fd = open(M(rel).c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    struct stat st;
    ASSERT_EQ(stat(M(rel).c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 100000);
    // A chmod while writing: its reply carries the size the file has, not a cached one.
    ASSERT_EQ(fchmod(fd, 0600), 0);
    ASSERT_EQ(pwrite(fd, "end", 3, 200000), 3);
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 200003);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(close(fd), 0);
    // Seen at once (on the host too), and read back through another open.
    if (!host.empty()) {
      EXPECT_EQ(hfs::file_size(host), 200003u);
    }
    std::string back = Slurp(M(rel));
    ASSERT_EQ(back.size(), 200003u);
    EXPECT_EQ(back.substr(0, data.size()), data);
    EXPECT_EQ(back.substr(200000), "end");
    ASSERT_EQ(stat(M(rel).c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 200003);
    // Times set through the mount hold, and a later write moves mtime on from them.
    const timespec old[2] = {{1000000000, 0}, {1000000000, 5}};
    ASSERT_EQ(utimensat(AT_FDCWD, M(rel).c_str(), old, 0), 0);
    ASSERT_EQ(stat(M(rel).c_str(), &st), 0);
    EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
    EXPECT_EQ(st.st_mtim.tv_nsec, 5);
    EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
    // Shrunk through a handle, then appended to: still one truth.
    fd = open(M(rel).c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 10), 0);
    ASSERT_EQ(write(fd, "XY", 2), 2);
    ASSERT_EQ(close(fd), 0);
    EXPECT_EQ(Slurp(M(rel)), "abcdefghijXY");
    if (!host.empty()) {
      EXPECT_EQ(Slurp(host), "abcdefghijXY");
    }
    ASSERT_EQ(stat(M(rel).c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 12);
    EXPECT_GT(st.st_mtim.tv_sec, 1000000000);
    // mmap maps the file's own pages: a write through a mapping that outlives its fd is
    // the file's.
    fd = open(M(rel).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    void* m = mmap(nullptr, 12, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(m, MAP_FAILED);
    close(fd);
    EXPECT_EQ(std::string(static_cast<char*>(m), 12), "abcdefghijXY");
    static_cast<char*>(m)[0] = 'A';
    ASSERT_EQ(msync(m, 12, MS_SYNC), 0);
    EXPECT_EQ(Slurp(M(rel)), "AbcdefghijXY");
    static_cast<char*>(m)[1] = 'B';
    munmap(m, 12);
    EXPECT_EQ(Slurp(M(rel)), "ABcdefghijXY");
    if (!host.empty()) {
      EXPECT_EQ(Slurp(host), "ABcdefghijXY");
    }
    // Opened with O_TRUNC: empty.
    fd = open(M(rel).c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 0);
    close(fd);
    EXPECT_EQ(Slurp(M(rel)), "");
  };
  check("sub/pt", host_ / "sub/pt");
  check("t/pt", "");
  EXPECT_EQ(fuse_->received(FUSE_READ), reads);
  EXPECT_EQ(fuse_->received(FUSE_WRITE), writes);
  // A tmpfs whose files get no memfd: its data goes through us, and reads the same.
  check("u/pt", "");
  EXPECT_GT(fuse_->received(FUSE_READ), reads);
  EXPECT_GT(fuse_->received(FUSE_WRITE), writes);
}

// A tmpfs file that got no memfd (the budget was spent) moves into one at a later open,
// but only when it has no other: the kernel fails a passthrough open with EIO while opens
// that use the inode's page cache last.
TEST_P(FuseServerTest, ATmpfsFileMovesToItsMemfdOnlyWhenNotOpen) {
  if (!KernelHasPassthrough()) GTEST_SKIP() << "kernel without FUSE passthrough";
  auto fs = std::make_shared<fs::Tmpfs>(fs::TmpfsOptions{.memfd_files = 1});
  hfs::create_directories(host_ / "v");
  ASSERT_TRUE(vfs_->MountAt("/v", fs, {}, "none").has_value());
  std::ofstream(M("v/a")) << "first";
  std::ofstream(M("v/b")) << "second";
  ASSERT_EQ(fs->memfd_files(), 1u);  // "a"'s; "b" is in memory.
  p9::UniqueFd held(open(M("v/b").c_str(), O_RDONLY));
  ASSERT_GE(held.get(), 0);
  char buf[16];
  ASSERT_EQ(pread(held.get(), buf, sizeof(buf), 0), 6);
  // "a" goes, and with the kernel's FORGET its memfd.
  ASSERT_EQ(unlink(M("v/a").c_str()), 0);
  for (int i = 0; i < 200 && fs->memfd_files() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(fs->memfd_files(), 0u) << "the kernel never forgot v/a";
  // A second open while the first lasts: still served from memory, not refused.
  {
    p9::UniqueFd again(open(M("v/b").c_str(), O_RDWR));
    ASSERT_GE(again.get(), 0) << strerror(errno);
    ASSERT_EQ(pwrite(again.get(), "S", 1, 0), 1) << strerror(errno);
  }
  EXPECT_EQ(fs->memfd_files(), 0u);
  held.reset();
  // With no open left, the next one moves the bytes and passes through.
  const uint64_t reads = fuse_->received(FUSE_READ);
  p9::UniqueFd last(open(M("v/b").c_str(), O_RDONLY | O_DIRECT));
  ASSERT_GE(last.get(), 0) << strerror(errno);
  EXPECT_EQ(fs->memfd_files(), 1u);
  std::unique_ptr<char, decltype(&free)> al(static_cast<char*>(aligned_alloc(4096, 4096)), &free);
  ASSERT_EQ(pread(last.get(), al.get(), 4096, 0), 6) << strerror(errno);
  EXPECT_EQ(std::string(al.get(), 6), "Second");
  EXPECT_EQ(fuse_->received(FUSE_READ), reads) << "read by the kernel on the memfd";
}

// Requests take the transport the variant asks for: every LOOKUP through the rings with
// FuseOptions::uring (none through /dev/fuse), none through them without. Large requests
// and replies fit the ring entries: 1 MiB writes and reads of a tmpfs file, and reads of a
// host file that are not passed through (served from the donated fd, unspliced on a ring).
TEST_P(FuseServerTest, RequestsTakeTheConfiguredTransport) {
  Remount({.passthrough = false});
  const uint64_t ring0 = fuse_->ring_received(FUSE_LOOKUP);
  const uint64_t dev0 = fuse_->received(FUSE_LOOKUP) - ring0;
  for (int i = 0; i < 50; ++i) {
    struct stat st;
    EXPECT_NE(stat(M("sub/absent" + std::to_string(i)).c_str(), &st), 0);
  }
  const uint64_t ring = fuse_->ring_received(FUSE_LOOKUP) - ring0;
  const uint64_t dev = fuse_->received(FUSE_LOOKUP) - ring - ring0 - dev0;
  if (uring()) {
    EXPECT_GE(ring, 50u);
    EXPECT_EQ(dev, 0u);
  } else {
    EXPECT_EQ(ring, 0u);
    EXPECT_GE(dev, 50u);
  }

  std::string big(3 * (1 << 20) + 12345, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 23);
  const uint64_t writes = fuse_->received(FUSE_WRITE);
  std::ofstream(M("t/big"), std::ios::binary) << big;
  EXPECT_GT(fuse_->received(FUSE_WRITE), writes);
  EXPECT_EQ(Slurp(M("t/big")), big);
  std::ofstream(host_ / "hostbig", std::ios::binary) << big;
  const uint64_t reads = fuse_->received(FUSE_READ);
  EXPECT_EQ(Slurp(M("hostbig")), big);
  EXPECT_GT(fuse_->received(FUSE_READ), reads);
  if (uring()) {
    EXPECT_GT(fuse_->ring_received(FUSE_READ), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Policies, FuseServerTest,
    ::testing::Values(Variant{CachePolicy::kRemoteRevalidating, false},
                      Variant{CachePolicy::kFscache, false},
                      Variant{CachePolicy::kRemoteRevalidating, true},
                      Variant{CachePolicy::kFscache, true}),
    [](const auto& info) {
      return std::string(fs::CachePolicyName(info.param.policy)) +
             (info.param.uring ? "_uring" : "_dev");
    });

}  // namespace
}  // namespace sentry::fuse
