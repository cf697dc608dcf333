#include "core/store_outbox.hpp"

#include <algorithm>

#include "core/commit_plan.hpp"  // text_of

namespace campus {

using sqlite::Failure;
using sqlite::Transaction;

std::int64_t meta_int(sqlite::Connection& db, const std::string& key) {
  auto q = db.prepare("SELECT value FROM meta WHERE key = ?1");
  q.bind_all(key);
  return q.step() ? q.int64(0) : 0;
}

std::string meta_text(sqlite::Connection& db, const std::string& key) {
  auto q = db.prepare("SELECT value FROM meta WHERE key = ?1");
  q.bind_all(key);
  return q.step() ? q.text(0) : std::string();
}

void set_meta(sqlite::Connection& db, const std::string& key, std::int64_t value) {
  db.prepare("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
      .bind_all(key, value)
      .run();
}

std::int64_t epoch_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SystemTime from_epoch_ms(std::int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
}

Outbox::Outbox(sqlite::Connection& db, std::filesystem::path file, StoreOptions options)
    : db_(db), file_(std::move(file)), options_(options) {
  buffer_full_ = meta_int(db_, "buffer_full") != 0;
  refused_ = meta_int(db_, "refused_commits");
}

// ---- the table ----

void Outbox::append(std::int64_t seq, const std::string& topic, const Json& envelope, bool retain, const char* kind,
                    const std::string& audit, SystemTime created) {
  db_.prepare(
         "INSERT INTO outbox(seq, topic, payload, qos, retain, kind, audit, created) "
         "VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7)")
      .bind_all(seq, topic, text_of(envelope), retain ? 1 : 0, kind, audit, epoch_ms(created))
      .run();
}

std::vector<OutboxMessage> Outbox::unsent(std::int64_t after_seq, int limit) {
  return select("WHERE sent_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2", after_seq, limit);
}

std::vector<OutboxMessage> Outbox::range(std::int64_t from_seq, std::int64_t to_seq) {
  return select("WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq", from_seq, to_seq);
}

std::vector<OutboxMessage> Outbox::select(const std::string& where, std::int64_t a, std::int64_t b) {
  std::vector<OutboxMessage> out;
  try {
    auto q = db_.prepare("SELECT seq, topic, payload, qos, retain, kind, created, attempts FROM outbox " + where);
    q.bind_all(a, b);
    while (q.step()) {
      OutboxMessage m;
      m.seq = q.int64(0);
      m.topic = q.text(1);
      m.payload = q.text(2);
      m.qos = static_cast<int>(q.int64(3));
      m.retain = q.int64(4) != 0;
      m.kind = q.text(5);
      m.created = from_epoch_ms(q.int64(6));
      m.attempts = static_cast<int>(q.int64(7));
      out.push_back(std::move(m));
    }
  } catch (const Failure& f) {
    spdlog::error("{}: reading the outbox: {}", file_.string(), f.what());
  }
  return out;
}

void Outbox::acknowledge(const std::vector<std::int64_t>& seqs, SystemTime at) {
  acknowledged_.insert(acknowledged_.end(), seqs.begin(), seqs.end());
  acknowledged_at_ = at;
  flush_acknowledged();
}

void Outbox::flush_acknowledged() {
  if (acknowledged_.empty()) return;
  try {
    Transaction tx(db_);
    auto q = db_.prepare("UPDATE outbox SET sent_at = ?1 WHERE seq = ?2 AND sent_at IS NULL");
    for (auto seq : acknowledged_) {
      q.bind_all(epoch_ms(acknowledged_at_), seq).run();
      q.reset();
    }
    tx.commit();
    acknowledged_.clear();
  } catch (const Failure& f) {
    // Not fatal: the messages were delivered; only the bookkeeping waits for space.
    spdlog::error("{}: marking {} messages sent: {} (kept in memory, retried)", file_.string(), acknowledged_.size(),
                  f.what());
  }
}

void Outbox::count_attempt(std::int64_t seq, const std::string& error) {
  try {
    db_.prepare("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1").bind_all(seq, error).run();
  } catch (const Failure& f) {
    spdlog::error("{}: counting an attempt of seq {}: {}", file_.string(), seq, f.what());
  }
}

std::int64_t Outbox::prune(SystemTime now) {
  try {
    Transaction tx(db_);
    db_.prepare("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?1")
        .bind_all(epoch_ms(now - options_.keep_sent))
        .run();
    std::int64_t n = db_.changes();
    drop_unreferenced_reports();
    tx.commit();
    if (n > 0) shrink();
    return n;
  } catch (const Failure& f) {
    spdlog::error("{}: pruning sent messages: {}", file_.string(), f.what());
    return 0;
  }
}

void Outbox::fill(OutboxStats& s) {
  s.refused_commits = refused_;
  s.buffer_full = buffer_full_;
  s.unsent = db_.scalar_int("SELECT count(*) FROM outbox WHERE sent_at IS NULL");
  s.sent_kept = db_.scalar_int("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL");
  auto q = db_.prepare("SELECT min(created) FROM outbox WHERE sent_at IS NULL");
  if (q.step() && !q.is_null(0)) s.oldest_unsent_created = from_epoch_ms(q.int64(0));
  s.db_bytes = size_now();
}

// ---- the cap ----

std::uint64_t Outbox::wal_bytes() const {
  std::error_code ec;
  auto n = std::filesystem::file_size(file_.string() + "-wal", ec);
  return ec ? 0 : n;
}

std::uint64_t Outbox::size_now() {
  return static_cast<std::uint64_t>(db_.scalar_int("PRAGMA page_count") * db_.scalar_int("PRAGMA page_size")) +
         wal_bytes();
}

// The database's size once `bytes` more are written: free pages are reused first.
bool Outbox::fits(std::uint64_t bytes) {
  auto page = static_cast<std::uint64_t>(db_.scalar_int("PRAGMA page_size"));
  auto pages = static_cast<std::uint64_t>(db_.scalar_int("PRAGMA page_count"));
  auto free_pages = static_cast<std::uint64_t>(db_.scalar_int("PRAGMA freelist_count"));
  auto needed = (bytes + page - 1) / page;
  auto after = std::max(pages, pages - free_pages + needed);
  // The new pages land in the WAL first and reach the main file at the next checkpoint.
  return after * page + wal_bytes() + needed * page <= options_.max_size;
}

// Gives freed pages back to the file system (auto_vacuum=INCREMENTAL) and empties the WAL.
void Outbox::shrink() {
  try {
    db_.exec("PRAGMA incremental_vacuum");
    db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (const Failure&) {
    // A reader (campusctl --local) holds the WAL: the next attempt truncates it.
  }
}

bool Outbox::make_room(std::uint64_t bytes) {
  if (fits(bytes)) return true;
  shrink();
  // Acknowledged rows first (oldest first), then unacknowledged reports that a newer report of
  // the same audit supersedes. Never events, never cases.
  const char* const steps[] = {
      "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE sent_at IS NOT NULL ORDER BY seq LIMIT 64)",
      "DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox o WHERE o.kind = 'report' AND o.sent_at IS NULL "
      "AND EXISTS (SELECT 1 FROM reports r WHERE r.audit = o.audit AND r.seq > o.seq) ORDER BY o.seq LIMIT 16)",
  };
  for (const char* sql : steps) {
    while (!fits(bytes)) {
      Transaction tx(db_);
      db_.exec(sql);
      std::int64_t n = db_.changes();
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
void Outbox::drop_unreferenced_reports() {
  db_.exec(
      "DELETE FROM reports WHERE seq NOT IN (SELECT seq FROM outbox) "
      "AND seq NOT IN (SELECT max(seq) FROM reports GROUP BY audit)");
}

void Outbox::clear_full_flag() {
  if (buffer_full_) set_meta(db_, "buffer_full", 0);
}

void Outbox::after_commit() {
  buffer_full_ = false;
  flush_acknowledged();
}

// Counts a refused report and raises buffer_full, in memory first: on a full disk the
// persisted copy may fail to write, and health still has to say so.
void Outbox::note_refusal() {
  ++refused_;
  buffer_full_ = true;
  try {
    Transaction tx(db_);
    set_meta(db_, "refused_commits", refused_);
    set_meta(db_, "buffer_full", 1);
    tx.commit();
  } catch (const Failure& f) {
    spdlog::error("{}: recording a refused commit: {}", file_.string(), f.what());
  }
}

Error Outbox::refuse_report(const std::string& audit, std::uint64_t bytes) {
  note_refusal();
  return Error{file_.string(),
               "buffer full: the report of audit \"" + audit + "\" (" + std::to_string(bytes / 1024) +
                   " KiB) was refused; the store holds " + std::to_string(size_now() / 1024) +
                   " KiB of undelivered events, cases and latest reports, the cap is " +
                   std::to_string(options_.max_size / 1024) + " KiB (" + std::to_string(refused_) +
                   " reports refused so far)",
               "restore the link to the broker so the outbox drains, or raise buffer.max_size"};
}

Error Outbox::refuse_update(const std::string& case_id) {
  buffer_full_ = true;
  return Error{file_.string(), "buffer full: the update of case " + case_id + " was not stored",
               "restore the link to the broker so the outbox drains, or raise buffer.max_size"};
}

}  // namespace campus
