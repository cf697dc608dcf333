// The SQLite driver of county/src/sql.hpp, on the core's SQLite wrapper (core/sqlite.hpp).
#include <sqlite3.h>

#include <algorithm>

#include "core/sqlite.hpp"
#include "sql.hpp"

namespace campus::county::sql {
namespace {

// SQLite's errors that say the disk or the file is at fault (retry later), as opposed to a row
// the database cannot take.
bool environment_failure(int code) {
  switch (code) {
    case SQLITE_FULL: case SQLITE_IOERR: case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_CANTOPEN:
    case SQLITE_READONLY: case SQLITE_NOMEM: case SQLITE_CORRUPT: case SQLITE_NOTADB: case SQLITE_PROTOCOL:
    case SQLITE_INTERRUPT: case SQLITE_PERM: case SQLITE_ABORT:
      return true;
    default:
      return false;
  }
}

[[noreturn]] void rethrow(const sqlite::Failure& f) { throw Failure(environment_failure(f.code()), f.what()); }

template <class F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const sqlite::Failure& e) {
    rethrow(e);
  }
}

// GREATEST/LEAST as PostgreSQL has them (SQLite's scalar MAX/MIN, under the common names).
void extreme(sqlite3_context* ctx, int argc, sqlite3_value** argv, bool greatest) {
  int best = -1;
  for (int i = 0; i < argc; ++i) {
    if (sqlite3_value_type(argv[i]) == SQLITE_NULL) continue;  // PostgreSQL ignores NULLs
    if (best < 0) {
      best = i;
      continue;
    }
    const int c = sqlite3_value_type(argv[i]) == SQLITE_FLOAT || sqlite3_value_type(argv[best]) == SQLITE_FLOAT
                      ? (sqlite3_value_double(argv[i]) > sqlite3_value_double(argv[best])) -
                            (sqlite3_value_double(argv[i]) < sqlite3_value_double(argv[best]))
                      : (sqlite3_value_int64(argv[i]) > sqlite3_value_int64(argv[best])) -
                            (sqlite3_value_int64(argv[i]) < sqlite3_value_int64(argv[best]));
    if (greatest ? c > 0 : c < 0) best = i;
  }
  if (best < 0) sqlite3_result_null(ctx);
  else sqlite3_result_value(ctx, argv[best]);
}

class SqliteStatement final : public Statement {
 public:
  SqliteStatement(sqlite::Connection& db, const std::string& sql) : db_(db), s_(guarded([&] { return db.prepare(sql); })) {}
  Statement& bind(int i, std::int64_t v) override { return guarded([&]() -> Statement& { s_.bind(i, v); return *this; }); }
  Statement& bind(int i, std::string_view v) override {
    return guarded([&]() -> Statement& { s_.bind(i, std::string(v)); return *this; });
  }
  Statement& bind(int i, std::nullopt_t) override {
    return guarded([&]() -> Statement& { s_.bind(i, std::nullopt); return *this; });
  }
  Statement& bind_real(int i, std::optional<double> v) override {
    return guarded([&]() -> Statement& { s_.bind_real(i, v); return *this; });
  }
  Statement& bind_blob(int i, std::string_view v) override {
    return guarded([&]() -> Statement& { s_.bind_blob(i, v); return *this; });
  }
  bool step() override {
    return guarded([&] {
      bool row = s_.step();
      if (!row) changes_ = db_.changes();
      return row;
    });
  }
  void reset() override { s_.reset(); }
  std::int64_t changes() const override { return changes_; }
  bool is_null(int c) const override { return s_.is_null(c); }
  std::int64_t int64(int c) const override { return s_.int64(c); }
  std::string text(int c) const override { return s_.text(c); }
  double real(int c) const override { return s_.real(c); }

 private:
  sqlite::Connection& db_;
  sqlite::Statement s_;
  std::int64_t changes_ = 0;
};

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(const std::string& path, int flags) : db_(guarded([&] { return std::make_unique<sqlite::Connection>(path, flags); })) {
    for (auto [name, greatest] : {std::pair{"GREATEST", true}, std::pair{"LEAST", false}})
      sqlite3_create_function(db_->raw(), name, -1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                              reinterpret_cast<void*>(greatest ? 1 : 0),
                              [](sqlite3_context* ctx, int argc, sqlite3_value** argv) {
                                extreme(ctx, argc, argv, sqlite3_user_data(ctx) != nullptr);
                              },
                              nullptr, nullptr);
  }
  Engine engine() const override { return Engine::Sqlite; }
  std::unique_ptr<Statement> prepare(const std::string& sql) override {
    return std::make_unique<SqliteStatement>(*db_, sql);
  }
  void exec(const std::string& sql) override {
    guarded([&] { db_->exec(sql); });
  }
  void begin() override { exec("BEGIN IMMEDIATE"); }
  void commit() override { exec("COMMIT"); }
  void rollback() noexcept override {
    try {
      db_->exec("ROLLBACK");
    } catch (const sqlite::Failure&) {
      // SQLite may have rolled the transaction back itself (SQLITE_FULL, ...).
    }
  }

 private:
  std::unique_ptr<sqlite::Connection> db_;
};

}  // namespace

std::unique_ptr<Connection> open_sqlite(const std::string& path, int flags) {
  return std::make_unique<SqliteConnection>(path, flags);
}

}  // namespace campus::county::sql
