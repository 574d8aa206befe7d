// Load and integrity: 4 clients on their own connections to one gofer (real sockets, real
// files) each make 1,500 random operations (create, write at random offsets, read back,
// truncate, rename, unlink) on files of their own, keeping a model of what every file must
// hold. Every read is checked against the model as it happens; at the end every byte on the
// host is checked (content and an FNV-1a checksum), and no file is missing or extra. Bounded
// in count, not time.
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "gofer/attach_point.h"
#include "gtest/gtest.h"
#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/server.h"
#include "p9/socket_util.h"

namespace gofer {
namespace {

namespace hfs = std::filesystem;
using p9::ClientFile;

uint64_t Fnv(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string Slurp(const hfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Worker {
  int id;
  std::map<std::string, std::string> model;  // name -> contents
  std::string failure;                       // Empty while all is well.
};

void RunWorker(p9::Client& c, Worker& w, uint32_t seed) {
  auto rnd = [&] { return seed = seed * 1103515245 + 12345, (seed >> 8); };
  auto fail = [&](const std::string& what) {
    if (w.failure.empty()) w.failure = "client " + std::to_string(w.id) + ": " + what;
  };
  auto root = ClientFile::Attach(c, "");
  if (!root.has_value()) return fail("attach");
  for (int op = 0; op < 1500 && w.failure.empty(); ++op) {
    std::string name = "c" + std::to_string(w.id) + "_" + std::to_string(rnd() % 6);
    bool exists = w.model.contains(name);
    switch (rnd() % 6) {
      case 0:  // Create (exclusive) when missing.
        if (!exists) {
          auto d = root->Walk({});
          if (!d.has_value() || !d->Create(name, p9::open_flags::kRdWr | p9::open_flags::kExcl,
                                           0644).has_value()) {
            return fail("create " + name);
          }
          w.model[name] = "";
        }
        break;
      case 1:
      case 2: {  // Write at a random offset (holes read as zeros).
        if (!exists) break;
        auto f = root->Walk({name});
        if (!f.has_value() || !f->Open(p9::open_flags::kRdWr).has_value()) return fail("open " + name);
        size_t off = rnd() % 70000, len = 1 + rnd() % 20000;
        std::string data(len, static_cast<char>('a' + op % 26));
        for (size_t i = 0; i < len; i += 97) data[i] = static_cast<char>(rnd());
        if (!f->WriteAll(data, off).has_value()) return fail("write " + name);
        std::string& m = w.model[name];
        if (m.size() < off + len) m.resize(off + len, '\0');
        m.replace(off, len, data);
        break;
      }
      case 3: {  // Read back and compare.
        if (!exists) break;
        auto f = root->Walk({name});
        if (!f.has_value() || !f->Open(p9::open_flags::kRdOnly).has_value()) return fail("open " + name);
        auto all = f->ReadAll();
        if (!all.has_value() || *all != w.model[name]) return fail("read back differs: " + name);
        break;
      }
      case 4: {  // Truncate.
        if (!exists) break;
        auto f = root->Walk({name});
        uint64_t to = rnd() % 50000;
        if (!f.has_value() ||
            !f->SetAttr({.valid = p9::setattr::kSize, .size = to}).has_value()) {
          return fail("truncate " + name);
        }
        w.model[name].resize(to, '\0');
        break;
      }
      case 5: {  // Rename over another of ours, or unlink.
        if (!exists) break;
        if (rnd() % 2) {
          std::string to = "c" + std::to_string(w.id) + "_" + std::to_string(rnd() % 6);
          if (to == name) break;
          if (!root->RenameAt(name, *root, to).has_value()) return fail("rename " + name);
          w.model[to] = std::move(w.model[name]);
          w.model.erase(name);
        } else {
          if (!root->UnlinkAt(name).has_value()) return fail("unlink " + name);
          w.model.erase(name);
        }
        break;
      }
    }
  }
}

TEST(GoferLoadTest, ConcurrentClientsLoseNothing) {
  char tmpl[] = "/tmp/gofer_load.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  hfs::path dir = tmpl;
  auto ap = AttachPoint::Open(dir.string(), false, nullptr);
  ASSERT_TRUE(ap.has_value());
  auto attacher = HostAttacher::ForOne(*ap);
  p9::Server server(*attacher, p9::ServerOptions{.threads = 4});
  constexpr int kClients = 4;
  std::vector<std::unique_ptr<p9::Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    auto pair = p9::SocketPair();
    ASSERT_TRUE(pair.has_value());
    server.AddConnection(std::move(pair->second));
    auto c = p9::Client::Create(std::move(pair->first), 1u << 16);
    ASSERT_TRUE(c.has_value());
    clients.push_back(std::move(*c));
  }
  std::vector<Worker> workers(kClients);
  std::vector<std::thread> ts;
  for (int i = 0; i < kClients; ++i) {
    workers[i].id = i;
    ts.emplace_back(RunWorker, std::ref(*clients[i]), std::ref(workers[i]), 1000u + i);
  }
  for (auto& t : ts) t.join();
  clients.clear();
  EXPECT_TRUE(server.WaitNoConnections(std::chrono::seconds(10)));
  std::map<std::string, std::string> want;
  for (auto& w : workers) {
    EXPECT_EQ(w.failure, "");
    want.insert(w.model.begin(), w.model.end());
  }
  std::map<std::string, std::string> got;
  for (const auto& e : hfs::directory_iterator(dir)) got[e.path().filename()] = Slurp(e.path());
  ASSERT_EQ(got.size(), want.size()) << "missing or extra files";
  for (const auto& [name, data] : want) {
    ASSERT_TRUE(got.contains(name)) << name;
    EXPECT_EQ(Fnv(got[name]), Fnv(data)) << name << ": checksum differs";
    EXPECT_TRUE(got[name] == data) << name << ": contents differ";
  }
  hfs::remove_all(dir);
}

}  // namespace
}  // namespace gofer
