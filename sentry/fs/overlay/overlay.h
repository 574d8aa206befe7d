// overlay: a writable upper file system (tmpfs) over a read-only lower one. The lower layer is
// never written: the first change to a file copies it up (data, mode, owner, times, xattrs,
// and its parent directories first); deletions of lower names leave whiteouts; a directory
// re-created over a deleted lower one is opaque (hides the lower contents); readdir merges the
// layers without duplicates. An overlay may also cover a single file (a bind-mounted file).
//
// Representation in the upper layer, as Linux overlayfs: a whiteout is a character device
// 0:0; an opaque directory carries the xattr "trusted.overlay.opaque" = "y". Neither is ever
// visible through the overlay.
//
// Renaming a directory that has lower contents is EXDEV (as overlayfs without redirect_dir);
// programs fall back to copy and delete. Files and upper-only directories rename freely.
//
// Locking: one mutex per overlay serializes copy-up and whiteout changes (the layers lock
// themselves); lookups take it only briefly.
#ifndef SENTRY_FS_OVERLAY_OVERLAY_H_
#define SENTRY_FS_OVERLAY_OVERLAY_H_

#include <memory>
#include <string>

#include "sentry/vfs/inode.h"

namespace sentry::fs {

inline constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";

class OverlayFs : public vfs::Filesystem {
 public:
  enum class Kind {
    // A writable upper (a fresh tmpfs) over a read-only lower, in overlayfs's form: copy-up,
    // whiteouts and opaque directories. The upper root takes the lower root's mode and
    // owner, so the merged root looks like the lower one.
    kCopyUp,
    // The submount overlay (the seeds' addSubmountOverlay): the upper is the real tree and
    // the lower only supplies mount-point directories missing from it. The upper is
    // authoritative: nothing in it is read as a whiteout or opaque marker, none is ever
    // written into it, and the merged root keeps the upper's attributes.
    kSubmounts,
  };
  // `lower` is only read; `upper` takes every change.
  static p9::Result<std::shared_ptr<OverlayFs>> Create(std::shared_ptr<vfs::Filesystem> upper,
                                                       std::shared_ptr<vfs::Filesystem> lower,
                                                       Kind kind = Kind::kCopyUp);
  std::string type() const override { return "overlay"; }
  std::shared_ptr<vfs::Inode> root() override { return root_; }
  std::shared_ptr<vfs::Filesystem> upper() const { return upper_; }

  struct State;

 private:
  std::shared_ptr<vfs::Filesystem> upper_, lower_;
  std::shared_ptr<State> state_;
  std::shared_ptr<vfs::Inode> root_;
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_OVERLAY_OVERLAY_H_
