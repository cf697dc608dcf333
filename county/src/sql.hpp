// The SQL the county database speaks, on either engine: SQLite for one county, PostgreSQL at
// province scale. One implementation of the county's record (sql_database.cpp) runs on this
// small interface; each engine has a driver (sql_sqlite.cpp, sql_postgres.cpp).
//
// The SQL is written once, in the common part of both dialects: ?N placeholders (the PostgreSQL
// driver turns them into $N), ON CONFLICT upserts, RETURNING, GREATEST/LEAST (the SQLite driver
// defines them), integers for booleans. What differs (types in the schema, partitions, locks,
// sizes) is chosen by engine() where it is used.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace campus::county::sql {

enum class Engine { Sqlite, Postgres };

// A statement or a connection that failed. `environment`: the disk, the server or the network is
// at fault (retry later, nothing of the transaction was kept); otherwise this statement is (a row
// the database refuses: the caller may skip it).
class Failure : public std::runtime_error {
 public:
  Failure(bool environment, const std::string& message) : std::runtime_error(message), environment_(environment) {}
  bool environment() const { return environment_; }

 private:
  bool environment_;
};

class Statement {
 public:
  virtual ~Statement() = default;
  // Binds by 1-based position (?1, ?2, ...).
  virtual Statement& bind(int index, std::int64_t value) = 0;
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  virtual Statement& bind(int index, std::string_view value) = 0;
  Statement& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  virtual Statement& bind(int index, std::nullopt_t) = 0;
  virtual Statement& bind_real(int index, std::optional<double> value) = 0;
  // Bytes that need not be text (a quarantined payload).
  virtual Statement& bind_blob(int index, std::string_view value) = 0;
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

  // The next row: true when one is there. The first call runs the statement. Throws Failure.
  virtual bool step() = 0;
  void run() {
    while (step()) {
    }
  }
  // Ready to run again with new binds.
  virtual void reset() = 0;
  // Rows the last run inserted, updated or deleted.
  virtual std::int64_t changes() const = 0;

  virtual bool is_null(int column) const = 0;
  virtual std::int64_t int64(int column) const = 0;
  virtual std::string text(int column) const = 0;
  virtual double real(int column) const = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Engine engine() const = 0;
  // A prepared statement; the connection keeps it (and prepares it again after a reconnect).
  virtual std::unique_ptr<Statement> prepare(const std::string& sql) = 0;
  // Runs SQL without results (several statements separated by ';' are allowed).
  virtual void exec(const std::string& sql) = 0;
  // A write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN).
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  // One value of a one-row query (0 or "" when it returns no row).
  std::int64_t scalar_int(const std::string& query) {
    auto s = prepare(query);
    return s->step() && !s->is_null(0) ? s->int64(0) : 0;
  }
  std::string scalar_text(const std::string& query) {
    auto s = prepare(query);
    return s->step() ? s->text(0) : std::string();
  }
};

// begin() now, rollback() unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Connection& db) : db_(db) { db_.begin(); }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (!done_) db_.rollback();
  }
  void commit() {
    db_.commit();
    done_ = true;
  }

 private:
  Connection& db_;
  bool done_ = false;
};

// SQLite: `flags` are SQLITE_OPEN_*; the connection is used by one thread.
std::unique_ptr<Connection> open_sqlite(const std::string& path, int flags);
// PostgreSQL: a libpq connection string ("postgresql://user@host:5432/db"); `password` given
// apart (read from a file, never in the URL or a log; none: libpq's own, PGPASSFILE or ~/.pgpass).
// `on_connect`: session settings, run on every (re)connection.
std::unique_ptr<Connection> open_postgres(const std::string& url, const std::optional<std::string>& password,
                                          std::vector<std::string> on_connect = {});

}  // namespace campus::county::sql
