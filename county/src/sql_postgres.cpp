// The PostgreSQL driver of county/src/sql.hpp, on libpq (Debian's libpq-dev).
//
// Why libpq and not libpqxx: the county's record needs prepared statements, text parameters and
// rows, nothing more; libpq is the C library libpqxx itself wraps, and this driver stays as thin
// as the SQLite one beside it.
#include <libpq-fe.h>

#include <cstring>
#include <map>
#include <vector>

#include "sql.hpp"

namespace campus::county::sql {
namespace {

// ?N -> $N (the SQL is written with SQLite's placeholders; no ? appears in its string literals).
std::string dollar_placeholders(const std::string& sql) {
  std::string out;
  out.reserve(sql.size());
  for (std::size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] == '?' && i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') out += '$';
    else out += sql[i];
  }
  return out;
}

// SQLSTATE classes that mean "the server, the network or the disk", not this statement:
// 08 connection exception, 40 transaction rollback (serialization failure, deadlock), 53
// insufficient resources, 57 operator intervention (shutdown), 58 system error, XX internal.
bool environment_state(const char* sqlstate) {
  if (!sqlstate || std::strlen(sqlstate) < 2) return true;
  const std::string c(sqlstate, 2);
  return c == "08" || c == "40" || c == "53" || c == "57" || c == "58" || c == "XX";
}

class PgConnection;

class PgStatement final : public Statement {
 public:
  PgStatement(PgConnection& db, std::string sql) : db_(db), sql_(std::move(sql)) {
    std::size_t n = 0;
    for (std::size_t i = 0; i + 1 < sql_.size(); ++i)
      if (sql_[i] == '$' && sql_[i + 1] >= '0' && sql_[i + 1] <= '9') {
        std::size_t v = 0, j = i + 1;
        while (j < sql_.size() && sql_[j] >= '0' && sql_[j] <= '9') v = v * 10 + (sql_[j++] - '0');
        n = std::max(n, v);
      }
    values_.resize(n);
    nulls_.assign(n, true);
    binary_.assign(n, 0);
  }
  ~PgStatement() override { clear(); }

  Statement& bind(int i, std::int64_t v) override { return set(i, std::to_string(v), false); }
  Statement& bind(int i, std::string_view v) override { return set(i, std::string(v), false); }
  Statement& bind(int i, std::nullopt_t) override {
    check(i);
    nulls_[i - 1] = true;
    return *this;
  }
  Statement& bind_real(int i, std::optional<double> v) override {
    if (!v) return bind(i, std::nullopt);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", *v);
    return set(i, buf, false);
  }
  Statement& bind_blob(int i, std::string_view v) override { return set(i, std::string(v), true); }
  bool step() override;
  void reset() override {
    clear();
    row_ = -1;
    nulls_.assign(nulls_.size(), true);
    binary_.assign(binary_.size(), 0);
  }
  std::int64_t changes() const override { return changes_; }
  bool is_null(int c) const override { return PQgetisnull(result_, row_, c) != 0; }
  std::int64_t int64(int c) const override {
    const char* v = PQgetvalue(result_, row_, c);
    if (!v || !*v) return 0;
    if (v[0] == 't' && v[1] == 0) return 1;  // a boolean column
    if (v[0] == 'f' && v[1] == 0) return 0;
    return std::strtoll(v, nullptr, 10);
  }
  std::string text(int c) const override {
    return std::string(PQgetvalue(result_, row_, c), static_cast<std::size_t>(PQgetlength(result_, row_, c)));
  }
  double real(int c) const override { return std::strtod(PQgetvalue(result_, row_, c), nullptr); }

 private:
  void check(int i) const {
    if (i < 1 || static_cast<std::size_t>(i) > values_.size())
      throw Failure(false, "parameter $" + std::to_string(i) + " is not in: " + sql_.substr(0, 80));
  }
  Statement& set(int i, std::string v, bool binary) {
    check(i);
    values_[i - 1] = std::move(v);
    nulls_[i - 1] = false;
    binary_[i - 1] = binary ? 1 : 0;
    return *this;
  }
  void clear() {
    if (result_) PQclear(result_);
    result_ = nullptr;
  }

  PgConnection& db_;
  std::string sql_;
  std::string name_;
  std::uint64_t prepared_on_ = 0;  // the connection generation it was prepared on
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  std::vector<int> binary_;
  PGresult* result_ = nullptr;
  int row_ = -1, rows_ = 0;
  std::int64_t changes_ = 0;
};

class PgConnection final : public Connection {
 public:
  PgConnection(const std::string& url, const std::optional<std::string>& password, std::vector<std::string> on_connect)
      : url_(url), password_(password), on_connect_(std::move(on_connect)) {
    connect();
  }
  ~PgConnection() override {
    if (conn_) PQfinish(conn_);
  }
  Engine engine() const override { return Engine::Postgres; }
  std::unique_ptr<Statement> prepare(const std::string& sql) override {
    return std::make_unique<PgStatement>(*this, dollar_placeholders(sql));
  }
  void exec(const std::string& sql) override {
    ensure();
    PGresult* r = PQexec(conn_, dollar_placeholders(sql).c_str());
    check(r, sql);
    PQclear(r);
  }
  void begin() override {
    exec("BEGIN");
    in_transaction_ = true;
  }
  void commit() override {
    in_transaction_ = false;
    exec("COMMIT");
  }
  void rollback() noexcept override {
    in_transaction_ = false;
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) return;  // a lost connection took the transaction with it
    PGresult* r = PQexec(conn_, "ROLLBACK");
    PQclear(r);
  }

  // REQUIRES: r is the result of a command on conn_. Throws Failure for an error (and clears r);
  // on success r stays the caller's to clear.
  void check(PGresult* r, const std::string& what) {
    const auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return;
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    const bool environment = PQstatus(conn_) != CONNECTION_OK || environment_state(state);
    if (r) PQclear(r);
    throw Failure(environment, "PostgreSQL: " + msg + (state ? std::string(" [") + state + "]" : "") +
                                   " (in: " + what.substr(0, 120) + ")");
  }

  // A connection that broke (the server restarted, the network): opened again, and every
  // statement is prepared again on it (generation).
  // Never inside a transaction: what it did went with the old connection, and what follows must
  // not run outside one; the transaction fails as a whole and is retried.
  void ensure() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return;
    if (in_transaction_) throw Failure(true, "the connection to PostgreSQL was lost during a transaction");
    connect();
  }
  PGconn* raw() { return conn_; }
  std::uint64_t generation() const { return generation_; }
  std::string next_name() { return "s" + std::to_string(++names_); }

 private:
  void connect() {
    if (conn_) PQfinish(conn_);
    std::vector<const char*> keys{"dbname", "connect_timeout", "application_name"};
    std::vector<const char*> vals{url_.c_str(), "10", "campus-county"};
    if (password_) keys.push_back("password"), vals.push_back(password_->c_str());
    keys.push_back(nullptr);
    vals.push_back(nullptr);
    conn_ = PQconnectdbParams(keys.data(), vals.data(), 1);  // 1: dbname may be a URL
    ++generation_;
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(conn_);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      throw Failure(true, "cannot connect to PostgreSQL: " + msg);
    }
    std::vector<std::string> settings{"SET client_min_messages = warning"};
    settings.insert(settings.end(), on_connect_.begin(), on_connect_.end());
    for (const auto& sql : settings) {
      PGresult* r = PQexec(conn_, sql.c_str());
      check(r, sql);
      PQclear(r);
    }
  }

  std::string url_;
  std::optional<std::string> password_;
  std::vector<std::string> on_connect_;
  PGconn* conn_ = nullptr;
  std::uint64_t generation_ = 0, names_ = 0;
  bool in_transaction_ = false;
};

bool PgStatement::step() {
  if (row_ < 0) {
    db_.ensure();
    if (prepared_on_ != db_.generation()) {
      name_ = db_.next_name();
      PGresult* r = PQprepare(db_.raw(), name_.c_str(), sql_.c_str(), 0, nullptr);
      db_.check(r, sql_);
      PQclear(r);
      prepared_on_ = db_.generation();
    }
    std::vector<const char*> vals(values_.size());
    std::vector<int> lens(values_.size());
    for (std::size_t i = 0; i < values_.size(); ++i) {
      vals[i] = nulls_[i] ? nullptr : values_[i].data();
      lens[i] = static_cast<int>(values_[i].size());
    }
    clear();
    result_ = PQexecPrepared(db_.raw(), name_.c_str(), static_cast<int>(vals.size()), vals.data(), lens.data(),
                             binary_.data(), 0);
    try {
      db_.check(result_, sql_);
    } catch (...) {
      result_ = nullptr;  // check() cleared it
      throw;
    }
    rows_ = PQntuples(result_);
    const char* tuples = PQcmdTuples(result_);
    changes_ = tuples && *tuples ? std::strtoll(tuples, nullptr, 10) : 0;
    row_ = 0;
  } else {
    ++row_;
  }
  return row_ < rows_;
}

}  // namespace

std::unique_ptr<Connection> open_postgres(const std::string& url, const std::optional<std::string>& password,
                                          std::vector<std::string> on_connect) {
  return std::make_unique<PgConnection>(url, password, std::move(on_connect));
}

}  // namespace campus::county::sql
