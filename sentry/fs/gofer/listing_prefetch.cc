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
  dropped.push_back(std::move(*it));
  sent_.erase(it);
}

void ListingPrefetch::ExpireLocked(std::vector<Sent>& dropped) {
  while (!sent_.empty() && listings_ - sent_.front().serial > kMaxAge) {
    DropLocked(sent_.begin(), dropped);
  }
}

bool ListingPrefetch::RoomLocked() {
  if (sent_.size() + sending_ >= kMaxHeld) return false;
  // The gofer answers in about the order it was asked: count the unanswered from the
  // newest back to the first answered one.
  size_t inflight = sending_;
  for (auto it = sent_.rbegin(); it != sent_.rend() && inflight < max_inflight_; ++it) {
    if (it->listing.Arrived()) break;
    ++inflight;
  }
  return inflight < max_inflight_;
}

void ListingPrefetch::Fill(uint64_t epoch) {
  std::vector<Sent> dropped;  // Destroyed unlocked: each waits for its reply.
  for (;;) {
    Planned next;
    uint64_t serial, forgets;
    {
      std::lock_guard l(mu_);
      ExpireLocked(dropped);
      // One listing per directory: skip those already sent (a directory listed again).
      while (!planned_.empty() &&
             index_.contains(Key{planned_.front().parent.lock().get(),
                                 planned_.front().subdir.name})) {
        planned_.pop_front();
      }
      if (planned_.empty() || !RoomLocked()) break;
      next = std::move(planned_.front());
      planned_.pop_front();
      ++sending_;
      serial = listings_;
      forgets = forgets_;
    }
    std::optional<Sent> s;
    if (std::shared_ptr<GoferInode> parent = next.parent.lock()) {
      auto fid = parent->Fid();
      if (fid.has_value()) {
        auto ahead = (*fid)->StartListAttr({next.subdir.name}, 0, first_bytes_);
        if (ahead.has_value()) {
          s.emplace(Sent{parent, parent.get(), std::move(next.subdir.name), next.subdir.path,
                         epoch, serial, std::move(*ahead)});
        }
      }
    }
    std::lock_guard l(mu_);
    --sending_;
    if (!s) continue;  // The parent went, or the connection did: nothing was sent.
    if (forgets_ != forgets) {
      dropped.push_back(std::move(*s));
      continue;
    }
    Key k{s->parent_raw, s->name};
    if (index_.contains(k)) {  // Sent meanwhile by another thread.
      dropped.push_back(std::move(*s));
      continue;
    }
    sent_.push_back(std::move(*s));
    index_.emplace(std::move(k), std::prev(sent_.end()));
  }
  // `dropped` goes here, unlocked.
}

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

void ListingPrefetch::Forget(const GoferInode* parent, const std::string& name) {
  std::vector<Sent> dropped;  // Destroyed after the lock is released.
  std::lock_guard l(mu_);
  ++forgets_;
  auto i = index_.find(Key{parent, name});
  if (i != index_.end()) DropLocked(i->second, dropped);
}

size_t ListingPrefetch::ahead() const {
  std::lock_guard l(mu_);
  return sent_.size();
}

}  // namespace sentry::fs
