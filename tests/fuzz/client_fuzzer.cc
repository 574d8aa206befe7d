// libFuzzer target: the 9P client fed arbitrary server replies. A fake server on a real
// socketpair reads whatever the client sends and answers with the input bytes (replies in any
// order, with any tags, sizes, types and bodies), then hangs up. Meanwhile three threads make
// calls of every kind. The client must never crash, never hand a call a reply it cannot place,
// and never hang: once the server is gone every call returns.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>
#include <vector>

#include "p9/client.h"
#include "p9/client_file.h"
#include "p9/socket_util.h"

namespace {

void Calls(p9::Client* c, int which) {
  auto root = p9::ClientFile::Attach(*c, "");
  if (!root.has_value()) return;
  for (int i = 0; i < 4; ++i) {
    switch ((which + i) % 4) {
      case 0: {
        auto f = root->Walk({"a", "b"});
        if (f.has_value()) {
          (void)f->Open(0);
          char buf[256];
          (void)f->ReadAt(buf, 0);
        }
        break;
      }
      case 1:
        (void)root->GetAttr();
        (void)root->WalkGetAttr({"x"});
        break;
      case 2:
        (void)root->Readdir(0, 4096);
        (void)root->ListAttr({"d"}, 0, /*keep=*/true);
        (void)root->GetXattr("user.k");
        break;
      case 3: {
        auto f = root->Walk({});  // Dropped at once: an asynchronous clunk.
        (void)root->StatFs();
        break;
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto pair = p9::SocketPair();
  if (!pair.has_value()) std::abort();
  int server = pair->second.get();
  std::thread fake([&] {
    // Reads requests in the background so the client never blocks sending.
    std::thread sink([server] {
      char buf[65536];
      while (read(server, buf, sizeof(buf)) > 0) {
      }
    });
    size_t off = 0;
    while (off < size) {
      ssize_t w = ::send(server, data + off, std::min<size_t>(size - off, 512), MSG_NOSIGNAL);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ::shutdown(server, SHUT_RDWR);  // Hang up: every pending call must now return.
    sink.join();
  });
  auto done = std::async(std::launch::async, [&] {
    auto c = p9::Client::Create(std::move(pair->first), 65536);
    if (!c.has_value()) return;
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t) ts.emplace_back(Calls, c->get(), t);
    for (auto& t : ts) t.join();
  });
  if (done.wait_for(std::chrono::seconds(20)) != std::future_status::ready) std::abort();  // Hung.
  fake.join();
  return 0;
}
