// The open SQLite store (store_open.cpp opens, migrates and recovers it). A commit reads
// what the plan needs (the audit's subject states and open cases), plans everything it will
// write with the pure plan_commit (commit_plan.hpp: events from state changes, case steps,
// records), makes room under the size cap if needed (store_outbox.cpp: the outbox and the cap),
// then writes it all in ONE transaction.
#include "core/store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "core/commit_plan.hpp"
#include "core/sqlite.hpp"
#include "core/store_open.hpp"
#include "core/store_outbox.hpp"

namespace campus {

void to_json(Json& j, const CaseStep& step) {
  j = Json{{"at", step.at}, {"action", step.action}, {"actor", step.actor}, {"note", step.note}};
}

void to_json(Json& j, const StoreRecovery& r) {
  j = Json{{"at", r.at}, {"reason", r.reason}, {"what", r.what}, {"moved_to", r.moved_to}, {"previous_id", r.previous_id}};
}

void to_json(Json& j, const StoreIdentity& id) {
  j = Json{{"id", id.id}, {"created", id.created}, {"recovered", nullptr}};
  if (id.recovered) j["recovered"] = *id.recovered;
}

void to_json(Json& j, const CaseView& view) {
  j = Json{{"id", view.id},           {"subject", view.subject},     {"stage", view.stage},
           {"outcome", view.outcome}, {"opened_at", view.opened_at}, {"closed_at", view.closed_at},
           {"details", view.details}, {"steps", view.steps}};
}

namespace {

using sqlite::Connection;
using sqlite::Failure;
using sqlite::Statement;
using sqlite::Transaction;

class SqliteStore;

class PluginRecords final : public RecordReader {
 public:
  PluginRecords(SqliteStore& store, std::string plugin) : store_(store), plugin_(std::move(plugin)) {}
  void scan(const std::string& kind,
            const std::function<void(const std::string& key, const Json& value)>& fn) const override;
  std::optional<Json> get(const std::string& kind, const std::string& key) const override;

 private:
  SqliteStore& store_;
  std::string plugin_;
};

// A plugin's records read at once (Store::copy_records): kind -> key -> value text, each value
// parsed only when the plugin reads it.
class RecordCopy final : public RecordReader {
 public:
  void scan(const std::string& kind,
            const std::function<void(const std::string& key, const Json& value)>& fn) const override {
    auto it = rows.find(kind);
    if (it == rows.end()) return;
    for (const auto& [key, value] : it->second) fn(key, Json::parse(value));
  }
  std::optional<Json> get(const std::string& kind, const std::string& key) const override {
    auto it = rows.find(kind);
    if (it == rows.end()) return std::nullopt;
    auto row = it->second.find(key);
    if (row == it->second.end()) return std::nullopt;
    return Json::parse(row->second);
  }
  std::map<std::string, std::map<std::string, std::string>> rows;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::filesystem::path file, StoreOptions options, std::unique_ptr<Connection> db)
      : file_(std::move(file)), options_(options), db_(std::move(db)), outbox_(*db_, file_, options_) {
    identity_.id = meta_text("store_id");
    identity_.created = meta_text("store_created");
    if (auto r = meta_text("recovered"); !r.empty()) {
      auto j = Json::parse(r, nullptr, false);
      if (j.is_object())
        identity_.recovered = StoreRecovery{j.value("at", ""), j.value("reason", ""), j.value("what", ""),
                                            j.value("moved_to", ""), j.value("previous_id", "")};
    }
  }

  Result<CommitOutcome> commit(const Identity& who, const std::string& audit, SystemTime ts,
                               const AuditReport& report) override {
    std::lock_guard lock(mu_);
    if (options_.read_only) return read_only_error("commit a report");
    try {
      // Room is made outside the transaction (a checkpoint cannot run inside one); the plan is
      // made again inside it, because campusctl may have changed a case in between.
      auto bytes = plan_commit(audit, ts, who.timezone_offset, report).bytes;
      if (!outbox_.make_room(bytes)) return outbox_.refuse_report(audit, bytes);
      Transaction tx(*db_);
      CommitPlan plan = plan_commit(audit, ts, who.timezone_offset, report, false);
      auto out = apply(who, audit, ts, plan);
      tx.commit();
      outbox_.after_commit();
      return out;
    } catch (const Failure& f) {
      if (f.code() == SQLITE_FULL) outbox_.note_full_disk();
      return write_error("could not commit the report of audit \"" + audit + "\"", f);
    }
  }

  Result<CaseView> update_case(const Identity& who, SystemTime ts, const std::string& case_id,
                               const std::string& action, const std::string& actor,
                               const std::string& note) override {
    std::lock_guard lock(mu_);
    if (options_.read_only) return read_only_error("update a case");
    try {
      // Checked once to make room for it, and again inside the transaction (another process,
      // campusctl, may have changed the case in between).
      auto step = plan_case_update(who, ts, case_id, action, actor, note);
      if (!step.ok()) return step.error();
      if (!outbox_.make_room(text_of(step->second).size() + 4096)) return outbox_.refuse_update(case_id);

      Transaction tx(*db_);
      step = plan_case_update(who, ts, case_id, action, actor, note);
      if (!step.ok()) return step.error();
      auto& [c, body] = step.value();
      std::int64_t seq = meta("next_seq");
      save_case(c, ts);
      outbox_.append(seq, topic(who, "event/" + c.audit),
                     stored_envelope(who, "event", ts, std::move(body), seq, c.audit), false, "event", c.audit, ts);
      set_meta("next_seq", seq + 1);
      tx.commit();
      return c.view;
    } catch (const Failure& f) {
      return write_error("could not update case " + case_id, f);
    }
  }

  Result<std::vector<CaseView>> cases(const CaseFilter& filter) override {
    std::lock_guard lock(mu_);
    std::string sql = "SELECT id FROM cases WHERE (?1 = '' OR audit = ?1) AND updated_ms >= ?2";
    if (filter.state == "open") sql += " AND stage <> 'closed'";
    if (filter.state == "closed") sql += " AND stage = 'closed'";
    sql += " ORDER BY opened_ms, id";
    std::vector<CaseView> out;
    try {
      auto q = db_->prepare(sql);
      q.bind_all(filter.audit, filter.since ? epoch_ms(*filter.since) : std::numeric_limits<std::int64_t>::min());
      std::vector<std::string> ids;
      while (q.step()) ids.push_back(q.text(0));
      for (const auto& id : ids)
        if (auto c = load_case(id)) out.push_back(std::move(c->view));
    } catch (const Failure& f) {
      return read_error("reading the cases", f);
    }
    return out;
  }

  Result<std::optional<CaseView>> find_case(const std::string& case_id) override {
    std::lock_guard lock(mu_);
    try {
      if (auto c = load_case(case_id)) return std::optional<CaseView>(std::move(c->view));
    } catch (const Failure& f) {
      return read_error("reading case " + case_id, f);
    }
    return std::optional<CaseView>();
  }

  std::vector<OutboxMessage> unsent(std::int64_t after_seq, int limit) override {
    std::lock_guard lock(mu_);
    return outbox_.unsent(after_seq, limit);
  }

  void mark_sent(const std::vector<std::int64_t>& seqs, SystemTime at) override {
    std::lock_guard lock(mu_);
    if (options_.read_only || seqs.empty()) return;
    outbox_.acknowledge(seqs, at);
  }

  void mark_attempt(std::int64_t seq, const std::string& error) override {
    std::lock_guard lock(mu_);
    if (options_.read_only) return;
    outbox_.count_attempt(seq, error);
  }

  std::vector<OutboxMessage> range(std::int64_t from_seq, std::int64_t to_seq) override {
    std::lock_guard lock(mu_);
    return outbox_.range(from_seq, to_seq);
  }

  OutboxStats stats() override {
    std::lock_guard lock(mu_);
    OutboxStats s;
    try {
      outbox_.fill(s);
      s.last_seq = meta("next_seq") - 1;
    } catch (const Failure& f) {
      spdlog::error("{}: reading outbox stats: {}", file_.string(), f.what());
    }
    return s;
  }

  std::int64_t prune(SystemTime now) override {
    std::lock_guard lock(mu_);
    if (options_.read_only) return 0;
    return outbox_.prune(now);
  }

  Result<std::optional<Json>> latest_summary(const std::string& audit) override {
    std::lock_guard lock(mu_);
    try {
      // SQLite's JSON scan skips the findings without building them: parsing a 6,000-room
      // report (2 MB) whole before every fiber run was 8% of the run's CPU.
      auto q = db_->prepare(
          "SELECT json_extract(body, '$.summary') FROM reports WHERE audit = ?1 ORDER BY seq DESC LIMIT 1");
      q.bind_all(audit);
      if (q.step() && !q.is_null(0)) {
        Json j = Json::parse(q.text(0), nullptr, false);
        if (!j.is_discarded()) return std::optional<Json>(std::move(j));
      }
    } catch (const Failure& f) {
      return read_error("reading the latest " + audit + " summary", f);
    }
    return std::optional<Json>();
  }

  Result<std::optional<Json>> latest_report(const std::string& audit) override {
    std::lock_guard lock(mu_);
    try {
      auto q = db_->prepare("SELECT body FROM reports WHERE audit = ?1 ORDER BY seq DESC LIMIT 1");
      q.bind_all(audit);
      if (q.step()) {
        Json j = Json::parse(q.text(0), nullptr, false);
        if (j.is_discarded())
          return Error{file_.string(), "the latest " + audit + " report is not JSON (the file is damaged)",
                       "campus-agent moves a damaged store aside at its next start (docs/store.md \"Recovery\")"};
        return std::optional<Json>(std::move(j));
      }
    } catch (const Failure& f) {
      return read_error("reading the latest " + audit + " report", f);
    }
    return std::optional<Json>();
  }

  std::int64_t next_session() override {
    std::lock_guard lock(mu_);
    try {
      if (options_.read_only) return meta("session");
      session_ = std::max(session_, meta("session"));
      Transaction tx(*db_);
      std::int64_t session = meta("session") + 1;
      set_meta("session", session);
      tx.commit();
      session_ = session;
      return session;
    } catch (const Failure& f) {
      // A full disk: the connection still needs a session above the last one (0 would make
      // the county and the stale-will check take the birth for an old one). Only this
      // process knows it; after a restart the stored counter may hand it out again.
      spdlog::error("{}: raising the session counter: {} (session {} is not persisted)", file_.string(), f.what(),
                    session_ + 1);
      return ++session_;
    }
  }

  std::int64_t last_seq() override {
    std::lock_guard lock(mu_);
    try {
      return meta("next_seq") - 1;
    } catch (const Failure& f) {
      spdlog::error("{}: reading the seq counter: {}", file_.string(), f.what());
      return 0;
    }
  }

  // No lock: the identity is fixed once open_or_recover returns (the publisher reads it on the
  // io_context, which must not wait for a commit's fsync).
  StoreIdentity identity() override { return identity_; }

  Result<std::shared_ptr<const RecordReader>> copy_records(const std::string& plugin) override {
    std::lock_guard lock(mu_);
    auto copy = std::make_shared<RecordCopy>();
    try {
      auto q = db_->prepare("SELECT kind, key, value FROM records WHERE plugin = ?1");
      q.bind_all(plugin);
      while (q.step()) copy->rows[q.text(0)].emplace(q.text(1), q.text(2));
    } catch (const Failure& f) {
      return read_error("reading the records of " + plugin, f);
    }
    return std::shared_ptr<const RecordReader>(std::move(copy));
  }

  const RecordReader& records(const std::string& plugin) override {
    std::lock_guard lock(mu_);
    auto& reader = readers_[plugin];
    if (!reader) reader = std::make_unique<PluginRecords>(*this, plugin);
    return *reader;
  }

  // For PluginRecords: rows of one plugin's kind (key empty: all keys), read under the lock.
  std::vector<std::pair<std::string, std::string>> record_rows(const std::string& plugin, const std::string& kind,
                                                               const std::optional<std::string>& key) {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::string>> rows;
    try {
      auto q = db_->prepare(key ? "SELECT key, value FROM records WHERE plugin = ?1 AND kind = ?2 AND key = ?3"
                                : "SELECT key, value FROM records WHERE plugin = ?1 AND kind = ?2 ORDER BY key");
      q.bind_all(plugin, kind);
      if (key) q.bind(3, *key);
      while (q.step()) rows.emplace_back(q.text(0), q.text(1));
    } catch (const Failure& f) {
      spdlog::error("{}: reading records {}/{}: {}", file_.string(), plugin, kind, f.what());
    }
    return rows;
  }

 private:
  // ---- commit planning: the inputs are read here, the plan is pure (commit_plan.hpp) ----

  CommitPlan plan_commit(const std::string& audit, SystemTime ts, const std::string& offset, const AuditReport& report,
                         bool count_bytes = true) {
    return campus::plan_commit(audit, rfc3339(ts, offset), report, commit_inputs(audit, report), count_bytes);
  }

  CommitInputs commit_inputs(const std::string& audit, const AuditReport& report) {
    CommitInputs in;
    {
      auto q = db_->prepare("SELECT subject, state, reason FROM subject_state WHERE audit = ?1");
      q.bind_all(audit);
      while (q.step()) in.subjects[q.text(0)] = SubjectState{q.text(1), q.text(2)};
    }
    if (report.case_actions.empty()) return in;
    {
      auto q = db_->prepare("SELECT id FROM cases WHERE audit = ?1 AND stage <> 'closed'");
      q.bind_all(audit);
      std::vector<std::string> ids;
      while (q.step()) ids.push_back(q.text(0));
      for (const auto& id : ids)
        if (auto c = load_case(id)) in.open_cases[c->view.subject] = std::move(*c);
    }
    auto count = db_->prepare("SELECT count(*) FROM cases WHERE audit = ?1 AND subject = ?2");
    for (const auto& a : report.case_actions) {
      // Every subject the report opens a case for, open now or not: a Close then an Open in
      // the same report numbers the new case after the one it closes.
      if (a.kind != CaseAction::Kind::Open || in.cases_so_far.count(a.subject)) continue;
      count.bind_all(audit, a.subject);
      count.step();
      in.cases_so_far[a.subject] = static_cast<int>(count.int64(0));
      count.reset();
    }
    return in;
  }

  // The case after one update_case step, and its event body; an Error when it is not allowed.
  Result<std::pair<WorkingCase, Json>> plan_case_update(const Identity& who, SystemTime ts, const std::string& case_id,
                                                        const std::string& action, const std::string& actor,
                                                        const std::string& note) {
    auto found = load_case(case_id);
    if (!found) return Error{"case " + case_id, "no such case", "list the cases with: campusctl cases --state all"};
    return campus::plan_case_update(std::move(*found), action, actor, note, rfc3339(ts, who.timezone_offset));
  }

  // ---- commit writing (one transaction) ----

  // A report's or event's envelope with this store's id (`store_id`): the county keys what it
  // receives by (store, seq), since a replaced store starts seq at 1 again (docs/protocol.md).
  Json stored_envelope(const Identity& who, const std::string& kind, SystemTime ts, Json body, std::int64_t seq,
                       const std::string& audit) const {
    Json e = envelope(who, kind, ts, std::move(body), seq, audit);
    e["store_id"] = identity_.id;
    return e;
  }

  // REQUIRES: inside the write transaction.
  CommitOutcome apply(const Identity& who, const std::string& audit, SystemTime ts, CommitPlan& plan) {
    CommitOutcome out;
    std::int64_t seq = meta("next_seq");
    out.report_seq = seq;
    db_->prepare("INSERT INTO reports(seq, audit, ts, body) VALUES (?1, ?2, ?3, ?4)")
        .bind_all(seq, audit, rfc3339(ts, who.timezone_offset), text_of(plan.report_body))
        .run();
    outbox_.append(seq, topic(who, "report/" + audit),
                   stored_envelope(who, "report", ts, std::move(plan.report_body), seq, audit), true, "report", audit,
                   ts);
    const std::string event_topic = topic(who, "event/" + audit);
    for (auto& body : plan.events) {
      ++seq;
      outbox_.append(seq, event_topic, stored_envelope(who, "event", ts, std::move(body), seq, audit), false, "event",
                     audit, ts);
      out.event_seqs.push_back(seq);
    }
    {
      auto q = db_->prepare(
          "INSERT INTO subject_state(audit, subject, state, reason) VALUES (?1, ?2, ?3, ?4) "
          "ON CONFLICT(audit, subject) DO UPDATE SET state = excluded.state, reason = excluded.reason");
      for (const Finding* f : plan.states) {
        q.bind_all(audit, f->subject, f->state, f->reason).run();
        q.reset();
      }
      auto d = db_->prepare("DELETE FROM subject_state WHERE audit = ?1 AND subject = ?2");
      for (const auto& s : plan.removed_subjects) {
        d.bind_all(audit, s).run();
        d.reset();
      }
    }
    for (auto& c : plan.cases) {
      save_case(c, ts);
      out.cases_changed.push_back(c.view);
    }
    {
      auto put = db_->prepare(
          "INSERT INTO records(plugin, kind, key, value) VALUES (?1, ?2, ?3, ?4) "
          "ON CONFLICT(plugin, kind, key) DO UPDATE SET value = excluded.value");
      auto erase = db_->prepare("DELETE FROM records WHERE plugin = ?1 AND kind = ?2 AND key = ?3");
      for (const auto& r : *plan.records) {
        if (r.value) {
          put.bind_all(audit, r.kind, r.key, text_of(*r.value)).run();
          put.reset();
        } else {
          erase.bind_all(audit, r.kind, r.key).run();
          erase.reset();
        }
      }
    }
    set_meta("next_seq", seq + 1);
    outbox_.clear_full_flag();
    return out;
  }

  void save_case(const WorkingCase& c, SystemTime ts) {
    if (c.is_new) {
      db_->prepare(
             "INSERT INTO cases(id, audit, subject, n, stage, outcome, opened_at, closed_at, details, opened_ms, "
             "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)")
          .bind_all(c.view.id, c.audit, c.view.subject, c.n, c.view.stage, c.view.outcome, c.view.opened_at,
                    c.view.closed_at, text_of(c.view.details), epoch_ms(ts))
          .run();
    } else {
      db_->prepare(
             "UPDATE cases SET stage = ?2, outcome = ?3, closed_at = ?4, details = ?5, updated_ms = ?6 WHERE id = ?1")
          .bind_all(c.view.id, c.view.stage, c.view.outcome, c.view.closed_at, text_of(c.view.details), epoch_ms(ts))
          .run();
    }
    auto q = db_->prepare(
        "INSERT INTO case_steps(case_id, idx, at, action, actor, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    for (std::size_t i = c.saved_steps; i < c.view.steps.size(); ++i) {
      const auto& s = c.view.steps[i];
      q.bind_all(c.view.id, static_cast<std::int64_t>(i), s.at, s.action, s.actor, s.note).run();
      q.reset();
    }
  }

  std::optional<WorkingCase> load_case(const std::string& id) {
    auto q = db_->prepare(
        "SELECT audit, subject, n, stage, outcome, opened_at, closed_at, details FROM cases WHERE id = ?1");
    q.bind_all(id);
    if (!q.step()) return std::nullopt;
    WorkingCase c;
    c.view.id = id;
    c.audit = q.text(0);
    c.view.subject = q.text(1);
    c.n = static_cast<int>(q.int64(2));
    c.view.stage = q.text(3);
    c.view.outcome = q.text(4);
    c.view.opened_at = q.text(5);
    c.view.closed_at = q.text(6);
    c.view.details = Json::parse(q.text(7));
    auto s = db_->prepare("SELECT at, action, actor, note FROM case_steps WHERE case_id = ?1 ORDER BY idx");
    s.bind_all(id);
    while (s.step()) c.view.steps.push_back(CaseStep{s.text(0), s.text(1), s.text(2), s.text(3)});
    c.saved_steps = c.view.steps.size();
    return c;
  }

  // ---- small helpers ----

  std::int64_t meta(const std::string& key) { return meta_int(*db_, key); }
  std::string meta_text(const std::string& key) { return campus::meta_text(*db_, key); }
  void set_meta(const std::string& key, std::int64_t value) { campus::set_meta(*db_, key, value); }

  Error read_only_error(const std::string& what) const {
    return Error{file_.string(), "the store is open read-only; cannot " + what,
                 "run this through the agent (not campusctl --local)"};
  }

  Error read_error(const std::string& what, const Failure& f) const {
    return Error{file_.string(), what + ": " + f.what(),
                 "check the data directory's file system (dmesg, df -h); a damaged file is moved aside at the "
                 "agent's next start (docs/store.md \"Recovery\")"};
  }

  Error write_error(const std::string& what, const Failure& f) const {
    std::string fix = f.code() == SQLITE_FULL ? "free space on the data directory's file system"
                                              : "check the data directory's file system and the journal";
    return Error{file_.string(), what + ": " + f.what() + "; nothing was written", fix};
  }

  std::filesystem::path file_;
  StoreOptions options_;
  std::unique_ptr<Connection> db_;
  Outbox outbox_;  // on db_, under mu_
  std::mutex mu_;
  StoreIdentity identity_;
  std::int64_t session_ = 0;  // the last session handed out
  std::map<std::string, std::unique_ptr<PluginRecords>> readers_;
};

void PluginRecords::scan(const std::string& kind,
                         const std::function<void(const std::string& key, const Json& value)>& fn) const {
  // Rows are read first and the callback runs outside the store's lock, so it may use the store.
  for (const auto& [key, value] : store_.record_rows(plugin_, kind, std::nullopt)) fn(key, Json::parse(value));
}

std::optional<Json> PluginRecords::get(const std::string& kind, const std::string& key) const {
  auto rows = store_.record_rows(plugin_, kind, key);
  if (rows.empty()) return std::nullopt;
  return Json::parse(rows.front().second);
}

}  // namespace

std::unique_ptr<Store> make_sqlite_store(const std::filesystem::path& file, StoreOptions options,
                                         std::unique_ptr<sqlite::Connection> db) {
  return std::make_unique<SqliteStore>(file, options, std::move(db));
}

}  // namespace campus
