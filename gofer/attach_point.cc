#include "gofer/attach_point.h"

#include <fcntl.h>
#include <unistd.h>

#include "gofer/host_file.h"
#include "glog/logging.h"

namespace gofer {

using p9::Errno;
using p9::Result;

uint64_t QidMap::Path(dev_t dev, ino_t ino) {
  constexpr uint64_t kInoBits = 56;
  constexpr uint64_t kInoMask = (uint64_t{1} << kInoBits) - 1;
  std::lock_guard l(mu_);
  auto [it, inserted] = devs_.try_emplace(dev, devs_.size());
  uint64_t dev_index = it->second;
  if (dev_index < 255 && (static_cast<uint64_t>(ino) & ~kInoMask) == 0) {
    return (dev_index << kInoBits) | static_cast<uint64_t>(ino);
  }
  // Device index 255 is reserved for these: no collision with the direct mapping.
  auto [lit, fresh] = large_.try_emplace({dev, ino}, 0);
  if (fresh) lit->second = (uint64_t{255} << kInoBits) | next_large_++;
  return lit->second;
}

std::shared_ptr<const p9::UniqueFd> AttachPoint::InternDir(
    const struct stat& st, std::shared_ptr<const p9::UniqueFd> fd) const {
  std::lock_guard l(dirs_mu_);
  auto& slot = dirs_[{st.st_dev, st.st_ino}];
  if (auto live = slot.lock()) return live;
  slot = fd;
  if (dirs_.size() > sweep_at_) {
    std::erase_if(dirs_, [](const auto& kv) { return kv.second.expired(); });
    sweep_at_ = std::max<size_t>(1024, 2 * dirs_.size());
  }
  return fd;
}

p9::Qid MakeQid(QidMap& qids, const struct stat& st) {
  p9::Qid q;
  if (S_ISDIR(st.st_mode)) {
    q.type = p9::kQtDir;
  } else if (S_ISLNK(st.st_mode)) {
    q.type = p9::kQtSymlink;
  } else {
    q.type = p9::kQtFile;
  }
  q.version = 0;  // Clients revalidate with Tgetattr; mtime is not a reliable version.
  q.path = qids.Path(st.st_dev, st.st_ino);
  return q;
}

Result<std::shared_ptr<AttachPoint>> AttachPoint::Open(const std::string& path, bool read_only,
                                                       std::shared_ptr<QidMap> qids) {
  if (path.empty() || path[0] != '/') return Errno(EINVAL);
  int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return p9::LastErrno();
  std::shared_ptr<AttachPoint> ap(new AttachPoint());
  ap->path_ = path;
  ap->read_only_ = read_only;
  ap->root_ = p9::UniqueFd(fd);
  ap->qids_ = qids ? std::move(qids) : std::make_shared<QidMap>();
  return ap;
}

std::unique_ptr<HostAttacher> HostAttacher::ForOne(std::shared_ptr<AttachPoint> point) {
  auto a = std::make_unique<HostAttacher>(std::vector<std::shared_ptr<AttachPoint>>{point});
  a->any_aname_ = true;
  return a;
}

Result<std::unique_ptr<p9::File>> HostAttacher::Attach(const std::string& aname,
                                                       const std::string& uname,
                                                       uint32_t n_uname) {
  (void)uname;
  std::shared_ptr<AttachPoint> ap;
  if (points_.empty()) return Errno(ENOENT);
  if (any_aname_ || aname.empty() || aname == "/") {
    ap = points_[0];
  } else {
    for (auto& p : points_) {
      if (p->path() == aname) ap = p;
    }
  }
  if (!ap) return Errno(ENOENT);
  int fd = ::fcntl(ap->root_fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return p9::LastErrno();
  p9::UniqueFd ufd(fd);
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return p9::LastErrno();
  return std::unique_ptr<p9::File>(
      std::make_unique<HostFile>(ap, std::make_shared<const p9::UniqueFd>(std::move(ufd)), st,
                                 nullptr, "", n_uname));
}

}  // namespace gofer
