// Opening the agent's store: one file, WAL, synchronous=FULL (docs/store.md says why), created
// 0600, checked (application, schema version, free space), migrated; and the recovery that
// moves a broken, emptied or deleted store aside and starts a fresh one, never silently: the
// identity file beside it tells a deleted database from a first start.
#include "core/store_open.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace campus {
namespace {

using sqlite::Connection;
using sqlite::Failure;
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

// The database file exists, mode 0600, before SQLite opens it (read-only: it must exist).
std::optional<Error> prepare_file(const std::string& path, bool read_only) {
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (read_only) {
    if (!exists)
      return Error{path, "no store database here", "check the data directory; the agent creates the store at its first start"};
    return std::nullopt;
  }
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
  return std::nullopt;
}

// On a full file system SQLite cannot create the 32 KiB -shm a WAL database needs, and the
// agent could not even start to say so (after a reboot or a crash while the disk was full).
// In EXCLUSIVE locking mode SQLite keeps that index in memory: the store opens, the outbox is
// delivered, reports are refused and counted until space is freed. The price: no second
// process (campusctl --local) can read the store until the agent restarts with room
// (docs/store.md "Size cap").
void exclusive_when_full(Connection& db, const std::filesystem::path& file) {
  struct statvfs fs {};
  auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  if (::statvfs(dir.c_str(), &fs) != 0) return;
  auto free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free_bytes >= kMinFreeBytes) return;
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  spdlog::warn("{}: the data directory's file system is full ({} KiB free): the store opens in exclusive "
               "mode; new reports are refused until space is freed, and campusctl --local cannot read "
               "the store until the agent restarts with space (fix: free space on {})",
               file.string(), free_bytes / 1024, dir.string());
}

// quick_check lists one problem per row (and scalar_text returns only the first row, which
// may be a header): the first few, on one line for the log.
std::string quick_check_problems(Connection& db) {
  std::string problems;
  auto q = db.prepare("PRAGMA quick_check(4)");
  while (q.step()) {
    auto row = q.text(0);
    const std::string header = "*** in database main ***";  // SQLite's prefix of the first row
    if (row.rfind(header, 0) == 0) row.erase(0, header.size());
    for (auto& c : row)
      if (c == '\n' || c == '\r') c = ' ';
    if (auto b = row.find_first_not_of(' '); b != std::string::npos)
      problems += (problems.empty() ? "" : "; ") + row.substr(b);
  }
  return problems;
}

// The writer's settings (WAL, synchronous=FULL, a small page cache) and the migrations from
// `version` up to kSchemaVersion, each in its own transaction.
std::optional<Error> set_up_and_migrate(Connection& db, const std::string& path, bool fresh, std::int64_t version) {
  // Lets pruning give space back to the file system. Only possible before the first table and
  // before the switch to WAL writes the header.
  if (fresh) db.exec("PRAGMA auto_vacuum = INCREMENTAL");
  if (db.scalar_text("PRAGMA journal_mode = WAL") != "wal")
    return Error{path, "cannot switch the store to WAL mode", "put the data directory on a local file system"};
  db.exec("PRAGMA synchronous = FULL");
  db.exec("PRAGMA journal_size_limit = 4194304");
  // 512 KiB of page cache instead of SQLite's 2 MiB default: the daemon's steady RSS
  // (docs/performance.md, Footprint); misses are reads from the OS page cache.
  db.exec("PRAGMA cache_size = -512");
  for (auto v = version; v < kSchemaVersion; ++v) {
    Transaction tx(db);
    db.exec(kMigrations[v]);
    db.prepare("INSERT INTO meta(key, value) VALUES ('schema_version', ?1) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind_all(v + 1)
        .run();
    tx.commit();
  }
  return std::nullopt;
}

// The store on its database, checked and migrated. `broken` (when given) is set to the reason
// when the file itself is bad (corrupt, not a store): what open_or_recover may move aside.
// Other errors leave it empty. `recovered` (a fresh store that replaces a broken one) is
// written into the store's meta table first, so its identity carries it.
Result<std::unique_ptr<Store>> open_checked(const std::filesystem::path& file, StoreOptions options,
                                            std::string* broken_reason, const StoreRecovery* recovered = nullptr) {
  const std::string path = file.string();
  const std::string move_aside =
      "the agent moves it aside by itself at its next start (as " + path +
      ".<reason>-<UTC time>, with its -wal and -shm) and starts a fresh store; to keep it elsewhere first: mv " + path +
      " " + path + ".broken (with its -wal and -shm files if present)";
  auto broken = [&](const std::string& what, const char* reason = "corrupt") {
    if (broken_reason) *broken_reason = reason;
    return Error{path, what, move_aside};
  };

  if (auto e = prepare_file(path, options.read_only)) return *e;
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
    if (!options.read_only) exclusive_when_full(*db, file);
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
      const std::string problems = quick_check_problems(*db);
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
    } else if (auto e = set_up_and_migrate(*db, path, tables == 0, version)) {
      return *e;
    }
    if (recovered) {
      Transaction tx(*db);
      db->prepare("INSERT INTO meta(key, value) VALUES ('recovered', ?1) "
                  "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
          .bind_all(Json(*recovered).dump())
          .run();
      tx.commit();
    }
    return make_sqlite_store(file, options, std::move(db));
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
  return open_checked(file, options, nullptr);
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
      return s;
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
  // Why this (fresh) store was started goes into it before anything else.
  auto s = open_checked(file, options, nullptr, &*rec);
  if (!s) return s.error();
  auto id = (*s)->identity();
  write_identity_file(id_file, id);
  if (recovery_log)
    *recovery_log = file.string() + ": STORE RECOVERED: " + rec->what +
                    (rec->moved_to.empty() ? std::string("") : "; the old file was moved to " + rec->moved_to) +
                    "; a fresh store " + id.id + " was started: seq starts again at 1, messages the county had not " +
                    "received from the old store are lost (see docs/store.md \"Recovery\")";
  return s;
}

}  // namespace campus
