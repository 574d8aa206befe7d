#include "sentry/fs/gofer/listing_prefetch.h"

#include <algorithm>
#include <utility>

#include "sentry/fs/gofer/gofer_inode.h"

namespace sentry::fs {

void ListingPrefetch::Listed(const std::shared_ptr<GoferInode>& dir, std::vector<Subdir> subdirs,
                             uint64_t epoch) {
  {
    std::lock_guard l(mu_);
    ++listings_;
    // The newest listing's subdirectories go first, in their order: a depth-first walker
    // lists them next, before what older listings left planned.
    for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) {
      planned_.push_front(Planned{dir, std::move(*it)});
    }
    while (planned_.size() > kMaxPlanned) planned_.pop_back();
    if (planned_.empty() && sent_.empty()) return;
    any_.store(true, std::memory_order_relaxed);
  }
  Fill(epoch);
}

void ListingPrefetch::DropLocked(std::list<Sent>::iterator it, std::vector<Sent>& dropped) {
  index_.erase(Key{it->parent_raw, it->name});
  for (auto [b, e] = by_path_.equal_range(it->path); b != e; ++b) {
    if (b->second == it) {
      by_path_.erase(b);
      break;
    }
  }
  dropped.push_back(std::move(*it));
  sent_.erase(it);
}

void ListingPrefetch::ExpireLocked(std::vector<Sent>& dropped) {
  while (!sent_.empty() && listings_ - sent_.front().serial > kMaxAge) {
    DropLocked(sent_.begin(), dropped);
  }
}

size_t ListingPrefetch::RoomLocked() {
  const size_t held = sent_.size() + sending_;
  if (held >= max_held_) return 0;
  // The gofer answers in about the order it was asked: count the unanswered from the
  // newest back to the first answered one.
  size_t inflight = sending_;
  for (auto it = sent_.rbegin(); it != sent_.rend() && inflight < max_inflight_; ++it) {
    if (it->listing.Arrived()) break;
    ++inflight;
  }
  if (inflight >= max_inflight_) return 0;
  return std::min(max_inflight_ - inflight, max_held_ - held);
}

void ListingPrefetch::Fill(uint64_t epoch) {
  std::vector<Sent> dropped;  // Destroyed unlocked: each waits for its reply.
  std::vector<Planned> next;
  uint64_t serial, forgets;
  {
    std::lock_guard l(mu_);
    ExpireLocked(dropped);
    for (size_t room = RoomLocked(); room > 0 && !planned_.empty(); planned_.pop_front()) {
      Planned& p = planned_.front();
      // One listing per directory: skip those already sent (a directory listed again).
      if (index_.contains(Key{p.parent.lock().get(), p.subdir.name})) continue;
      next.push_back(std::move(p));
      --room;
    }
    if (next.empty()) return;
    sending_ += next.size();
    serial = listings_;
    forgets = forgets_;
  }
  // Sent together, in one write.
  std::vector<std::shared_ptr<GoferInode>> parents;
  std::vector<p9::ClientFile::ListStart> starts;
  std::vector<size_t> which;  // starts[k] is for next[which[k]].
  for (size_t i = 0; i < next.size(); ++i) {
    std::shared_ptr<GoferInode> parent = next[i].parent.lock();
    if (!parent) continue;  // Gone, and with it the inode that would have taken this.
    auto fid = parent->Fid();
    if (!fid.has_value()) continue;
    starts.push_back({*fid, {next[i].subdir.name}, 0, first_bytes_});
    which.push_back(i);
    parents.push_back(std::move(parent));
  }
  std::vector<p9::Result<p9::ClientFile::ListingAhead>> started;
  if (!starts.empty()) {
    started = p9::ClientFile::StartListAttrs(starts.front().from->client(), starts);
  }
  std::lock_guard l(mu_);
  sending_ -= next.size();
  for (size_t k = 0; k < started.size(); ++k) {
    if (!started[k].has_value()) continue;  // The connection is gone: nothing was sent.
    Planned& p = next[which[k]];
    Sent s{parents[k], parents[k].get(), std::move(p.subdir.name), p.subdir.path,
           epoch, serial, std::move(*started[k])};
    Key key{s.parent_raw, s.name};
    if (forgets_ != forgets || index_.contains(key)) {
      // A change overlapped the send, or another thread sent the same meanwhile.
      dropped.push_back(std::move(s));
      continue;
    }
    sent_.push_back(std::move(s));
    index_.emplace(std::move(key), std::prev(sent_.end()));
    by_path_.emplace(sent_.back().path, std::prev(sent_.end()));
  }
}  // `l` is released before `dropped` goes (declared after it).

std::optional<ListingPrefetch::Taken> ListingPrefetch::Take(const GoferInode* parent,
                                                            const std::string& name,
                                                            uint64_t path) {
  if (!any_.load(std::memory_order_relaxed)) return std::nullopt;
  std::vector<Sent> dropped;  // Destroyed after the lock is released.
  std::optional<Taken> out;
  {
    std::lock_guard l(mu_);
    auto i = index_.find(Key{parent, name});
    if (i != index_.end()) {
      auto it = i->second;
      // The same directory, and `parent` the inode it was sent for (not one reusing its
      // address: the sender's weak pointer would have expired).
      if (it->path == path && it->parent.lock().get() == parent) {
        out.emplace(Taken{std::move(it->listing), it->epoch});
      }
      DropLocked(it, dropped);
    }
    if (sent_.empty() && planned_.empty() && sending_ == 0) {
      any_.store(false, std::memory_order_relaxed);
    }
  }
  return out;
}

void ListingPrefetch::Forget(uint64_t path) {
  std::vector<Sent> dropped;  // Destroyed after the lock is released.
  std::lock_guard l(mu_);
  ++forgets_;
  for (auto i = by_path_.find(path); i != by_path_.end(); i = by_path_.find(path)) {
    DropLocked(i->second, dropped);
  }
}

void ListingPrefetch::ForgetEntry(const GoferInode* parent, const std::string& name) {
  std::vector<Sent> dropped;  // Destroyed after the lock is released.
  std::lock_guard l(mu_);
  ++forgets_;
  auto i = index_.find(Key{parent, name});
  if (i != index_.end()) DropLocked(i->second, dropped);
}

size_t ListingPrefetch::HeldFor(uint64_t fd_limit) {
  return static_cast<size_t>(std::clamp<uint64_t>(fd_limit / 10, 16, kMaxHeld));
}

size_t ListingPrefetch::ahead() const {
  std::lock_guard l(mu_);
  return sent_.size();
}

}  // namespace sentry::fs
