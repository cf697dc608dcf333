// A thin RAII layer over the SQLite C API for the store: one connection, prepared statements
// with typed binds, and Failure, the exception the store uses internally to unwind a failed
// transaction. Failure never leaves the store: its public methods turn it into an Error.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace campus::sqlite {

class Failure : public std::runtime_error {
 public:
  Failure(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }  // SQLite primary result code (SQLITE_FULL, SQLITE_CORRUPT, ...)

 private:
  int code_;
};

class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql);
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binds by 1-based position.
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, const std::string& value);
  Statement& bind(int index, const char* value) { return bind(index, std::string(value)); }
  Statement& bind(int index, std::nullopt_t);
  // REAL columns (a separate name: an overload for double would make integer binds ambiguous).
  Statement& bind_real(int index, std::optional<double> value);
  // BLOB columns: bytes that need not be UTF-8.
  Statement& bind_blob(int index, std::string_view value);
  template <class T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind(index, std::nullopt);
  }
  template <class... Args>
  Statement& bind_all(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
    return *this;
  }

  // Steps once: true when a row is available, false when done. Throws Failure on error.
  bool step();
  // Runs to completion (for writes).
  void run();
  void reset();

  bool is_null(int column) const;
  std::int64_t int64(int column) const;
  std::string text(int column) const;
  double real(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Connection {
 public:
  // flags: SQLITE_OPEN_* (see sqlite3.h). Throws Failure when the file cannot be opened.
  Connection(const std::string& path, int flags);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  void exec(const std::string& sql);
  Statement prepare(const std::string& sql) { return Statement(db_, sql); }
  // Single value of a one-row query (PRAGMA page_count, SELECT count(*) ...).
  std::int64_t scalar_int(const std::string& sql);
  std::string scalar_text(const std::string& sql);
  std::int64_t changes() const;
  sqlite3* raw() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// RAII transaction: BEGIN IMMEDIATE at construction, ROLLBACK unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Connection& db);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Connection& db_;
  bool done_ = false;
};

}  // namespace campus::sqlite
