// Store::open_or_recover (docs/store.md "Recovery"): a database that is corrupt, not a store,
// emptied or deleted while the agent was stopped is moved aside with its -wal and -shm, a fresh
// store starts, and it says so (identity().recovered), never silently. Real SQLite files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include <sqlite3.h>
#include <sys/stat.h>

#include "core/sqlite.hpp"
#include "core/store.hpp"
#include "test_util.hpp"

using namespace campus;
using namespace std::chrono_literals;

namespace {

const Identity kSchool{"zhenkang", "nansan", "+08:00"};
const SystemTime kT0 = SystemTime(std::chrono::sys_days(std::chrono::year(2026) / 11 / 29)) + 1h + 2min + 3s;

class StoreRecoveryTest : public ::testing::Test {
 protected:
  std::filesystem::path file() const { return dir_.path() / "agent.db"; }

  std::unique_ptr<Store> recover(std::string* log = nullptr) {
    auto s = Store::open_or_recover(file(), {}, kT0, log);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // A store with `n` reports in it, closed again (the agent stopped); returns its id.
  std::string make_store(int n = 5) {
    auto s = recover();
    AuditReport r;
    r.summary = Json{{"padding", std::string(50'000, 'p')}};
    r.findings.push_back(Finding{"r1", "up", "", Json::object()});
    for (int i = 0; i < n; ++i) EXPECT_TRUE(s->commit(kSchool, "fiber", kT0, r).ok());
    return s->identity().id;
  }

  void overwrite(std::streamoff at, const std::string& bytes) {
    std::fstream f(file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(at);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  // Asserts a recovery for `reason` from the store `old_id`, with the old file at moved_to.
  void expect_recovered(Store& s, const std::string& reason, const std::string& old_id, const std::string& log,
                        bool file_moved = true) {
    auto id = s.identity();
    ASSERT_TRUE(id.recovered.has_value());
    const auto& r = *id.recovered;
    EXPECT_EQ(r.reason, reason);
    EXPECT_EQ(r.at, "2026-11-29T01:02:03+00:00");
    EXPECT_EQ(r.previous_id, old_id);
    EXPECT_NE(id.id, old_id);
    EXPECT_EQ(s.last_seq(), 0);  // fresh: seq starts again at 1
    const std::string moved = file().string() + "." + reason + "-20261129T010203Z";
    if (file_moved) {
      EXPECT_EQ(r.moved_to, moved);
      EXPECT_TRUE(std::filesystem::exists(moved));
      EXPECT_NE(log.find("the old file was moved to " + moved), std::string::npos) << log;
    } else {
      EXPECT_EQ(r.moved_to, "");
    }
    EXPECT_NE(log.find("STORE RECOVERED"), std::string::npos) << log;
    EXPECT_NE(log.find(file().string()), std::string::npos) << log;
    EXPECT_NE(log.find("a fresh store " + id.id), std::string::npos) << log;
    // The identity file now names the fresh store.
    std::ifstream in(file().string() + ".id");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.find(id.id), std::string::npos) << text;
  }

  test::TempDir dir_;
};

TEST_F(StoreRecoveryTest, AFreshStoreHasARandomIdAndNoRecovery) {
  std::string log;
  auto s = recover(&log);
  auto id = s->identity();
  EXPECT_TRUE(std::regex_match(id.id, std::regex("[0-9a-f]{32}"))) << id.id;
  EXPECT_FALSE(id.created.empty());
  EXPECT_FALSE(id.recovered.has_value());
  EXPECT_EQ(log, "");
  Json j = id;
  EXPECT_TRUE(j["recovered"].is_null());
  EXPECT_TRUE(std::filesystem::exists(file().string() + ".id"));
  // Reopening keeps the id: it belongs to the file, not to the process.
  s.reset();
  EXPECT_EQ(recover()->identity().id, id.id);
}

TEST_F(StoreRecoveryTest, AStoreOfSchemaVersionOneGetsAnIdAtItsFirstOpenAndKeepsItsData) {
  make_store(3);
  {
    // What an agent before the store id left behind.
    sqlite::Connection db(file().string(), SQLITE_OPEN_READWRITE);
    db.exec("DELETE FROM meta WHERE key IN ('store_id', 'store_created'); "
            "UPDATE meta SET value = 1 WHERE key = 'schema_version'");
  }
  std::filesystem::remove(file().string() + ".id");
  std::string log;
  auto s = recover(&log);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(log, "");
  EXPECT_TRUE(std::regex_match(s->identity().id, std::regex("[0-9a-f]{32}"))) << s->identity().id;
  EXPECT_FALSE(s->identity().recovered.has_value());
  EXPECT_EQ(s->last_seq(), 3);  // migrated, not replaced
}

TEST_F(StoreRecoveryTest, GarbagePagesAreMovedAsideAndAFreshStoreSaysWhy) {
  auto old_id = make_store();
  overwrite(4096 * 3, std::string(4096 * 4, '\x5a'));
  std::string log;
  auto s = recover(&log);
  ASSERT_NE(s, nullptr);
  expect_recovered(*s, "corrupt", old_id, log);
  EXPECT_NE(s->identity().recovered->what.find("corrupt"), std::string::npos);
  // The fresh store works and keeps saying it was recovered after a restart.
  EXPECT_TRUE(s->commit(kSchool, "fiber", kT0, AuditReport{}).ok());
  EXPECT_EQ(s->last_seq(), 1);
  auto again_id = s->identity().id;
  s.reset();
  std::string log2;
  auto reopened = recover(&log2);
  EXPECT_EQ(log2, "");  // nothing new to recover
  EXPECT_EQ(reopened->identity().id, again_id);
  ASSERT_TRUE(reopened->identity().recovered.has_value());
  EXPECT_EQ(reopened->identity().recovered->reason, "corrupt");
}

TEST_F(StoreRecoveryTest, AnOverwrittenHeaderIsNotAStore) {
  auto old_id = make_store();
  overwrite(0, "this is not SQLite at all");
  std::string log;
  auto s = recover(&log);
  ASSERT_NE(s, nullptr);
  expect_recovered(*s, "not_a_store", old_id, log);
}

TEST_F(StoreRecoveryTest, ATruncatedDatabaseIsCorrupt) {
  auto old_id = make_store();
  std::filesystem::resize_file(file(), std::filesystem::file_size(file()) / 2);
  std::string log;
  auto s = recover(&log);
  ASSERT_NE(s, nullptr);
  expect_recovered(*s, "corrupt", old_id, log);
}

TEST_F(StoreRecoveryTest, AnEmptiedDatabaseIsNotSilentlyAFreshOne) {
  // SQLite takes a 0-byte file for an empty database; the identity file says one was there.
  auto old_id = make_store();
  std::filesystem::resize_file(file(), 0);
  std::string log;
  auto s = recover(&log);
  ASSERT_NE(s, nullptr);
  expect_recovered(*s, "emptied", old_id, log);
}

TEST_F(StoreRecoveryTest, ADeletedDatabaseIsRecognisedByItsIdentityFile) {
  auto old_id = make_store();
  std::filesystem::remove(file());
  // A WAL left behind must never be replayed into the fresh database: it moves aside.
  std::ofstream(file().string() + "-wal") << std::string(4096, 'w');
  std::string log;
  auto s = recover(&log);
  ASSERT_NE(s, nullptr);
  expect_recovered(*s, "missing", old_id, log, /*file_moved=*/false);
  const std::string leftover = file().string() + ".missing-20261129T010203Z-wal";
  EXPECT_EQ(std::filesystem::file_size(leftover), 4096u);
  EXPECT_NE(s->identity().recovered->what.find(leftover), std::string::npos) << s->identity().recovered->what;
  EXPECT_NE(s->identity().recovered->what.find("gone"), std::string::npos);
  EXPECT_NE(s->identity().recovered->what.find(old_id), std::string::npos);
}

TEST_F(StoreRecoveryTest, AFirstStartWithoutAnIdentityFileIsNotARecovery) {
  std::string log;
  auto s = recover(&log);
  EXPECT_FALSE(s->identity().recovered.has_value());
  EXPECT_EQ(log, "");
}

TEST_F(StoreRecoveryTest, AnotherApplicationsDatabaseIsMovedAsideNotOverwritten) {
  auto old_id = make_store();
  std::filesystem::remove(file());
  {
    sqlite::Connection db(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("CREATE TABLE grades(student TEXT, grade INTEGER); INSERT INTO grades VALUES ('s1', 90)");
  }
  std::string log;
  auto s = recover(&log);
  ASSERT_NE(s, nullptr);
  expect_recovered(*s, "not_a_store", old_id, log);
  sqlite::Connection moved(file().string() + ".not_a_store-20261129T010203Z", SQLITE_OPEN_READONLY);
  EXPECT_EQ(moved.scalar_int("SELECT grade FROM grades"), 90);  // intact, for whoever needs it
}

TEST_F(StoreRecoveryTest, ErrorsThatMovingAsideCannotFixStayErrors) {
  if (::geteuid() == 0) GTEST_SKIP() << "root renames in a read-only directory anyway";
  make_store();
  ::chmod(dir_.path().c_str(), 0500);  // the directory cannot take the moved file
  overwrite(0, "this is not SQLite at all");
  auto s = Store::open_or_recover(file(), {}, kT0);
  ::chmod(dir_.path().c_str(), 0700);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().what.find("cannot move the broken store aside"), std::string::npos) << s.error().message();
  EXPECT_TRUE(std::filesystem::exists(file()));  // untouched
}

TEST_F(StoreRecoveryTest, AStoreOfANewerAgentIsAnErrorAndStaysInPlace) {
  // The other error moving aside cannot fix, and one that runs as root too (CI): a downgrade.
  // The store is whole; starting fresh over it would throw its undelivered messages away.
  make_store();
  {
    sqlite::Connection db(file().string(), SQLITE_OPEN_READWRITE);
    db.exec("UPDATE meta SET value = 99 WHERE key = 'schema_version'");
  }
  auto s = Store::open_or_recover(file(), {}, kT0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().what.find("schema version 99"), std::string::npos) << s.error().message();
  EXPECT_TRUE(std::filesystem::exists(file()));
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {  // nothing moved aside
    const auto name = e.path().filename().string();
    EXPECT_TRUE(name.rfind("agent.db.", 0) != 0 || name == "agent.db.id") << name;
  }
}

TEST_F(StoreRecoveryTest, ReadOnlyOpenNeverRecovers) {
  make_store();
  overwrite(0, "this is not SQLite at all");
  StoreOptions ro;
  ro.read_only = true;
  auto s = Store::open_or_recover(file(), ro, kT0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().fix.find("moves it aside by itself"), std::string::npos) << s.error().message();
  EXPECT_FALSE(std::filesystem::exists(file().string() + ".not_a_store-20261129T010203Z"));
}

}  // namespace
