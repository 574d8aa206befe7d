// Attach points: the host directories (or files) the gofer serves, one per mount.
//
// Safety rests on one rule: every host access is relative to an fd that was reached from the
// attach point's root fd by openat(..., O_PATH|O_NOFOLLOW) of a single validated name. No path
// string made of client names is ever resolved, ".." never exists, and symlinks are never
// followed, so nothing outside the attach point can be reached (see host_file.h).
#ifndef GOFER_ATTACH_POINT_H_
#define GOFER_ATTACH_POINT_H_

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "p9/file.h"
#include "p9/result.h"
#include "p9/unique_fd.h"

namespace gofer {

// Maps host (st_dev, st_ino) to qid paths unique across every attach point of one gofer:
// the device gets a small index in the top 8 bits, the inode number the low 56 bits (inode
// numbers that do not fit get a counter-allocated path instead). Thread-safe.
class QidMap {
 public:
  uint64_t Path(dev_t dev, ino_t ino);

 private:
  std::mutex mu_;
  std::map<dev_t, uint64_t> devs_;                      // Guarded by mu_.
  std::map<std::pair<dev_t, ino_t>, uint64_t> large_;  // Guarded by mu_.
  uint64_t next_large_ = 1;                              // Guarded by mu_.
};

// The qid of a stat result.
p9::Qid MakeQid(QidMap& qids, const struct stat& st);

// One served tree. Immutable after Open(); shared by every HostFile under it.
class AttachPoint {
 public:
  // Opens `path` (absolute, followed once here, by the trusted launcher's choice) as the root.
  static p9::Result<std::shared_ptr<AttachPoint>> Open(const std::string& path, bool read_only,
                                                       std::shared_ptr<QidMap> qids);

  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  int root_fd() const { return root_.get(); }
  QidMap& qids() const { return *qids_; }

  // The one shared O_PATH fd of directory `st` while any fid holds it: `fd` itself if none
  // does yet. Fids walked through several names keep their parent directory's fd; without
  // this, 10,000 fids walked as "dir/fN" would pin 10,000 copies of "dir". Safe by (dev, ino):
  // a live fd keeps its inode from being freed and its number reused. Thread-safe.
  std::shared_ptr<const p9::UniqueFd> InternDir(const struct stat& st,
                                                std::shared_ptr<const p9::UniqueFd> fd) const;

 private:
  AttachPoint() = default;
  std::string path_;
  bool read_only_ = false;
  p9::UniqueFd root_;  // O_PATH.
  std::shared_ptr<QidMap> qids_;
  mutable std::mutex dirs_mu_;
  mutable std::map<std::pair<dev_t, ino_t>, std::weak_ptr<const p9::UniqueFd>> dirs_;  // Guarded by dirs_mu_.
  mutable size_t sweep_at_ = 1024;  // Guarded by dirs_mu_: drop expired entries past this size.
};

// Serves a list of attach points. Tattach's aname selects one by its path ("" or "/" means
// the first); anything else is ENOENT. Thread-safe.
class HostAttacher : public p9::Attacher {
 public:
  explicit HostAttacher(std::vector<std::shared_ptr<AttachPoint>> points)
      : points_(std::move(points)) {}

  // Serves only `point`, whatever the aname (one attacher per io fd, as runsc did).
  static std::unique_ptr<HostAttacher> ForOne(std::shared_ptr<AttachPoint> point);

  p9::Result<std::unique_ptr<p9::File>> Attach(const std::string& aname,
                                               const std::string& uname,
                                               uint32_t n_uname) override;

 private:
  std::vector<std::shared_ptr<AttachPoint>> points_;
  bool any_aname_ = false;
};

}  // namespace gofer

#endif  // GOFER_ATTACH_POINT_H_
