// tmpfs files, with their bytes in memfds and in memory: the same behaviour either way, and
// a memfd written behind the file system's back (as the kernel does under FUSE passthrough)
// is the file's truth.
#include "sentry/fs/tmpfs/tmpfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sentry/fs/tmpfs/file_data.h"

namespace sentry::fs {
namespace {

using vfs::Inode;
using vfs::OpenFile;
using vfs::SetAttrRequest;

std::string ReadAll(OpenFile& f) {
  std::string out;
  char buf[4096];
  for (uint64_t off = 0;;) {
    auto n = f.ReadAt(std::span<char>(buf, sizeof(buf)), off);
    EXPECT_TRUE(n.has_value());
    if (!n.has_value() || *n == 0) return out;
    out.append(buf, *n);
    off += *n;
  }
}

size_t Write(OpenFile& f, const std::string& s, uint64_t off) {
  auto n = f.WriteAt(std::span<const char>(s.data(), s.size()), off);
  EXPECT_TRUE(n.has_value()) << n.error();
  return n.has_value() ? *n : 0;
}

class TmpfsDataTest : public ::testing::TestWithParam<bool> {
 protected:
  bool memfds() const { return GetParam(); }
  std::shared_ptr<Tmpfs> fs_ =
      std::make_shared<Tmpfs>(TmpfsOptions{.memfd_files = GetParam() ? SIZE_MAX : 0});
  std::shared_ptr<Inode> root_ = fs_->root();

  std::shared_ptr<Inode> Make(const std::string& name) {
    auto i = root_->Mknod(name, S_IFREG | 0644, 0, 0, 0);
    EXPECT_TRUE(i.has_value());
    return i.has_value() ? *i : nullptr;
  }
};

TEST_P(TmpfsDataTest, ReadsWritesAppendsAndTruncates) {
  auto ino = Make("f");
  ASSERT_NE(ino, nullptr);
  auto f = ino->Open(O_RDWR);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ((*f)->HostIoFile().has_value(), memfds());
  EXPECT_EQ(Write(**f, "hello", 0), 5u);
  EXPECT_EQ(Write(**f, "world", 10), 5u);  // A hole of zeros between.
  EXPECT_EQ(ReadAll(**f), std::string("hello\0\0\0\0\0world", 15));
  EXPECT_EQ(ino->GetAttr()->size, 15u);
  // Appends go to the end whatever the offset.
  auto a = ino->Open(O_WRONLY | O_APPEND);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(Write(**a, "!", 0), 1u);
  EXPECT_EQ(ReadAll(**f).substr(15), "!");
  // Shrink and grow.
  ASSERT_TRUE(ino->SetAttr({.mask = SetAttrRequest::kSize, .size = 3}).has_value());
  EXPECT_EQ(ReadAll(**f), "hel");
  ASSERT_TRUE(ino->SetAttr({.mask = SetAttrRequest::kSize, .size = 6}).has_value());
  EXPECT_EQ(ReadAll(**f), std::string("hel\0\0\0", 6));
  EXPECT_EQ(ino->GetAttr()->size, 6u);
  // O_TRUNC at open; reads past the end are empty.
  auto t = ino->Open(O_RDWR | O_TRUNC);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(ino->GetAttr()->size, 0u);
  char c;
  auto past = (*t)->ReadAt(std::span<char>(&c, 1), 100);
  ASSERT_TRUE(past.has_value());
  EXPECT_EQ(*past, 0u);
  // Beyond the largest file: EFBIG, as before memfds.
  EXPECT_EQ((*f)->WriteAt(std::span<const char>("x", 1), FileData::kMaxSize).error(),
            p9::Errno(EFBIG));
  EXPECT_EQ(ino->SetAttr({.mask = SetAttrRequest::kSize, .size = FileData::kMaxSize + 1}).error(),
            p9::Errno(EFBIG));
}

TEST_P(TmpfsDataTest, TimesFollowWritesAndSetattr) {
  auto ino = Make("f");
  ASSERT_NE(ino, nullptr);
  auto f = ino->Open(O_RDWR);
  ASSERT_TRUE(f.has_value());
  SetAttrRequest r;
  r.mask = SetAttrRequest::kAtime | SetAttrRequest::kMtime;
  r.atime = {1000000000, 7};
  r.mtime = {1000000000, 9};
  ASSERT_TRUE(ino->SetAttr(r).has_value());
  auto st = ino->GetAttr();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->mtime.tv_sec, 1000000000);
  EXPECT_EQ(st->mtime.tv_nsec, 9);
  EXPECT_EQ(st->atime.tv_nsec, 7);
  const timespec ctime = st->ctime;
  EXPECT_GT(ctime.tv_sec, 1000000000);
  Write(**f, "x", 0);
  st = ino->GetAttr();
  EXPECT_GT(st->mtime.tv_sec, 1000000000) << "a write moves mtime";
  // A chmod moves ctime, not mtime.
  r = {};
  r.mask = SetAttrRequest::kMtime;
  r.mtime = {1000000000, 0};
  ASSERT_TRUE(ino->SetAttr(r).has_value());
  ASSERT_TRUE(ino->SetAttr({.mask = SetAttrRequest::kMode, .mode = 0600}).has_value());
  st = ino->GetAttr();
  EXPECT_EQ(st->mtime.tv_sec, 1000000000);
  EXPECT_EQ(st->mode & 07777, 0600u);
  EXPECT_GE(st->ctime.tv_sec, ctime.tv_sec);
}

TEST_P(TmpfsDataTest, HardLinksShareTheBytes) {
  auto ino = Make("f");
  ASSERT_NE(ino, nullptr);
  ASSERT_TRUE(root_->Link("g", *ino).has_value());
  auto f = ino->Open(O_RDWR);
  ASSERT_TRUE(f.has_value());
  Write(**f, "shared", 0);
  auto g = root_->Lookup("g");
  ASSERT_TRUE(g.has_value());
  auto gf = (*g)->Open(O_RDONLY);
  ASSERT_TRUE(gf.has_value());
  EXPECT_EQ(ReadAll(**gf), "shared");
  EXPECT_EQ((*g)->GetAttr()->nlink, 2u);
}

INSTANTIATE_TEST_SUITE_P(Storage, TmpfsDataTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "memfd" : "memory"; });

// The kernel writes a passed-through file on its memfd, unseen by the file system: reads,
// size and mtime are the memfd's.
TEST(TmpfsMemfdTest, WritesOnTheMemfdAreTheFiles) {
  Tmpfs fs;
  auto ino = fs.root()->Mknod("f", S_IFREG | 0644, 0, 0, 0);
  ASSERT_TRUE(ino.has_value());
  auto f = (*ino)->Open(O_RDWR);
  ASSERT_TRUE(f.has_value());
  auto io = (*f)->HostIoFile();
  ASSERT_TRUE(io.has_value());
  EXPECT_EQ(io->inode, ino->get());
  EXPECT_TRUE((*f)->StartHostIo().has_value());
  const timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(futimens(io->fd, old), 0);
  ASSERT_EQ(pwrite(io->fd, "behind", 6, 8192), 6);
  auto st = (*ino)->GetAttr();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->size, 8198u);
  EXPECT_GT(st->mtime.tv_sec, 1000000000);
  EXPECT_EQ(st->blocks, 8u) << "a hole takes no blocks";
  EXPECT_EQ(ReadAll(**f).substr(8192), "behind");
  // The same memfd for every open, so that every passthrough open shares one backing file.
  auto again = (*ino)->Open(O_RDONLY);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ((*again)->HostIoFile()->fd, io->fd);
}

// Memfds come from a budget; a file that gets none keeps its bytes in memory, and moves them
// into a memfd, times included, at an open once the budget has room again.
TEST(TmpfsMemfdTest, FilesBeyondTheBudgetStayInMemoryUntilThereIsRoom) {
  Tmpfs fs(TmpfsOptions{.memfd_files = 2});
  auto root = fs.root();
  std::vector<std::shared_ptr<Inode>> inos;
  for (const char* n : {"a", "b", "c"}) {
    auto i = root->Mknod(n, S_IFREG | 0644, 0, 0, 0);
    ASSERT_TRUE(i.has_value());
    inos.push_back(*i);
    auto f = (*i)->Open(O_RDWR);
    ASSERT_TRUE(f.has_value());
    Write(**f, std::string("data of ") + n, 0);
  }
  auto io = [&](size_t i) {
    auto f = inos[i]->Open(O_RDONLY);
    EXPECT_TRUE(f.has_value());
    return f.has_value() && (*f)->HostIoFile().has_value();
  };
  EXPECT_TRUE(io(0));
  EXPECT_TRUE(io(1));
  EXPECT_FALSE(io(2));
  SetAttrRequest r;
  r.mask = SetAttrRequest::kAtime | SetAttrRequest::kMtime;
  r.atime = r.mtime = {1000000000, 3};
  ASSERT_TRUE(inos[2]->SetAttr(r).has_value());
  // The last reference to "a" goes: its memfd is closed and given back. "c" moves at an
  // open only when it has no other: those were served from memory (the kernel's page cache),
  // and it refuses passthrough to an inode while such opens last.
  auto held = inos[2]->Open(O_RDONLY);
  ASSERT_TRUE(held.has_value());
  ASSERT_TRUE(root->Unlink("a", false).has_value());
  inos[0].reset();
  EXPECT_FALSE(io(2));
  held->reset();
  EXPECT_TRUE(io(2));
  auto st = inos[2]->GetAttr();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->mtime.tv_sec, 1000000000);
  EXPECT_EQ(st->mtime.tv_nsec, 3);
  EXPECT_EQ(st->size, 9u);
  auto f = inos[2]->Open(O_RDONLY);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(ReadAll(**f), "data of c");
}

}  // namespace
}  // namespace sentry::fs
