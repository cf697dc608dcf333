// The SQLite store: one file, WAL, synchronous=FULL (docs/store.md says why). A commit first
// plans everything it will write (events from state changes, case steps, records) with plain
// reads, makes room under the size cap if needed, then writes it all in ONE transaction.
#include "core/store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <fstream>
#include <sstream>

#include "core/sqlite.hpp"

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

constexpr int kSchemaVersion = 2;
constexpr const char* kApplication = "campus-agent";
// Below this much free space at open, the -shm (32 KiB) and the first WAL frames may not fit.
constexpr std::uint64_t kMinFreeBytes = 256 * 1024;

// Index i holds the SQL that brings schema version i to i+1.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE reports(seq INTEGER PRIMARY KEY, audit TEXT NOT NULL, ts TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX reports_by_audit ON reports(audit, seq);
CREATE TABLE subject_state(audit TEXT NOT NULL, subject TEXT NOT NULL, state TEXT NOT NULL,
                           reason TEXT NOT NULL, PRIMARY KEY(audit, subject)) WITHOUT ROWID;
CREATE TABLE cases(id TEXT PRIMARY KEY, audit TEXT NOT NULL, subject TEXT NOT NULL, n INTEGER NOT NULL,
                   stage TEXT NOT NULL, outcome TEXT NOT NULL, opened_at TEXT NOT NULL,
                   closed_at TEXT NOT NULL, details TEXT NOT NULL, opened_ms INTEGER NOT NULL,
                   updated_ms INTEGER NOT NULL);
CREATE INDEX cases_by_subject ON cases(audit, subject);
CREATE TABLE case_steps(case_id TEXT NOT NULL, idx INTEGER NOT NULL, at TEXT NOT NULL, action TEXT NOT NULL,
                        actor TEXT NOT NULL, note TEXT NOT NULL, PRIMARY KEY(case_id, idx)) WITHOUT ROWID;
CREATE TABLE records(plugin TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                     PRIMARY KEY(plugin, kind, key));
CREATE TABLE outbox(seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL, qos INTEGER NOT NULL,
                    retain INTEGER NOT NULL, kind TEXT NOT NULL, audit TEXT NOT NULL, created INTEGER NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_at INTEGER);
CREATE INDEX outbox_by_sent ON outbox(sent_at, seq);
INSERT INTO meta(key, value) VALUES ('application', 'campus-agent'), ('next_seq', 1), ('session', 0),
                                    ('refused_commits', 0), ('buffer_full', 0);
)sql",
    // The store's identity (docs/store.md "Identity"): a random id, so the county can tell a
    // fresh store (seq from 1 again) from this one. Stores of version 1 get theirs here.
    R"sql(
INSERT INTO meta(key, value) VALUES ('store_id', lower(hex(randomblob(16)))),
                                    ('store_created', strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'));
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

const std::set<std::string> kOutcomes = {"returned", "transferred", "leave_approved", "dropout_reported"};

int stage_rank(const std::string& stage) {
  if (stage == "open") return 0;
  if (stage == "contacted") return 1;
  if (stage == "visited") return 2;
  return 3;  // closed
}

std::int64_t to_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SystemTime from_ms(std::int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
}

// Plugins pass through text from outside (registers, device replies) that may not be valid
// UTF-8; it is stored and published with U+FFFD instead of failing the commit.
std::string text_of(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json error_json(const Error& e) { return Json{{"where", e.where}, {"what", e.what}, {"fix", e.fix}}; }

// A case as a commit or update_case changes it. `saved_steps` steps are already in the table.
struct WorkingCase {
  CaseView view;
  std::string audit;
  int n = 0;
  std::size_t saved_steps = 0;
  bool is_new = false;
  bool changed = false;
};

// Everything one commit will write, computed by reads before the write transaction.
struct CommitPlan {
  Json report_body;
  std::vector<Json> events;  // bodies, in outbox order after the report
  // Pointers into the report being committed (it outlives the plan): copying a term's 180,000
  // month records (60,000 students) or 6,000 rooms' findings nearly doubled the commit's peak.
  std::vector<const Finding*> states;          // subject_state rows to upsert
  std::vector<std::string> removed_subjects;  // subject_state rows to delete
  std::vector<WorkingCase> cases;             // changed or new cases
  const std::vector<RecordWrite>* records = nullptr;
  std::uint64_t bytes = 0;                     // what the writes add, roughly (for the size cap)
};

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
      : file_(std::move(file)), options_(options), db_(std::move(db)) {
    buffer_full_ = meta("buffer_full") != 0;
    refused_ = meta("refused_commits");
    identity_.id = meta_text("store_id");
    identity_.created = meta_text("store_created");
    if (auto r = meta_text("recovered"); !r.empty()) {
      auto j = Json::parse(r, nullptr, false);
      if (j.is_object())
        identity_.recovered = StoreRecovery{j.value("at", ""), j.value("reason", ""), j.value("what", ""),
                                            j.value("moved_to", ""), j.value("previous_id", "")};
    }
  }

  // Records, in this (fresh) store, why it was started (open_or_recover).
  void set_recovered(const StoreRecovery& r) {
    std::lock_guard lock(mu_);
    Transaction tx(*db_);
    db_->prepare("INSERT INTO meta(key, value) VALUES ('recovered', ?1) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind_all(Json(r).dump())
        .run();
    tx.commit();
    identity_.recovered = r;
  }

  Result<CommitOutcome> commit(const Identity& who, const std::string& audit, SystemTime ts,
                               const AuditReport& report) override {
    std::lock_guard lock(mu_);
    if (options_.read_only) return read_only_error("commit a report");
    try {
      // Room is made outside the transaction (a checkpoint cannot run inside one); the plan is
      // made again inside it, because campusctl may have changed a case in between.
      auto bytes = plan_commit(audit, ts, who.timezone_offset, report).bytes;
      if (!make_room(bytes)) return refuse(audit, bytes);
      Transaction tx(*db_);
      CommitPlan plan = plan_commit(audit, ts, who.timezone_offset, report, false);
      auto out = apply(who, audit, ts, plan);
      tx.commit();
      buffer_full_ = false;
      flush_unmarked();  // acknowledgements a full disk kept out: now there is room
      return out;
    } catch (const Failure& f) {
      // The file system filled up before the cap did: the same state for health as a full buffer.
      if (f.code() == SQLITE_FULL) note_refusal();
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
      if (!make_room(text_of(step->second).size() + 4096)) return refuse_update(case_id);

      Transaction tx(*db_);
      step = plan_case_update(who, ts, case_id, action, actor, note);
      if (!step.ok()) return step.error();
      auto& [c, body] = step.value();
      std::int64_t seq = meta("next_seq");
      save_case(c, ts);
      append(seq, topic(who, "event/" + c.audit), stored_envelope(who, "event", ts, std::move(body), seq, c.audit), false,
             "event", c.audit, ts);
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
      q.bind_all(filter.audit, filter.since ? to_ms(*filter.since) : std::numeric_limits<std::int64_t>::min());
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
    return select_messages("WHERE sent_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2", after_seq, limit);
  }

  void mark_sent(const std::vector<std::int64_t>& seqs, SystemTime at) override {
    std::lock_guard lock(mu_);
    if (options_.read_only || seqs.empty()) return;
    unmarked_.insert(unmarked_.end(), seqs.begin(), seqs.end());
    unmarked_at_ = at;
    flush_unmarked();
  }

  void mark_attempt(std::int64_t seq, const std::string& error) override {
    std::lock_guard lock(mu_);
    if (options_.read_only) return;
    try {
      db_->prepare("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1")
          .bind_all(seq, error)
          .run();
    } catch (const Failure& f) {
      spdlog::error("{}: counting an attempt of seq {}: {}", file_.string(), seq, f.what());
    }
  }

  std::vector<OutboxMessage> range(std::int64_t from_seq, std::int64_t to_seq) override {
    return select_messages("WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq", from_seq, to_seq);
  }

  OutboxStats stats() override {
    std::lock_guard lock(mu_);
    OutboxStats s;
    s.refused_commits = refused_;
    s.buffer_full = buffer_full_;
    try {
      s.unsent = db_->scalar_int("SELECT count(*) FROM outbox WHERE sent_at IS NULL");
      s.sent_kept = db_->scalar_int("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL");
      auto q = db_->prepare("SELECT min(created) FROM outbox WHERE sent_at IS NULL");
      if (q.step() && !q.is_null(0)) s.oldest_unsent_created = from_ms(q.int64(0));
      s.last_seq = meta("next_seq") - 1;
      s.db_bytes = size_now();
    } catch (const Failure& f) {
      spdlog::error("{}: reading outbox stats: {}", file_.string(), f.what());
    }
    return s;
  }

  std::int64_t prune(SystemTime now) override {
    std::lock_guard lock(mu_);
    if (options_.read_only) return 0;
    try {
      Transaction tx(*db_);
      db_->prepare("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?1")
          .bind_all(to_ms(now - options_.keep_sent))
          .run();
      std::int64_t n = db_->changes();
      drop_unreferenced_reports();
      tx.commit();
      if (n > 0) shrink();
      return n;
    } catch (const Failure& f) {
      spdlog::error("{}: pruning sent messages: {}", file_.string(), f.what());
      return 0;
    }
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
  // ---- commit planning (reads only) ----

  // count_bytes: estimate what the writes add (serializes everything once more; only the
  // estimate made before the transaction needs it).
  CommitPlan plan_commit(const std::string& audit, SystemTime ts, const std::string& offset,
                         const AuditReport& report, bool count_bytes = true) {
    CommitPlan plan;
    Json errors = Json::array();
    for (const auto& e : report.input_errors) errors.push_back(error_json(e));

    std::map<std::string, std::pair<std::string, std::string>> previous;  // subject -> state, reason
    {
      auto q = db_->prepare("SELECT subject, state, reason FROM subject_state WHERE audit = ?1");
      q.bind_all(audit);
      while (q.step()) previous[q.text(0)] = {q.text(1), q.text(2)};
    }
    Json findings = Json::array();
    std::set<std::string> seen;
    for (const auto& f : report.findings) {
      findings.push_back(Json{{"subject", f.subject}, {"state", f.state}, {"reason", f.reason}, {"details", f.details}});
      auto it = previous.find(f.subject);
      if (it != previous.end() && it->second.first != f.state)
        plan.events.push_back(Json{{"subject", f.subject},
                                   {"from", it->second.first},
                                   {"to", f.state},
                                   {"reason", f.reason},
                                   {"details", f.details}});
      if (it == previous.end() || it->second != std::pair(f.state, f.reason)) plan.states.push_back(&f);
      previous[f.subject] = {f.state, f.reason};
      seen.insert(f.subject);
    }
    for (const auto& [subject, prev] : previous) {
      if (seen.count(subject)) continue;
      plan.events.push_back(Json{{"subject", subject},
                                 {"from", prev.first},
                                 {"to", "removed"},
                                 {"reason", "no longer reported by the audit"},
                                 {"details", Json::object()}});
      plan.removed_subjects.push_back(subject);
    }

    plan_cases(audit, ts, offset, report.case_actions, plan, errors);
    plan.records = &report.records;
    plan.report_body = Json{{"summary", report.summary}, {"findings", std::move(findings)}, {"errors", std::move(errors)}};

    // Bytes the writes add: the report twice (reports + outbox), each event, the changed
    // cases, the records, and a margin for envelopes and index pages.
    if (!count_bytes) return plan;
    plan.bytes = 2 * text_of(plan.report_body).size() + 16 * 1024;
    for (const auto& e : plan.events) plan.bytes += text_of(e).size() + 400;
    for (const auto& c : plan.cases) plan.bytes += text_of(Json(c.view)).size() + 200;
    for (const auto& r : report.records) plan.bytes += r.kind.size() + r.key.size() + (r.value ? text_of(*r.value).size() : 0) + 64;
    return plan;
  }

  void plan_cases(const std::string& audit, SystemTime ts, const std::string& offset,
                  const std::vector<CaseAction>& actions, CommitPlan& plan, Json& errors) {
    if (actions.empty()) return;
    const std::string at = rfc3339(ts, offset);
    std::map<std::string, WorkingCase> open;  // subject -> this audit's open case
    {
      auto q = db_->prepare("SELECT id FROM cases WHERE audit = ?1 AND stage <> 'closed'");
      q.bind_all(audit);
      std::vector<std::string> ids;
      while (q.step()) ids.push_back(q.text(0));
      for (const auto& id : ids)
        if (auto c = load_case(id)) open[c->view.subject] = std::move(*c);
    }
    std::vector<WorkingCase> closed;
    std::map<std::string, int> opened_now;  // subject -> cases opened by this commit
    auto problem = [&](const CaseAction& a, const std::string& what, const std::string& fix) {
      const char* verb = a.kind == CaseAction::Kind::Update ? "update" : "close";
      errors.push_back(error_json(Error{"case action " + std::string(verb) + " for subject " + a.subject, what, fix}));
    };
    for (const auto& a : actions) {
      auto it = open.find(a.subject);
      if (a.kind == CaseAction::Kind::Open) {
        if (it != open.end()) continue;  // already open: the case carries on
        WorkingCase c;
        c.audit = audit;
        auto q = db_->prepare("SELECT count(*) FROM cases WHERE audit = ?1 AND subject = ?2");
        q.bind_all(audit, a.subject);
        q.step();
        c.n = static_cast<int>(q.int64(0)) + ++opened_now[a.subject];
        c.view.id = audit + "-" + a.subject + "-" + std::to_string(c.n);
        c.view.subject = a.subject;
        c.view.stage = "open";
        c.view.opened_at = at;
        c.view.details = a.details;
        c.view.steps.push_back(CaseStep{at, "opened", "agent", a.note});
        c.is_new = c.changed = true;
        plan.events.push_back(case_event(c.view, nullptr, "open", "opened", a.note));
        open[a.subject] = std::move(c);
        continue;
      }
      if (it == open.end()) {
        problem(a, "no open case of audit \"" + audit + "\" for this subject", "open the case before updating or closing it");
        continue;
      }
      WorkingCase& c = it->second;
      if (a.kind == CaseAction::Kind::Update) {
        if (a.details == c.view.details) continue;
        auto overdue = [](const Json& d) { return d.contains("overdue") ? d["overdue"] : Json(false); };
        bool overdue_changed = overdue(a.details) != overdue(c.view.details);
        c.view.details = a.details;
        c.view.steps.push_back(CaseStep{at, "updated", "agent", a.note});
        c.changed = true;
        if (overdue_changed) plan.events.push_back(case_event(c.view, c.view.stage, c.view.stage, "updated", a.note));
        continue;
      }
      if (!kOutcomes.count(a.outcome)) {
        problem(a, "unknown outcome \"" + a.outcome + "\"", "use returned, transferred, leave_approved or dropout_reported");
        continue;
      }
      std::string from = c.view.stage;
      c.view.stage = "closed";
      c.view.outcome = a.outcome;
      c.view.closed_at = at;
      c.view.steps.push_back(CaseStep{at, a.outcome, "agent", a.note});
      c.changed = true;
      plan.events.push_back(case_event(c.view, from, "closed", a.outcome, a.note));
      closed.push_back(std::move(c));
      open.erase(it);
    }
    for (auto& [subject, c] : open)
      if (c.changed) plan.cases.push_back(std::move(c));
    for (auto& c : closed) plan.cases.push_back(std::move(c));
  }

  // The case after one update_case step, and its event body; an Error when it is not allowed.
  Result<std::pair<WorkingCase, Json>> plan_case_update(const Identity& who, SystemTime ts, const std::string& case_id,
                                                        const std::string& action, const std::string& actor,
                                                        const std::string& note) {
    auto found = load_case(case_id);
    if (!found) return Error{"case " + case_id, "no such case", "list the cases with: campusctl cases --state all"};
    WorkingCase c = std::move(*found);
    const std::string from = c.view.stage;
    if (from == "closed")
      return Error{"case " + case_id,
                   "the case is closed (" + c.view.outcome + " at " + c.view.closed_at + ") and cannot change",
                   "a new absence run opens a new case"};
    std::string to = from;
    if (action == "contacted" || action == "visited") {
      to = action;
      if (stage_rank(to) < stage_rank(from))
        return Error{"case " + case_id, "action \"" + action + "\" would take the case back from stage \"" + from + "\"",
                     "record it as a note instead"};
    } else if (kOutcomes.count(action)) {
      to = "closed";
    } else if (action != "note") {
      return Error{"case " + case_id, "unknown action \"" + action + "\"",
                   "use one of: contacted, visited, returned, transferred, leave_approved, dropout_reported, note"};
    }
    std::string at = rfc3339(ts, who.timezone_offset);
    c.view.stage = to;
    if (to == "closed") {
      c.view.outcome = action;
      c.view.closed_at = at;
    }
    c.view.steps.push_back(CaseStep{at, action, actor, note});
    c.changed = true;
    Json body = case_event(c.view, from, to, action, note);
    return std::pair{std::move(c), std::move(body)};
  }

  static Json case_event(const CaseView& view, Json from, const std::string& to, const std::string& action,
                         const std::string& note) {
    return Json{{"subject", view.id}, {"case", view},     {"from", std::move(from)},
                {"to", to},           {"action", action}, {"reason", note}};
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
    append(seq, topic(who, "report/" + audit), stored_envelope(who, "report", ts, std::move(plan.report_body), seq, audit),
           true, "report", audit, ts);
    const std::string event_topic = topic(who, "event/" + audit);
    for (auto& body : plan.events) {
      ++seq;
      append(seq, event_topic, stored_envelope(who, "event", ts, std::move(body), seq, audit), false, "event", audit, ts);
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
    if (buffer_full_) set_meta("buffer_full", 0);
    return out;
  }

  void append(std::int64_t seq, const std::string& topic, const Json& envelope, bool retain, const char* kind,
              const std::string& audit, SystemTime created) {
    db_->prepare(
           "INSERT INTO outbox(seq, topic, payload, qos, retain, kind, audit, created) "
           "VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7)")
        .bind_all(seq, topic, text_of(envelope), retain ? 1 : 0, kind, audit, to_ms(created))
        .run();
  }

  void save_case(const WorkingCase& c, SystemTime ts) {
    if (c.is_new) {
      db_->prepare(
             "INSERT INTO cases(id, audit, subject, n, stage, outcome, opened_at, closed_at, details, opened_ms, "
             "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)")
          .bind_all(c.view.id, c.audit, c.view.subject, c.n, c.view.stage, c.view.outcome, c.view.opened_at,
                    c.view.closed_at, text_of(c.view.details), to_ms(ts))
          .run();
    } else {
      db_->prepare(
             "UPDATE cases SET stage = ?2, outcome = ?3, closed_at = ?4, details = ?5, updated_ms = ?6 WHERE id = ?1")
          .bind_all(c.view.id, c.view.stage, c.view.outcome, c.view.closed_at, text_of(c.view.details), to_ms(ts))
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

  // Marks the acknowledged seqs in unmarked_ sent. When that fails (a full disk) they stay in
  // memory and are retried with the next acknowledgements or after the next commit: the
  // publisher's cursor has moved past them, so otherwise they would count as unsent (depth,
  // oldest_unsent_age_s) until the next reconnect re-sends them.
  void flush_unmarked() {
    if (unmarked_.empty()) return;
    try {
      Transaction tx(*db_);
      auto q = db_->prepare("UPDATE outbox SET sent_at = ?1 WHERE seq = ?2 AND sent_at IS NULL");
      for (auto seq : unmarked_) {
        q.bind_all(to_ms(unmarked_at_), seq).run();
        q.reset();
      }
      tx.commit();
      unmarked_.clear();
    } catch (const Failure& f) {
      // Not fatal: the messages were delivered; only the bookkeeping waits for space.
      spdlog::error("{}: marking {} messages sent: {} (kept in memory, retried)", file_.string(), unmarked_.size(),
                    f.what());
    }
  }

  // ---- size cap ----

  std::uint64_t wal_bytes() const {
    std::error_code ec;
    auto n = std::filesystem::file_size(file_.string() + "-wal", ec);
    return ec ? 0 : n;
  }

  std::uint64_t size_now() {
    return static_cast<std::uint64_t>(db_->scalar_int("PRAGMA page_count") * db_->scalar_int("PRAGMA page_size")) +
           wal_bytes();
  }

  // The database's size once `bytes` more are written: free pages are reused first.
  // REQUIRES: called outside a transaction.
  bool fits(std::uint64_t bytes) {
    auto page = static_cast<std::uint64_t>(db_->scalar_int("PRAGMA page_size"));
    auto pages = static_cast<std::uint64_t>(db_->scalar_int("PRAGMA page_count"));
    auto free_pages = static_cast<std::uint64_t>(db_->scalar_int("PRAGMA freelist_count"));
    auto needed = (bytes + page - 1) / page;
    auto after = std::max(pages, pages - free_pages + needed);
    // The new pages land in the WAL first and reach the main file at the next checkpoint.
    return after * page + wal_bytes() + needed * page <= options_.max_size;
  }

  // Gives freed pages back to the file system (auto_vacuum=INCREMENTAL) and empties the WAL.
  void shrink() {
    try {
      db_->exec("PRAGMA incremental_vacuum");
      db_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (const Failure&) {
      // A reader (campusctl --local) holds the WAL: the next attempt truncates it.
    }
  }

  // Frees space for `bytes` more: acknowledged rows first (oldest first), then unacknowledged
  // reports that a newer report of the same audit supersedes. Never events, never cases.
  bool make_room(std::uint64_t bytes) {
    if (fits(bytes)) return true;
    shrink();
    const char* const steps[] = {
        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE sent_at IS NOT NULL ORDER BY seq LIMIT 64)",
        "DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox o WHERE o.kind = 'report' AND o.sent_at IS NULL "
        "AND EXISTS (SELECT 1 FROM reports r WHERE r.audit = o.audit AND r.seq > o.seq) ORDER BY o.seq LIMIT 16)",
    };
    for (const char* sql : steps) {
      while (!fits(bytes)) {
        Transaction tx(*db_);
        db_->exec(sql);
        std::int64_t n = db_->changes();
        drop_unreferenced_reports();
        tx.commit();
        shrink();
        if (n == 0) break;
      }
    }
    return fits(bytes);
  }

  // Report history lives as long as its outbox row; the latest report of each audit stays
  // (latest_report, and it is what supersedes older unsent ones).
  void drop_unreferenced_reports() {
    db_->exec(
        "DELETE FROM reports WHERE seq NOT IN (SELECT seq FROM outbox) "
        "AND seq NOT IN (SELECT max(seq) FROM reports GROUP BY audit)");
  }

  // Counts a refused report and raises buffer_full, in memory first: on a full disk the
  // persisted copy may fail to write, and health still has to say so.
  void note_refusal() {
    ++refused_;
    buffer_full_ = true;
    try {
      Transaction tx(*db_);
      set_meta("refused_commits", refused_);
      set_meta("buffer_full", 1);
      tx.commit();
    } catch (const Failure& f) {
      spdlog::error("{}: recording a refused commit: {}", file_.string(), f.what());
    }
  }

  Error refuse(const std::string& audit, std::uint64_t bytes) {
    note_refusal();
    return Error{file_.string(),
                 "buffer full: the report of audit \"" + audit + "\" (" + std::to_string(bytes / 1024) +
                     " KiB) was refused; the store holds " + std::to_string(size_now() / 1024) +
                     " KiB of undelivered events, cases and latest reports, the cap is " +
                     std::to_string(options_.max_size / 1024) + " KiB (" + std::to_string(refused_) +
                     " reports refused so far)",
                 "restore the link to the broker so the outbox drains, or raise buffer.max_size"};
  }

  Error refuse_update(const std::string& case_id) {
    buffer_full_ = true;
    return Error{file_.string(), "buffer full: the update of case " + case_id + " was not stored",
                 "restore the link to the broker so the outbox drains, or raise buffer.max_size"};
  }

  // ---- small helpers ----

  std::int64_t meta(const std::string& key) {
    auto q = db_->prepare("SELECT value FROM meta WHERE key = ?1");
    q.bind_all(key);
    return q.step() ? q.int64(0) : 0;
  }

  std::string meta_text(const std::string& key) {
    auto q = db_->prepare("SELECT value FROM meta WHERE key = ?1");
    q.bind_all(key);
    return q.step() ? q.text(0) : std::string();
  }

  void set_meta(const std::string& key, std::int64_t value) {
    db_->prepare("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind_all(key, value)
        .run();
  }

  template <class A, class B>
  std::vector<OutboxMessage> select_messages(const std::string& where, A a, B b) {
    std::lock_guard lock(mu_);
    std::vector<OutboxMessage> out;
    try {
      auto q = db_->prepare("SELECT seq, topic, payload, qos, retain, kind, created, attempts FROM outbox " + where);
      q.bind_all(static_cast<std::int64_t>(a), static_cast<std::int64_t>(b));
      while (q.step()) {
        OutboxMessage m;
        m.seq = q.int64(0);
        m.topic = q.text(1);
        m.payload = q.text(2);
        m.qos = static_cast<int>(q.int64(3));
        m.retain = q.int64(4) != 0;
        m.kind = q.text(5);
        m.created = from_ms(q.int64(6));
        m.attempts = static_cast<int>(q.int64(7));
        out.push_back(std::move(m));
      }
    } catch (const Failure& f) {
      spdlog::error("{}: reading the outbox: {}", file_.string(), f.what());
    }
    return out;
  }

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
  std::mutex mu_;
  bool buffer_full_ = false;
  std::int64_t refused_ = 0;
  StoreIdentity identity_;
  std::vector<std::int64_t> unmarked_;  // acknowledged, not yet marked sent (flush_unmarked)
  SystemTime unmarked_at_{};
  std::int64_t session_ = 0;            // the last session handed out
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

// Store::open's work. `broken` (when given) is set to the reason when the file itself is bad
// (corrupt, not a store): what open_or_recover may move aside. Other errors leave it empty.
Result<std::unique_ptr<SqliteStore>> open_checked(const std::filesystem::path& file, StoreOptions options,
                                                  std::string* broken_reason) {
  const std::string path = file.string();
  const std::string move_aside =
      "the agent moves it aside by itself at its next start (as " + path +
      ".<reason>-<UTC time>, with its -wal and -shm) and starts a fresh store; to keep it elsewhere first: mv " + path +
      " " + path + ".broken (with its -wal and -shm files if present)";
  auto broken = [&](const std::string& what, const char* reason = "corrupt") {
    if (broken_reason) *broken_reason = reason;
    return Error{path, what, move_aside};
  };

  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (options.read_only && !exists)
    return Error{path, "no store database here", "check the data directory; the agent creates the store at its first start"};
  if (!options.read_only) {
    if (!exists) {
      // Created 0600 before SQLite sees it; SQLite gives -wal and -shm the database's mode.
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0 && errno != EEXIST)
        return Error{path, std::string("cannot create the store: ") + std::strerror(errno),
                     "check that the data directory exists and is writable by the agent's user"};
      if (fd >= 0) ::close(fd);
    } else if ((st.st_mode & 077) != 0) {
      ::chmod(path.c_str(), 0600);  // student data: never readable by group or others
    }
  }

  try {
    int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    auto db = std::make_unique<Connection>(path, flags);
    sqlite3_busy_timeout(db->raw(), 5000);
    // On a full file system SQLite cannot create the 32 KiB -shm a WAL database needs, and
    // the agent could not even start to say so (after a reboot or a crash while the disk was
    // full). In EXCLUSIVE locking mode SQLite keeps that index in memory: the store opens,
    // the outbox is delivered, reports are refused and counted until space is freed. The
    // price: no second process (campusctl --local) can read the store until the agent
    // restarts with room (docs/store.md "Size cap").
    if (!options.read_only) {
      struct statvfs fs {};
      auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
      if (::statvfs(dir.c_str(), &fs) == 0) {
        auto free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
        if (free_bytes < kMinFreeBytes) {
          db->exec("PRAGMA locking_mode = EXCLUSIVE");
          spdlog::warn("{}: the data directory's file system is full ({} KiB free): the store opens in exclusive "
                       "mode; new reports are refused until space is freed, and campusctl --local cannot read "
                       "the store until the agent restarts with space (fix: free space on {})",
                       path, free_bytes / 1024, dir.string());
        }
      }
    }
    std::string check;
    try {
      check = db->scalar_text("PRAGMA quick_check");
    } catch (const Failure& f) {
      if (f.code() == SQLITE_NOTADB)
        return broken(std::string("the file is not a campus-agent store (") + f.what() + ")", "not_a_store");
      if (f.code() == SQLITE_CORRUPT) return broken(std::string("the store is corrupt (") + f.what() + ")");
      throw;
    }
    if (check != "ok") {
      // quick_check lists one problem per row (and scalar_text returns only the first row,
      // which may be a header): ask for the first few and put them on one line for the log.
      std::string problems;
      auto q = db->prepare("PRAGMA quick_check(4)");
      while (q.step()) {
        auto row = q.text(0);
        const std::string header = "*** in database main ***";  // SQLite's prefix of the first row
        if (row.rfind(header, 0) == 0) row.erase(0, header.size());
        for (auto& c : row)
          if (c == '\n' || c == '\r') c = ' ';
        if (auto b = row.find_first_not_of(' '); b != std::string::npos)
          problems += (problems.empty() ? "" : "; ") + row.substr(b);
      }
      return broken("the store is corrupt (PRAGMA quick_check: " + (problems.empty() ? check : problems) + ")");
    }

    std::int64_t tables = db->scalar_int("SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    std::int64_t version = 0;
    if (tables > 0) {
      bool has_meta = db->scalar_int("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'") > 0;
      if (!has_meta || db->scalar_text("SELECT value FROM meta WHERE key = 'application'") != kApplication)
        return broken("the file is an SQLite database but not a campus-agent store (no campus-agent meta table)", "not_a_store");
      version = db->scalar_int("SELECT value FROM meta WHERE key = 'schema_version'");
    } else if (options.read_only) {
      return Error{path, "the store is empty", "start the agent once so it creates the store"};
    }
    if (version > kSchemaVersion)
      return Error{path,
                   "the store has schema version " + std::to_string(version) + ", written by a newer campus-agent; this one knows up to " +
                       std::to_string(kSchemaVersion),
                   "upgrade campus-agent, or " + move_aside};
    if (options.read_only) {
      if (version != kSchemaVersion)
        return Error{path, "the store has schema version " + std::to_string(version) + ", this build expects " +
                               std::to_string(kSchemaVersion),
                     "start the agent once so it migrates the store"};
    } else {
      // Lets pruning give space back to the file system. Only possible before the first table
      // and before the switch to WAL writes the header.
      if (tables == 0) db->exec("PRAGMA auto_vacuum = INCREMENTAL");
      if (db->scalar_text("PRAGMA journal_mode = WAL") != "wal")
        return Error{path, "cannot switch the store to WAL mode", "put the data directory on a local file system"};
      db->exec("PRAGMA synchronous = FULL");
      db->exec("PRAGMA journal_size_limit = 4194304");
      // 512 KiB of page cache instead of SQLite's 2 MiB default: the daemon's steady RSS
      // (docs/performance.md, Footprint); misses are reads from the OS page cache.
      db->exec("PRAGMA cache_size = -512");
      for (auto v = version; v < kSchemaVersion; ++v) {
        Transaction tx(*db);
        db->exec(kMigrations[v]);
        db->prepare("INSERT INTO meta(key, value) VALUES ('schema_version', ?1) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind_all(v + 1)
            .run();
        tx.commit();
      }
    }
    return std::make_unique<SqliteStore>(file, options, std::move(db));
  } catch (const Failure& f) {
    if (f.code() == SQLITE_CORRUPT || f.code() == SQLITE_NOTADB) return broken(std::string("the store is unreadable (") + f.what() + ")");
    return Error{path, std::string("cannot open the store: ") + f.what(),
                 "check the file's owner and permissions and the data directory's free space"};
  }
}


// The identity file beside the database (`agent.db.id`): {"store_id","created"}. It outlives
// the database it names, which is how a deleted database is told from a first start.
std::optional<StoreIdentity> read_identity_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = Json::parse(ss.str(), nullptr, false);
  if (!j.is_object() || !j.contains("store_id") || !j["store_id"].is_string()) {
    spdlog::warn("{}: not a store identity file (ignored; rewritten when the store opens)", file.string());
    return std::nullopt;
  }
  return StoreIdentity{j["store_id"].get<std::string>(), j.value("created", ""), std::nullopt};
}

// Atomic (temporary file, fsync, rename). Failing is not fatal: it only weakens the detection
// of a deleted database, so it is logged.
void write_identity_file(const std::filesystem::path& file, const StoreIdentity& id) {
  const std::string text = Json{{"store_id", id.id}, {"created", id.created}}.dump() + "\n";
  const std::string tmp = file.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int err = errno;
  if (fd >= 0) ::close(fd);
  if (ok && ::rename(tmp.c_str(), file.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    spdlog::warn("{}: cannot write the store identity file: {} (a deleted database would not be recognised as such)",
                 file.string(), std::strerror(err));
  }
}

std::string compact_utc(SystemTime t) {
  auto s = rfc3339(t, "+00:00");  // 2026-11-29T01:02:03+00:00
  std::string out;
  for (char c : s.substr(0, 19))
    if (c != '-' && c != ':') out += c;
  return out + "Z";  // 20261129T010203Z
}

// Moves `file` and its -wal and -shm to `<file>.<reason>-<time>` (+ -wal/-shm, SQLite's own
// naming, so `sqlite3 <moved>` opens it with its WAL). Returns the new name of the database
// file ("" when there was none), or an Error when a rename fails; `leftovers` gets the new
// base name when only a -wal or -shm moved.
Result<std::string> move_aside(const std::filesystem::path& file, const std::string& reason, SystemTime now,
                               std::string& leftovers) {
  std::string base = file.string() + "." + reason + "-" + compact_utc(now);
  std::string target = base;
  for (int i = 1; std::filesystem::exists(target) || std::filesystem::exists(target + "-wal"); ++i)
    target = base + "-" + std::to_string(i);
  std::string moved;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::string from = file.string() + suffix;
    if (::access(from.c_str(), F_OK) != 0) continue;
    if (::rename(from.c_str(), (target + suffix).c_str()) != 0)
      return Error{from, std::string("cannot move the broken store aside to ") + target + suffix + ": " + std::strerror(errno),
                   "check that the data directory is writable by the agent's user, or move the file aside by hand"};
    if (*suffix == '\0') moved = target;
    else if (moved.empty()) leftovers = target;
  }
  return moved;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& file, StoreOptions options) {
  auto s = open_checked(file, options, nullptr);
  if (!s) return s.error();
  return std::unique_ptr<Store>(std::move(s).value());
}

Result<std::unique_ptr<Store>> Store::open_or_recover(const std::filesystem::path& file, StoreOptions options,
                                                      SystemTime now, std::string* recovery_log) {
  if (options.read_only) return open(file, options);
  const std::filesystem::path id_file = file.string() + ".id";
  const auto previous = read_identity_file(id_file);
  const std::string known = previous ? " (store " + previous->id + ", created " + previous->created + ", named by " +
                                           id_file.string() + ")"
                                     : "";
  std::optional<StoreRecovery> rec;
  std::error_code ec;
  bool exists = std::filesystem::exists(file, ec);
  if (!exists && previous) {
    rec = StoreRecovery{{}, "missing", "the store database is gone" + known, {}, {}};
  } else if (exists && previous && std::filesystem::file_size(file, ec) == 0 && !ec) {
    // SQLite takes an empty file for an empty database: without this check a truncated store
    // would silently become a fresh one.
    rec = StoreRecovery{{}, "emptied", "the store database is empty (0 bytes)" + known, {}, {}};
  } else {
    std::string reason;
    auto s = open_checked(file, options, &reason);
    if (s.ok()) {
      auto id = (*s)->identity();
      if (previous && previous->id != id.id)
        spdlog::warn("{}: the database is store {}, the identity file named store {}: another store was put in its "
                     "place (a backup?); the county sees its id in the birth",
                     file.string(), id.id, previous->id);
      if (!previous || previous->id != id.id) write_identity_file(id_file, id);
      return std::unique_ptr<Store>(std::move(s).value());
    }
    if (reason.empty()) return s.error();
    rec = StoreRecovery{{}, reason, s.error().what + known, {}, {}};
  }
  rec->at = rfc3339(now, "+00:00");
  if (previous) rec->previous_id = previous->id;
  // A database that is gone may have left its -wal and -shm: SQLite must never replay a WAL
  // of the old store into the new one, so they move aside too.
  std::string leftovers;
  auto moved = move_aside(file, rec->reason, now, leftovers);
  if (!moved) return moved.error();
  rec->moved_to = *moved;
  if (!leftovers.empty()) rec->what += "; its leftover -wal/-shm were moved to " + leftovers + "-wal/-shm";
  auto s = open_checked(file, options, nullptr);
  if (!s) return s.error();
  try {
    (*s)->set_recovered(*rec);
  } catch (const sqlite::Failure& f) {
    return Error{file.string(), std::string("cannot record the recovery in the fresh store: ") + f.what(),
                 "check the data directory's free space"};
  }
  auto id = (*s)->identity();
  write_identity_file(id_file, id);
  if (recovery_log)
    *recovery_log = file.string() + ": STORE RECOVERED: " + rec->what +
                    (rec->moved_to.empty() ? std::string("") : "; the old file was moved to " + rec->moved_to) +
                    "; a fresh store " + id.id + " was started: seq starts again at 1, messages the county had not " +
                    "received from the old store are lost (see docs/store.md \"Recovery\")";
  return std::unique_ptr<Store>(std::move(s).value());
}

}  // namespace campus
