// The store executor: work runs on its own thread in posting order, results come back on the
// io_context, the snapshot's last seq is exact when a result arrives and its outbox counts catch
// up within kCountsAge; a store read that fails is an Error, not an empty answer.
#include <gtest/gtest.h>

#include <thread>

#include <sqlite3.h>

#include "core/sqlite.hpp"
#include "core/store.hpp"
#include "core/store_executor.hpp"
#include "test_util.hpp"

using namespace campus;
using campus::test::run_until;
using campus::test::TempDir;
using namespace std::chrono_literals;

namespace {

const Identity kSchool{"zhenkang", "nansan", "+08:00"};

AuditReport rooms(int n, const std::string& state) {
  AuditReport r;
  for (int i = 0; i < n; ++i) r.findings.push_back(Finding{"R" + std::to_string(i), state, "", Json::object()});
  return r;
}

TEST(StoreExecutor, WorkRunsOffTheIoThreadInOrderAndTheSnapshotFollows) {
  TempDir dir;
  auto store = std::move(Store::open(dir.path() / "agent.db", {}).value());
  asio::io_context io;
  StoreExecutor exec(*store, io);
  EXPECT_EQ(exec.snapshot().outbox.last_seq, 0);
  EXPECT_EQ(exec.identity().id, store->identity().id);

  const auto io_thread = std::this_thread::get_id();
  std::vector<int> order;
  std::optional<std::int64_t> last_seq_at_result;
  std::thread::id work_thread;
  exec.run(
      [&](Store& s) {
        work_thread = std::this_thread::get_id();
        return s.commit(kSchool, "fiber", std::chrono::system_clock::now(), rooms(3, "up"));
      },
      [&](Result<CommitOutcome> out) {
        ASSERT_TRUE(out.ok());
        EXPECT_EQ(std::this_thread::get_id(), io_thread);
        order.push_back(1);
        last_seq_at_result = exec.snapshot().outbox.last_seq;
      });
  exec.run([](Store& s) { return s.commit(kSchool, "fiber", std::chrono::system_clock::now(), rooms(3, "down")); },
           [&](Result<CommitOutcome>) { order.push_back(2); });
  ASSERT_TRUE(run_until(io, [&] { return order.size() == 2; }));
  EXPECT_NE(work_thread, io_thread);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  // The last seq is exact when the result arrives: the first report (seq 1) was stored.
  EXPECT_GE(*last_seq_at_result, 1);
  EXPECT_EQ(exec.snapshot().outbox.last_seq, 5);  // 2 reports + 3 events
  // The counts catch up within kCountsAge even when nothing else runs.
  ASSERT_TRUE(run_until(io, [&] { return exec.snapshot().outbox.unsent == 5; },
                        StoreExecutor::kCountsAge * 4));

  bool queued_done = false;
  exec.post([](Store& s) { s.mark_sent({1, 2, 3, 4, 5}, std::chrono::system_clock::now()); });
  exec.after_queued([&] { queued_done = true; });
  ASSERT_TRUE(run_until(io, [&] { return queued_done; }));
  EXPECT_EQ(store->stats().unsent, 0);  // after_queued: everything posted before it has run
  ASSERT_TRUE(run_until(io, [&] { return exec.snapshot().outbox.unsent == 0; }, StoreExecutor::kCountsAge * 4));
}

TEST(StoreExecutor, ReadsOfADamagedStoreAreErrorsNotEmptyAnswers) {
  TempDir dir;
  auto file = dir.path() / "agent.db";
  auto store = std::move(Store::open(file, {}).value());
  AuditReport r = rooms(1, "up");
  r.case_actions.push_back(CaseAction{CaseAction::Kind::Open, "S1", {}, "", Json::object()});
  ASSERT_TRUE(store->commit(kSchool, "attendance", std::chrono::system_clock::now(), r).ok());
  ASSERT_EQ(store->cases(CaseFilter{}).value().size(), 1u);
  ASSERT_TRUE(store->latest_report("attendance").value().has_value());
  EXPECT_FALSE(store->latest_report("fiber").value().has_value());  // none: not an error
  {
    // The tables' root pages pointed past the end of the file, as a bad write would leave them.
    sqlite::Connection db(file.string(), SQLITE_OPEN_READWRITE);
    auto pages = db.scalar_int("PRAGMA page_count");
    auto version = db.scalar_int("PRAGMA schema_version");
    db.exec("PRAGMA writable_schema = ON");
    db.exec("UPDATE sqlite_master SET rootpage = " + std::to_string(pages + 1000) +
            " WHERE name IN ('cases', 'reports', 'records')");
    db.exec("PRAGMA schema_version = " + std::to_string(version + 1));
  }
  auto cases = store->cases(CaseFilter{});
  ASSERT_FALSE(cases.ok());
  EXPECT_NE(cases.error().message().find("agent.db"), std::string::npos) << cases.error().message();
  EXPECT_NE(cases.error().message().find("malformed"), std::string::npos) << cases.error().message();
  EXPECT_FALSE(store->find_case("attendance-S1-1").ok());
  EXPECT_FALSE(store->latest_report("attendance").ok());
  EXPECT_FALSE(store->latest_summary("attendance").ok());
  EXPECT_FALSE(store->copy_records("attendance").ok());
}

}  // namespace
