// A scripted backend for protocol tests of the server and client: every name exists except
// "missing"; names starting with 'd' are directories; ReadAt of a file named "slow" blocks while
// the gate is closed (to hold requests in flight); a live-object count shows leaks.
#ifndef P9_TESTING_FAKE_FS_H_
#define P9_TESTING_FAKE_FS_H_

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "p9/file.h"

namespace p9::testing {

// Shared state of the scripted backend.
struct FakeState {
  std::atomic<int> live{0};             // FakeFile objects alive.
  std::mutex mu;
  std::condition_variable cv;
  bool gate_open = true;                // ReadAt of "slow" blocks while false.
  int reading = 0;                      // ReadAt calls of "slow" in progress.
  int max_reading = 0;
  std::map<std::string, std::string> xattrs;
  int pipe_read_fd = -1;                // Donated on Open when >= 0.

  void CloseGate() {
    std::lock_guard l(mu);
    gate_open = false;
  }
  void OpenGate() {
    std::lock_guard l(mu);
    gate_open = true;
    cv.notify_all();
  }
  bool WaitReading(int n) {
    std::unique_lock l(mu);
    return cv.wait_for(l, std::chrono::seconds(10), [&] { return reading >= n; });
  }
};

// A file named by its path; every name exists except "missing". "slow" blocks in ReadAt while
// the gate is closed. Directories are names starting with 'd' (and the root).
class FakeFile : public File {
 public:
  FakeFile(std::shared_ptr<FakeState> s, std::string path) : s_(std::move(s)), path_(path) {
    ++s_->live;
  }
  ~FakeFile() override { --s_->live; }

  Qid qid() const {
    bool dir = path_.empty() || (path_.rfind('/') + 1 < path_.size() &&
                                     path_[path_.rfind('/') + 1] == 'd');
    return Qid{static_cast<uint8_t>(dir ? kQtDir : kQtFile), 0, std::hash<std::string>()(path_)};
  }
  Result<WalkResult> Walk(std::span<const std::string> names) override {
    WalkResult w;
    std::string p = path_;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "missing") {
        if (i == 0) return Errno(ENOENT);
        return w;
      }
      p += "/" + names[i];
      w.qids.push_back(FakeFile(s_, p).qid());
    }
    w.file = std::make_unique<FakeFile>(s_, p);
    return w;
  }
  Result<Rgetattr> GetAttr(uint64_t mask) override {
    Rgetattr r;
    r.valid = mask & getattr::kBasic;
    r.qid = qid();
    r.mode = (r.qid.type & kQtDir) ? (S_IFDIR | 0755) : (S_IFREG | 0644);
    r.size = path_.size();
    return r;
  }
  Result<void> SetAttr(const Tsetattr&) override { return Ok(); }
  Result<OpenResult> Open(uint32_t) override {
    OpenResult o;
    o.qid = qid();
    if (s_->pipe_read_fd >= 0) o.donate = UniqueFd(dup(s_->pipe_read_fd));
    return o;
  }
  Result<size_t> ReadAt(std::span<char> dst, uint64_t offset) override {
    if (path_.ends_with("/slow")) {
      std::unique_lock l(s_->mu);
      ++s_->reading;
      s_->max_reading = std::max(s_->max_reading, s_->reading);
      s_->cv.notify_all();
      s_->cv.wait(l, [&] { return s_->gate_open; });
      --s_->reading;
    }
    // Contents: the path, repeated.
    size_t n = 0;
    for (; n < dst.size() && offset + n < 3 * path_.size(); ++n) {
      dst[n] = path_[(offset + n) % path_.size()];
    }
    return n;
  }
  Result<size_t> WriteAt(Bytes src, uint64_t) override { return src.size(); }
  Result<std::vector<Dirent>> Readdir(uint64_t offset, uint32_t) override {
    std::vector<Dirent> out;
    for (uint64_t i = offset; i < 100; ++i) {
      out.push_back(Dirent{Qid{0, 0, i}, i + 1, DT_REG, "entry" + std::to_string(i)});
    }
    return out;
  }
  Result<CreateResult> Create(const std::string& name, uint32_t, uint32_t, uint32_t) override {
    CreateResult c;
    c.file = std::make_unique<FakeFile>(s_, path_ + "/" + name);
    c.qid = static_cast<FakeFile*>(c.file.get())->qid();
    return c;
  }
  Result<Qid> Mkdir(const std::string&, uint32_t, uint32_t) override { return qid(); }
  Result<Qid> Symlink(const std::string&, const std::string&, uint32_t) override { return qid(); }
  Result<Qid> Mknod(const std::string&, uint32_t, uint32_t, uint32_t, uint32_t) override {
    return qid();
  }
  Result<void> Link(File&, const std::string&) override { return Ok(); }
  Result<void> Rename(File&, const std::string&) override { return Ok(); }
  Result<void> RenameAt(const std::string&, File&, const std::string&) override { return Ok(); }
  Result<void> UnlinkAt(const std::string& name, uint32_t) override {
    return name == "missing" ? Result<void>(Errno(ENOENT)) : Ok();
  }
  Result<std::string> Readlink() override { return path_; }
  Result<void> Fsync(bool) override { return Ok(); }
  Result<Rstatfs> StatFs() override { return Rstatfs{.type = 0x01021997, .bsize = 4096}; }
  Result<std::string> GetXattr(const std::string& name) override {
    std::lock_guard l(s_->mu);
    auto it = s_->xattrs.find(name);
    if (it == s_->xattrs.end()) return Errno(ENODATA);
    return it->second;
  }
  Result<std::string> ListXattr() override {
    std::lock_guard l(s_->mu);
    std::string out;
    for (auto& [k, v] : s_->xattrs) out += k + '\0';
    return out;
  }
  Result<void> SetXattr(const std::string& name, const std::string& value,
                        uint32_t flags) override {
    std::lock_guard l(s_->mu);
    if ((flags & kXattrCreate) && s_->xattrs.contains(name)) return Errno(EEXIST);
    s_->xattrs[name] = value;
    return Ok();
  }
  Result<void> RemoveXattr(const std::string& name) override {
    std::lock_guard l(s_->mu);
    if (!s_->xattrs.erase(name)) return Errno(ENODATA);
    return Ok();
  }

 private:
  std::shared_ptr<FakeState> s_;
  std::string path_;
};

class FakeAttacher : public Attacher {
 public:
  explicit FakeAttacher(std::shared_ptr<FakeState> s) : s_(std::move(s)) {}
  Result<std::unique_ptr<File>> Attach(const std::string& aname, const std::string&,
                                       uint32_t) override {
    if (aname == "nope") return Errno(ENOENT);
    return std::unique_ptr<File>(std::make_unique<FakeFile>(s_, ""));
  }

 private:
  std::shared_ptr<FakeState> s_;
};

}  // namespace p9::testing

#endif  // P9_TESTING_FAKE_FS_H_
