// The county's record: everything the schools sent, the ledger of what is missing, and the
// history the plan is measured by. One interface; SQLite is its implementation for one county
// (docs/county.md "The database"). The collector writes through ingest() and the repair calls;
// campusctl and the dashboard read through the query calls.
//
// Keys: a school's messages are a *series* per store (the agent's store id): a school whose
// store was replaced starts a new series at seq 1 instead of colliding with its old seqs.
// A *gap* is a range of seqs the collector has not received; its *pieces* are what is still
// open or lost of it; whatever left the pieces was filled.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "campus/error.hpp"
#include "campus/units.hpp"
#include "ingest.hpp"

namespace campus::county {

using SystemTime = std::chrono::system_clock::time_point;

// How the collector asks schools for what is missing (config [repair]).
struct RepairPolicy {
  bool enabled = true;
  Millis reorder_grace{60000};        // a gap younger than this may still fill by itself
  Millis tail_wait_max{600000};       // ask for a tail even without an empty outbox after this
  Millis request_timeout{120000};     // no reply by then: ask again later
  int max_schools = 8;                // requests in flight at once, one per school
  std::int64_t max_range = 10000;     // seqs per request (the agent's limit)
  Millis backoff_min{60000}, backoff_max{3600000};
  std::string requester = "collector";  // .../reply/{requester}
};

// How long what is kept (config [history]).
struct Retention {
  Millis keep_reports{std::chrono::hours(24 * 90)};     // full reports; the last of each day stays
  Millis keep_history{std::chrono::hours(24 * 1200)};   // events, state changes, daily rows, samples
  Millis health_every{std::chrono::minutes(15)};        // one health sample per school per this
  Millis keep_quarantine{std::chrono::hours(24 * 90)};
};

// One request the collector publishes: `resend` from..to to the school.
struct ResendRequest {
  std::int64_t id = 0;
  std::string school;
  std::string store_id;
  std::int64_t from_seq = 0, to_seq = 0;
  std::string correlation;
};

// What one ingest transaction did.
struct BatchResult {
  int stored = 0, duplicates = 0, conflicts = 0, quarantined = 0, states = 0, health = 0, replies = 0;
  int gaps_opened = 0, seqs_filled = 0, seqs_lost = 0, stale_wills = 0, ignored = 0;
  std::vector<std::string> log;  // lines worth an operator's attention (conflicts, replaced stores, lost ranges)
};

// ---- alerts (alerts.hpp evaluates the rules; the database keeps their state and the outbox) ----
// Something wrong now, found by one rule: `key` names it for its whole life
// ("offline/school-a", "coverage/school-a/classroom", "case/school-a/attendance-S7-1").
struct AlertCondition {
  std::string key, rule, school, subject;
  std::string summary;    // one line for people, in the configured language
  Json detail = Json::object();
  Millis hold{0};         // fires once it has held this long (recording: failing for longer than Z)
  bool one_shot = false;  // fires once and is done (a lost gap does not come back)
};
// Which channel gets which rules (empty: every rule).
struct AlertRoute {
  std::string channel;
  std::vector<std::string> rules;
};
// What one evaluation changed.
struct AlertPass {
  int active = 0, pending = 0, fired = 0, resolved = 0, queued = 0;
};
// One alert's transition (firing or resolved) waiting to reach one channel.
struct AlertDelivery {
  std::int64_t id = 0, alert = 0;
  std::string channel, transition;  // "firing" | "resolved"
  std::string rule, school, subject, summary;
  Json detail = Json::object();
  std::string since, fired_at, resolved_at;  // RFC 3339 UTC; empty when not yet
  int attempts = 0;                          // this one included
};

class CountyDatabase {
 public:
  virtual ~CountyDatabase() = default;

  // ONE transaction for the batch, in its order. An Error means nothing of the batch was kept
  // (the caller must not acknowledge any of it); a message the database cannot take for a
  // reason of its own is quarantined, never an Error.
  virtual Result<BatchResult> ingest(const std::vector<Parsed>& batch, SystemTime received) = 0;

  // Opens the tails that are due, expires requests past their deadline, and claims the next
  // requests to send (recorded as sent, one per school, at most policy.max_schools in flight).
  virtual Result<std::vector<ResendRequest>> plan_repairs(const RepairPolicy& policy, SystemTime now) = 0;
  // A claimed request could not be published: it counts as answered "not sent", retried later.
  virtual Status request_not_sent(std::int64_t request_id, const std::string& why, const RepairPolicy& policy,
                                  SystemTime now) = 0;

  // Retention (docs/county.md "What is kept"); returns how many rows went.
  virtual Result<std::int64_t> prune(const Retention& retention, SystemTime now) = 0;
  virtual void set_retention(const Retention& retention) = 0;
  // The reorder grace of new gaps and the backoff of repairs come from it.
  virtual void set_policy(const RepairPolicy& policy) = 0;

  // The county register as the collector has it (schools listed even before they report).
  virtual Status set_register(const std::vector<std::pair<std::string, std::string>>& code_and_name) = 0;

  // ---- reading (JSON rows, as campusctl prints them with --json) ----
  // {"code": name} of the register the collector last wrote.
  virtual Result<Json> register_schools() = 0;
  // One row per school seen, in the register the collector wrote, or in `register_schools`:
  // state, latest summaries, cases, ledger.
  virtual Result<std::vector<Json>> schools(const std::vector<std::string>& register_schools) = 0;
  // Absence cases of the schools' current stores: state "open" | "closed" | "all".
  virtual Result<std::vector<Json>> cases(const std::string& state, const std::string& school) = 0;
  // {"school", "states":[...], "days":[...], "case_steps":[...], "events":[...]} since `since` (a day).
  virtual Result<Json> history(const std::string& school, const std::string& audit, const std::string& since) = 0;
  // The latest full report of each audit of a school: {audit: {"seq", "ts", "body"}}; "body" is
  // null when the report itself is past keep_reports (its summary stays in schools()).
  virtual Result<Json> latest_reports(const std::string& school) = 0;
  // Every gap (of one school when given), newest first.
  virtual Result<std::vector<Json>> gaps(const std::string& school) = 0;
  // Month by month: the share of `register_schools` (or every school seen) meeting each target
  // at the month's end, from the daily rows.
  virtual Result<std::vector<Json>> monthly(const std::vector<std::string>& register_schools) = 0;
  // Counters and ledger totals for the collector's health; `silent_since`: schools heard from
  // last before it are listed as silent.
  virtual Result<Json> totals(SystemTime silent_since) = 0;
  // ---- alerts ----
  // Takes what is wrong now: a new condition becomes a pending alert (firing at once when its
  // hold is 0), a pending one fires once it has held long enough, a firing one whose condition
  // is gone resolves; every firing and resolving queues one delivery per routed channel in the
  // same transaction (the outbox: nothing is lost across a restart).
  virtual Result<AlertPass> record_alerts(const std::vector<AlertCondition>& now_active,
                                          const std::vector<AlertRoute>& routes, SystemTime now) = 0;
  // Claims up to `max` deliveries of `channel` that are due (queued and past their next attempt,
  // or claimed before and not answered within `lease`: a collector that died while sending).
  // The claim is committed before anything is sent, so a crash between sending and recording
  // sends that message once more after the lease, never more often.
  virtual Result<std::vector<AlertDelivery>> claim_deliveries(const std::string& channel, int max, Millis lease,
                                                              SystemTime now) = 0;
  // The channel's answer: delivered, or not (queued again for `next_attempt`, the error kept).
  virtual Status delivery_result(const std::vector<std::int64_t>& ids, bool delivered, const std::string& error,
                                 SystemTime next_attempt, SystemTime now) = 0;
  // Alerts newest first with their deliveries: state "active" (pending or firing) or "all".
  virtual Result<std::vector<Json>> alerts(const std::string& state, int limit) = 0;
  // {"firing","pending","deliveries":{channel:{"queued","sending","delivered","attempts"}}}
  virtual Result<Json> alert_totals() = 0;

  // The collector's own status as it last wrote it (set_status), or null.
  virtual Result<Json> status() = 0;
  virtual Status set_status(const Json& status) = 0;
};

struct DatabaseOptions {
  bool read_only = false;       // campusctl
  bool synchronous_full = true; // [database] synchronous
  Retention retention;
  RepairPolicy policy;
};

// Opens (creating and migrating unless read_only) the SQLite database at `file`.
Result<std::unique_ptr<CountyDatabase>> open_sqlite(const std::filesystem::path& file, const DatabaseOptions& options);
// The same on PostgreSQL: `url` a libpq connection URL ("postgresql://county@db.example:5432/county"),
// the password read from a file by the caller.
Result<std::unique_ptr<CountyDatabase>> open_postgres(const std::string& url, const std::optional<std::string>& password,
                                                      const DatabaseOptions& options);

}  // namespace campus::county
