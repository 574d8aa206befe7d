#include "p9/client_file.h"

#include <algorithm>

namespace p9 {

ClientFile& ClientFile::operator=(ClientFile&& o) noexcept {
  if (this != &o) {
    Reset();
    client_ = std::exchange(o.client_, nullptr);
    fid_ = std::exchange(o.fid_, kNoFid);
    donated_ = std::move(o.donated_);
  }
  return *this;
}

void ClientFile::Reset() {
  if (client_ != nullptr) {
    // Nobody reads the result: do not wait for it.
    Client* c = std::exchange(client_, nullptr);
    Fid f = std::exchange(fid_, kNoFid);
    donated_.reset();
    c->ClunkAsync(f);
  }
}

Result<void> ClientFile::Clunk() {
  if (client_ == nullptr) return Errno(EBADF);
  Client* c = std::exchange(client_, nullptr);
  Fid f = std::exchange(fid_, kNoFid);
  donated_.reset();
  auto r = c->Call(Tclunk{f});
  // The server frees the fid even when clunk reports an error (e.g. a failed xattr set); a
  // dead connection frees it too.
  c->ReleaseFid(f);
  if (!r.has_value()) return r.error();
  return Ok();
}

Result<ClientFile> ClientFile::Attach(Client& client, const std::string& aname,
                                      const std::string& uname, uint32_t n_uname) {
  Fid fid = client.NewFid();
  auto r = client.Call(Tattach{fid, kNoFid, uname, aname, n_uname});
  if (!r.has_value()) {
    client.ReleaseFid(fid);
    return r.error();
  }
  return ClientFile(client, fid);
}

Result<ClientFile> ClientFile::Walk(const std::vector<std::string>& names) const {
  if (client_ == nullptr) return Errno(EBADF);
  Fid from = fid_;
  ClientFile cur;
  size_t i = 0;
  do {
    size_t n = std::min(kMaxWalkElements, names.size() - i);
    Twalk req{from, client_->NewFid(),
              std::vector<std::string>(names.begin() + i, names.begin() + i + n)};
    auto r = client_->Call(req);
    if (!r.has_value() || r->wqids.size() != n) {
      client_->ReleaseFid(req.newfid);
      if (!r.has_value()) return r.error();
      return Errno(ENOENT);  // Partial walk: the next name does not exist.
    }
    cur = ClientFile(*client_, req.newfid);  // Clunks the previous intermediate fid.
    from = req.newfid;
    i += n;
  } while (i < names.size());
  return cur;
}

Result<std::pair<ClientFile, Rgetattr>> ClientFile::WalkGetAttr(
    const std::vector<std::string>& names, uint64_t mask) const {
  if (client_ == nullptr) return Errno(EBADF);
  if (names.size() > kMaxWalkElements) return Errno(E2BIG);
  Twalkgetattr req{fid_, client_->NewFid(), mask, names};
  auto r = client_->Call(req);
  if (!r.has_value() || r->wqids.size() != names.size()) {
    client_->ReleaseFid(req.newfid);
    if (!r.has_value()) return r.error();
    return Errno(ENOENT);
  }
  return std::make_pair(ClientFile(*client_, req.newfid), std::move(r->attr));
}

Result<ClientFile> ClientFile::WalkPath(std::string_view path) const {
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    if (part == "..") return Errno(EINVAL);
    if (!part.empty() && part != ".") names.emplace_back(part);
    pos = end + 1;
  }
  return Walk(names);
}

Result<Rgetattr> ClientFile::GetAttr(uint64_t mask) const {
  return client_->Call(Tgetattr{fid_, mask});
}

Result<void> ClientFile::SetAttr(const Tsetattr& attr) const {
  Tsetattr a = attr;
  a.fid = fid_;
  P9_RETURN_IF_ERROR(client_->Call(a));
  return Ok();
}

Result<Rlopen> ClientFile::Open(uint32_t flags) {
  std::vector<UniqueFd> fds;
  P9_ASSIGN_OR_RETURN(Rlopen r, client_->Call(Tlopen{fid_, flags}, &fds));
  if (!fds.empty()) donated_ = std::move(fds[0]);
  return r;
}

Result<Rlcreate> ClientFile::Create(const std::string& name, uint32_t flags, uint32_t mode,
                                    uint32_t gid) {
  std::vector<UniqueFd> fds;
  P9_ASSIGN_OR_RETURN(Rlcreate r, client_->Call(Tlcreate{fid_, name, flags, mode, gid}, &fds));
  if (!fds.empty()) donated_ = std::move(fds[0]);
  return r;
}

Result<std::pair<ClientFile, Rwalkopen>> ClientFile::WalkOpen(
    const std::vector<std::string>& names, uint32_t flags) const {
  if (client_ == nullptr) return Errno(EBADF);
  if (names.size() > kMaxWalkElements) return Errno(E2BIG);
  Twalkopen req{fid_, client_->NewFid(), flags, names};
  std::vector<UniqueFd> fds;
  auto r = client_->Call(req, &fds);
  if (!r.has_value()) {
    client_->ReleaseFid(req.newfid);
    return r.error();
  }
  ClientFile f(*client_, req.newfid);
  if (!fds.empty()) f.donated_ = std::move(fds[0]);
  return std::make_pair(std::move(f), *r);
}

Result<ClientFile::CreatedAt> ClientFile::CreateAt(const std::string& name, uint32_t flags,
                                                   uint32_t mode, uint32_t gid,
                                                   bool walked) const {
  if (client_ == nullptr) return Errno(EBADF);
  Tlcreateat req{fid_, client_->NewFid(), walked ? client_->NewFid() : kNoFid, name,
                 flags, mode, gid};
  std::vector<UniqueFd> fds;
  auto r = client_->Call(req, &fds);
  if (!r.has_value()) {
    client_->ReleaseFid(req.newfid);
    if (walked) client_->ReleaseFid(req.pathfid);
    return r.error();
  }
  CreatedAt c{ClientFile(*client_, req.newfid),
              walked ? ClientFile(*client_, req.pathfid) : ClientFile(), r->qid, r->iounit,
              std::move(r->attr)};
  if (!fds.empty()) c.opened.donated_ = std::move(fds[0]);
  return c;
}

Result<size_t> ClientFile::ReadAt(std::span<char> dst, uint64_t offset) const {
  return client_->Read(fid_, offset, dst);
}

Result<size_t> ClientFile::ReadFullAt(std::span<char> dst, uint64_t offset) const {
  return client_->ReadFull(fid_, offset, dst);
}

Result<size_t> ClientFile::WriteAt(Bytes src, uint64_t offset) const {
  return client_->Write(fid_, offset, src);
}

Result<size_t> ClientFile::WriteFullAt(Bytes src, uint64_t offset) const {
  return client_->WriteFull(fid_, offset, src);
}

Result<std::string> ClientFile::ReadAll() const {
  std::string out;
  size_t chunk = client_->max_read();
  for (;;) {
    size_t old = out.size();
    out.resize(old + chunk);
    P9_ASSIGN_OR_RETURN(size_t n, ReadAt(std::span<char>(out.data() + old, chunk), old));
    out.resize(old + n);
    if (n == 0) return out;
  }
}

Result<void> ClientFile::WriteAll(std::string_view data, uint64_t offset) const {
  size_t done = 0;
  while (done < data.size()) {
    P9_ASSIGN_OR_RETURN(size_t n,
                        WriteAt(Bytes(data.data() + done, data.size() - done), offset + done));
    if (n == 0) return Errno(EIO);
    done += n;
  }
  return Ok();
}

Result<std::vector<Dirent>> ClientFile::Readdir(uint64_t offset, uint32_t count) const {
  return client_->Readdir(fid_, offset, count);
}

Result<std::vector<Dirent>> ClientFile::ReaddirAll() const {
  if (client_ == nullptr) return Errno(EBADF);
  const uint32_t count = static_cast<uint32_t>(client_->msize() - kIoHeaderSize);
  std::vector<Dirent> all;
  uint64_t offset = 0;
  for (;;) {
    P9_ASSIGN_OR_RETURN(std::vector<Dirent> ents, Readdir(offset, count));
    if (ents.empty()) return all;
    offset = ents.back().offset;
    size_t used = 0;
    for (auto& e : ents) {
      used += DirentSize(e);
      all.push_back(std::move(e));
    }
    // Our dialect fills every Rreaddir: room for one more entry means the end, and the
    // Treaddir that would come back empty is not needed.
    if (client_->Has(Dialect::kWalkGetattr) && count - used >= kMaxDirentSize) return all;
  }
}

Result<ClientFile::AttrListing> ClientFile::ListAttr(const std::vector<std::string>& names,
                                                     uint32_t flags, bool keep) const {
  if (client_ == nullptr) return Errno(EBADF);
  const uint32_t count = static_cast<uint32_t>(client_->msize() - kIoHeaderSize);
  const Fid newfid = keep ? client_->NewFid() : kNoFid;
  return ListRest(*client_, fid_, names, flags, newfid, count,
                  client_->ReaddirAttr(fid_, newfid, flags, names, 0, count));
}

Result<ClientFile::AttrListing> ClientFile::ListRest(
    Client& client, Fid from, const std::vector<std::string>& names, uint32_t flags,
    Fid newfid, uint32_t count, Result<std::pair<Qid, std::vector<DirentAttr>>> first) {
  AttrListing out;
  if (newfid != kNoFid) {
    if (!first.has_value()) {
      client.ReleaseFid(newfid);
      return first.error();
    }
    out.dir = ClientFile(client, newfid);
  }
  if (!first.has_value()) return first.error();
  out.qid = first->first;
  std::vector<DirentAttr> page = std::move(first->second);
  const uint32_t full = static_cast<uint32_t>(client.msize() - kIoHeaderSize);
  for (;;) {
    if (page.empty()) return out;
    const uint64_t offset = page.back().dirent.offset;
    size_t used = 0;
    for (auto& e : page) {
      used += DirentAttrSize(e);
      out.entries.push_back(std::move(e));
    }
    // A reply with room for one more entry is the last (Treaddirattr replies are full).
    if (count - used >= kMaxDirentAttrSize) return out;
    count = full;
    const bool kept = newfid != kNoFid;  // The rest continues on the kept fid.
    P9_ASSIGN_OR_RETURN(auto r, client.ReaddirAttr(kept ? newfid : from, kNoFid, flags,
                                                     kept ? std::vector<std::string>{} : names,
                                                     offset, count));
    page = std::move(r.second);
  }
}

Result<ClientFile::ListingAhead> ClientFile::StartListAttr(const std::vector<std::string>& names,
                                                           uint32_t flags,
                                                           uint32_t count) const {
  if (client_ == nullptr) return Errno(EBADF);
  ListStart one{this, names, flags, count};
  return std::move(StartListAttrs(*client_, std::span<const ListStart>(&one, 1)).front());
}

std::vector<Result<ClientFile::ListingAhead>> ClientFile::StartListAttrs(
    Client& client, std::span<const ListStart> starts) {
  const uint32_t full = static_cast<uint32_t>(client.msize() - kIoHeaderSize);
  std::vector<Result<ListingAhead>> out;
  out.reserve(starts.size());
  for (size_t i = 0; i < starts.size(); ++i) out.emplace_back(Errno(EINVAL));
  std::vector<Treaddirattr> reqs;
  std::vector<size_t> which;  // reqs[i] is for starts[which[i]].
  for (size_t i = 0; i < starts.size(); ++i) {
    const ListStart& s = starts[i];
    const uint32_t count = std::min(s.count, full);
    if (s.from == nullptr || s.from->client_ != &client) {
      out[i] = Errno(EBADF);
    } else if (count < kMaxDirentAttrSize) {
      out[i] = Errno(EINVAL);  // The end test of ListRest needs room for one entry.
    } else {
      reqs.push_back(Treaddirattr{s.from->fid_, client.NewFid(), s.flags, s.names, 0, count});
      which.push_back(i);
    }
  }
  auto started = client.StartReaddirAttrs(reqs);
  for (size_t j = 0; j < reqs.size(); ++j) {
    if (!started[j].has_value()) {
      client.ReleaseFid(reqs[j].newfid);
      out[which[j]] = started[j].error();
      continue;
    }
    out[which[j]] = ListingAhead(client, reqs[j].newfid, reqs[j].flags, reqs[j].count,
                                 std::move(*started[j]));
  }
  return out;
}

Result<ClientFile::AttrListing> ClientFile::ListingAhead::Finish() {
  if (!first_) return Errno(EINVAL);
  std::unique_ptr<Client::Ahead> first = std::move(first_);
  auto r = client_->ReaddirAttrResult(*first);
  first.reset();
  return ListRest(*client_, kNoFid, {}, flags_, newfid_, count_, std::move(r));
}

ClientFile::ListingAhead& ClientFile::ListingAhead::operator=(ListingAhead&& o) noexcept {
  if (this != &o) {
    Drop();
    client_ = o.client_;
    newfid_ = o.newfid_;
    flags_ = o.flags_;
    count_ = o.count_;
    first_ = std::move(o.first_);
  }
  return *this;
}

void ClientFile::ListingAhead::Drop() {
  if (!first_) return;
  auto r = client_->ReaddirAttrResult(*first_);
  first_.reset();
  if (r.has_value()) {
    ClientFile left(*client_, newfid_);  // Clunked without waiting.
  } else {
    client_->ReleaseFid(newfid_);
  }
}

Result<Qid> ClientFile::Mkdir(const std::string& name, uint32_t mode, uint32_t gid) const {
  P9_ASSIGN_OR_RETURN(Rmkdir r, client_->Call(Tmkdir{fid_, name, mode, gid}));
  return r.qid;
}

Result<Qid> ClientFile::Symlink(const std::string& name, const std::string& target,
                                uint32_t gid) const {
  P9_ASSIGN_OR_RETURN(Rsymlink r, client_->Call(Tsymlink{fid_, name, target, gid}));
  return r.qid;
}

Result<Qid> ClientFile::Mknod(const std::string& name, uint32_t mode, uint32_t major,
                              uint32_t minor, uint32_t gid) const {
  P9_ASSIGN_OR_RETURN(Rmknod r, client_->Call(Tmknod{fid_, name, mode, major, minor, gid}));
  return r.qid;
}

Result<void> ClientFile::Link(const ClientFile& target, const std::string& name) const {
  P9_RETURN_IF_ERROR(client_->Call(Tlink{fid_, target.fid_, name}));
  return Ok();
}

Result<void> ClientFile::Rename(const ClientFile& newdir, const std::string& name) const {
  P9_RETURN_IF_ERROR(client_->Call(Trename{fid_, newdir.fid_, name}));
  return Ok();
}

Result<void> ClientFile::RenameAt(const std::string& oldname, const ClientFile& newdir,
                                  const std::string& newname) const {
  P9_RETURN_IF_ERROR(client_->Call(Trenameat{fid_, oldname, newdir.fid_, newname}));
  return Ok();
}

Result<void> ClientFile::UnlinkAt(const std::string& name, uint32_t flags) const {
  P9_RETURN_IF_ERROR(client_->Call(Tunlinkat{fid_, name, flags}));
  return Ok();
}

Result<std::string> ClientFile::Readlink() const {
  P9_ASSIGN_OR_RETURN(Rreadlink r, client_->Call(Treadlink{fid_}));
  return std::move(r.target);
}

Result<void> ClientFile::Fsync(bool datasync) const {
  P9_RETURN_IF_ERROR(client_->Call(Tfsync{fid_, datasync ? 1u : 0u}));
  return Ok();
}

Result<Rstatfs> ClientFile::StatFs() const { return client_->Call(Tstatfs{fid_}); }

Result<uint8_t> ClientFile::Lock(uint8_t type, uint32_t flags, uint64_t start, uint64_t length,
                                 uint32_t proc_id, const std::string& client_id) const {
  P9_ASSIGN_OR_RETURN(Rlock r,
                      client_->Call(Tlock{fid_, type, flags, start, length, proc_id, client_id}));
  return r.status;
}

Result<Rgetlock> ClientFile::GetLock(uint8_t type, uint64_t start, uint64_t length,
                                     uint32_t proc_id, const std::string& client_id) const {
  return client_->Call(Tgetlock{fid_, type, start, length, proc_id, client_id});
}

Result<std::string> ClientFile::ReadXattrFid(Fid fid, uint64_t size) const {
  if (size > kMaxXattrSize) return Errno(E2BIG);
  std::string out(size, '\0');
  size_t done = 0;
  while (done < size) {
    P9_ASSIGN_OR_RETURN(size_t n, client_->Read(fid, done, std::span<char>(out.data() + done,
                                                                           size - done)));
    if (n == 0) break;
    done += n;
  }
  out.resize(done);
  return out;
}

Result<std::string> ClientFile::GetXattr(const std::string& name) const {
  Fid xf = client_->NewFid();
  auto w = client_->Call(Txattrwalk{fid_, xf, name});
  if (!w.has_value()) {
    client_->ReleaseFid(xf);
    return w.error();
  }
  ClientFile holder(*client_, xf);
  return ReadXattrFid(xf, w->size);
}

Result<std::vector<std::string>> ClientFile::ListXattr() const {
  P9_ASSIGN_OR_RETURN(std::string all, GetXattr(""));
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\0', pos);
    if (end == std::string::npos) end = all.size();
    names.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  return names;
}

Result<void> ClientFile::SetXattr(const std::string& name, std::string_view value,
                                  uint32_t flags) const {
  P9_ASSIGN_OR_RETURN(ClientFile x, Walk({}));
  P9_RETURN_IF_ERROR(client_->Call(Txattrcreate{x.fid_, name, value.size(), flags}));
  size_t done = 0;
  while (done < value.size()) {
    P9_ASSIGN_OR_RETURN(size_t n, client_->Write(x.fid_, done, Bytes(value.data() + done,
                                                                     value.size() - done)));
    if (n == 0) return Errno(EIO);
    done += n;
  }
  return x.Clunk();  // The value is set at clunk; its error is the setxattr error.
}

Result<void> ClientFile::RemoveXattr(const std::string& name) const {
  // As Linux sends removexattr(2): an empty value with XATTR_REPLACE.
  return SetXattr(name, "", kXattrReplace);
}

Result<void> ClientFile::Remove() {
  if (client_ == nullptr) return Errno(EBADF);
  Client* c = std::exchange(client_, nullptr);
  Fid f = std::exchange(fid_, kNoFid);
  donated_.reset();
  auto r = c->Call(Tremove{f});
  c->ReleaseFid(f);
  if (!r.has_value()) return r.error();
  return Ok();
}

}  // namespace p9
