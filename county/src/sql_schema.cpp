// The county database's schema, on SQLite and PostgreSQL (see sql.hpp): one list of migrations,
// written once; the few words the engines spell differently are filled in per engine.
#include "sql_schema.hpp"

#include <string>

namespace campus::county {
namespace {

// kMigrations[i] takes schema version i to i + 1, each in its own transaction.
//   {ID}            an integer key the database assigns (RETURNING id gives it)
//   {REAL}, {BLOB}  a double, and bytes that need not be text
//   {MESSAGE_KEY}   message's key: (series, seq); on PostgreSQL the partition keys too
//   {HELD}          the number of messages held: message's rows, and on PostgreSQL report_kept's
//   {MESSAGE_PARTS} PostgreSQL: message is partitioned, events apart, reports by month of their
//                   audit time (ts_ms: every copy of a seq has the same one); prune() drops whole
//                   months, keeping each day's last report in report_kept. The key has the
//                   partition keys in it, as PostgreSQL requires; (series, seq) stays one row
//                   because every insert is under its school's lock and checks first
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE counter(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE register(school TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE school(
  school TEXT PRIMARY KEY,
  first_seen_ms INTEGER NOT NULL,
  current_series INTEGER,
  online INTEGER,
  session INTEGER,
  state_at_ms INTEGER,
  state_reason TEXT,
  version TEXT,
  last_seen_ms INTEGER,
  last_seen TEXT,
  last_received_ms INTEGER,
  health TEXT,
  health_at_ms INTEGER,
  outbox_depth INTEGER,
  agent_takeovers INTEGER NOT NULL DEFAULT 0,
  agent_uptime_s INTEGER,
  takeovers INTEGER NOT NULL DEFAULT 0);
CREATE TABLE series(
  id {ID},
  school TEXT NOT NULL,
  store_id TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  store TEXT,
  max_seen INTEGER NOT NULL DEFAULT 0,
  announced INTEGER NOT NULL DEFAULT 0,
  tail_since_ms INTEGER,
  retired_ms INTEGER,
  retired_reason TEXT,
  messages INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0,
  conflicts INTEGER NOT NULL DEFAULT 0,
  UNIQUE(school, store_id));
CREATE TABLE message(
  series INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  audit TEXT NOT NULL,
  ts TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  day TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  resent INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  payload TEXT NOT NULL,
  {MESSAGE_KEY});
{MESSAGE_PARTS}
CREATE INDEX message_kind_ts ON message(kind, ts_ms);
CREATE TABLE gap(
  id {ID},
  series INTEGER NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  cause TEXT NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('open', 'filled', 'lost')),
  opened_ms INTEGER NOT NULL,
  closed_ms INTEGER,
  requests INTEGER NOT NULL DEFAULT 0,
  last_request_ms INTEGER,
  next_request_ms INTEGER,
  backoff_step INTEGER NOT NULL DEFAULT 0,
  filled INTEGER NOT NULL DEFAULT 0,
  lost INTEGER NOT NULL DEFAULT 0,
  lost_reason TEXT);
CREATE INDEX gap_series_state ON gap(series, state);
CREATE INDEX gap_state_due ON gap(state, next_request_ms);
CREATE TABLE gap_piece(
  series INTEGER NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  gap INTEGER NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('open', 'lost')),
  reason TEXT,
  PRIMARY KEY(series, from_seq));
CREATE INDEX gap_piece_gap ON gap_piece(gap);
CREATE TABLE resend_request(
  id {ID},
  school TEXT NOT NULL,
  series INTEGER NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  correlation TEXT NOT NULL UNIQUE,
  sent_ms INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL,
  outcome TEXT,
  reply_ms INTEGER,
  reply TEXT);
CREATE INDEX resend_request_outcome ON resend_request(outcome, school);
CREATE TABLE conflict(
  id {ID},
  series INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  topic TEXT NOT NULL,
  sha256_kept TEXT NOT NULL,
  sha256_new TEXT NOT NULL,
  payload TEXT NOT NULL);
CREATE TABLE quarantine(
  id {ID},
  received_ms INTEGER NOT NULL,
  topic TEXT NOT NULL,
  school TEXT NOT NULL,
  kind TEXT NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  size INTEGER NOT NULL,
  payload {BLOB} NOT NULL);
CREATE INDEX quarantine_received ON quarantine(received_ms);
CREATE TABLE report_latest(
  school TEXT NOT NULL,
  audit TEXT NOT NULL,
  series INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  ts TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  summary TEXT NOT NULL,
  PRIMARY KEY(school, audit));
CREATE TABLE report_daily(
  school TEXT NOT NULL,
  audit TEXT NOT NULL,
  day TEXT NOT NULL,
  series INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  ts TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  summary TEXT NOT NULL,
  fa {REAL},
  fb {REAL},
  fc {REAL},
  n1 INTEGER,
  n2 INTEGER,
  met INTEGER,
  PRIMARY KEY(school, audit, day));
CREATE TABLE school_day(
  school TEXT NOT NULL,
  day TEXT NOT NULL,
  fiber_classroom {REAL},
  fiber_function_room {REAL},
  fiber_office {REAL},
  fiber_met INTEGER,
  recording_compliant INTEGER,
  recording_total INTEGER,
  recording_met INTEGER,
  cases_open INTEGER,
  cases_overdue INTEGER,
  attendance_met INTEGER,
  digital_campus INTEGER,
  PRIMARY KEY(school, day));
CREATE TABLE absence_case(
  school TEXT NOT NULL,
  series INTEGER NOT NULL,
  case_id TEXT NOT NULL,
  subject TEXT,
  stage TEXT NOT NULL,
  outcome TEXT,
  opened_at TEXT,
  closed_at TEXT,
  overdue INTEGER,
  details TEXT,
  last_seq INTEGER NOT NULL,
  updated_ts TEXT NOT NULL,
  PRIMARY KEY(school, series, case_id));
CREATE TABLE case_step(
  school TEXT NOT NULL,
  series INTEGER NOT NULL,
  case_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  at TEXT,
  action TEXT,
  actor TEXT,
  note TEXT,
  seq INTEGER NOT NULL,
  PRIMARY KEY(school, series, case_id, idx));
CREATE TABLE state_change(
  id {ID},
  school TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  online INTEGER NOT NULL,
  session INTEGER NOT NULL,
  reason TEXT,
  store_id TEXT,
  last_seq INTEGER,
  received_ms INTEGER NOT NULL);
CREATE INDEX state_change_school ON state_change(school, at_ms);
CREATE TABLE health_sample(
  school TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  outbox_depth INTEGER,
  oldest_unsent_age_s INTEGER,
  last_seq INTEGER,
  rss_bytes INTEGER,
  reconnects INTEGER,
  buffer_full INTEGER,
  PRIMARY KEY(school, at_ms));
)sql",
    // 1 -> 2: alerts and their outbox. An alert is pending (its condition holds, not yet long
    // enough), firing, or resolved; one row per key is not resolved (alert_active). Each firing
    // and resolving is a delivery per channel, queued in the same transaction; `sending` with a
    // lease while a collector sends it.
    R"sql(
CREATE TABLE alert(
  id {ID},
  key TEXT NOT NULL,
  rule TEXT NOT NULL,
  school TEXT NOT NULL,
  subject TEXT NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('pending', 'firing', 'resolved')),
  one_shot INTEGER NOT NULL DEFAULT 0,
  since_ms INTEGER NOT NULL,
  fired_ms INTEGER,
  resolved_ms INTEGER,
  summary TEXT NOT NULL,
  detail TEXT NOT NULL);
CREATE UNIQUE INDEX alert_active ON alert(key) WHERE state <> 'resolved';
CREATE INDEX alert_state ON alert(state, id);
CREATE TABLE alert_delivery(
  id {ID},
  alert INTEGER NOT NULL,
  transition TEXT NOT NULL CHECK(transition IN ('firing', 'resolved')),
  channel TEXT NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('queued', 'sending', 'delivered')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  lease_until_ms INTEGER,
  created_ms INTEGER NOT NULL,
  delivered_ms INTEGER,
  last_error TEXT,
  UNIQUE(alert, transition, channel));
CREATE INDEX alert_delivery_due ON alert_delivery(channel, state, next_attempt_ms);
)sql",
    // 2 -> 3: the number of messages held, kept as counter 'held' by ingest and retention, so
    // that the status totals do not count a province's message table (COUNT(*) reads every row:
    // 29 ms at 200,000 messages on PostgreSQL, every status_every).
    R"sql(
DELETE FROM counter WHERE name = 'held';
INSERT INTO counter(name, value) SELECT 'held', {HELD};
)sql",
};

std::string fill(std::string sql, sql::Engine engine) {
  const bool pg = engine == sql::Engine::Postgres;
  auto put = [&](const std::string& token, const std::string& value) {
    for (std::size_t at; (at = sql.find(token)) != std::string::npos;) sql.replace(at, token.size(), value);
  };
  put("{ID}", pg ? "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" : "INTEGER PRIMARY KEY");
  put("{REAL}", pg ? "DOUBLE PRECISION" : "REAL");
  put("{BLOB}", pg ? "BYTEA" : "BLOB");
  put("{HELD}", pg ? "(SELECT COUNT(*) FROM message) + (SELECT COUNT(*) FROM report_kept)" : "(SELECT COUNT(*) FROM message)");
  put("{MESSAGE_KEY}", pg ? "PRIMARY KEY(series, seq, kind, ts_ms)) PARTITION BY LIST (kind" : "PRIMARY KEY(series, seq)");
  put("{MESSAGE_PARTS}",
      pg ? "CREATE TABLE message_event PARTITION OF message FOR VALUES IN ('event');\n"
           "CREATE TABLE message_report PARTITION OF message FOR VALUES IN ('report') PARTITION BY RANGE (ts_ms);\n"
           "CREATE TABLE message_report_default PARTITION OF message_report DEFAULT;\n"
           "CREATE TABLE report_kept (LIKE message);\n"
           "CREATE INDEX report_kept_series_seq ON report_kept(series, seq);\n"
           "CREATE INDEX message_series_seq ON message(series, seq);"
         : "");
  if (pg) {
    // INTEGER is 32 bits on PostgreSQL: every integer here is a 64-bit one (times in ms, seqs).
    for (std::size_t at = 0; (at = sql.find(" INTEGER", at)) != std::string::npos; at += 7) sql.replace(at, 8, " BIGINT");
  }
  return sql;
}

}  // namespace

int schema_version() { return static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0])); }

std::string migration(int from_version, sql::Engine engine) { return fill(kMigrations[from_version], engine); }

}  // namespace campus::county
