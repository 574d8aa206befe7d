#include "sentry/fs/gofer/mount_options.h"

#include <cstdlib>
#include <sstream>

namespace sentry::fs {
namespace {

bool ParseUint(const std::string& v, uint64_t max, uint64_t* out) {
  if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  uint64_t n = std::strtoull(v.c_str(), nullptr, 10);
  if (n > max) return false;
  *out = n;
  return true;
}

}  // namespace

p9::Result<GoferMountOptions> ParseGoferMountOptions(const std::string& data,
                                                     std::string* error) {
  auto fail = [&](const std::string& msg) -> p9::Result<GoferMountOptions> {
    if (error) *error = "9p mount options: " + msg;
    return p9::Errno(EINVAL);
  };
  GoferMountOptions o;
  bool have_trans = false;
  std::stringstream ss(data);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos) return fail("'" + item + "' has no value");
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    uint64_t n = 0;
    if (k == "trans") {
      if (v != "fd") return fail("trans=" + v + " is not supported (only fd)");
      have_trans = true;
    } else if (k == "rfdno" || k == "wfdno") {
      if (!ParseUint(v, 0x7fffffff, &n)) return fail("bad " + k + " '" + v + "'");
      (k == "rfdno" ? o.rfd : o.wfd) = static_cast<int>(n);
    } else if (k == "privateunixsocket") {
      if (v != "true" && v != "false") return fail("privateunixsocket must be true or false");
      o.private_unix_socket = v == "true";
    } else if (k == "cache") {
      if (v == "remote_revalidating") {
        o.cache = CachePolicy::kRemoteRevalidating;
      } else if (v == "fscache") {
        o.cache = CachePolicy::kFscache;
      } else if (v == "fscache_writethrough") {
        o.cache = CachePolicy::kFscacheWritethrough;
      } else if (v == "none") {
        o.cache = CachePolicy::kNone;
      } else {
        return fail("unknown cache policy '" + v + "'");
      }
    } else if (k == "aname") {
      o.aname = v;
    } else if (k == "msize") {
      if (!ParseUint(v, 16u << 20, &n) || n < 4096) return fail("bad msize '" + v + "'");
      o.msize = static_cast<uint32_t>(n);
    } else if (k == "spin_us") {
      if (!ParseUint(v, 1000, &n)) return fail("bad spin_us '" + v + "' (0..1000)");
      o.spin_us = static_cast<uint32_t>(n);
    } else if (k == "prefetch") {
      if (!ParseUint(v, 256, &n)) return fail("bad prefetch '" + v + "' (0..256)");
      o.prefetch = static_cast<uint32_t>(n);
    } else {
      return fail("unknown option '" + k + "'");
    }
  }
  if (!have_trans) return fail("trans=fd is required");
  if (o.rfd < 0 || o.wfd < 0) return fail("rfdno and wfdno are required");
  if (o.rfd != o.wfd) return fail("rfdno and wfdno must name the same socket");
  return o;
}

}  // namespace sentry::fs
