// Errors from outside input are values: where it happened, what is wrong, how to fix it.
// Exceptions are for bugs only: every failure the code expects is a Result.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace campus {

struct Error {
  std::string where;  // "agent.toml:12 key mqtt.port", "rooms.csv:7 column type", "rtsp://127.0.0.1:8554/cam1"
  std::string what;   // what is wrong: "expected a duration like \"90s\", got \"abc\""
  std::string fix;    // how to fix it (may be empty)

  // "where: what (fix: ...)"
  std::string message() const {
    std::string m = where.empty() ? what : where + ": " + what;
    if (!fix.empty()) m += " (fix: " + fix + ")";
    return m;
  }
};

using Errors = std::vector<Error>;

// A value or an Error. REQUIRES: callers check ok() before value().
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
class Status {
 public:
  Status() = default;
  Status(Error e) : error_(std::move(e)) {}
  static Status Ok() { return {}; }
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace campus
