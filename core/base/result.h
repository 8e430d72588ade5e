// Status and Result<T>: how meshbox code reports failure without exceptions.
// Shaped like std::expected (value()/error()/has_value()) so it can be swapped for it
// once the toolchain has C++23. Both are [[nodiscard]]; MB_TRY propagates an error.
// Thread-agnostic value types.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace meshbox {

enum class Code {
  Ok,
  InvalidArgument,  // the caller passed something malformed (a flag, an address)
  NotFound,
  AlreadyExists,
  Unavailable,  // a peer or resource cannot be reached right now
  Conflict,     // a conditional write lost: the state changed since it was read (retry)
  Io,           // a system call failed; the message carries strerror / uv_strerror
  Internal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == Code::Ok; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::Ok;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT: implicit on purpose, like expected
  Result(Status error) : v_(std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Status& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

inline Status make_error(Code code, std::string message) {
  return {code, std::move(message)};
}

}  // namespace meshbox

/// Evaluates a Status-returning expression and returns it from the enclosing function on error.
#define MB_TRY(expr)                                    \
  do {                                                  \
    ::meshbox::Status mb_try_status_ = (expr);          \
    if (!mb_try_status_.is_ok()) return mb_try_status_; \
  } while (0)
