// Our client against a real diod (Debian's C 9P2000.L server) on a temp directory: the
// operations a file system client needs, with their effects checked on the host.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/socket_util.h"

namespace p9 {
namespace {

namespace fs = std::filesystem;
constexpr char kDiod[] = "/usr/sbin/diod";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class DiodInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kDiod, X_OK) != 0) {
      GTEST_SKIP() << kDiod << " is missing: install the Debian package 'diod' "
                   << "(tools/install-deps.sh does) to run the interop tests";
    }
    char tmpl[] = "/tmp/diod_interop.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    export_ = dir_ / "export";
    fs::create_directories(export_);
    std::ofstream(export_ / "hello") << "hello from the host";
    sock_ = (dir_ / "diod.sock").string();
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      std::string log = (dir_ / "diod.log").string();
      execl(kDiod, kDiod, "-f", "-n", "-N", "-c", "/dev/null", "-l", sock_.c_str(), "-e",
            export_.c_str(), "-L", log.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait for the socket (diod binds it at start-up).
    Result<UniqueFd> sock = Errno(ENOENT);
    for (int i = 0; i < 200 && !sock.has_value(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      sock = ConnectUnix(sock_);
    }
    ASSERT_TRUE(sock.has_value()) << "diod did not come up: " << ReadFile(dir_ / "diod.log");
    auto c = Client::Create(std::move(*sock));
    ASSERT_TRUE(c.has_value()) << c.error();
    client_ = std::move(*c);
    auto root = ClientFile::Attach(*client_, export_.string(), "root", 0);
    ASSERT_TRUE(root.has_value()) << root.error();
    root_ = std::move(*root);
  }
  void TearDown() override {
    root_ = ClientFile();
    client_.reset();
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path dir_, export_;
  std::string sock_;
  pid_t pid_ = -1;
  std::unique_ptr<Client> client_;
  ClientFile root_;
};

TEST_F(DiodInteropTest, NegotiatesPlain9P2000LAndDiodsMsize) {
  EXPECT_EQ(client_->version(), kVersion9P2000L) << "diod does not know our extension";
  EXPECT_FALSE(client_->fd_donation());
  EXPECT_LE(client_->msize(), 65536u);
  EXPECT_GE(client_->msize(), kMinMsize);
}

TEST_F(DiodInteropTest, WalkGetattrRead) {
  auto f = root_.WalkPath("hello");
  ASSERT_TRUE(f.has_value()) << f.error();
  auto a = f->GetAttr();
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(S_ISREG(a->mode));
  EXPECT_EQ(a->size, 19u);
  ASSERT_TRUE(f->Open(open_flags::kRdOnly).has_value());
  auto data = f->ReadAll();
  ASSERT_TRUE(data.has_value()) << data.error();
  EXPECT_EQ(*data, "hello from the host");
  EXPECT_EQ(root_.WalkPath("missing").error(), Errno(ENOENT));
}

TEST_F(DiodInteropTest, CreateWriteReadBackAcrossMsize) {
  auto d = root_.Walk({});
  ASSERT_TRUE(d.has_value());
  ASSERT_TRUE(d->Create("big", open_flags::kRdWr, 0644).has_value());
  // Larger than diod's msize: the helpers loop over many Twrite/Tread.
  std::string payload(300000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  auto w = d->WriteAll(payload);
  ASSERT_TRUE(w.has_value()) << w.error();
  ASSERT_TRUE(d->Fsync().has_value());
  EXPECT_EQ(ReadFile(export_ / "big"), payload);
  auto back = d->ReadAll();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, payload);
}

TEST_F(DiodInteropTest, DirectoryOperations) {
  ASSERT_TRUE(root_.Mkdir("sub", 0755).has_value());
  EXPECT_TRUE(fs::is_directory(export_ / "sub"));
  auto sub = root_.WalkPath("sub");
  ASSERT_TRUE(sub.has_value());
  ASSERT_TRUE(sub->Symlink("ln", "../hello").has_value());
  EXPECT_EQ(fs::read_symlink(export_ / "sub" / "ln"), "../hello");
  auto ln = root_.WalkPath("sub/ln");
  ASSERT_TRUE(ln.has_value());
  EXPECT_EQ(*ln->Readlink(), "../hello");
  // rename (diod answers Trenameat with EOPNOTSUPP; Linux then falls back to Trename).
  auto ra = root_.RenameAt("hello", *sub, "moved");
  if (!ra.has_value()) {
    EXPECT_EQ(ra.error(), Errno(EOPNOTSUPP));
    auto h = root_.WalkPath("hello");
    ASSERT_TRUE(h.has_value());
    ASSERT_TRUE(h->Rename(*sub, "moved").has_value());
  }
  EXPECT_TRUE(fs::exists(export_ / "sub" / "moved"));
  auto moved = root_.WalkPath("sub/moved");
  ASSERT_TRUE(moved.has_value());
  auto r = moved->Rename(root_, "back");
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(ReadFile(export_ / "back"), "hello from the host");
  // readdir
  auto d = root_.Walk({});
  ASSERT_TRUE(d->Open(open_flags::kRdOnly).has_value());
  auto ents = d->ReaddirAll();
  ASSERT_TRUE(ents.has_value()) << ents.error();
  std::set<std::string> names;
  for (auto& e : *ents) names.insert(e.name);
  EXPECT_TRUE(names.count("sub") && names.count("back")) << names.size();
  // unlinkat: diod (1.0.24) answers EOPNOTSUPP, and Linux falls back to Tremove; both
  // paths must keep the host's errno.
  auto un = root_.UnlinkAt("sub", kAtRemoveDir);
  ASSERT_FALSE(un.has_value());
  if (un.error() == Errno(EOPNOTSUPP)) {
    auto full = root_.WalkPath("sub");
    ASSERT_TRUE(full.has_value());
    EXPECT_EQ(full->Remove().error(), Errno(ENOTEMPTY));
    auto l = root_.WalkPath("sub/ln");
    ASSERT_TRUE(l.has_value());
    ASSERT_TRUE(l->Remove().has_value());
    auto empty = root_.WalkPath("sub");
    ASSERT_TRUE(empty.has_value());
    ASSERT_TRUE(empty->Remove().has_value());
  } else {
    EXPECT_EQ(un.error(), Errno(ENOTEMPTY));
    ASSERT_TRUE(sub->UnlinkAt("ln").has_value());
    ASSERT_TRUE(root_.UnlinkAt("sub", kAtRemoveDir).has_value());
  }
  EXPECT_FALSE(fs::exists(export_ / "sub"));
}

TEST_F(DiodInteropTest, SetattrAndStatfs) {
  auto f = root_.WalkPath("hello");
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(f->SetAttr({.valid = setattr::kSize, .size = 5}).has_value());
  ASSERT_TRUE(f->SetAttr({.valid = setattr::kMode, .mode = 0600}).has_value());
  struct stat st;
  ASSERT_EQ(stat((export_ / "hello").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto s = root_.StatFs();
  ASSERT_TRUE(s.has_value());
  EXPECT_GT(s->blocks, 0u);
  EXPECT_EQ(s->namelen, 255u);
}

}  // namespace
}  // namespace p9
