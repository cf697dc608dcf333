// The agent store's outbox table and its size cap. The outbox holds every committed envelope
// with its seq until the broker acknowledged it and keep_sent has passed; the cap keeps the
// database file under buffer.max_size by dropping acknowledged rows first, then unsent
// reports a newer report of the same audit supersedes, never events or cases; a commit that
// still does not fit is refused and counted (buffer_full in health).
//
// Not thread-safe: the open store (store.cpp) calls it under its own lock, on its connection.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "campus/error.hpp"
#include "core/sqlite.hpp"
#include "core/store.hpp"

namespace campus {

// The store's meta table (key -> integer or text; schema in store_open.cpp). 0 / "" when absent.
std::int64_t meta_int(sqlite::Connection& db, const std::string& key);
std::string meta_text(sqlite::Connection& db, const std::string& key);
void set_meta(sqlite::Connection& db, const std::string& key, std::int64_t value);

// Times in the store's integer columns: milliseconds since the epoch.
std::int64_t epoch_ms(SystemTime t);
SystemTime from_epoch_ms(std::int64_t ms);

class Outbox {
 public:
  // Reads the persisted buffer_full flag and refusal count.
  Outbox(sqlite::Connection& db, std::filesystem::path file, StoreOptions options);

  // ---- the table ----

  // REQUIRES: inside the write transaction that commits the envelope.
  void append(std::int64_t seq, const std::string& topic, const Json& envelope, bool retain, const char* kind,
              const std::string& audit, SystemTime created);
  // Unacknowledged messages with seq > after_seq, in seq order, at most `limit`.
  std::vector<OutboxMessage> unsent(std::int64_t after_seq, int limit);
  // Stored messages (sent or not) in [from, to].
  std::vector<OutboxMessage> range(std::int64_t from_seq, std::int64_t to_seq);
  // Marks acknowledged seqs sent in one transaction. When that fails (a full disk) they stay in
  // memory and are retried with the next acknowledgements or after the next commit: the
  // publisher's cursor has moved past them, so otherwise they would count as unsent (depth,
  // oldest_unsent_age_s) until the next reconnect re-sends them.
  void acknowledge(const std::vector<std::int64_t>& seqs, SystemTime at);
  void count_attempt(std::int64_t seq, const std::string& error);
  // Removes sent rows older than keep_sent, and the report history only they referenced.
  std::int64_t prune(SystemTime now);
  // unsent, sent_kept, oldest_unsent_created, db_bytes, refused_commits, buffer_full.
  void fill(OutboxStats& stats);

  // ---- the cap ----

  // Frees space for `bytes` more; false when even then they do not fit.
  // REQUIRES: outside a transaction (a checkpoint cannot run inside one).
  bool make_room(std::uint64_t bytes);
  // REQUIRES: inside the transaction of a commit that fits: clears the persisted full flag.
  void clear_full_flag();
  // After such a commit: the buffer is no longer full, and acknowledgements a full disk kept
  // out are written now that there is room.
  void after_commit();
  // A report that does not fit: counted, buffer_full raised, and the Error that says so.
  Error refuse_report(const std::string& audit, std::uint64_t bytes);
  Error refuse_update(const std::string& case_id);
  // The file system filled up before the cap did: the same state for health as a full buffer.
  void note_full_disk() { note_refusal(); }

 private:
  std::vector<OutboxMessage> select(const std::string& where, std::int64_t a, std::int64_t b);
  void flush_acknowledged();
  std::uint64_t wal_bytes() const;
  std::uint64_t size_now();
  bool fits(std::uint64_t bytes);
  void shrink();
  void drop_unreferenced_reports();
  void note_refusal();

  sqlite::Connection& db_;
  std::filesystem::path file_;
  StoreOptions options_;
  bool buffer_full_ = false;
  std::int64_t refused_ = 0;
  std::vector<std::int64_t> acknowledged_;  // acknowledged, not yet marked sent
  SystemTime acknowledged_at_{};
};

}  // namespace campus
