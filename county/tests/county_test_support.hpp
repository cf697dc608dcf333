// Envelopes as a school's agent writes them (docs/protocol.md), for the collector's unit tests.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "database.hpp"
#include "ingest.hpp"
#include "sql.hpp"

namespace campus::county::test {

using Json = nlohmann::json;
inline const std::string kCounty = "zhenkang";
inline const std::string kStoreA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
inline const std::string kStoreB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

inline std::string topic(const std::string& school, const std::string& leaf) {
  return "campus/v1/" + kCounty + "/" + school + "/" + leaf;
}

inline Json base(const std::string& kind, const std::string& school, const std::string& ts) {
  return Json{{"v", 1}, {"kind", kind}, {"county", kCounty}, {"school", school}, {"ts", ts}, {"agent", "campus-agent/0.1.0"}};
}

// A report (kind "report") or event of `audit` with `seq`, in `store`.
inline Json seq_envelope(const std::string& kind, const std::string& school, std::int64_t seq, const std::string& audit,
                         Json body, const std::string& store = kStoreA,
                         const std::string& ts = "2026-11-28T21:00:00+08:00") {
  Json e = base(kind, school, ts);
  e["seq"] = seq;
  e["id"] = school + ":" + std::to_string(seq);
  e["audit"] = audit;
  if (!store.empty()) e["store_id"] = store;
  e["body"] = std::move(body);
  return e;
}

inline Json report(const std::string& school, std::int64_t seq, const std::string& audit = "fiber",
                   Json summary = Json::object(), const std::string& store = kStoreA,
                   const std::string& ts = "2026-11-28T21:00:00+08:00") {
  return seq_envelope("report", school, seq, audit, Json{{"summary", summary}, {"findings", Json::array()}}, store, ts);
}

inline Json event(const std::string& school, std::int64_t seq, const std::string& audit = "fiber", Json body = {},
                  const std::string& store = kStoreA, const std::string& ts = "2026-11-28T21:00:00+08:00") {
  if (body.is_null()) body = {{"subject", "R101"}, {"from", "covered"}, {"to", "down"}, {"reason", "link down"}};
  return seq_envelope("event", school, seq, audit, std::move(body), store, ts);
}

inline Json state(const std::string& school, bool online, std::int64_t session, std::int64_t last_seq,
                  const std::string& store = kStoreA, const std::string& reason = "",
                  const std::string& ts = "2026-11-28T21:00:00+08:00") {
  Json e = base("state", school, ts);
  Json b = {{"online", online}, {"session", session}, {"last_seq", last_seq}};
  if (online) b["store"] = {{"id", store}, {"created", "2026-09-01T00:00:00+00:00"}, {"recovered", nullptr}};
  if (!reason.empty()) b["reason"] = reason;
  e["body"] = b;
  return e;
}

inline Json health(const std::string& school, std::int64_t last_seq, std::int64_t depth, const std::string& store = kStoreA,
                   const std::string& ts = "2026-11-28T21:00:00+08:00", std::int64_t takeovers = 0,
                   std::int64_t uptime_s = 60) {
  Json e = base("health", school, ts);
  e["body"] = {{"version", "0.1.0"}, {"uptime_s", uptime_s},
               {"outbox", {{"depth", depth}, {"last_seq", last_seq}, {"oldest_unsent_age_s", nullptr}}},
               {"mqtt", {{"session", 1}, {"reconnects", 0}, {"takeovers", takeovers}}},
               {"store", {{"id", store}, {"created", "2026-09-01T00:00:00+00:00"}, {"recovered", nullptr}}}};
  return e;
}

inline Json reply(const std::string& school, Json body) {
  Json e = base("reply", school, "2026-11-28T21:00:00+08:00");
  e["body"] = std::move(body);
  return e;
}

inline Parsed parse(const std::string& t, const std::string& payload, std::optional<std::string> corr = std::nullopt) {
  IngestRules rules;
  rules.county = kCounty;
  rules.max_payload = 1 << 20;
  return parse_message(rules, t, payload, false, std::move(corr));
}

inline Parsed parse(const Json& env, std::optional<std::string> corr = std::nullopt) {
  std::string leaf = env["kind"].get<std::string>();
  if (leaf == "report" || leaf == "event") leaf += "/" + env["audit"].get<std::string>();
  if (leaf == "reply") leaf += "/collector";
  return parse(topic(env["school"], leaf), env.dump(), std::move(corr));
}

// The PostgreSQL server of this test binary (tests/postgres-server, started at first use on a
// free port of 127.0.0.1, stopped at exit): the URL of its `postgres` database and the password.
struct PostgresServer {
  std::string url, password;
  std::filesystem::path dir;
  static PostgresServer& get();
  ~PostgresServer();
};

// A fresh database for one test: a SQLite file in a temporary directory, or a database of its own
// on the test PostgreSQL server; removed with the object.
struct TempDb {
  std::filesystem::path dir, file;
  sql::Engine engine;
  std::string pg_name;
  std::unique_ptr<CountyDatabase> db;
  explicit TempDb(sql::Engine e = sql::Engine::Sqlite, RepairPolicy policy = {}) : engine(e) {
    dir = std::filesystem::temp_directory_path() / ("county-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir);
    file = dir / "county.db";
    DatabaseOptions o;
    o.policy = policy;
    db = open(o);
  }
  // Opens the same database again (another collector, or campusctl with read_only).
  std::unique_ptr<CountyDatabase> open(const DatabaseOptions& o) {
    if (engine == sql::Engine::Sqlite) {
      auto r = open_sqlite(file, o);
      if (!r.ok()) throw std::runtime_error(r.error().message());
      return std::move(r.value());
    }
    auto& pg = PostgresServer::get();
    if (pg_name.empty()) {
      pg_name = "t" + std::to_string(::getpid()) + "_" + std::to_string(counter());
      auto admin = sql::open_postgres(pg.url, pg.password);
      admin->exec("CREATE DATABASE " + pg_name);
    }
    auto r = open_postgres(url(), pg.password, o);
    if (!r.ok()) throw std::runtime_error(r.error().message());
    return std::move(r.value());
  }
  std::string url() const {
    auto& pg = PostgresServer::get();
    return pg.url.substr(0, pg.url.rfind('/') + 1) + pg_name;
  }
  ~TempDb() {
    db.reset();
    if (std::getenv("CAMPUS_KEEP_TMP")) return;  // to look at the database after a failure
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (!pg_name.empty()) {
      try {
        auto admin = sql::open_postgres(PostgresServer::get().url, PostgresServer::get().password);
        admin->exec("DROP DATABASE IF EXISTS " + pg_name + " WITH (FORCE)");
      } catch (const sql::Failure&) {
      }
    }
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

inline std::string engine_name(const ::testing::TestParamInfo<sql::Engine>& info) {
  return info.param == sql::Engine::Sqlite ? "Sqlite" : "Postgres";
}

}  // namespace campus::county::test
