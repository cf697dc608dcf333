// The county's record on SQLite or PostgreSQL (see database.hpp; the SQL layer in sql.hpp;
// schema and choices in docs/county.md "The database").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include <sqlite3.h>

#include "core/backoff.hpp"
#include "core/envelope.hpp"
#include "core/plan.hpp"
#include "database.hpp"
#include "sql.hpp"
#include "sql_schema.hpp"

namespace campus::county {
namespace {

using sql::Connection;
using sql::Failure;
using sql::Statement;
using sql::Transaction;



std::int64_t ms_of(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string utc_text(std::int64_t ms) {
  return rfc3339(SystemTime(std::chrono::milliseconds(ms)), "+00:00");
}

Json text_json(const std::string& s) {
  Json j = Json::parse(s, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

Json nullable_int(const Statement& q, int col) { return q.is_null(col) ? Json(nullptr) : Json(q.int64(col)); }
Json nullable_text(const Statement& q, int col) { return q.is_null(col) ? Json(nullptr) : Json(q.text(col)); }
Json nullable_bool(const Statement& q, int col) { return q.is_null(col) ? Json(nullptr) : Json(q.int64(col) != 0); }

std::optional<std::int64_t> opt_int(const Json& v) {
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_number()) return v.get<std::int64_t>();
  return std::nullopt;
}
std::optional<double> opt_real(const Json& v) {
  if (v.is_number()) return v.get<double>();
  return std::nullopt;
}

// Two copies of one seq whose bytes differ: the same message if they are the same JSON but for
// "resent" (a sender that formats its copies differently), else a conflict.
bool same_envelope(const std::string& a, const std::string& b) {
  Json x = Json::parse(a, nullptr, false), y = Json::parse(b, nullptr, false);
  if (x.is_discarded() || y.is_discarded() || !x.is_object() || !y.is_object()) return false;
  x.erase("resent");
  y.erase("resent");
  return x == y;
}

class SqlDatabase final : public CountyDatabase {
 public:
  SqlDatabase(std::unique_ptr<Connection> db, const DatabaseOptions& o)
      : db_(std::move(db)), read_only_(o.read_only), retention_(o.retention), policy_(o.policy),
        rng_(std::random_device{}()) {}

  void set_retention(const Retention& r) override { retention_ = r; }
  void set_policy(const RepairPolicy& p) override { policy_ = p; }

  // ---------------------------------------------------------------- ingest
  Result<BatchResult> ingest(const std::vector<Parsed>& batch, SystemTime received) override {
    const Quiesce quiesce(*this);
    if (read_only_) return Error{"county database", "opened read-only", ""};
    BatchResult r;
    now_ = ms_of(received);
    counters_.clear();
    try {
      Transaction tx(*db_);
      lock_schools(batch);
      for (const auto& p : batch) {
        // Each message in a savepoint: one the database cannot take (a bug of ours, a value
        // SQLite refuses) is quarantined with the reason and the batch goes on.
        db_->exec("SAVEPOINT message");
        try {
          if (auto* in = std::get_if<Incoming>(&p)) ingest_one(*in, r);
          else quarantine(std::get<Quarantined>(p), r);
          db_->exec("RELEASE message");
        } catch (const Failure& f) {
          if (f.environment()) throw;  // the transaction as a whole fails
          db_->exec("ROLLBACK TO message");
          db_->exec("RELEASE message");
          // The school's row may have been made in the savepoint just undone: made again by the
          // school's next message (the batch's write of when it was heard from goes with it).
          if (auto* in = std::get_if<Incoming>(&p)) touched_.erase(in->school);
          Quarantined q;
          if (auto* in = std::get_if<Incoming>(&p)) {
            q.topic = in->topic, q.school = in->school, q.kind = kind_name(in->kind);
            q.payload = in->payload.substr(0, kQuarantineKeep), q.size = in->payload.size();
          } else {
            q = std::get<Quarantined>(p);
          }
          q.reason = "not_stored";
          q.detail = std::string("the database refused it: ") + f.what();
          q.seq.reset();
          quarantine(q, r);
        }
      }
      flush_batch();
      flush_counters();
      tx.commit();
    } catch (const Failure& f) {
      forget_statements();
      touched_.clear(), latest_.clear(), daily_.clear();
      return Error{"county database", std::string("the batch was not stored: ") + f.what(),
                   "nothing of it was acknowledged; the broker sends it again"};
    }
    return r;
  }

  // ---------------------------------------------------------------- repair
  Result<std::vector<ResendRequest>> plan_repairs(const RepairPolicy& policy, SystemTime now) override {
    const Quiesce quiesce(*this);
    if (read_only_) return Error{"county database", "opened read-only", ""};
    std::vector<ResendRequest> out;
    now_ = ms_of(now);
    counters_.clear();
    try {
      Transaction tx(*db_);
      // Two collectors on one PostgreSQL: one plans at a time, so no school is asked twice.
      if (postgres()) db_->exec("SELECT pg_advisory_xact_lock(7420002)");
      expire_requests(policy);
      open_due_tails(policy);
      if (policy.enabled) claim_requests(policy, out);
      flush_counters();
      tx.commit();
    } catch (const Failure& f) {
      forget_statements();
      return Error{"county database", std::string("planning repairs failed: ") + f.what(), "retried at the next tick"};
    }
    return out;
  }

  Status request_not_sent(std::int64_t id, const std::string& why, const RepairPolicy& policy, SystemTime now) override {
    const Quiesce quiesce(*this);
    now_ = ms_of(now);
    try {
      Transaction tx(*db_);
      auto& q = prepared("SELECT series, from_seq, to_seq FROM resend_request WHERE id = ?1 AND outcome IS NULL");
      q.bind_all(id);
      if (q.step()) {
        std::int64_t series = q.int64(0), from = q.int64(1), to = q.int64(2);
        prepared("UPDATE resend_request SET outcome = 'not_sent', reply_ms = ?2, reply = ?3 WHERE id = ?1")
            .bind_all(id, now_, Json{{"error", why}}.dump())
            .run();
        retry_later(series, from, to, policy);
      }
      tx.commit();
    } catch (const Failure& f) {
      return Error{"county database", f.what(), ""};
    }
    return {};
  }

  // ---------------------------------------------------------------- retention
  Result<std::int64_t> prune(const Retention& ret, SystemTime now) override {
    const Quiesce quiesce(*this);
    if (read_only_) return std::int64_t{0};
    const std::int64_t n = ms_of(now);
    std::int64_t removed = 0;
    try {
      std::int64_t messages_removed = 0;  // the 'held' counter goes down by these, in the same transaction
      auto run = [&](const std::string& sql, std::int64_t before, bool messages = false) {
        auto& d = prepared(sql);
        d.bind_all(before).run();
        removed += d.changes();
        if (messages) messages_removed += d.changes();
      };
      if (postgres()) removed += drop_report_months(n, n - ret.keep_reports.count());
      Transaction tx(*db_);
      // Full reports beyond keep_reports, except the last of each day (report_daily): their
      // seqs stay accounted by the series' max_seen, so a late copy is still a duplicate. On
      // PostgreSQL this is what the default partition holds (months without their own).
      run("DELETE FROM message WHERE kind = 'report' AND received_ms < ?1 AND NOT EXISTS ("
          "SELECT 1 FROM report_daily d WHERE d.series = message.series AND d.seq = message.seq)",
          n - ret.keep_reports.count(), true);
      const std::int64_t horizon = n - ret.keep_history.count();
      run("DELETE FROM message WHERE received_ms < ?1", horizon, true);
      for (const char* sql : {"DELETE FROM state_change WHERE at_ms < ?1", "DELETE FROM health_sample WHERE at_ms < ?1",
                              "DELETE FROM report_daily WHERE ts_ms < ?1"})
        run(sql, horizon);
      if (postgres()) run("DELETE FROM report_kept WHERE received_ms < ?1", horizon, true);
      run("DELETE FROM quarantine WHERE received_ms < ?1", n - ret.keep_quarantine.count());
      run("DELETE FROM alert_delivery WHERE alert IN (SELECT id FROM alert WHERE state = 'resolved' AND resolved_ms < ?1)",
          horizon);
      run("DELETE FROM alert WHERE state = 'resolved' AND resolved_ms < ?1", horizon);
      forget_held(messages_removed);
      tx.commit();
    } catch (const Failure& f) {
      return Error{"county database", std::string("pruning failed: ") + f.what(), "retried later"};
    }
    return removed;
  }

  // ---------------------------------------------------------------- alerts
  Result<AlertPass> record_alerts(const std::vector<AlertCondition>& now_active, const std::vector<AlertRoute>& routes,
                                  SystemTime now) override {
    const Quiesce quiesce(*this);
    if (read_only_) return Error{"county database", "opened read-only", ""};
    AlertPass pass;
    const std::int64_t n = ms_of(now);
    try {
      Transaction tx(*db_);
      if (postgres()) db_->exec("SELECT pg_advisory_xact_lock(7420004)");  // two collectors: one pass at a time
      struct Active {
        std::int64_t id;
        std::string state, rule;
        std::int64_t since;
        bool one_shot;
      };
      std::map<std::string, Active> active;
      {
        auto& q = prepared("SELECT id, key, state, rule, since_ms, one_shot FROM alert WHERE state <> 'resolved'");
        while (q.step()) active[q.text(1)] = {q.int64(0), q.text(2), q.text(3), q.int64(4), q.int64(5) != 0};
      }
      auto queue = [&](std::int64_t alert, const std::string& rule, const char* transition) {
        auto& ins = prepared(
            "INSERT INTO alert_delivery(alert, transition, channel, state, next_attempt_ms, created_ms) "
            "VALUES (?1, ?2, ?3, 'queued', ?4, ?4) ON CONFLICT(alert, transition, channel) DO NOTHING");
        for (const auto& r : routes) {
          if (!r.rules.empty() && std::find(r.rules.begin(), r.rules.end(), rule) == r.rules.end()) continue;
          ins.reset();
          ins.bind_all(alert, std::string(transition), r.channel, n).run();
          pass.queued += static_cast<int>(ins.changes());
        }
      };
      // A one-shot alert is recorded resolved the moment it fires (its condition does not end:
      // a lost range stays lost); its key is never raised again.
      std::set<std::string> fired_once;
      {
        auto& q = prepared("SELECT key FROM alert WHERE one_shot = 1 AND fired_ms IS NOT NULL");
        while (q.step()) fired_once.insert(q.text(0));
      }
      std::set<std::string> seen;
      for (const auto& c : now_active) {
        if (!seen.insert(c.key).second) continue;
        ++pass.active;
        auto it = active.find(c.key);
        if (it == active.end()) {
          if (fired_once.count(c.key)) continue;
          const bool fire = c.hold.count() <= 0;
          auto& ins = prepared(
              "INSERT INTO alert(key, rule, school, subject, state, one_shot, since_ms, fired_ms, resolved_ms, summary, detail) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id");
          const std::string state = !fire ? "pending" : c.one_shot ? "resolved" : "firing";
          ins.bind_all(c.key, c.rule, c.school, c.subject, state, c.one_shot ? 1 : 0, n);
          ins.bind(8, fire ? std::optional<std::int64_t>(n) : std::nullopt);
          ins.bind(9, fire && c.one_shot ? std::optional<std::int64_t>(n) : std::nullopt);
          ins.bind(10, c.summary).bind(11, c.detail.dump());
          if (!ins.step()) throw Failure(false, "alert insert returned no id");
          const std::int64_t id = ins.int64(0);
          ins.reset();
          if (fire) {
            ++pass.fired;
            queue(id, c.rule, "firing");
          } else {
            ++pass.pending;
          }
          continue;
        }
        const Active& a = it->second;
        if (a.state == "pending") {
          if (n - a.since >= c.hold.count()) {
            auto& up = prepared("UPDATE alert SET state = ?5, fired_ms = ?2, resolved_ms = ?6, summary = ?3, detail = ?4 "
                                "WHERE id = ?1 AND state = 'pending'");
            up.bind_all(a.id, n, c.summary, c.detail.dump(), std::string(a.one_shot ? "resolved" : "firing"));
            up.bind(6, a.one_shot ? std::optional<std::int64_t>(n) : std::nullopt);
            up.run();
            if (up.changes() > 0) {
              ++pass.fired;
              queue(a.id, c.rule, "firing");
            }
          } else {
            ++pass.pending;
          }
        } else {
          // Firing: the summary follows the condition (offline for longer, coverage lower).
          auto& up = prepared("UPDATE alert SET summary = ?2, detail = ?3 WHERE id = ?1 AND summary <> ?2");
          up.bind_all(a.id, c.summary, c.detail.dump()).run();
        }
      }
      // Conditions gone: a firing alert resolves (and says so), a pending one is closed
      // without a word (it never fired).
      for (const auto& [key, a] : active) {
        if (seen.count(key)) continue;
        auto& up = prepared("UPDATE alert SET state = 'resolved', resolved_ms = ?2 WHERE id = ?1 AND state <> 'resolved'");
        up.bind_all(a.id, n).run();
        if (up.changes() == 0 || a.state != "firing") continue;
        ++pass.resolved;
        queue(a.id, a.rule, "resolved");
      }
      tx.commit();
    } catch (const Failure& f) {
      forget_statements();
      return Error{"county database", std::string("alerts were not recorded: ") + f.what(), "retried at the next evaluation"};
    }
    return pass;
  }

  Result<std::vector<AlertDelivery>> claim_deliveries(const std::string& channel, int max, Millis lease,
                                                      SystemTime now) override {
    const Quiesce quiesce(*this);
    if (read_only_) return Error{"county database", "opened read-only", ""};
    const std::int64_t n = ms_of(now);
    std::vector<AlertDelivery> out;
    try {
      Transaction tx(*db_);
      if (postgres()) db_->exec("SELECT pg_advisory_xact_lock(7420005)");  // two collectors: one claims at a time
      auto& q = prepared(
          "SELECT d.id, d.alert, d.transition, d.attempts, a.rule, a.school, a.subject, a.summary, a.detail, a.since_ms, "
          "a.fired_ms, a.resolved_ms FROM alert_delivery d JOIN alert a ON a.id = d.alert WHERE d.channel = ?1 AND "
          "((d.state = 'queued' AND d.next_attempt_ms <= ?2) OR (d.state = 'sending' AND d.lease_until_ms <= ?2)) "
          "ORDER BY d.id LIMIT ?3");
      q.bind_all(channel, n, static_cast<std::int64_t>(max));
      auto at = [&](int c) { return q.is_null(c) ? std::string() : utc_text(q.int64(c)); };
      while (q.step()) {
        AlertDelivery d;
        d.id = q.int64(0), d.alert = q.int64(1), d.channel = channel, d.transition = q.text(2);
        d.attempts = static_cast<int>(q.int64(3)) + 1;
        d.rule = q.text(4), d.school = q.text(5), d.subject = q.text(6), d.summary = q.text(7);
        d.detail = text_json(q.text(8));
        d.since = at(9), d.fired_at = at(10), d.resolved_at = at(11);
        out.push_back(std::move(d));
      }
      auto& up = prepared("UPDATE alert_delivery SET state = 'sending', attempts = attempts + 1, lease_until_ms = ?2 WHERE id = ?1");
      for (const auto& d : out) {
        up.reset();
        up.bind_all(d.id, n + lease.count()).run();
      }
      tx.commit();
    } catch (const Failure& f) {
      forget_statements();
      return Error{"county database", std::string("cannot claim alert deliveries: ") + f.what(), "retried shortly"};
    }
    return out;
  }

  Status delivery_result(const std::vector<std::int64_t>& ids, bool delivered, const std::string& error,
                         SystemTime next_attempt, SystemTime now) override {
    const Quiesce quiesce(*this);
    if (read_only_) return Error{"county database", "opened read-only", ""};
    try {
      Transaction tx(*db_);
      auto& up = prepared(delivered
                              ? "UPDATE alert_delivery SET state = 'delivered', delivered_ms = ?2, lease_until_ms = NULL, "
                                "last_error = NULL WHERE id = ?1 AND state <> 'delivered'"
                              : "UPDATE alert_delivery SET state = 'queued', next_attempt_ms = ?2, lease_until_ms = NULL, "
                                "last_error = ?3 WHERE id = ?1 AND state <> 'delivered'");
      for (auto id : ids) {
        up.reset();
        up.bind_all(id, delivered ? ms_of(now) : ms_of(next_attempt));
        if (!delivered) up.bind(3, error);
        up.run();
      }
      tx.commit();
    } catch (const Failure& f) {
      forget_statements();
      return Error{"county database", std::string("cannot record an alert delivery: ") + f.what(),
                   "the delivery is claimed again after its lease and sent once more"};
    }
    return {};
  }

  Result<std::vector<Json>> alerts(const std::string& state, int limit) override {
    const Quiesce quiesce(*this);
    try {
      auto& q = prepared(
          "SELECT id, key, rule, school, subject, state, one_shot, since_ms, fired_ms, resolved_ms, summary, detail "
          "FROM alert WHERE (?1 = 'all' OR state <> 'resolved') ORDER BY id DESC LIMIT ?2");
      q.bind_all(state, static_cast<std::int64_t>(limit));
      std::vector<Json> out;
      auto& d = prepared(
          "SELECT channel, transition, state, attempts, last_error, delivered_ms, next_attempt_ms FROM alert_delivery "
          "WHERE alert = ?1 ORDER BY id");
      while (q.step()) {
        auto at = [&](int c) { return q.is_null(c) ? Json(nullptr) : Json(utc_text(q.int64(c))); };
        Json a = {{"id", q.int64(0)}, {"key", q.text(1)}, {"rule", q.text(2)}, {"school", q.text(3)},
                  {"subject", q.text(4)}, {"state", q.text(5)}, {"one_shot", q.int64(6) != 0}, {"since", at(7)},
                  {"fired_at", at(8)}, {"resolved_at", at(9)}, {"summary", q.text(10)}, {"detail", text_json(q.text(11))},
                  {"deliveries", Json::array()}};
        d.reset();
        d.bind_all(q.int64(0));
        while (d.step())
          a["deliveries"].push_back({{"channel", d.text(0)}, {"transition", d.text(1)}, {"state", d.text(2)},
                                     {"attempts", d.int64(3)}, {"last_error", nullable_text(d, 4)},
                                     {"delivered_at", d.is_null(5) ? Json(nullptr) : Json(utc_text(d.int64(5)))},
                                     {"next_attempt_at", d.text(2) == "queued" ? Json(utc_text(d.int64(6))) : Json(nullptr)}});
        out.push_back(std::move(a));
      }
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<Json> alert_totals() override {
    const Quiesce quiesce(*this);
    try {
      Json out = {{"firing", 0}, {"pending", 0}, {"deliveries", Json::object()}};
      auto& q = prepared("SELECT state, COUNT(*) FROM alert WHERE state <> 'resolved' GROUP BY state");
      while (q.step()) out[q.text(0)] = q.int64(1);
      auto& d = prepared("SELECT channel, state, COUNT(*), COALESCE(SUM(attempts), 0) FROM alert_delivery GROUP BY channel, state");
      while (d.step()) {
        Json& ch = out["deliveries"][d.text(0)];
        if (ch.is_null()) ch = {{"queued", 0}, {"sending", 0}, {"delivered", 0}, {"attempts", 0}};
        ch[d.text(1)] = d.int64(2);
        ch["attempts"] = ch["attempts"].get<std::int64_t>() + d.int64(3);
      }
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  // PostgreSQL: reports live in one partition per month of their audit time (UTC). This month's
  // and the next two are made ahead; a month that ended before `cutoff` is dropped whole, its
  // last report of each day (report_daily's) moved to report_kept first. A month the default
  // partition already holds reports of (a school whose clock runs months ahead) stays there.
  // Returns the reports dropped.
  std::int64_t drop_report_months(std::int64_t now_ms, std::int64_t cutoff_ms) {
    using namespace std::chrono;
    auto month_start = [](std::int64_t ms) {
      const year_month_day d{floor<days>(sys_time<milliseconds>(milliseconds(ms)))};
      return d.year() / d.month();
    };
    auto ms_at = [](year_month ym) {
      return duration_cast<milliseconds>(sys_days(ym / 1).time_since_epoch()).count();
    };
    auto name_of = [](year_month ym) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "message_report_%04d%02u", static_cast<int>(ym.year()),
                    static_cast<unsigned>(ym.month()));
      return std::string(buf);
    };
    const year_month here = month_start(now_ms);
    for (int i = 0; i < 3; ++i) {
      const year_month ym = here + months(i);
      const std::string name = name_of(ym);
      const std::int64_t from = ms_at(ym), to = ms_at(ym + months(1));
      Transaction tx(*db_);
      db_->exec("SELECT pg_advisory_xact_lock(7420003)");  // two collectors: one makes it
      auto& exists = prepared("SELECT 1 FROM pg_class WHERE relname = ?1");
      exists.bind_all(name);
      const bool have = exists.step();
      exists.reset();
      auto& in_default = prepared("SELECT 1 FROM message_report_default WHERE ts_ms >= ?1 AND ts_ms < ?2 LIMIT 1");
      in_default.bind_all(from, to);
      const bool taken = in_default.step();
      in_default.reset();
      if (!have && !taken)
        db_->exec("CREATE TABLE " + name + " PARTITION OF message_report FOR VALUES FROM (" + std::to_string(from) +
                  ") TO (" + std::to_string(to) + ")");
      tx.commit();
    }
    std::vector<std::string> old;  // partitions whose month ended before the cutoff
    {
      auto& parts = prepared(
          "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON "
          "p.oid = i.inhparent WHERE p.relname = 'message_report' AND c.relname <> 'message_report_default' ORDER BY 1");
      while (parts.step()) {
        const std::string name = parts.text(0);
        int y = 0;
        unsigned mo = 0;
        if (std::sscanf(name.c_str(), "message_report_%4d%2u", &y, &mo) != 2) continue;
        const std::int64_t end = ms_at(year(y) / month(mo) + months(1));
        if (end <= cutoff_ms) old.push_back(name);
      }
      parts.reset();
    }
    std::int64_t dropped = 0;
    for (const auto& name : old) {
      Transaction tx(*db_);
      db_->exec("SELECT pg_advisory_xact_lock(7420003)");
      if (db_->scalar_int("SELECT COUNT(*) FROM pg_class WHERE relname = '" + name + "'") == 0) continue;
      const std::int64_t rows = db_->scalar_int("SELECT COUNT(*) FROM " + name);
      auto keep = db_->prepare("INSERT INTO report_kept SELECT * FROM " + name + " m WHERE EXISTS (SELECT 1 FROM "
                               "report_daily d WHERE d.series = m.series AND d.seq = m.seq)");
      keep->run();
      db_->exec("DROP TABLE " + name);
      forget_held(rows - keep->changes());
      dropped += rows - keep->changes();
      tx.commit();
    }
    return dropped;
  }

  // ---------------------------------------------------------------- reading
  Status set_register(const std::vector<std::pair<std::string, std::string>>& schools) override {
    const Quiesce quiesce(*this);
    if (read_only_) return {};
    try {
      Transaction tx(*db_);
      db_->exec("DELETE FROM register");
      auto& ins = prepared("INSERT INTO register(school, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING");
      for (const auto& [code, name] : schools) {
        ins.bind_all(code, name).run();
        ins.reset();
      }
      tx.commit();
    } catch (const Failure& f) {
      return Error{"county database", std::string("cannot write the register: ") + f.what(), ""};
    }
    return {};
  }

  Result<Json> register_schools() override {
    const Quiesce quiesce(*this);
    try {
      Json out = Json::object();
      auto& q = prepared("SELECT school, name FROM register ORDER BY school");
      while (q.step()) out[q.text(0)] = q.text(1);
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<std::vector<Json>> schools(const std::vector<std::string>& register_schools) override {
    const Quiesce quiesce(*this);
    try {
      std::map<std::string, Json> rows;
      for (const auto& s : register_schools) rows[s] = Json{{"school", s}, {"seen", false}};
      {
        auto& reg = prepared("SELECT school, name FROM register");
        while (reg.step()) {
          Json& row = rows[reg.text(0)];
          if (!row.contains("seen")) row = Json{{"school", reg.text(0)}, {"seen", false}};
          row["name"] = reg.text(1);
        }
      }
      auto& q = prepared(
          "SELECT s.school, s.online, s.session, s.state_at_ms, s.state_reason, s.version, s.last_seen, "
          "s.last_received_ms, s.health, s.health_at_ms, s.outbox_depth, s.takeovers, r.store_id, r.max_seen, "
          "r.announced, (SELECT MIN(p.from_seq) FROM gap_piece p WHERE p.series = r.id AND p.state = 'open'), "
          "(SELECT COUNT(*) FROM gap g WHERE g.series = r.id AND g.state = 'open'), "
          "(SELECT COUNT(*) FROM gap g JOIN series x ON x.id = g.series WHERE x.school = s.school AND g.state = 'lost'), "
          "(SELECT COALESCE(SUM(g.lost), 0) FROM gap g JOIN series x ON x.id = g.series WHERE x.school = s.school), "
          "s.first_seen_ms "
          "FROM school s LEFT JOIN series r ON r.id = s.current_series ORDER BY s.school");
      while (q.step()) {
        Json& row = rows[q.text(0)];
        row["school"] = q.text(0);
        row["seen"] = true;
        row["online"] = nullable_bool(q, 1);
        row["session"] = nullable_int(q, 2);
        row["state_at"] = q.is_null(3) ? Json(nullptr) : Json(utc_text(q.int64(3)));
        row["state_reason"] = nullable_text(q, 4);
        row["version"] = nullable_text(q, 5);
        row["last_seen"] = nullable_text(q, 6);
        row["last_received"] = q.is_null(7) ? Json(nullptr) : Json(utc_text(q.int64(7)));
        Json health = q.is_null(8) ? Json(nullptr) : text_json(q.text(8));
        row["health"] = health;
        row["health_at"] = q.is_null(9) ? Json(nullptr) : Json(utc_text(q.int64(9)));
        row["backlog"] = nullable_int(q, 10);
        row["takeovers"] = q.int64(11);
        const std::int64_t max_seen = q.is_null(13) ? 0 : q.int64(13);
        row["store"] = nullable_text(q, 12);
        row["max_seen"] = max_seen;
        row["announced_last_seq"] = nullable_int(q, 14);
        row["contiguous_through"] = q.is_null(15) ? max_seen : q.int64(15) - 1;
        row["gaps"] = {{"open", q.int64(16)}, {"lost", q.int64(17)}, {"lost_seqs", q.int64(18)}};
        row["first_seen"] = utc_text(q.int64(19));
      }
      auto& rep = prepared("SELECT school, audit, seq, ts, summary FROM report_latest ORDER BY school, audit");
      while (rep.step()) {
        auto it = rows.find(rep.text(0));
        if (it == rows.end()) continue;
        it->second["reports"][rep.text(1)] = {{"seq", rep.int64(2)}, {"ts", rep.text(3)}, {"summary", text_json(rep.text(4))}};
      }
      std::vector<Json> out;
      for (auto& [name, row] : rows) {
        if (!row.contains("reports")) row["reports"] = Json::object();
        out.push_back(std::move(row));
      }
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<std::vector<Json>> cases(const std::string& state, const std::string& school) override {
    const Quiesce quiesce(*this);
    try {
      std::string sql =
          "SELECT c.school, c.case_id, c.subject, c.stage, c.outcome, c.opened_at, c.closed_at, c.overdue, c.details, "
          "c.last_seq, c.updated_ts, c.series FROM absence_case c JOIN school s ON s.school = c.school "
          "AND s.current_series = c.series WHERE (?1 = '' OR c.school = ?1)";
      if (state == "open") sql += " AND c.stage <> 'closed'";
      else if (state == "closed") sql += " AND c.stage = 'closed'";
      sql += " ORDER BY c.overdue DESC, c.opened_at, c.school, c.case_id";
      auto& q = prepared(sql);
      q.bind_all(school);
      std::vector<Json> out;
      auto& steps = prepared(
          "SELECT at, action, actor, note, seq FROM case_step WHERE school = ?1 AND series = ?2 AND case_id = ?3 ORDER BY idx");
      while (q.step()) {
        Json c = {{"school", q.text(0)}, {"id", q.text(1)}, {"subject", nullable_text(q, 2)}, {"stage", q.text(3)},
                  {"outcome", nullable_text(q, 4)}, {"opened_at", nullable_text(q, 5)},
                  {"closed_at", nullable_text(q, 6)}, {"overdue", nullable_bool(q, 7)},
                  {"details", q.is_null(8) ? Json::object() : text_json(q.text(8))}, {"seq", q.int64(9)},
                  {"as_of", q.text(10)}, {"steps", Json::array()}};
        steps.bind_all(q.text(0), q.int64(11), q.text(1));
        while (steps.step())
          c["steps"].push_back({{"at", steps.text(0)}, {"action", steps.text(1)}, {"actor", steps.text(2)},
                                {"note", steps.text(3)}, {"seq", steps.int64(4)}});
        steps.reset();
        out.push_back(std::move(c));
      }
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<Json> history(const std::string& school, const std::string& audit, const std::string& since) override {
    const Quiesce quiesce(*this);
    try {
      Json h = {{"school", school}, {"since", since.empty() ? Json(nullptr) : Json(since)}};
      const std::int64_t since_ms = since.empty() ? 0 : day_start_ms(since);
      Json states = Json::array();
      auto& s = prepared(
          "SELECT at_ms, online, session, reason, store_id, last_seq FROM state_change WHERE school = ?1 AND at_ms >= ?2 "
          "ORDER BY at_ms, id");
      s.bind_all(school, since_ms);
      while (s.step())
        states.push_back({{"at", utc_text(s.int64(0))}, {"online", s.int64(1) != 0}, {"session", s.int64(2)},
                          {"reason", nullable_text(s, 3)}, {"store", nullable_text(s, 4)}, {"last_seq", nullable_int(s, 5)}});
      h["states"] = states;
      h["uptime"] = uptime(school, since_ms);
      Json days = Json::array();
      auto& d = prepared(
          "SELECT day, fiber_classroom, fiber_function_room, fiber_office, fiber_met, recording_compliant, recording_total, "
          "recording_met, cases_open, cases_overdue, attendance_met, digital_campus FROM school_day WHERE school = ?1 AND "
          "day >= ?2 ORDER BY day");
      d.bind_all(school, since);
      while (d.step()) {
        auto real = [&](int c) { return d.is_null(c) ? Json(nullptr) : Json(d.real(c)); };
        days.push_back({{"day", d.text(0)},
                        {"fiber", {{"classroom", real(1)}, {"function_room", real(2)}, {"office", real(3)}, {"met", nullable_bool(d, 4)}}},
                        {"recording", {{"compliant", nullable_int(d, 5)}, {"total", nullable_int(d, 6)}, {"met", nullable_bool(d, 7)}}},
                        {"cases", {{"open", nullable_int(d, 8)}, {"overdue", nullable_int(d, 9)}, {"met", nullable_bool(d, 10)}}},
                        {"digital_campus", nullable_bool(d, 11)}});
      }
      h["days"] = days;
      Json steps = Json::array();
      auto& c = prepared(
          "SELECT st.case_id, st.at, st.action, st.actor, st.note, st.seq FROM case_step st WHERE st.school = ?1 AND "
          "COALESCE(st.at, '') >= ?2 ORDER BY st.at, st.case_id, st.idx");
      c.bind_all(school, since);
      while (c.step())
        steps.push_back({{"case", c.text(0)}, {"at", c.text(1)}, {"action", c.text(2)}, {"actor", c.text(3)},
                         {"note", c.text(4)}, {"seq", c.int64(5)}});
      h["case_steps"] = steps;
      Json events = Json::array();
      auto& e = prepared(
          "SELECT m.seq, m.audit, m.ts, m.payload FROM message m JOIN series r ON r.id = m.series WHERE r.school = ?1 AND "
          "m.kind = 'event' AND (?2 = '' OR m.audit = ?2) AND m.day >= ?3 ORDER BY m.ts_ms, m.seq LIMIT 5000");
      e.bind_all(school, audit, since);
      while (e.step()) {
        Json env = text_json(e.text(3));
        const Json b = env.is_object() ? env.value("body", Json::object()) : Json::object();
        events.push_back({{"seq", e.int64(0)}, {"audit", e.text(1)}, {"ts", e.text(2)},
                          {"subject", b.value("subject", Json(nullptr))}, {"from", b.value("from", Json(nullptr))},
                          {"to", b.value("to", Json(nullptr))}, {"reason", b.value("reason", Json(nullptr))}});
      }
      h["events"] = events;
      return h;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<Json> latest_reports(const std::string& school) override {
    const Quiesce quiesce(*this);
    try {
      std::vector<std::tuple<std::string, std::int64_t, std::int64_t, std::string>> latest;
      auto& q = prepared("SELECT audit, series, seq, ts FROM report_latest WHERE school = ?1 ORDER BY audit");
      q.bind_all(school);
      while (q.step()) latest.emplace_back(q.text(0), q.int64(1), q.int64(2), q.text(3));
      q.reset();
      Json out = Json::object();
      auto& p = prepared(postgres() ? "SELECT payload FROM message WHERE series = ?1 AND seq = ?2 UNION ALL "
                                      "SELECT payload FROM report_kept WHERE series = ?1 AND seq = ?2"
                                    : "SELECT payload FROM message WHERE series = ?1 AND seq = ?2");
      for (const auto& [audit, series, seq, ts] : latest) {
        p.bind_all(series, seq);
        Json body = nullptr;
        if (p.step()) {
          const Json env = text_json(p.text(0));
          if (env.is_object()) body = env.value("body", Json(nullptr));
        }
        p.reset();
        out[audit] = {{"seq", seq}, {"ts", ts}, {"body", body}};
      }
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<std::vector<Json>> gaps(const std::string& school) override {
    const Quiesce quiesce(*this);
    try {
      auto& q = prepared(
          "SELECT g.id, r.school, r.store_id, g.from_seq, g.to_seq, g.cause, g.state, g.opened_ms, g.closed_ms, "
          "g.requests, g.last_request_ms, g.next_request_ms, g.filled, g.lost, g.lost_reason, "
          "(SELECT COALESCE(SUM(p.to_seq - p.from_seq + 1), 0) FROM gap_piece p WHERE p.gap = g.id AND p.state = 'open') "
          "FROM gap g JOIN series r ON r.id = g.series WHERE (?1 = '' OR r.school = ?1) "
          "ORDER BY CASE g.state WHEN 'open' THEN 0 WHEN 'lost' THEN 1 ELSE 2 END, g.opened_ms DESC, g.id DESC");
      q.bind_all(school);
      std::vector<Json> out;
      while (q.step()) {
        auto at = [&](int c) { return q.is_null(c) ? Json(nullptr) : Json(utc_text(q.int64(c))); };
        out.push_back({{"id", q.int64(0)}, {"school", q.text(1)}, {"store", q.text(2)}, {"from_seq", q.int64(3)},
                       {"to_seq", q.int64(4)}, {"cause", q.text(5)}, {"state", q.text(6)}, {"opened_at", at(7)},
                       {"closed_at", at(8)}, {"requests", q.int64(9)}, {"last_request_at", at(10)},
                       {"next_request_at", q.text(6) == "open" ? at(11) : Json(nullptr)}, {"filled", q.int64(12)},
                       {"lost", q.int64(13)}, {"lost_reason", nullable_text(q, 14)}, {"open", q.int64(15)}});
      }
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<std::vector<Json>> monthly(const std::vector<std::string>& register_schools) override {
    const Quiesce quiesce(*this);
    try {
      std::set<std::string> schools(register_schools.begin(), register_schools.end());
      {
        auto& reg = prepared("SELECT school FROM register");
        while (reg.step()) schools.insert(reg.text(0));
      }
      if (schools.empty()) {
        auto& s = prepared("SELECT school FROM school");
        while (s.step()) schools.insert(s.text(0));
      }
      // A month's figure is the school's last daily row on or before the month's end (a school
      // that has reported nothing by then is unknown). One pass over the rows in key order keeps
      // each school's last row of each month; the months then carry each school's figures
      // forward: the cost is the rows once plus months x schools, not months x schools x days.
      using Figures4 = std::array<signed char, 4>;  // digital campus, fiber, recording, attendance: -1 unknown
      std::map<std::string, std::map<std::string, Figures4>> month_end;  // school -> month -> its last row
      std::string first, last;
      auto& q = prepared(
          "SELECT school, day, digital_campus, fiber_met, recording_met, attendance_met FROM school_day ORDER BY school, day");
      auto tri = [&](int col) -> signed char { return q.is_null(col) ? -1 : q.int64(col) != 0 ? 1 : 0; };
      while (q.step()) {
        const std::string school = q.text(0);
        if (!schools.count(school)) continue;
        const std::string month = q.text(1).substr(0, 7);
        month_end[school][month] = {tri(2), tri(3), tri(4), tri(5)};
        if (first.empty() || month < first) first = month;
        if (last.empty() || month > last) last = month;
      }
      std::vector<Json> out;
      if (first.empty()) return out;
      static const char* kTargets[] = {"digital_campus", "fiber", "recording", "attendance"};
      std::map<std::string, Figures4> now;  // each school's figures as of the month being counted
      for (std::string m = first; m <= last; m = next_month(m)) {
        for (const auto& [school, months] : month_end)
          if (auto it = months.find(m); it != months.end()) now[school] = it->second;
        Json row = {{"month", m}, {"schools", schools.size()}, {"plan", plan::plan_share(std::stoi(m.substr(0, 4)))}};
        for (int t = 0; t < 4; ++t) {
          std::size_t met = 0, known = 0;
          for (const auto& [school, f] : now) {
            if (f[t] < 0) continue;
            ++known;
            if (f[t] == 1) ++met;
          }
          double share = schools.empty() ? 0.0 : static_cast<double>(met) / schools.size();
          row[kTargets[t]] = {{"met", met}, {"known", known}, {"unknown", schools.size() - known},
                              {"share", std::round(share * 10000) / 10000}};
        }
        out.push_back(std::move(row));
      }
      return out;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Result<Json> totals(SystemTime silent_since) override {
    const Quiesce quiesce(*this);
    try {
      Json t = Json::object();
      auto& c = prepared("SELECT name, value FROM counter WHERE name <> 'held' ORDER BY name");
      while (c.step()) t["counters"][c.text(0)] = c.int64(1);
      if (!t.contains("counters")) t["counters"] = Json::object();
      t["schools"] = db_->scalar_int("SELECT COUNT(*) FROM school");
      t["online"] = db_->scalar_int("SELECT COUNT(*) FROM school WHERE online = 1");
      t["messages"] = db_->scalar_int("SELECT COALESCE(MAX(value), 0) FROM counter WHERE name = 'held'");
      t["gaps_open"] = db_->scalar_int("SELECT COUNT(*) FROM gap WHERE state = 'open'");
      t["gaps_lost"] = db_->scalar_int("SELECT COUNT(*) FROM gap WHERE state = 'lost'");
      t["gaps_filled"] = db_->scalar_int("SELECT COUNT(*) FROM gap WHERE state = 'filled'");
      t["seqs_open"] = db_->scalar_int("SELECT COALESCE(SUM(to_seq - from_seq + 1), 0) FROM gap_piece WHERE state = 'open'");
      t["seqs_lost"] = db_->scalar_int("SELECT COALESCE(SUM(to_seq - from_seq + 1), 0) FROM gap_piece WHERE state = 'lost'");
      t["quarantined"] = db_->scalar_int("SELECT COUNT(*) FROM quarantine");
      t["conflicts"] = db_->scalar_int("SELECT COUNT(*) FROM conflict");
      t["requests_in_flight"] = db_->scalar_int("SELECT COUNT(*) FROM resend_request WHERE outcome IS NULL");
      Json silent = Json::array();
      auto& sl = prepared("SELECT school FROM school WHERE COALESCE(last_received_ms, 0) < ?1 ORDER BY school");
      sl.bind_all(ms_of(silent_since));
      while (sl.step()) silent.push_back(sl.text(0));
      t["silent"] = silent;
      t["db_bytes"] = db_->scalar_int(postgres() ? "SELECT pg_database_size(current_database())"
                                                 : "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()");
      return t;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  // Each collector writes its own row (keyed by its broker client id: two collectors on one
  // PostgreSQL have their own); status() is the newest, with every collector's in "collectors".
  Result<Json> status() override {
    const Quiesce quiesce(*this);
    try {
      auto& q = prepared("SELECT value FROM meta WHERE key LIKE 'collector_status%' ORDER BY key");
      Json all = Json::array();
      Json newest = nullptr;
      while (q.step()) {
        Json st = text_json(q.text(0));
        if (!st.is_object()) continue;
        if (newest.is_null() || st.value("at", std::string()) > newest.value("at", std::string())) newest = st;
        all.push_back(Json{{"client_id", st.contains("ingest") ? st["ingest"].value("client_id", "") : ""},
                           {"at", st.value("at", Json(nullptr))}, {"pid", st.value("pid", Json(nullptr))},
                           {"connected", st.contains("ingest") ? st["ingest"].value("connected", false) : false},
                           {"committed", st.value("committed", Json(nullptr))},
                           {"database_error", st.value("database_error", Json(nullptr))}});
      }
      if (newest.is_null()) return newest;
      newest["collectors"] = all;
      return newest;
    } catch (const Failure& f) {
      return read_error(f);
    }
  }

  Status set_status(const Json& status) override {
    const Quiesce quiesce(*this);
    if (read_only_) return {};
    try {
      const std::string who = status.contains("ingest") ? status["ingest"].value("client_id", "") : "";
      prepared("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
          .bind_all(who.empty() ? std::string("collector_status") : "collector_status:" + who, status.dump())
          .run();
    } catch (const Failure& f) {
      return Error{"county database", f.what(), ""};
    }
    return {};
  }

 private:
  bool postgres() const { return db_->engine() == sql::Engine::Postgres; }

  // PostgreSQL with two collectors: the batch's schools are locked for the transaction, in one
  // order (no deadlock), so both never interleave on one school's series, gaps and rows.
  void lock_schools(const std::vector<Parsed>& batch) {
    if (!postgres()) return;
    // The key is the school's FNV-1a hash (the same in every build), taken in ascending order of
    // the key itself: two schools that share a key are one lock, taken once.
    std::set<std::int32_t> keys;
    auto key_of = [](const std::string& school) {
      std::uint32_t h = 2166136261u;
      for (unsigned char c : school) h = (h ^ c) * 16777619u;
      return static_cast<std::int32_t>(h);
    };
    for (const auto& p : batch) {
      if (auto* in = std::get_if<Incoming>(&p)) keys.insert(key_of(in->school));
      else if (!std::get<Quarantined>(p).school.empty()) keys.insert(key_of(std::get<Quarantined>(p).school));
    }
    auto& lock = q("SELECT pg_advisory_xact_lock(7420100, ?1)");
    for (const auto k : keys) {
      lock.reset();
      lock.bind_all(static_cast<std::int64_t>(k)).run();
    }
  }

  // Every public call ends with all of its statements reset (Quiesce). A SQLite statement left
  // on a row keeps its connection's read transaction open, and with it the WAL's read mark: the
  // checkpoint then cannot pass that mark and county.db-wal grows for as long as the collector
  // runs (measured: 5.4 GB after a million messages). Calls nest (one public call may use
  // another); the outermost one resets.
  struct Quiesce {
    explicit Quiesce(SqlDatabase& d) : db(d) { ++db.depth_; }
    ~Quiesce() {
      if (--db.depth_ > 0) return;
      for (auto& [sql, st] : db.stmts_) st->reset();
      for (auto& [sql, st] : db.texts_) st->reset();
    }
    Quiesce(const Quiesce&) = delete;
    Quiesce& operator=(const Quiesce&) = delete;
    SqlDatabase& db;
  };
  int depth_ = 0;

  void forget_statements() {
    stmts_.clear();
    texts_.clear();
  }

  Error read_error(const Failure& f) {
    forget_statements();
    return Error{"county database", std::string("cannot read: ") + f.what(),
                 "check the file and its permissions (campusctl needs read access to the database and its -wal/-shm)"};
  }

  // Statements of the reading side and of rare paths, kept by their text.
  Statement& prepared(const std::string& sql) {
    auto it = texts_.find(sql);
    if (it == texts_.end()) it = texts_.emplace(sql, db_->prepare(sql)).first;
    it->second->reset();
    return *it->second;
  }

  // Cached statements for the hot path (keyed by the SQL literal's address).
  Statement& q(const char* sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) it = stmts_.emplace(sql, db_->prepare(sql)).first;
    it->second->reset();
    return *it->second;
  }

  void count(const char* name, std::int64_t n = 1) { counters_[name] += n; }
  // Retention removed n messages (rows of message or report_kept), in the caller's transaction.
  void forget_held(std::int64_t n) {
    if (n == 0) return;
    q("UPDATE counter SET value = value - ?1 WHERE name = 'held'").bind_all(n).run();
  }
  void flush_counters() {
    for (const auto& [name, n] : counters_) {
      if (n == 0) continue;
      q("INSERT INTO counter(name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = counter.value + excluded.value")
          .bind_all(name, n)
          .run();
    }
    counters_.clear();
  }

  // ---- schools and series ----
  // The school's row exists at once (series refer to it); when it was last heard from is written
  // once per batch (flush_batch).
  void touch_school(const Incoming& m) {
    auto [it, added] = touched_.try_emplace(m.school, Touched{m.ts_ms, m.ts});
    if (added)
      q("INSERT INTO school(school, first_seen_ms) VALUES (?1, ?2) ON CONFLICT(school) DO NOTHING").bind_all(m.school, now_).run();
    else if (m.ts_ms > it->second.ts_ms)
      it->second = Touched{m.ts_ms, m.ts};
  }

  struct SeriesRow {
    std::int64_t id = 0;
    std::string store_id;
    std::int64_t max_seen = 0, announced = 0;
    bool retired = false;
    bool current = false;  // the school's current series
  };

  std::optional<SeriesRow> current_series(const std::string& school) {
    auto& s = q("SELECT r.id, r.store_id, r.max_seen, r.announced, CASE WHEN r.retired_ms IS NULL THEN 0 ELSE 1 END "
                "FROM school c "
                "JOIN series r ON r.id = c.current_series WHERE c.school = ?1");
    s.bind_all(school);
    if (!s.step()) return std::nullopt;
    return SeriesRow{s.int64(0), s.text(1), s.int64(2), s.int64(3), s.int64(4) != 0, true};
  }

  // The series of (school, store); an empty store means the school's current one (an agent
  // that does not name its store), or "" before any is known.
  SeriesRow series_for(const std::string& school, std::string store_id) {
    if (store_id.empty()) {
      if (auto c = current_series(school)) return *c;
    }
    auto& s = q("SELECT r.id, r.store_id, r.max_seen, r.announced, CASE WHEN r.retired_ms IS NULL THEN 0 ELSE 1 END, "
                "CASE WHEN (SELECT c.current_series FROM school c WHERE c.school = r.school) = r.id THEN 1 ELSE 0 END "
                "FROM series r WHERE r.school = ?1 AND r.store_id = ?2");
    s.bind_all(school, store_id);
    if (s.step()) return SeriesRow{s.int64(0), s.text(1), s.int64(2), s.int64(3), s.int64(4) != 0, s.int64(5) != 0};
    auto& ins = q("INSERT INTO series(school, store_id, first_seen_ms) VALUES (?1, ?2, ?3) RETURNING id");
    ins.bind_all(school, store_id, now_).step();
    SeriesRow row{ins.int64(0), store_id, 0, 0, false, false};
    ins.run();
    auto& cur = q("UPDATE school SET current_series = ?2 WHERE school = ?1 AND current_series IS NULL");
    cur.bind_all(school, row.id).run();
    row.current = cur.changes() > 0;
    return row;
  }

  // The agent says which store it writes now (birth, health): a different one than the
  // current series' replaces it. Everything still open of the old series is lost: no one can
  // send it again.
  void switch_store(const std::string& school, const std::string& store_id, const Json& store, BatchResult& r) {
    if (store_id.empty()) return;
    auto cur = current_series(school);
    if (cur && cur->store_id == store_id) {
      if (store.is_object()) q("UPDATE series SET store = ?2 WHERE id = ?1").bind_all(cur->id, store.dump()).run();
      return;
    }
    SeriesRow next = series_for(school, store_id);
    if (next.retired) {
      r.log.push_back("school " + school + " names store " + store_id +
                      ", which it replaced earlier; its messages are kept in that store's series, not as current");
      return;
    }
    if (store.is_object()) q("UPDATE series SET store = ?2 WHERE id = ?1").bind_all(next.id, store.dump()).run();
    q("UPDATE school SET current_series = ?2 WHERE school = ?1").bind_all(school, next.id).run();
    if (!cur || cur->id == next.id) return;
    std::string reason = "store_replaced: the school's agent now writes store " + store_id;
    if (store.is_object() && store.contains("recovered") && store["recovered"].is_object())
      reason += " (" + store["recovered"].value("reason", std::string("recovered")) + ": " +
                store["recovered"].value("what", std::string()) + ")";
    q("UPDATE series SET retired_ms = ?2, retired_reason = ?3 WHERE id = ?1").bind_all(cur->id, now_, reason).run();
    std::int64_t lost = mark_lost(cur->id, 1, INT64_MAX, reason, r);
    if (cur->announced > cur->max_seen) {  // what it had announced and never sent
      std::int64_t g = new_gap(cur->id, cur->max_seen + 1, cur->announced, "store_replaced", std::nullopt);
      add_piece(cur->id, cur->max_seen + 1, cur->announced, g, "lost", reason);
      add_lost(g, cur->announced - cur->max_seen, reason);
      refresh_gap(g);
      lost += cur->announced - cur->max_seen;
      q("UPDATE series SET max_seen = announced, tail_since_ms = NULL WHERE id = ?1").bind_all(cur->id).run();
    }
    r.seqs_lost += static_cast<int>(lost);
    r.log.push_back("school " + school + ": store " + (cur->store_id.empty() ? "(unnamed)" : cur->store_id) +
                    " replaced by " + store_id + "; " + std::to_string(lost) + " seq(s) of the old store marked lost");
    count("stores_replaced");
  }

  // "How far the school has got" from a birth, will or health: the tail beyond max_seen is
  // expected to arrive; the planner asks for it once it is due (open_due_tails).
  void announce(std::int64_t series, std::int64_t last_seq) {
    q("UPDATE series SET announced = GREATEST(announced, ?2) WHERE id = ?1 AND retired_ms IS NULL").bind_all(series, last_seq).run();
    refresh_tail(series);
  }
  void refresh_tail(std::int64_t series) {
    q("UPDATE series SET tail_since_ms = CASE WHEN announced > max_seen THEN COALESCE(tail_since_ms, ?2) ELSE NULL END "
      "WHERE id = ?1")
        .bind_all(series, now_)
        .run();
  }

  // ---- the ledger ----
  std::int64_t new_gap(std::int64_t series, std::int64_t from, std::int64_t to, const char* cause,
                       std::optional<std::int64_t> due) {
    auto& ins = q("INSERT INTO gap(series, from_seq, to_seq, cause, state, opened_ms, next_request_ms) VALUES "
                  "(?1, ?2, ?3, ?4, 'open', ?5, ?6) RETURNING id");
    ins.bind_all(series, from, to, cause, now_, due).step();
    const std::int64_t id = ins.int64(0);
    ins.run();
    count("gaps_opened");
    return id;
  }
  void add_piece(std::int64_t series, std::int64_t from, std::int64_t to, std::int64_t gap, const char* state,
                 const std::optional<std::string>& reason) {
    q("INSERT INTO gap_piece(series, from_seq, to_seq, gap, state, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind_all(series, from, to, gap, state, reason)
        .run();
  }
  void add_lost(std::int64_t gap, std::int64_t n, const std::string& reason) {
    q("UPDATE gap SET lost = lost + ?2, lost_reason = COALESCE(lost_reason, ?3) WHERE id = ?1").bind_all(gap, n, reason).run();
    count("seqs_lost", n);
  }
  // A gap is open while a piece of it is open, lost when only lost pieces remain, filled when none.
  void refresh_gap(std::int64_t gap) {
    q("UPDATE gap SET state = CASE "
      "WHEN EXISTS (SELECT 1 FROM gap_piece p WHERE p.gap = gap.id AND p.state = 'open') THEN 'open' "
      "WHEN EXISTS (SELECT 1 FROM gap_piece p WHERE p.gap = gap.id AND p.state = 'lost') THEN 'lost' ELSE 'filled' END, "
      "closed_ms = CASE WHEN EXISTS (SELECT 1 FROM gap_piece p WHERE p.gap = gap.id AND p.state = 'open') THEN NULL "
      "ELSE COALESCE(closed_ms, ?2) END WHERE id = ?1")
        .bind_all(gap, now_)
        .run();
  }

  struct Piece {
    std::int64_t from = 0, to = 0, gap = 0;
    std::string state, reason;
  };
  std::optional<Piece> piece_at(std::int64_t series, std::int64_t seq) {
    auto& s = q("SELECT from_seq, to_seq, gap, state, COALESCE(reason, '') FROM gap_piece WHERE series = ?1 AND "
                "from_seq <= ?2 ORDER BY from_seq DESC LIMIT 1");
    s.bind_all(series, seq);
    if (!s.step() || s.int64(1) < seq) return std::nullopt;
    return Piece{s.int64(0), s.int64(1), s.int64(2), s.text(3), s.text(4)};
  }
  // Takes [from, to] out of a piece that contains it; the rest of the piece stays as it was.
  void cut(std::int64_t series, const Piece& p, std::int64_t from, std::int64_t to) {
    q("DELETE FROM gap_piece WHERE series = ?1 AND from_seq = ?2").bind_all(series, p.from).run();
    std::optional<std::string> reason;
    if (!p.reason.empty()) reason = p.reason;
    if (p.from < from) add_piece(series, p.from, from - 1, p.gap, p.state.c_str(), reason);
    if (to < p.to) add_piece(series, to + 1, p.to, p.gap, p.state.c_str(), reason);
  }

  // Marks what is still open of [from, to] in the series lost; returns how many seqs.
  std::int64_t mark_lost(std::int64_t series, std::int64_t from, std::int64_t to, const std::string& reason, BatchResult&) {
    std::vector<Piece> pieces;
    {
      auto& s = q("SELECT from_seq, to_seq, gap FROM gap_piece WHERE series = ?1 AND state = 'open' AND to_seq >= ?2 "
                  "AND from_seq <= ?3 ORDER BY from_seq");
      s.bind_all(series, from, to);
      while (s.step()) pieces.push_back(Piece{s.int64(0), s.int64(1), s.int64(2), "open", ""});
    }
    std::int64_t n = 0;
    std::set<std::int64_t> touched;
    for (const auto& p : pieces) {
      const std::int64_t a = std::max(p.from, from), b = std::min(p.to, to);
      cut(series, p, a, b);
      add_piece(series, a, b, p.gap, "lost", reason);
      add_lost(p.gap, b - a + 1, reason);
      touched.insert(p.gap);
      n += b - a + 1;
    }
    for (auto g : touched) refresh_gap(g);
    return n;
  }

  // seq s of the series is now held (stored) or known lost (quarantined copy).
  // `stored`: 1 when a message of the series was stored with it (its count goes in the same update).
  void account(const SeriesRow& series, std::int64_t s, const std::optional<std::string>& lost_reason, BatchResult& r,
               int stored = 0) {
    if (stored)
      q("UPDATE series SET messages = messages + 1, max_seen = GREATEST(max_seen, ?2), announced = GREATEST(announced, ?2), "
        "tail_since_ms = CASE WHEN GREATEST(announced, ?2) > GREATEST(max_seen, ?2) THEN COALESCE(tail_since_ms, ?3) ELSE NULL END "
        "WHERE id = ?1")
          .bind_all(series.id, s, now_)
          .run();
    if (s > series.max_seen) {
      if (s > series.max_seen + 1) {
        std::int64_t g = new_gap(series.id, series.max_seen + 1, s - 1, "jump", now_ + policy_.reorder_grace.count());
        add_piece(series.id, series.max_seen + 1, s - 1, g, "open", std::nullopt);
        ++r.gaps_opened;
      }
      if (lost_reason) {
        std::int64_t g = new_gap(series.id, s, s, "quarantined", std::nullopt);
        add_piece(series.id, s, s, g, "lost", lost_reason);
        add_lost(g, 1, *lost_reason);
        refresh_gap(g);
        ++r.seqs_lost;
      }
      if (!stored) {
        q("UPDATE series SET max_seen = ?2, announced = GREATEST(announced, ?2) WHERE id = ?1").bind_all(series.id, s).run();
        refresh_tail(series.id);
      }
      return;
    }
    auto p = piece_at(series.id, s);
    if (!p) return;
    if (lost_reason) {
      if (p->state != "open") return;
      cut(series.id, *p, s, s);
      add_piece(series.id, s, s, p->gap, "lost", lost_reason);
      add_lost(p->gap, 1, *lost_reason);
      ++r.seqs_lost;
    } else {
      cut(series.id, *p, s, s);
      q("UPDATE gap SET filled = filled + 1 WHERE id = ?1").bind_all(p->gap).run();
      if (p->state == "lost") {
        q("UPDATE gap SET lost = lost - 1 WHERE id = ?1").bind_all(p->gap).run();
        count("seqs_lost", -1);
        count("late_arrivals");
      }
      count("seqs_filled");
      ++r.seqs_filled;
    }
    refresh_gap(p->gap);
  }

  // ---- messages ----
  void ingest_one(const Incoming& m, BatchResult& r) {
    touch_school(m);
    switch (m.kind) {
      case Kind::Report:
      case Kind::Event: ingest_seq(m, r); break;
      case Kind::State: ingest_state(m, r); break;
      case Kind::Health: ingest_health(m, r); break;
      case Kind::Reply: ingest_reply(m, r); break;
    }
  }

  void ingest_seq(const Incoming& m, BatchResult& r) {
    count("received");
    SeriesRow series = series_for(m.school, m.store_id);
    if (m.seq <= series.max_seen) {
      if (kept_copy(m, series, r)) return;
      if (!piece_at(series.id, m.seq)) {  // accounted before and pruned since: a late copy
        ++r.duplicates;
        count("duplicates");
        return;
      }
    }
    // Idempotent: a second collector on the same database (PostgreSQL) may store it first.
    auto& ins = q("INSERT INTO message(series, seq, kind, audit, ts, ts_ms, day, received_ms, resent, sha256, payload) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING");
    ins.bind_all(series.id, m.seq, kind_name(m.kind), m.audit, m.ts, m.ts_ms, m.day, now_, m.resent ? 1 : 0, m.sha256,
                 m.payload)
        .run();
    if (ins.changes() == 0) {
      kept_copy(m, series, r);
      return;
    }
    account(series, m.seq, std::nullopt, r, /*stored=*/1);
    ++r.stored;
    count("stored");
    count("held");
    if (m.kind == Kind::Report) project_report(m, series);
    else project_event(m, series.id);
  }

  // A copy of a seq the database holds: a duplicate (the same bytes, or the same JSON but for
  // "resent"), else a conflict kept aside. False when it holds no such seq.
  bool kept_copy(const Incoming& m, const SeriesRow& series, BatchResult& r) {
    auto& e = q(postgres() ? "SELECT sha256, payload FROM message WHERE series = ?1 AND seq = ?2 UNION ALL "
                             "SELECT sha256, payload FROM report_kept WHERE series = ?1 AND seq = ?2"
                           : "SELECT sha256, payload FROM message WHERE series = ?1 AND seq = ?2");
    e.bind_all(series.id, m.seq);
    if (!e.step()) return false;
    const std::string kept = e.text(0);
    if (kept == m.sha256 || same_envelope(e.text(1), m.payload)) {
      ++r.duplicates;
      count("duplicates");
      q("UPDATE series SET duplicates = duplicates + 1 WHERE id = ?1").bind_all(series.id).run();
      // Held, yet still in an open piece: another collector stored it while this one opened a
      // gap for it. The piece goes now.
      if (auto p = piece_at(series.id, m.seq); p && p->state == "open") {
        cut(series.id, *p, m.seq, m.seq);
        q("UPDATE gap SET filled = filled + 1 WHERE id = ?1").bind_all(p->gap).run();
        refresh_gap(p->gap);
      }
      return true;
    }
    q("INSERT INTO conflict(series, seq, received_ms, topic, sha256_kept, sha256_new, payload) VALUES "
      "(?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .bind_all(series.id, m.seq, now_, m.topic, kept, m.sha256, m.payload)
        .run();
    q("UPDATE series SET conflicts = conflicts + 1 WHERE id = ?1").bind_all(series.id).run();
    ++r.conflicts;
    count("conflicts");
    r.log.push_back("CONFLICT: " + m.school + " seq " + std::to_string(m.seq) + " arrived with other bytes than the "
                    "copy kept (sha256 " + kept.substr(0, 12) + " kept, " + m.sha256.substr(0, 12) +
                    " aside in the conflict table)");
    return true;
  }

  void ingest_state(const Incoming& m, BatchResult& r) {
    ++r.states;
    count("states");
    const Json& b = m.body;
    const bool online = b["online"].get<bool>();
    const std::int64_t session = b["session"].get<std::int64_t>();
    const std::int64_t last_seq = b["last_seq"].get<std::int64_t>();
    const std::string reason = b.contains("reason") && b["reason"].is_string() ? b["reason"].get<std::string>() : "";
    auto& s = q("SELECT online, session, COALESCE(last_seen_ms, 0) FROM school WHERE school = ?1");
    s.bind_all(m.school);
    s.step();
    const bool known_online = !s.is_null(0), known_session = !s.is_null(1);
    const std::int64_t prev_online = known_online ? s.int64(0) : -1, prev_session = known_session ? s.int64(1) : 0;
    const std::int64_t last_seen = s.int64(2);
    if (known_session && session < prev_session) {
      // A will (or a retained birth) of an earlier connection: the agent answers a stale will
      // with a new birth; the county only notes it.
      if (!online) ++r.stale_wills, count("stale_wills");
      return;
    }
    if (online) switch_store(m.school, m.store_id, b.value("store", Json()), r);
    // A will or a stop names no store: it speaks of the current one (none yet: nothing to announce).
    std::optional<SeriesRow> series;
    if (!m.store_id.empty()) series = series_for(m.school, m.store_id);
    else series = current_series(m.school);
    if (series && !series->retired) announce(series->id, last_seq);
    const bool changed = !known_online || (prev_online != 0) != online || !known_session || prev_session != session;
    // When it went offline: a clean stop says so; a will was made at connect time, so the
    // last thing heard from the school is the better estimate.
    const std::int64_t at = online || reason == "stopped" ? m.ts_ms : std::max(m.ts_ms, last_seen);
    q("UPDATE school SET online = ?2, session = ?3, state_at_ms = CASE WHEN ?4 = 1 THEN ?5 ELSE state_at_ms END, "
      "state_reason = ?6, version = COALESCE(?7, version) WHERE school = ?1")
        .bind_all(m.school, online ? 1 : 0, session, changed ? 1 : 0, at, reason.empty() ? std::optional<std::string>() : reason,
                  b.contains("version") && b["version"].is_string() ? std::optional<std::string>(b["version"]) : std::nullopt)
        .run();
    if (changed)
      q("INSERT INTO state_change(school, at_ms, online, session, reason, store_id, last_seq, received_ms) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
          .bind_all(m.school, at, online ? 1 : 0, session, reason.empty() ? std::optional<std::string>() : reason,
                    series ? std::optional<std::string>(series->store_id) : std::nullopt, last_seq, now_)
          .run();
  }

  void ingest_health(const Incoming& m, BatchResult& r) {
    ++r.health;
    count("health");
    const Json& b = m.body;
    switch_store(m.school, m.store_id, b.value("store", Json()), r);
    SeriesRow series = series_for(m.school, m.store_id);
    const Json& outbox = b["outbox"];
    if (!series.retired) announce(series.id, outbox["last_seq"].get<std::int64_t>());
    const Json mqtt = b.value("mqtt", Json::object());
    record_takeovers(m, b, mqtt);
    q("UPDATE school SET health = ?2, health_at_ms = ?3, outbox_depth = ?4, version = COALESCE(?5, version) "
      "WHERE school = ?1")
        .bind_all(m.school, b.dump(), now_, outbox["depth"].get<std::int64_t>(),
                  b.contains("version") && b["version"].is_string() ? std::optional<std::string>(b["version"]) : std::nullopt)
        .run();
    auto& last = q("SELECT MAX(at_ms) FROM health_sample WHERE school = ?1");
    last.bind_all(m.school);
    const bool due = !last.step() || last.is_null(0) || now_ - last.int64(0) >= retention_.health_every.count();
    if (due)
      q("INSERT INTO health_sample(school, at_ms, outbox_depth, oldest_unsent_age_s, last_seq, rss_bytes, reconnects, "
        "buffer_full) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING")
          .bind_all(m.school, now_, opt_int(outbox["depth"]), opt_int(outbox.value("oldest_unsent_age_s", Json())),
                    opt_int(outbox["last_seq"]), opt_int(b.value("rss_bytes", Json())),
                    opt_int(mqtt.is_object() ? mqtt.value("reconnects", Json()) : Json()),
                    opt_int(b.value("buffer_full", Json())))
          .run();
  }

  // The agent counts the sessions the broker said were taken over (DISCONNECT 0x8E: another
  // client connected with its client id) since it started (health.mqtt.takeovers). Each rise
  // within one run of the agent, and any count after it restarted (its uptime went back), is a
  // takeover the county records as an event of the school.
  void record_takeovers(const Incoming& m, const Json& b, const Json& mqtt) {
    if (!mqtt.is_object() || !mqtt.contains("takeovers") || !mqtt["takeovers"].is_number_integer()) return;
    const std::int64_t reported = mqtt["takeovers"].get<std::int64_t>();
    const std::optional<std::int64_t> uptime = opt_int(b.value("uptime_s", Json()));
    auto& s = q("SELECT agent_takeovers, agent_uptime_s, COALESCE(session, 0) FROM school WHERE school = ?1");
    s.bind_all(m.school);
    if (!s.step()) return;
    const std::int64_t before = s.int64(0), session = s.int64(2);
    const bool restarted = uptime && !s.is_null(1) && *uptime < s.int64(1);
    const std::int64_t fresh = restarted ? reported : std::max<std::int64_t>(0, reported - before);
    q("UPDATE school SET agent_takeovers = ?2, agent_uptime_s = ?3, takeovers = takeovers + ?4 WHERE school = ?1")
        .bind_all(m.school, reported, uptime, fresh)
        .run();
    if (fresh == 0) return;
    count("takeovers", fresh);
    const std::string when = mqtt.contains("last_takeover") && mqtt["last_takeover"].is_string()
                                 ? mqtt["last_takeover"].get<std::string>() : m.ts;
    auto at = parse_rfc3339(when);
    q("INSERT INTO state_change(school, at_ms, online, session, reason, store_id, last_seq, received_ms) VALUES "
      "(?1, ?2, 0, ?3, 'taken_over', ?4, NULL, ?5)")
        .bind_all(m.school, at ? ms_of(*at) : m.ts_ms, session, m.store_id, now_)
        .run();
  }

  void ingest_reply(const Incoming& m, BatchResult& r) {
    if (m.requester != policy_.requester || !m.correlation) {
      ++r.ignored;
      return;
    }
    auto& s = q("SELECT id, series, from_seq, to_seq, outcome FROM resend_request WHERE correlation = ?1");
    s.bind_all(*m.correlation);
    if (!s.step()) {
      ++r.ignored;
      return;
    }
    const std::int64_t id = s.int64(0), series = s.int64(1), from = s.int64(2), to = s.int64(3);
    ++r.replies;
    count("replies");
    const Json& b = m.body;
    std::string outcome = "answered";
    if (b["ok"] == true) {
      const Json res = b.value("result", Json::object());
      if (res.contains("missing") && res["missing"].is_array())
        for (const auto& range : res["missing"]) {
          if (!range.is_array() || range.size() != 2 || !range[0].is_number_integer() || !range[1].is_number_integer())
            continue;
          const std::int64_t a = std::max(from, range[0].get<std::int64_t>()), z = std::min(to, range[1].get<std::int64_t>());
          if (a > z) continue;
          std::int64_t n = mark_lost(series, a, z,
                                     "no_longer_held: the school's agent no longer holds seq " + std::to_string(a) + ".." +
                                         std::to_string(z) + " (pruned after delivery, buffer.keep_sent)",
                                     r);
          r.seqs_lost += static_cast<int>(n);
          if (n > 0)
            r.log.push_back(m.school + ": seq " + std::to_string(a) + ".." + std::to_string(z) +
                            " no longer held by the school: " + std::to_string(n) + " seq(s) lost");
        }
      if (res.contains("not_yet_produced") && res["not_yet_produced"].is_array() && res["not_yet_produced"].size() == 2 &&
          res["not_yet_produced"][0].is_number_integer()) {
        const std::int64_t a = std::max(from, res["not_yet_produced"][0].get<std::int64_t>());
        std::int64_t n = mark_lost(series, a, to,
                                   "not_produced: the school's store ends at seq " +
                                       std::to_string(res.value("last_seq", std::int64_t{0})) +
                                       " (restored from an older copy?); these seqs may come again with other content",
                                   r);
        r.seqs_lost += static_cast<int>(n);
      }
      if (res.value("failed", 0) > 0 || res.contains("stopped")) outcome = "partial";
    } else {
      outcome = "error:" + b.value("error", Json::object()).value("code", std::string("?"));
    }
    q("UPDATE resend_request SET outcome = ?2, reply_ms = ?3, reply = ?4 WHERE id = ?1 AND outcome IS NULL")
        .bind_all(id, outcome, now_, b.dump())
        .run();
    // The copies came before the reply (the agent answers once the broker has them all). What
    // is still open of the range was dropped on the way: ask again after the backoff. When the
    // range is settled, the rest of its gaps is asked for at once.
    auto& open = q("SELECT COUNT(*) FROM gap_piece WHERE series = ?1 AND state = 'open' AND to_seq >= ?2 AND from_seq <= ?3");
    open.bind_all(series, from, to);
    if (open.step() && open.int64(0) > 0) {
      retry_later(series, from, to, policy_);
    } else {
      q("UPDATE gap SET next_request_ms = ?4, backoff_step = 0 WHERE series = ?1 AND state = 'open' AND to_seq >= ?2 AND "
        "from_seq <= ?3")
          .bind_all(series, from, to, now_)
          .run();
    }
  }

  // ---- projections: the history the plan is measured by ----
  // The figures of one report the plan needs, from its summary (see plan.hpp): fiber coverage per
  // room type, recording compliant/total, open/overdue cases, and whether its target is met.
  struct Figures {
    std::optional<double> a, b, c;       // fiber: classroom, function room, office coverage
    std::optional<std::int64_t> n1, n2;  // recording: compliant, total; attendance: open, overdue
    std::optional<std::int64_t> met;     // the audit's target: 1, 0, or unknown
  };
  static Figures figures_of(const std::string& audit, const Json& summary) {
    Figures f;
    auto num = [&](const Json& obj, const char* k) -> std::optional<double> {
      return obj.is_object() ? opt_real(obj.value(k, Json())) : std::nullopt;
    };
    if (audit == "fiber") {
      f.a = num(summary.value("classroom", Json()), "coverage");
      f.b = num(summary.value("function_room", Json()), "coverage");
      f.c = num(summary.value("office", Json()), "coverage");
      f.met = opt_int(plan::fiber_target(summary));
    } else if (audit == "recording") {
      f.n1 = opt_int(summary.value("compliant", Json()));
      f.n2 = opt_int(summary.value("classrooms", Json()));
      f.met = opt_int(plan::recording_target(summary));
    } else if (audit == "attendance") {
      f.n1 = opt_int(summary.value("open", Json()));
      f.n2 = opt_int(summary.value("overdue", Json()));
      f.met = opt_int(plan::attendance_target(summary.value("open", Json())));
    }
    return f;
  }

  // The latest report of an audit (report_latest), and the last of each day (report_daily):
  // newer by (ts, seq) within a series; a report of the school's current series also replaces
  // one of a store it replaced. Staged per batch, written by flush_batch: a batch holds many
  // reports of one school and audit, and only the newest changes anything.
  struct Candidate {
    std::int64_t series = 0, seq = 0, ts_ms = 0;
    std::string ts, summary;
    bool current = false;
    Figures figures;
    bool newer_than(const Candidate& o) const {
      return (current && series != o.series) || ts_ms > o.ts_ms || (ts_ms == o.ts_ms && seq > o.seq);
    }
  };
  using StageKey = std::tuple<std::string, std::string, std::string>;  // school, audit, day ("" for latest)
  static void stage(std::map<StageKey, Candidate>& staged, StageKey key, const Candidate& c) {
    auto [it, added] = staged.try_emplace(std::move(key), c);
    if (!added && c.newer_than(it->second)) it->second = c;
  }

  void project_report(const Incoming& m, const SeriesRow& series) {
    const Json& summary = m.body["summary"];
    Candidate c;
    c.series = series.id, c.seq = m.seq, c.ts_ms = m.ts_ms, c.ts = m.ts, c.summary = summary.dump();
    c.current = series.current;
    if (m.audit == "fiber" || m.audit == "recording" || m.audit == "attendance") c.figures = figures_of(m.audit, summary);
    if (m.audit == "attendance" && summary.contains("open_cases") && summary["open_cases"].is_array())
      reconcile_cases(m, series.id, summary["open_cases"]);
    // Last: nothing after this can fail and roll the message back while its report stays staged.
    stage(latest_, {m.school, m.audit, ""}, c);
    stage(daily_, {m.school, m.audit, m.day}, c);
  }

  // Writes what the batch staged: when each school was last heard from, the latest and daily
  // reports, and the daily rows of the plan for the days they change.
  void flush_batch() {
    for (const auto& [school, t] : touched_)
      q("UPDATE school SET last_received_ms = ?2, "
        "last_seen = CASE WHEN last_seen_ms IS NULL OR ?3 > last_seen_ms THEN ?4 ELSE last_seen END, "
        "last_seen_ms = GREATEST(COALESCE(last_seen_ms, 0), ?3) WHERE school = ?1")
          .bind_all(school, now_, t.ts_ms, t.ts)
          .run();
    touched_.clear();
    for (const auto& [key, c] : latest_)
      q("INSERT INTO report_latest(school, audit, series, seq, ts, ts_ms, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
        "ON CONFLICT(school, audit) DO UPDATE SET series = excluded.series, seq = excluded.seq, ts = excluded.ts, "
        "ts_ms = excluded.ts_ms, summary = excluded.summary WHERE (?8 = 1 AND excluded.series <> report_latest.series) OR "
        "excluded.ts_ms > report_latest.ts_ms OR (excluded.ts_ms = report_latest.ts_ms AND excluded.seq > report_latest.seq)")
          .bind_all(std::get<0>(key), std::get<1>(key), c.series, c.seq, c.ts, c.ts_ms, c.summary, c.current ? 1 : 0)
          .run();
    latest_.clear();
    std::set<std::pair<std::string, std::string>> days;  // (school, day) whose plan row changes
    for (const auto& [key, c] : daily_) {
      const auto& [school, audit, day] = key;
      auto& d = q("INSERT INTO report_daily(school, audit, day, series, seq, ts, ts_ms, summary, fa, fb, fc, n1, n2, met) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11, ?12, ?13, ?14, ?15) "
                  "ON CONFLICT(school, audit, day) DO UPDATE SET series = excluded.series, seq = excluded.seq, "
                  "ts = excluded.ts, ts_ms = excluded.ts_ms, summary = excluded.summary, fa = excluded.fa, "
                  "fb = excluded.fb, fc = excluded.fc, n1 = excluded.n1, n2 = excluded.n2, met = excluded.met "
                  "WHERE (?9 = 1 AND excluded.series <> report_daily.series) OR excluded.ts_ms > report_daily.ts_ms OR "
                  "(excluded.ts_ms = report_daily.ts_ms AND excluded.seq > report_daily.seq)");
      d.bind_all(school, audit, day, c.series, c.seq, c.ts, c.ts_ms, c.summary, c.current ? 1 : 0);
      d.bind_real(10, c.figures.a).bind_real(11, c.figures.b).bind_real(12, c.figures.c);
      d.bind(13, c.figures.n1).bind(14, c.figures.n2).bind(15, c.figures.met);
      d.run();
      if (d.changes() == 0 || (audit != "fiber" && audit != "recording" && audit != "attendance")) continue;
      // This day, and the following days that have no report of this audit of their own (they
      // carry this one forward).
      days.emplace(school, day);
      auto& nx = q("SELECT MIN(day) FROM report_daily WHERE school = ?1 AND audit = ?2 AND day > ?3");
      nx.bind_all(school, audit, day);
      const std::string until = nx.step() && !nx.is_null(0) ? nx.text(0) : std::string("9999-12-31");
      auto& later = q("SELECT day FROM school_day WHERE school = ?1 AND day > ?2 AND day < ?3");
      later.bind_all(school, day, until);
      while (later.step()) days.emplace(school, later.text(0));
    }
    daily_.clear();
    for (const auto& [school, day] : days) write_school_day(school, day);
  }

  // The plan's figures for one school and day, from each audit's last report on or before it.
  void write_school_day(const std::string& school, const std::string& day) {
    Figures fiber, rec, att;
    // Each audit's row is one probe of the key (school, audit, day): the cost does not grow with
    // the years of history (a correlated MAX over every day of the school did, and the commit
    // rate fell from ~10,000 to ~1,000 msg/s over three years of 300 schools).
    auto& s = q("SELECT * FROM (SELECT audit, fa, fb, fc, n1, n2, met FROM report_daily WHERE school = ?1 AND "
                "audit = 'fiber' AND day <= ?2 ORDER BY day DESC LIMIT 1) AS f UNION ALL "
                "SELECT * FROM (SELECT audit, fa, fb, fc, n1, n2, met FROM report_daily WHERE school = ?1 AND "
                "audit = 'recording' AND day <= ?2 ORDER BY day DESC LIMIT 1) AS r UNION ALL "
                "SELECT * FROM (SELECT audit, fa, fb, fc, n1, n2, met FROM report_daily WHERE school = ?1 AND "
                "audit = 'attendance' AND day <= ?2 ORDER BY day DESC LIMIT 1) AS a");
    s.bind_all(school, day);
    bool have_fiber = false, have_rec = false, have_att = false;
    while (s.step()) {
      Figures f;
      if (!s.is_null(1)) f.a = s.real(1);
      if (!s.is_null(2)) f.b = s.real(2);
      if (!s.is_null(3)) f.c = s.real(3);
      if (!s.is_null(4)) f.n1 = s.int64(4);
      if (!s.is_null(5)) f.n2 = s.int64(5);
      if (!s.is_null(6)) f.met = s.int64(6);
      const std::string audit = s.text(0);
      if (audit == "fiber") fiber = f, have_fiber = true;
      else if (audit == "recording") rec = f, have_rec = true;
      else att = f, have_att = true;
    }
    auto met = [](bool have, const Figures& f) { return have && f.met ? Json(*f.met != 0) : Json(nullptr); };
    const Json digital = plan::digital_campus(met(have_fiber, fiber), met(have_rec, rec), met(have_att, att));
    auto& w = q("INSERT INTO school_day(school, day, fiber_classroom, fiber_function_room, fiber_office, fiber_met, "
                "recording_compliant, recording_total, recording_met, cases_open, cases_overdue, attendance_met, "
                "digital_campus) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT(school, day) "
                "DO UPDATE SET fiber_classroom = excluded.fiber_classroom, fiber_function_room = "
                "excluded.fiber_function_room, fiber_office = excluded.fiber_office, fiber_met = excluded.fiber_met, "
                "recording_compliant = excluded.recording_compliant, recording_total = excluded.recording_total, "
                "recording_met = excluded.recording_met, cases_open = excluded.cases_open, cases_overdue = "
                "excluded.cases_overdue, attendance_met = excluded.attendance_met, digital_campus = excluded.digital_campus");
    w.bind(1, school).bind(2, day);
    w.bind_real(3, fiber.a).bind_real(4, fiber.b).bind_real(5, fiber.c).bind(6, fiber.met);
    w.bind(7, rec.n1).bind(8, rec.n2).bind(9, rec.met);
    w.bind(10, att.n1).bind(11, att.n2).bind(12, att.met);
    w.bind(13, opt_int(digital));
    w.run();
  }

  void upsert_case(const std::string& school, std::int64_t series, const Json& c, std::int64_t seq, const std::string& ts) {
    if (!c.is_object() || !c.contains("id") || !c["id"].is_string()) return;
    const Json details = c.value("details", Json::object());
    const std::optional<std::int64_t> overdue =
        details.is_object() && details.contains("overdue") ? opt_int(details["overdue"]) : std::nullopt;
    auto str = [&](const char* k) -> std::optional<std::string> {
      if (!c.contains(k) || !c[k].is_string() || c[k].get<std::string>().empty()) return std::nullopt;
      return c[k].get<std::string>();
    };
    q("INSERT INTO absence_case(school, series, case_id, subject, stage, outcome, opened_at, closed_at, overdue, details, "
      "last_seq, updated_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
      "ON CONFLICT(school, series, case_id) DO UPDATE SET subject = excluded.subject, stage = excluded.stage, "
      "outcome = excluded.outcome, opened_at = COALESCE(excluded.opened_at, absence_case.opened_at), "
      "closed_at = excluded.closed_at, overdue = excluded.overdue, details = excluded.details, "
      "last_seq = excluded.last_seq, updated_ts = excluded.updated_ts WHERE excluded.last_seq > absence_case.last_seq")
        .bind_all(school, series, c["id"].get<std::string>(), str("subject"), str("stage").value_or("open"), str("outcome"),
                  str("opened_at"), str("closed_at"), overdue, details.dump(), seq, ts)
        .run();
    if (c.contains("steps") && c["steps"].is_array()) {
      std::int64_t idx = 0;
      for (const auto& st : c["steps"]) {
        if (!st.is_object()) continue;
        auto sv = [&](const char* k) { return st.contains(k) && st[k].is_string() ? st[k].get<std::string>() : std::string(); };
        q("INSERT INTO case_step(school, series, case_id, idx, at, action, actor, note, seq) VALUES "
          "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING")
            .bind_all(school, series, c["id"].get<std::string>(), idx++, sv("at"), sv("action"), sv("actor"), sv("note"), seq)
            .run();
      }
    }
  }

  void project_event(const Incoming& m, std::int64_t series) {
    const Json& b = m.body;
    if (b.contains("case") && b["case"].is_object()) upsert_case(m.school, series, b["case"], m.seq, m.ts);
  }

  // The attendance report lists the open cases: one the county has as open that is no longer
  // among them was closed by an event the county has not (yet) received.
  void reconcile_cases(const Incoming& m, std::int64_t series, const Json& open_cases) {
    std::set<std::string> open;
    for (const auto& c : open_cases) {
      if (!c.is_object() || !c.contains("case") || !c["case"].is_string()) continue;
      open.insert(c["case"].get<std::string>());
      // Only when the county has nothing newer for it (an event of a later seq wins).
      q("INSERT INTO absence_case(school, series, case_id, subject, stage, opened_at, overdue, details, last_seq, updated_ts) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(school, series, case_id) DO UPDATE SET "
        "stage = excluded.stage, overdue = excluded.overdue, details = excluded.details, last_seq = excluded.last_seq, "
        "updated_ts = excluded.updated_ts WHERE excluded.last_seq > absence_case.last_seq")
          .bind_all(m.school, series, c["case"].get<std::string>(),
                    c.contains("student") && c["student"].is_string() ? std::optional<std::string>(c["student"]) : std::nullopt,
                    c.value("stage", std::string("open")),
                    c.contains("opened_at") && c["opened_at"].is_string() ? std::optional<std::string>(c["opened_at"]) : std::nullopt,
                    opt_int(c.value("overdue", Json())), c.dump(), m.seq, m.ts)
          .run();
    }
    std::vector<std::string> gone;
    auto& s = q("SELECT case_id FROM absence_case WHERE school = ?1 AND series = ?2 AND stage <> 'closed' AND last_seq < ?3");
    s.bind_all(m.school, series, m.seq);
    while (s.step())
      if (!open.count(s.text(0))) gone.push_back(s.text(0));
    for (const auto& id : gone)
      q("UPDATE absence_case SET stage = 'closed', outcome = COALESCE(outcome, 'unknown'), last_seq = ?4, updated_ts = ?5 "
        "WHERE school = ?1 AND series = ?2 AND case_id = ?3")
          .bind_all(m.school, series, id, m.seq, m.ts)
          .run();
  }

  void quarantine(const Quarantined& qm, BatchResult& r) {
    ++r.quarantined;
    count("quarantined");
    q("INSERT INTO quarantine(received_ms, topic, school, kind, reason, detail, size, payload) VALUES "
      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        .bind_all(now_, qm.topic, qm.school, qm.kind, qm.reason, qm.detail, static_cast<std::int64_t>(qm.size))
        .bind_blob(8, qm.payload)  // bad input as it came: bytes, not text (PostgreSQL refuses non-UTF-8 text)
        .run();
    // A report or event the collector can never take is accounted as lost, so the repair does
    // not ask for it again and again.
    if (qm.seq && !qm.school.empty()) {
      q("INSERT INTO school(school, first_seen_ms) VALUES (?1, ?2) ON CONFLICT(school) DO NOTHING").bind_all(qm.school, now_).run();
      SeriesRow series = series_for(qm.school, qm.store_id);
      account(series, *qm.seq, "quarantined: " + qm.reason + ": " + qm.detail, r);
    }
  }

  // ---- repair planning ----
  // What is still open of [from, to] is asked for again after the gap's backoff, counted from
  // `since_ms` (now, or the deadline of a request that timed out).
  void retry_later(std::int64_t series, std::int64_t from, std::int64_t to, const RepairPolicy& policy,
                   std::optional<std::int64_t> since_ms = std::nullopt) {
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<std::pair<std::int64_t, int>> gaps;
    {
      auto& s = q("SELECT DISTINCT g.id, g.backoff_step FROM gap g JOIN gap_piece p ON p.gap = g.id WHERE "
                  "p.series = ?1 AND p.state = 'open' AND p.to_seq >= ?2 AND p.from_seq <= ?3");
      s.bind_all(series, from, to);
      while (s.step()) gaps.emplace_back(s.int64(0), static_cast<int>(s.int64(1)));
    }
    for (auto [g, step] : gaps)
      q("UPDATE gap SET next_request_ms = ?2, backoff_step = ?3 WHERE id = ?1")
          .bind_all(g, since_ms.value_or(now_) + backoff_delay(policy.backoff_min, policy.backoff_max, step, u(rng_)).count(),
                    step + 1)
          .run();
  }

  void expire_requests(const RepairPolicy& policy) {
    std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t>> expired;
    {
      auto& s = q("SELECT id, series, from_seq, to_seq, deadline_ms FROM resend_request WHERE outcome IS NULL AND "
                  "deadline_ms <= ?1");
      s.bind_all(now_);
      while (s.step()) expired.emplace_back(s.int64(0), s.int64(1), s.int64(2), s.int64(3), s.int64(4));
    }
    for (auto [id, series, from, to, deadline] : expired) {
      q("UPDATE resend_request SET outcome = 'timeout', reply_ms = ?2 WHERE id = ?1").bind_all(id, now_).run();
      count("requests_timed_out");
      retry_later(series, from, to, policy, deadline);
    }
  }

  // A tail (seqs announced by a birth or health, not received) becomes a gap when it has
  // waited the reorder grace and the school's outbox is empty (its health says so), or when it
  // has waited tail_wait_max whatever the outbox says.
  void open_due_tails(const RepairPolicy& policy) {
    std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>> due;
    {
      auto& s = q("SELECT r.id, r.max_seen, r.announced FROM series r JOIN school c ON c.current_series = r.id WHERE "
                  "r.retired_ms IS NULL AND r.tail_since_ms IS NOT NULL AND r.announced > r.max_seen AND "
                  "r.tail_since_ms + ?2 <= ?1 AND ((c.outbox_depth = 0 AND c.health_at_ms >= r.tail_since_ms) OR "
                  "r.tail_since_ms + ?3 <= ?1)");
      s.bind_all(now_, policy.reorder_grace.count(), policy.tail_wait_max.count());
      while (s.step()) due.emplace_back(s.int64(0), s.int64(1), s.int64(2));
    }
    for (auto [series, max_seen, announced] : due) {
      std::int64_t g = new_gap(series, max_seen + 1, announced, "tail", now_);
      add_piece(series, max_seen + 1, announced, g, "open", std::nullopt);
      q("UPDATE series SET max_seen = ?2, tail_since_ms = NULL WHERE id = ?1").bind_all(series, announced).run();
    }
  }

  void claim_requests(const RepairPolicy& policy, std::vector<ResendRequest>& out) {
    const std::int64_t in_flight = db_->scalar_int("SELECT COUNT(*) FROM resend_request WHERE outcome IS NULL");
    std::int64_t room = policy.max_schools - in_flight;
    if (room <= 0) return;
    // Online schools without a request in flight whose current series has a due open gap,
    // the longest-waiting first.
    std::vector<std::tuple<std::string, std::int64_t, std::string>> schools;
    {
      auto& s = q("SELECT c.school, r.id, r.store_id, MIN(g.next_request_ms) AS due FROM school c JOIN series r ON "
                  "r.id = c.current_series JOIN gap g ON g.series = r.id WHERE c.online = 1 AND g.state = 'open' AND "
                  "g.next_request_ms <= ?1 AND NOT EXISTS (SELECT 1 FROM resend_request x WHERE x.school = c.school "
                  "AND x.outcome IS NULL) GROUP BY c.school, r.id, r.store_id ORDER BY due LIMIT ?2");
      s.bind_all(now_, room);
      while (s.step()) schools.emplace_back(s.text(0), s.int64(1), s.text(2));
    }
    for (const auto& [school, series, store] : schools) {
      // One request: from the first open piece of a due gap, as far as max_range allows over
      // the open pieces that follow (what lies between is sent again and dropped as duplicates).
      std::vector<std::pair<std::int64_t, std::int64_t>> pieces;
      {
        auto& s = q("SELECT p.from_seq, p.to_seq FROM gap_piece p JOIN gap g ON g.id = p.gap WHERE p.series = ?1 AND "
                    "p.state = 'open' AND g.next_request_ms <= ?2 ORDER BY p.from_seq LIMIT 1");
        s.bind_all(series, now_);
        if (!s.step()) continue;
        pieces.emplace_back(s.int64(0), s.int64(1));
      }
      const std::int64_t from = pieces[0].first;
      std::int64_t to = std::min(pieces[0].second, from + policy.max_range - 1);
      {
        auto& s = q("SELECT from_seq, to_seq FROM gap_piece WHERE series = ?1 AND state = 'open' AND from_seq > ?2 AND "
                    "from_seq <= ?3 ORDER BY from_seq");
        s.bind_all(series, to, from + policy.max_range - 1);
        while (s.step()) to = std::min(s.int64(1), from + policy.max_range - 1);
      }
      ResendRequest req;
      req.school = school;
      req.store_id = store;
      req.from_seq = from;
      req.to_seq = to;
      std::uniform_int_distribution<std::uint64_t> d;
      char corr[48];
      std::snprintf(corr, sizeof corr, "resend-%016llx", static_cast<unsigned long long>(d(rng_)));
      req.correlation = corr;
      auto& ins = q("INSERT INTO resend_request(school, series, from_seq, to_seq, correlation, sent_ms, deadline_ms) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id");
      ins.bind_all(school, series, from, to, req.correlation, now_, now_ + policy.request_timeout.count()).step();
      req.id = ins.int64(0);
      ins.run();
      q("UPDATE gap SET requests = requests + 1, last_request_ms = ?4, next_request_ms = ?5 WHERE series = ?1 AND "
        "state = 'open' AND to_seq >= ?2 AND from_seq <= ?3")
          .bind_all(series, from, to, now_, now_ + policy.request_timeout.count())
          .run();
      count("requests");
      out.push_back(std::move(req));
    }
  }

  // ---- reading helpers ----
  static std::int64_t day_start_ms(const std::string& day) {
    auto t = parse_rfc3339(day + "T00:00:00Z");
    return t ? ms_of(*t) : 0;
  }
  static std::string next_month(const std::string& m) {
    int y = std::stoi(m.substr(0, 4)), mo = std::stoi(m.substr(5, 2)) + 1;
    if (mo > 12) mo = 1, ++y;
    char b[24];
    std::snprintf(b, sizeof b, "%04d-%02d", y, mo);
    return b;
  }
  // Online time over the states recorded since `since_ms`, up to now.
  Json uptime(const std::string& school, std::int64_t since_ms) {
    auto& s = prepared("SELECT at_ms, online FROM state_change WHERE school = ?1 ORDER BY at_ms, id");
    s.bind_all(school);
    const std::int64_t now = ms_of(std::chrono::system_clock::now());
    std::optional<std::int64_t> start;
    std::optional<bool> online;
    std::int64_t up = 0, total = 0, last = 0;
    while (s.step()) {
      std::int64_t at = std::max(s.int64(0), since_ms);
      if (online) {
        if (*online) up += std::max<std::int64_t>(0, at - last);
        total += std::max<std::int64_t>(0, at - last);
      }
      if (!start) start = at;
      online = s.int64(1) != 0;
      last = at;
    }
    if (online) {
      if (*online) up += std::max<std::int64_t>(0, now - last);
      total += std::max<std::int64_t>(0, now - last);
    }
    return {{"since", start ? Json(utc_text(*start)) : Json(nullptr)}, {"online_s", up / 1000}, {"observed_s", total / 1000},
            {"share", total > 0 ? Json(std::round(10000.0 * up / total) / 10000) : Json(nullptr)}};
  }

  std::unique_ptr<Connection> db_;
  bool read_only_;
  Retention retention_;
  RepairPolicy policy_;
  std::int64_t now_ = 0;
  std::map<std::string, std::int64_t> counters_;
  struct Touched {
    std::int64_t ts_ms = 0;
    std::string ts;
  };
  std::map<std::string, Touched> touched_;  // the batch's schools: the newest ts heard
  std::map<std::tuple<std::string, std::string, std::string>, Candidate> latest_, daily_;
  std::map<const char*, std::unique_ptr<Statement>> stmts_;
  std::map<std::string, std::unique_ptr<Statement>> texts_;
  std::mt19937_64 rng_;
};

}  // namespace

namespace {

// Creates or migrates the schema (or, read-only, checks it). `where` names the database in errors.
Status migrate(Connection& db, bool read_only, const std::string& where) {
  const bool pg = db.engine() == sql::Engine::Postgres;
  auto has_meta = [&] {
    return db.scalar_int(pg ? "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() "
                              "AND table_name = 'meta'"
                            : "SELECT COUNT(*) FROM sqlite_master WHERE name = 'meta'") > 0;
  };
  auto current_version = [&] {
    return has_meta() ? static_cast<int>(db.scalar_int("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"))
                      : 0;
  };
  const bool empty = pg ? !has_meta() : db.scalar_int("SELECT COUNT(*) FROM sqlite_master") == 0;
  int version = 0;
  if (!empty) {
    if (!has_meta() || db.scalar_text("SELECT value FROM meta WHERE key = 'application'") != kApplication)
      return Error{where, "not a campus-county database",
                   pg ? "give the collector a database of its own" : "point the collector at its own county.db, or move this file aside"};
    version = current_version();
  }
  const int latest = schema_version();
  if (version > latest)
    return Error{where, "schema version " + std::to_string(version) + " is newer than this campus-county knows (" +
                            std::to_string(latest) + ")",
                 "upgrade campus-county (and campusctl)"};
  if (version == latest) return {};
  if (read_only)
    return Error{where, "schema version " + std::to_string(version) + ", this campusctl reads " + std::to_string(latest),
                 "start campus-county once (it migrates the database), or use the matching campusctl"};
  for (int v = version; v < latest; ++v) {
    Transaction tx(db);
    // Two collectors starting at once on one PostgreSQL: one migrates, the other waits and sees it done.
    if (pg) db.exec("SELECT pg_advisory_xact_lock(7420001)");
    const int now = current_version();
    if (now > v) continue;
    db.exec(migration(v, db.engine()));
    if (v == 0) db.exec(std::string("INSERT INTO meta(key, value) VALUES ('application', '") + kApplication + "')");
    db.exec("INSERT INTO meta(key, value) VALUES ('schema_version', '" + std::to_string(v + 1) +
            "') ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    tx.commit();
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<CountyDatabase>> open_sqlite(const std::filesystem::path& file, const DatabaseOptions& o) {
  const std::string where = file.string();
  try {
    std::unique_ptr<Connection> db;
    if (o.read_only) {
      if (std::error_code ec; !std::filesystem::exists(file, ec))
        return Error{where, "no such database", "point [county] db (or --db) at the collector's county.db"};
      db = sql::open_sqlite(where, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    } else {
      // Created 0640 by us (the collector's group may read it: campusctl on the county box).
      if (std::error_code ec; !std::filesystem::exists(file, ec)) {
        int fd = ::open(where.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
        if (fd < 0 && errno != EEXIST)
          return Error{where, std::string("cannot create the database: ") + std::strerror(errno),
                       "check that the directory exists and the collector's user may write it"};
        if (fd >= 0) ::close(fd);
      }
      // One thread uses the connection (the collector's database thread): no SQLite mutexes.
      db = sql::open_sqlite(where, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
    }
    db->exec("PRAGMA busy_timeout = 5000");
    if (!o.read_only) {
      db->exec("PRAGMA journal_mode = WAL");
      db->exec(o.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
      db->exec("PRAGMA journal_size_limit = 67108864");
    }
    if (auto st = migrate(*db, o.read_only, where); !st.ok()) return st.error();
    return std::unique_ptr<CountyDatabase>(std::make_unique<SqlDatabase>(std::move(db), o));
  } catch (const Failure& f) {
    return Error{where, f.what(), std::string(f.what()).find("not a database") != std::string::npos
                                      ? "this file is not a SQLite database: move it aside" : ""};
  }
}

Result<std::unique_ptr<CountyDatabase>> open_postgres(const std::string& url, const std::optional<std::string>& password,
                                                      const DatabaseOptions& o) {
  // The URL without a password (one given in it is not repeated in messages).
  std::string where = url;
  if (auto at = where.find('@'), colon = where.find(':', where.find("://") + 3);
      at != std::string::npos && colon != std::string::npos && colon < at)
    where = where.substr(0, colon) + ":***" + where.substr(at);
  try {
    std::vector<std::string> settings;
    if (!o.synchronous_full) settings.push_back("SET synchronous_commit = off");
    if (o.read_only) settings.push_back("SET default_transaction_read_only = on");
    auto db = sql::open_postgres(url, password, settings);
    if (auto st = migrate(*db, o.read_only, where); !st.ok()) return st.error();
    return std::unique_ptr<CountyDatabase>(std::make_unique<SqlDatabase>(std::move(db), o));
  } catch (const Failure& f) {
    return Error{where, f.what(), "check [database] url and password_file, and that PostgreSQL is running"};
  }
}

}  // namespace campus::county
