// ClientFile: a fid of a Client as an RAII object with one method per 9P2000.L operation.
// The destructor clunks the fid without waiting (Client::ClunkAsync; errors ignored); the
// client reuses the number once the reply comes.
// Movable, not copyable. Thread-compatible: concurrent calls on one ClientFile are fine as far
// as 9P allows (the server serializes nothing per fid), but moving/destroying must not race.
#ifndef P9_CLIENT_FILE_H_
#define P9_CLIENT_FILE_H_

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "p9/client.h"

namespace p9 {

class ClientFile {
 public:
  ClientFile() = default;
  ClientFile(Client& client, Fid fid) : client_(&client), fid_(fid) {}
  ClientFile(ClientFile&& o) noexcept { *this = std::move(o); }
  ClientFile& operator=(ClientFile&& o) noexcept;
  ~ClientFile() { Reset(); }

  // Tattach: the root of `aname`.
  static Result<ClientFile> Attach(Client& client, const std::string& aname,
                                   const std::string& uname = "root", uint32_t n_uname = 0);

  bool valid() const { return client_ != nullptr; }
  Fid fid() const { return fid_; }
  Client& client() const { return *client_; }

  // Twalk (split into several messages beyond kMaxWalkElements names). A partial walk is
  // ENOENT. No names clones the fid.
  Result<ClientFile> Walk(const std::vector<std::string>& names) const;
  // Twalkgetattr (our dialect; ENOSYS from others): the walk and the attributes of its end
  // in one round trip. At most kMaxWalkElements names; a partial walk is ENOENT.
  Result<std::pair<ClientFile, Rgetattr>> WalkGetAttr(const std::vector<std::string>& names,
                                                      uint64_t mask = getattr::kBasic) const;
  // Walk along "a/b/c" (empty components and "." skipped; ".." is refused with EINVAL).
  Result<ClientFile> WalkPath(std::string_view path) const;

  Result<Rgetattr> GetAttr(uint64_t mask = getattr::kBasic) const;
  Result<void> SetAttr(const Tsetattr& attr) const;  // attr.fid is filled in.
  // Tlopen. Keeps a donated host fd, if the server sent one (donated_fd()).
  Result<Rlopen> Open(uint32_t flags);
  // Twalkopen (our dialect, cxx.4; ENOSYS from others): Walk(names) and Open(flags) of the
  // new fid in one round trip (no names: a clone of this fid, opened). A partial walk is
  // ENOENT. The result keeps a donated host fd, if the server sent one.
  Result<std::pair<ClientFile, Rwalkopen>> WalkOpen(const std::vector<std::string>& names,
                                                    uint32_t flags) const;
  // Tlcreate in this directory; this fid becomes the new, opened file.
  Result<Rlcreate> Create(const std::string& name, uint32_t flags, uint32_t mode,
                          uint32_t gid = 0);
  int donated_fd() const { return donated_.get(); }
  // Tlcreateat (our dialect, cxx.4; ENOSYS from others) in this directory, which stays as it
  // was: the new file opened (with the donated host fd, if any), walked unless `!walked`,
  // and its attributes, in one round trip.
  struct CreatedAt;  // Below.
  Result<CreatedAt> CreateAt(const std::string& name, uint32_t flags, uint32_t mode,
                             uint32_t gid = 0, bool walked = true) const;

  Result<size_t> ReadAt(std::span<char> dst, uint64_t offset) const;
  // All of dst, or up to the end of the file: Client::ReadFull (regular files only).
  Result<size_t> ReadFullAt(std::span<char> dst, uint64_t offset) const;
  Result<size_t> WriteAt(Bytes src, uint64_t offset) const;
  // All of src: Client::WriteFull (regular files not opened O_APPEND only).
  Result<size_t> WriteFullAt(Bytes src, uint64_t offset) const;
  // Whole file from offset 0 to EOF.
  Result<std::string> ReadAll() const;
  // Writes all of `data` at `offset`, looping over short writes.
  Result<void> WriteAll(std::string_view data, uint64_t offset = 0) const;

  Result<std::vector<Dirent>> Readdir(uint64_t offset, uint32_t count) const;
  // Every entry, Treaddir after Treaddir (in our dialect, without the last empty one). On a
  // walked, unopened directory fid only in our dialect.
  Result<std::vector<Dirent>> ReaddirAll() const;
  struct AttrListing;  // Below.
  // Every entry of the directory `names` leads to from this fid (no names: this one, opened
  // or not), with attributes as `flags` asks (readdirattr::), Treaddirattr after
  // Treaddirattr (our dialect; ENOSYS from others). With `keep`, the first leaves a fid at
  // the directory, which the rest use.
  Result<AttrListing> ListAttr(const std::vector<std::string>& names = {}, uint32_t flags = 0,
                               bool keep = false) const;
  // ListAttr(names, flags, keep = true) started now and finished later: the first
  // Treaddirattr (of at most `count` bytes) is sent at once, so the server lists the
  // directory while the caller works on; Finish() takes its reply and reads the rest on the
  // kept fid. Needs our dialect (ENOSYS from others, at Finish).
  class ListingAhead;  // Below.
  Result<ListingAhead> StartListAttr(const std::vector<std::string>& names, uint32_t flags,
                                     uint32_t count) const;
  // Several at once, from fids of one client, in one write (Client::StartReaddirAttrs): one
  // result per start, in order.
  struct ListStart {
    const ClientFile* from;
    std::vector<std::string> names;
    uint32_t flags = 0;
    uint32_t count = 0;
  };
  static std::vector<Result<ListingAhead>> StartListAttrs(Client& client,
                                                          std::span<const ListStart> starts);

  Result<Qid> Mkdir(const std::string& name, uint32_t mode, uint32_t gid = 0) const;
  Result<Qid> Symlink(const std::string& name, const std::string& target,
                      uint32_t gid = 0) const;
  Result<Qid> Mknod(const std::string& name, uint32_t mode, uint32_t major, uint32_t minor,
                    uint32_t gid = 0) const;
  // Tlink: a hard link `name` in this directory to `target`.
  Result<void> Link(const ClientFile& target, const std::string& name) const;
  // Trename of this file into `newdir` as `name`.
  Result<void> Rename(const ClientFile& newdir, const std::string& name) const;
  Result<void> RenameAt(const std::string& oldname, const ClientFile& newdir,
                        const std::string& newname) const;
  Result<void> UnlinkAt(const std::string& name, uint32_t flags = 0) const;
  Result<std::string> Readlink() const;
  Result<void> Fsync(bool datasync = false) const;
  Result<Rstatfs> StatFs() const;
  Result<uint8_t> Lock(uint8_t type, uint32_t flags, uint64_t start, uint64_t length,
                       uint32_t proc_id, const std::string& client_id = "") const;
  Result<Rgetlock> GetLock(uint8_t type, uint64_t start, uint64_t length, uint32_t proc_id,
                           const std::string& client_id = "") const;

  // Extended attributes over Txattrwalk/Txattrcreate (each uses a temporary fid).
  Result<std::string> GetXattr(const std::string& name) const;
  Result<std::vector<std::string>> ListXattr() const;
  Result<void> SetXattr(const std::string& name, std::string_view value,
                        uint32_t flags = 0) const;
  Result<void> RemoveXattr(const std::string& name) const;

  // Tremove: the fid is gone afterwards whatever the result.
  Result<void> Remove();
  // Tclunk now, reporting the error (the destructor ignores it).
  Result<void> Clunk();

 private:
  // The listing whose first Treaddirattr (of `count` bytes, leaving `newfid` unless kNoFid)
  // came back as `first`: the rest, Treaddirattr after Treaddirattr on the kept fid (or
  // along `names` from `from` without it).
  static Result<AttrListing> ListRest(Client& client, Fid from,
                                      const std::vector<std::string>& names, uint32_t flags,
                                      Fid newfid, uint32_t count,
                                      Result<std::pair<Qid, std::vector<DirentAttr>>> first);
  void Reset();
  Result<std::string> ReadXattrFid(Fid fid, uint64_t size) const;

  Client* client_ = nullptr;
  Fid fid_ = kNoFid;
  UniqueFd donated_;
};

// What ClientFile::CreateAt made.
struct ClientFile::CreatedAt {
  ClientFile opened;
  ClientFile walked;  // Invalid unless asked for.
  Qid qid;
  uint32_t iounit = 0;
  Rgetattr attr;  // valid = 0 where the server could not tell.
};

// A directory listed with Treaddirattr (ClientFile::ListAttr).
struct ClientFile::AttrListing {
  Qid qid;  // The directory's, when reached through names.
  std::vector<DirentAttr> entries;
  ClientFile dir;  // With `keep`: a fid at the directory.
};

// A listing started ahead (ClientFile::StartListAttr). Destroying one not finished waits for
// the first reply and clunks the fid it left. Must not outlive the Client. Movable.
class ClientFile::ListingAhead {
 public:
  ListingAhead(ListingAhead&& o) noexcept { *this = std::move(o); }
  ListingAhead& operator=(ListingAhead&& o) noexcept;
  ~ListingAhead() { Drop(); }
  // The whole listing, with a fid at the directory (AttrListing::dir). Once.
  Result<AttrListing> Finish();
  // Whether the first reply is in (Finish waits for no more than the rest, if any).
  bool Arrived() const { return !first_ || client_->Arrived(*first_); }

 private:
  friend class ClientFile;
  ListingAhead(Client& client, Fid newfid, uint32_t flags, uint32_t count,
               std::unique_ptr<Client::Ahead> first)
      : client_(&client), newfid_(newfid), flags_(flags), count_(count),
        first_(std::move(first)) {}
  // Not finished: waits for the first reply and clunks the fid it left.
  void Drop();
  Client* client_ = nullptr;
  Fid newfid_ = kNoFid;
  uint32_t flags_ = 0;
  uint32_t count_ = 0;
  std::unique_ptr<Client::Ahead> first_;  // Null once finished (or moved from).
};

}  // namespace p9

#endif  // P9_CLIENT_FILE_H_
