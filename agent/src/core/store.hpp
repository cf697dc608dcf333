// The agent's SQLite store: reports, per-subject state (for events), cases and their history,
// plugin records, and the outbox with the school's gap-free seq. Nothing reaches the network
// without first being committed here; nothing leaves until the broker acknowledged it.
//
// Thread-safe (one internal mutex). Every method is synchronous; the daemon calls it only from
// the store's own thread (StoreExecutor), so the io_context never waits on fsync. Reads return
// an Error when the disk or file failed, never an empty answer in its place.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "campus/error.hpp"
#include "campus/plugin.hpp"
#include "core/envelope.hpp"

namespace campus {

struct StoreOptions {
  std::uint64_t max_size = 256ull << 20;  // buffer.max_size: the cap on the database file
  Millis keep_sent{std::chrono::hours(24 * 30)};
  bool read_only = false;                 // campusctl --local
};

struct OutboxMessage {
  std::int64_t seq = 0;
  std::string topic;
  std::string payload;  // the envelope JSON, exactly as committed
  int qos = 1;
  bool retain = false;
  std::string kind;     // report | event
  SystemTime created;
  int attempts = 0;
};

struct CommitOutcome {
  std::int64_t report_seq = 0;
  std::vector<std::int64_t> event_seqs;
  std::vector<CaseView> cases_changed;
};

struct OutboxStats {
  std::int64_t unsent = 0;
  std::int64_t sent_kept = 0;
  std::optional<SystemTime> oldest_unsent_created;
  std::int64_t last_seq = 0;
  std::int64_t refused_commits = 0;  // reports refused because the buffer was full
  bool buffer_full = false;
  std::uint64_t db_bytes = 0;
};

// Why this store was started fresh over a broken or missing one (Store::open_or_recover).
// Kept in the new store for its whole life: health and the birth say it every time.
struct StoreRecovery {
  std::string at;           // RFC 3339 (UTC): when the fresh store was started
  std::string reason;       // "corrupt" | "not_a_store" | "emptied" | "missing"
  std::string what;         // what was wrong, as the open error said it
  std::string moved_to;     // where the old file went ("" when there was none)
  std::string previous_id;  // the lost store's id, from the identity file ("" if unknown)
};

// Which store this is: a random id made when the store is created. The county sees it in the
// birth and in health; a new id with seq starting at 1 again is a new store, never a replay.
struct StoreIdentity {
  std::string id;
  std::string created;  // RFC 3339 (UTC)
  std::optional<StoreRecovery> recovered;
};

void to_json(Json& j, const StoreRecovery& r);
// {"id","created","recovered": null | {"at","reason","what","moved_to","previous_id"}}
void to_json(Json& j, const StoreIdentity& id);

struct CaseFilter {
  std::string audit;             // empty: every audit
  std::string state = "open";    // open | closed | all
  std::optional<SystemTime> since;
};

// The case as it appears in event bodies and replies: {"id","subject","stage","outcome",
// "opened_at","closed_at","details","steps":[{"at","action","actor","note"}]}.
void to_json(Json& j, const CaseStep& step);
void to_json(Json& j, const CaseView& view);

class Store {
 public:
  // Opens or creates the database (0600), runs migrations, checks integrity of the header.
  // A file that is not a campus-agent database, or is corrupt, is an Error (never a silent
  // reset): the message says how to move it aside.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& file, StoreOptions options);
  // The daemon's open (docs/store.md "Recovery"): like open(), but a file that is corrupt, not
  // a campus-agent store, emptied, or gone while its identity file (`<file>.id`) says a store
  // existed, is moved aside as `<file>.<reason>-<UTC time>` (with its -wal and -shm) and a
  // fresh store is started that records why (identity().recovered). Nobody watches a school
  // server: it recovers by itself, and says so loudly (log, health, birth). Errors moving
  // aside cannot fix (permissions, a newer schema, a full disk) stay Errors. `recovery_log`
  // gets the one line to log when it recovered.
  static Result<std::unique_ptr<Store>> open_or_recover(const std::filesystem::path& file, StoreOptions options,
                                                        SystemTime now, std::string* recovery_log = nullptr);
  virtual ~Store() = default;

  // ONE transaction: stores the report, compares each finding's state with the subject's
  // previous one (events for changes, and for subjects that disappeared: to="removed"),
  // applies case actions (events for each), applies record writes, and appends the report
  // (retained) and its events to the outbox with the next seqs. When the buffer is full even
  // after pruning, nothing is written and the Error says so (buffer_full is then set).
  virtual Result<CommitOutcome> commit(const Identity& who, const std::string& audit,
                                       SystemTime ts, const AuditReport& report) = 0;

  // A case step from the county or the school (case.update / campusctl case update): updates
  // the case and appends its event in one transaction. Error when the case does not exist,
  // is closed, or the action is not allowed in its stage.
  virtual Result<CaseView> update_case(const Identity& who, SystemTime ts, const std::string& case_id,
                                       const std::string& action, const std::string& actor,
                                       const std::string& note) = 0;
  virtual Result<std::vector<CaseView>> cases(const CaseFilter& filter) = 0;
  // nullopt: no such case.
  virtual Result<std::optional<CaseView>> find_case(const std::string& case_id) = 0;

  // Outbox: unacknowledged messages with seq > after_seq, in seq order, at most `limit`.
  virtual std::vector<OutboxMessage> unsent(std::int64_t after_seq, int limit) = 0;
  // Marks acknowledged (PUBACK) messages sent; one transaction for the batch.
  virtual void mark_sent(const std::vector<std::int64_t>& seqs, SystemTime at) = 0;
  // Counts an attempt that failed (refused 0x87, ...); the row stays unsent.
  virtual void mark_attempt(std::int64_t seq, const std::string& error) = 0;
  // Stored messages (sent or not) in [from, to]; for `resend`.
  virtual std::vector<OutboxMessage> range(std::int64_t from_seq, std::int64_t to_seq) = 0;
  virtual OutboxStats stats() = 0;
  // Removes sent rows older than keep_sent; returns how many.
  virtual std::int64_t prune(SystemTime now) = 0;

  // The latest committed report body of an audit (the envelope's body); nullopt: none yet.
  virtual Result<std::optional<Json>> latest_report(const std::string& audit) = 0;
  // Only its summary, without parsing the findings (the agent reads it before every run).
  virtual Result<std::optional<Json>> latest_summary(const std::string& audit) = 0;

  // MQTT session counter: raised and returned at every new connection.
  virtual std::int64_t next_session() = 0;
  virtual std::int64_t last_seq() = 0;
  // Which store this is (fixed once open; cheap, never waits for the store's lock).
  virtual StoreIdentity identity() = 0;

  // The plugin's records, read as they are stored at each call (--dry-run, whose store is read-only).
  virtual const RecordReader& records(const std::string& plugin) = 0;
  // A copy of all of the plugin's records, read now (the daemon hands it to a run that reads
  // records; the run then never touches the store).
  virtual Result<std::shared_ptr<const RecordReader>> copy_records(const std::string& plugin) = 0;
};

}  // namespace campus
