// ListingPrefetch: directory listings sent to the gofer ahead of a tree walker.
//
// A walker (find, du, ls -R, rm -r, tar c) that lists a directory it reached through its
// parent's listing lists that directory's subdirectories next, in listing order. Each
// listing costs a gofer round trip during which the walker waits; the gofer's share (open,
// getdents, a statx per subdirectory) is most of it. Sending the subdirectories' listings
// (Treaddirattr, first page only) as soon as their parent is listed lets the gofer work on
// them, on the other CPU, while the walker and the kernel get through the parent; the
// walker then takes a listing that is already here.
//
// What it holds: at most `max_inflight` listings sent and not yet answered (the gofer's
// queue of work: enough to keep it busy, few enough that what the walker needs next is
// not stuck behind much else), at most `max_held` sent and not yet taken (each a gofer fid
// and at most `first_bytes` of reply), and the subdirectories still to send, newest listing
// first (a depth-first walker's order: the subdirectories of the directory just listed are
// next, then the siblings of the directories above it), at most kMaxPlanned of them. A
// listing sent and not taken within kMaxAge later listings is dropped (a walk that went
// elsewhere, or `ls`, which lists a directory without descending). The price of a guess
// gone wrong: `ls` of a directory with many subdirectories, followed by other listings,
// has the gofer list up to `max_held` directories nobody takes.
//
// Validity: only changes made through this file system change the tree (the caching
// policies this runs under, see GoferInode), and each change of a directory's entries goes
// through GoferInode::Changed of that directory, which calls Forget with its qid. So a
// listing taken is the directory's current one. The entries' attributes are another matter (a chmod of an
// entry changes no listing): they are good while the file system's epoch is still the one
// the listing was sent in, as for any listing (GoferInode::Lookup).
//
// Thread-safe. Lock order: mu_, then the client's lock (Arrived, which holds it briefly); no
// other client call is made while holding mu_ (a send may block on a full socket, and
// waiting for a reply certainly does).
#ifndef SENTRY_FS_GOFER_LISTING_PREFETCH_H_
#define SENTRY_FS_GOFER_LISTING_PREFETCH_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "p9/client_file.h"

namespace sentry::fs {

class GoferInode;

class ListingPrefetch {
 public:
  // `max_held`: see above; at most kMaxHeld. Each held listing is an fd in the gofer, so
  // it is bounded by what the gofer may open (HeldFor).
  ListingPrefetch(size_t max_inflight, uint32_t first_bytes, size_t max_held = kMaxHeld)
      : max_inflight_(max_inflight), max_held_(std::min(max_held, kMaxHeld)),
        first_bytes_(first_bytes) {}
  // Waits for the replies of listings still in flight (their fids are clunked).
  ~ListingPrefetch() = default;

  struct Subdir {
    std::string name;
    uint64_t path;  // Its qid path, as the listing gave it.
  };
  // `dir` (walked) was just listed and reached through its parent's listing; `subdirs` are
  // its subdirectories in listing order (maybe none). Sends their listings, and those
  // planned before, as room allows. `epoch` is the file system's epoch now. REQUIRES: no
  // GoferInode lock held (this walks parents' fids).
  void Listed(const std::shared_ptr<GoferInode>& dir, std::vector<Subdir> subdirs,
              uint64_t epoch);

  struct Taken {
    p9::ClientFile::ListingAhead listing;
    uint64_t epoch;  // The file system's epoch when it was sent.
  };
  // The listing of `parent`'s entry `name` (qid path `path`), if it was sent ahead. Its
  // room is used by the next Listed().
  std::optional<Taken> Take(const GoferInode* parent, const std::string& name, uint64_t path);

  // The entries of the directory with qid path `path` are about to change: a listing of it
  // sent ahead, under whichever parent and name, is dropped (and waited for). By qid, not
  // by inode: the inode changing it may be another than the one that will take it (a
  // walked one, the unwalked one listed under its parent dropped meanwhile).
  void Forget(uint64_t path);
  // Entry `name` of `parent` is about to be removed or replaced: a listing sent of what it
  // names is dropped. (A new directory under the name may reuse the old one's inode
  // number, hence its qid path.)
  void ForgetEntry(const GoferInode* parent, const std::string& name);

  // Listings sent ahead and not taken, at this moment (tests).
  size_t ahead() const;

  static constexpr size_t kMaxHeld = 2048;
  // The listings held for a gofer that may open `fd_limit` files: a tenth of them (the
  // sandbox's kernel nodes take half, FuseOptions), kMaxHeld at most, 16 at least.
  static size_t HeldFor(uint64_t fd_limit);
  static constexpr size_t kMaxPlanned = 4096;
  static constexpr uint64_t kMaxAge = 4096;

 private:
  struct Sent {
    std::weak_ptr<GoferInode> parent;
    const GoferInode* parent_raw;  // Identity only, valid while `parent` is alive.
    std::string name;
    uint64_t path;
    uint64_t epoch;
    uint64_t serial;  // listings_ when sent.
    p9::ClientFile::ListingAhead listing;
  };
  struct Key {
    const GoferInode* parent;
    std::string name;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<std::string>()(k.name) ^ std::hash<const void*>()(k.parent);
    }
  };
  struct Planned {
    std::weak_ptr<GoferInode> parent;
    Subdir subdir;
  };
  // Sends planned listings as room allows, in one write; drops (and waits for) expired ones
  // first.
  void Fill(uint64_t epoch);
  // REQUIRES: mu_ held. Moves `it` out of sent_ (and index_) into `dropped`.
  void DropLocked(std::list<Sent>::iterator it, std::vector<Sent>& dropped);
  // REQUIRES: mu_ held. Moves sent listings older than kMaxAge into `dropped`.
  void ExpireLocked(std::vector<Sent>& dropped);
  // REQUIRES: mu_ held. How many more listings may be sent now.
  size_t RoomLocked();

  const size_t max_inflight_;
  const size_t max_held_;
  const uint32_t first_bytes_;
  mutable std::mutex mu_;
  std::list<Sent> sent_;         // Guarded by mu_. Oldest first.
  // Guarded by mu_. sent_ by parent and name (one listing per name at most), and by the
  // directory's qid path.
  std::unordered_map<Key, std::list<Sent>::iterator, KeyHash> index_;
  std::unordered_multimap<uint64_t, std::list<Sent>::iterator> by_path_;
  size_t sending_ = 0;           // Guarded by mu_. Slots taken by sends in progress.
  std::deque<Planned> planned_;  // Guarded by mu_. Next to send first.
  uint64_t listings_ = 0;        // Guarded by mu_. Listed() calls so far.
  // Guarded by mu_. Forget() calls so far: a listing whose send overlapped one is dropped,
  // as the gofer may have read the directory before the change that Forget announced.
  uint64_t forgets_ = 0;
  // Something sent, planned or being sent: Take has work to do. (Forget always looks: it
  // must count every change, see forgets_.)
  std::atomic<bool> any_{false};
};

}  // namespace sentry::fs

#endif  // SENTRY_FS_GOFER_LISTING_PREFETCH_H_
