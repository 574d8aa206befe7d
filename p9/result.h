// Errno and Result<T>: the error currency of the project.
//
// An errno travels losslessly from the gofer's syscall, through Rlerror, to the sandboxed
// application's syscall. Result<T> is a small std::expected stand-in (g++ 12 has no
// std::expected); members are named like std::expected so the switch is mechanical later.
#ifndef P9_RESULT_H_
#define P9_RESULT_H_

#include <string.h>

#include <cerrno>
#include <ostream>
#include <type_traits>
#include <utility>
#include <variant>

#include <glog/logging.h>

namespace p9 {

class Errno {
 public:
  constexpr explicit Errno(int v) : v_(v) {}
  constexpr int value() const { return v_; }
  // "ENOENT"; "E?" for numbers the C library does not name.
  const char* name() const {
    const char* n = strerrorname_np(v_);
    return n ? n : "E?";
  }
  bool operator==(const Errno&) const = default;

 private:
  int v_;
};

inline std::ostream& operator<<(std::ostream& os, Errno e) {
  return os << e.name() << "(" << e.value() << ")";
}

// The errno of the last failed libc call, as an Errno.
inline Errno LastErrno() { return Errno(errno); }

template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  Result(const T& v) : v_(std::in_place_index<0>, v) {}  // NOLINT: implicit by design
  Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT
  Result(Errno e) : v_(std::in_place_index<1>, e) {}  // NOLINT
  template <typename U>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Errno> &&
             !std::is_same_v<std::decay_t<U>, Result>)
  Result(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  // REQUIRES: has_value(). Calling these on an error is a programming bug.
  T& value() & {
    CHECK(has_value()) << "Result::value() on error " << error();
    return std::get<0>(v_);
  }
  const T& value() const& {
    CHECK(has_value()) << "Result::value() on error " << error();
    return std::get<0>(v_);
  }
  T&& value() && {
    CHECK(has_value()) << "Result::value() on error " << error();
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !has_value().
  Errno error() const {
    CHECK(!has_value()) << "Result::error() on a value";
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Errno> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  Result() = default;
  Result(Errno e) : err_(e), ok_(false) {}  // NOLINT
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { CHECK(ok_) << "Result<void>::value() on error " << err_; }
  Errno error() const {
    CHECK(!ok_) << "Result::error() on a value";
    return err_;
  }

 private:
  Errno err_{0};
  bool ok_ = true;
};

// A successful Result<void>.
inline Result<void> Ok() { return Result<void>(); }

// Converts a libc-style return value (-1 and errno on failure) into a Result.
template <typename T>
Result<T> SysResult(T rc) {
  if (rc < 0) return LastErrno();
  return rc;
}

#define P9_CONCAT_INNER_(a, b) a##b
#define P9_CONCAT_(a, b) P9_CONCAT_INNER_(a, b)

// Returns the error of `expr` (a Result) from the enclosing function.
#define P9_RETURN_IF_ERROR(expr)                                  \
  do {                                                            \
    auto&& p9_r_ = (expr);                                        \
    if (!p9_r_.has_value()) return p9_r_.error();                 \
  } while (0)

// `lhs = value of expr`, or returns its error.
#define P9_ASSIGN_OR_RETURN(lhs, expr) \
  P9_ASSIGN_OR_RETURN_IMPL_(P9_CONCAT_(p9_res_, __LINE__), lhs, expr)
#define P9_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.has_value()) return tmp.error();       \
  lhs = std::move(tmp).value()

}  // namespace p9

#endif  // P9_RESULT_H_
