#include "p9/dialect.h"

#include <algorithm>
#include <charconv>

#include "p9/p9.h"

namespace p9 {

namespace {
constexpr std::string_view kExtPrefix = "9P2000.L.cxx.";
}  // namespace

std::string DialectVersion(Dialect d) {
  if (d == Dialect::kPlain) return kVersion9P2000L;
  return std::string(kExtPrefix) + std::to_string(static_cast<unsigned>(d));
}

std::optional<Dialect> ParseDialect(std::string_view version) {
  if (version == kVersion9P2000L) return Dialect::kPlain;
  if (!version.starts_with(kExtPrefix)) return std::nullopt;
  std::string_view n = version.substr(kExtPrefix.size());
  if (n.empty() || n.size() > 9 || n[0] == '0') return std::nullopt;
  unsigned level = 0;
  auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), level);
  if (ec != std::errc() || end != n.data() + n.size()) return std::nullopt;
  return static_cast<Dialect>(std::min(level, static_cast<unsigned>(kDialect)));
}

std::optional<Dialect> DialectNamed(std::string_view version) {
  std::optional<Dialect> d = ParseDialect(version);
  if (!d.has_value() || *d == Dialect::kPlain || DialectVersion(*d) != version) {
    return std::nullopt;
  }
  return d;
}

}  // namespace p9
