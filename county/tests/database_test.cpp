// The county database, on SQLite and on PostgreSQL (a real server, tests/postgres-server): dedupe, conflicts, the gap ledger, repair planning, replaced
// stores, tails, history. Times are given explicitly, so no test waits for a clock.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdio>

#include "county_test_support.hpp"

using namespace campus::county;
using namespace campus::county::test;
using namespace std::chrono_literals;

namespace {

const SystemTime T0 = SystemTime(std::chrono::seconds(1'800'000'000));

BatchResult ingest(CountyDatabase& db, const std::vector<Json>& envs, SystemTime at = T0,
                   std::optional<std::string> corr = std::nullopt) {
  std::vector<Parsed> batch;
  for (const auto& e : envs) batch.push_back(parse(e, corr));
  auto r = db.ingest(batch, at);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? r.value() : BatchResult{};
}

std::vector<Json> gaps_of(CountyDatabase& db, const std::string& school = "school-a") {
  auto g = db.gaps(school);
  EXPECT_TRUE(g.ok());
  return g.ok() ? g.value() : std::vector<Json>{};
}

Json school_row(CountyDatabase& db, const std::string& school = "school-a") {
  auto rows = db.schools({});
  EXPECT_TRUE(rows.ok());
  for (const auto& r : rows.value())
    if (r["school"] == school) return r;
  return nullptr;
}

RepairPolicy quick_policy() {
  RepairPolicy p;
  p.reorder_grace = 60s;
  p.backoff_min = 60s;
  p.backoff_max = 600s;
  p.request_timeout = 120s;
  return p;
}

Json ok_reply(std::int64_t from, std::int64_t to, Json missing = Json::array()) {
  return {{"ok", true}, {"cmd", "resend"},
          {"result", {{"from_seq", from}, {"to_seq", to}, {"last_seq", to}, {"held", to - from + 1}, {"resent", to - from + 1},
                      {"failed", 0}, {"missing", missing}, {"missing_count", 0}, {"not_yet_produced", nullptr}}}};
}

class CountyDatabaseTest : public ::testing::TestWithParam<campus::county::sql::Engine> {};

}  // namespace

INSTANTIATE_TEST_SUITE_P(Engines, CountyDatabaseTest,
                         ::testing::Values(campus::county::sql::Engine::Sqlite, campus::county::sql::Engine::Postgres),
                         engine_name);

TEST_P(CountyDatabaseTest, KeepsTheFirstCopyCountsDuplicatesAndSetsAsideAConflict) {
  TempDb t(GetParam());
  auto r = ingest(*t.db, {report("school-a", 1), event("school-a", 2)});
  EXPECT_EQ(r.stored, 2);
  Json copy = report("school-a", 1);
  copy["resent"] = true;
  r = ingest(*t.db, {copy, event("school-a", 2)});
  EXPECT_EQ(r.stored, 0);
  EXPECT_EQ(r.duplicates, 2);
  r = ingest(*t.db, {report("school-a", 1, "fiber", {{"rooms", 99}})});
  EXPECT_EQ(r.conflicts, 1);
  ASSERT_EQ(r.log.size(), 1u);
  EXPECT_NE(r.log[0].find("CONFLICT"), std::string::npos);
  auto totals = t.db->totals(T0);
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals.value()["messages"], 2);
  EXPECT_EQ(totals.value()["conflicts"], 1);
  EXPECT_EQ(totals.value()["counters"]["duplicates"], 2);
  // Still the first copy.
  auto row = school_row(*t.db);
  EXPECT_EQ(row["reports"]["fiber"]["summary"], Json::object());
}

TEST_P(CountyDatabaseTest, AGapThatFillsWithinTheGraceIsNeverAskedFor) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 4)});
  auto g = gaps_of(*t.db);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0]["from_seq"], 2);
  EXPECT_EQ(g[0]["to_seq"], 3);
  EXPECT_EQ(g[0]["state"], "open");
  auto plan = t.db->plan_repairs(quick_policy(), T0 + 30s);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan.value().empty()) << "asked within the reorder grace";
  ingest(*t.db, {event("school-a", 3), event("school-a", 2)}, T0 + 40s);
  g = gaps_of(*t.db);
  EXPECT_EQ(g[0]["state"], "filled");
  EXPECT_EQ(g[0]["filled"], 2);
  EXPECT_EQ(g[0]["requests"], 0);
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 120s).value().empty());
  EXPECT_EQ(school_row(*t.db)["contiguous_through"], 4);
}

TEST_P(CountyDatabaseTest, ADueGapOfAnOnlineSchoolIsAskedForOnceAtATimeAndFilledByTheCopies) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 10)});
  auto plan = t.db->plan_repairs(quick_policy(), T0 + 61s);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan.value().size(), 1u);
  const auto req = plan.value()[0];
  EXPECT_EQ(req.school, "school-a");
  EXPECT_EQ(req.from_seq, 2);
  EXPECT_EQ(req.to_seq, 9);
  EXPECT_EQ(req.store_id, kStoreA);
  // One request per school in flight: nothing more while it is unanswered.
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 62s).value().empty());
  std::vector<Json> copies;
  for (int s = 2; s <= 9; ++s) {
    Json c = event("school-a", s);
    c["resent"] = true;
    copies.push_back(c);
  }
  ingest(*t.db, copies, T0 + 63s);
  auto r = ingest(*t.db, {reply("school-a", ok_reply(2, 9))}, T0 + 64s, req.correlation);
  EXPECT_EQ(r.replies, 1);
  auto g = gaps_of(*t.db);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0]["state"], "filled");
  EXPECT_EQ(g[0]["requests"], 1);
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 600s).value().empty());
}

TEST_P(CountyDatabaseTest, MissingInTheReplyIsLostWithItsReasonAndNotAskedAgain) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 20)});
  auto req = t.db->plan_repairs(quick_policy(), T0 + 61s).value().at(0);
  std::vector<Json> copies;
  for (int s = 11; s <= 19; ++s) copies.push_back(event("school-a", s));
  ingest(*t.db, copies, T0 + 62s);
  ingest(*t.db, {reply("school-a", ok_reply(2, 19, Json::array({Json::array({2, 10})})))}, T0 + 63s, req.correlation);
  auto g = gaps_of(*t.db);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0]["state"], "lost");
  EXPECT_EQ(g[0]["lost"], 9);
  EXPECT_EQ(g[0]["filled"], 9);
  EXPECT_NE(g[0]["lost_reason"].get<std::string>().find("no_longer_held"), std::string::npos);
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 3600s).value().empty());
  EXPECT_EQ(school_row(*t.db)["contiguous_through"], 20);  // accounted: held or lost
}

TEST_P(CountyDatabaseTest, WhatIsStillOpenAfterTheReplyIsAskedAgainAfterABackoff) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 5)});
  auto req = t.db->plan_repairs(quick_policy(), T0 + 61s).value().at(0);
  ingest(*t.db, {event("school-a", 2)}, T0 + 62s);  // the broker dropped 3 and 4 again
  ingest(*t.db, {reply("school-a", ok_reply(2, 4))}, T0 + 63s, req.correlation);
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 70s).value().empty()) << "no backoff";
  auto again = t.db->plan_repairs(quick_policy(), T0 + 63s + 61s).value();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].from_seq, 3);
  EXPECT_EQ(again[0].to_seq, 4);
}

TEST_P(CountyDatabaseTest, AnUnansweredRequestTimesOutAndIsAskedAgain) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 3)});
  ASSERT_EQ(t.db->plan_repairs(quick_policy(), T0 + 61s).value().size(), 1u);
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 100s).value().empty());
  // After the timeout (120 s) and the backoff (30..60 s) it is asked again.
  EXPECT_EQ(t.db->plan_repairs(quick_policy(), T0 + 61s + 120s + 61s).value().size(), 1u);
}

TEST_P(CountyDatabaseTest, AnOfflineSchoolIsNotAskedUntilItIsBack) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 3),
                 state("school-a", false, 1, 3, kStoreA, "will")});
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 120s).value().empty());
  ingest(*t.db, {state("school-a", true, 2, 3)}, T0 + 200s);
  auto plan = t.db->plan_repairs(quick_policy(), T0 + 201s).value();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].from_seq, 2);
}

TEST_P(CountyDatabaseTest, AtMostMaxSchoolsRequestsAreInFlight) {
  RepairPolicy p = quick_policy();
  p.max_schools = 2;
  TempDb t(GetParam(), p);
  for (const char* s : {"s1", "s2", "s3"}) ingest(*t.db, {state(s, true, 1, 0), report(s, 1), report(s, 3)});
  EXPECT_EQ(t.db->plan_repairs(p, T0 + 61s).value().size(), 2u);
  EXPECT_EQ(t.db->plan_repairs(p, T0 + 62s).value().size(), 0u);
}

TEST_P(CountyDatabaseTest, ARequestNeverSpansMoreThanMaxRange) {
  RepairPolicy p = quick_policy();
  p.max_range = 100;
  TempDb t(GetParam(), p);
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 50), report("school-a", 90),
                 report("school-a", 400)});
  auto req = t.db->plan_repairs(p, T0 + 61s).value().at(0);
  EXPECT_EQ(req.from_seq, 2);
  EXPECT_EQ(req.to_seq, 101);  // 2..49, 51..89 and the start of 91..399: 100 seqs
  EXPECT_LE(req.to_seq - req.from_seq + 1, p.max_range);
}

TEST_P(CountyDatabaseTest, AReplacedStoreIsANewSeriesAndTheOldOnesOpenGapsAreLost) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 5)});
  auto r = ingest(*t.db, {state("school-a", true, 2, 0, kStoreB), report("school-a", 1, "fiber", {{"new", true}}, kStoreB)},
                  T0 + 10s);
  EXPECT_EQ(r.stored, 1) << "seq 1 of the new store is not a duplicate of the old seq 1";
  EXPECT_EQ(r.conflicts, 0);
  auto g = gaps_of(*t.db);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0]["state"], "lost");
  EXPECT_EQ(g[0]["store"], kStoreA);
  EXPECT_NE(g[0]["lost_reason"].get<std::string>().find("store_replaced"), std::string::npos);
  auto row = school_row(*t.db);
  EXPECT_EQ(row["store"], kStoreB);
  EXPECT_EQ(row["max_seen"], 1);
  EXPECT_EQ(row["reports"]["fiber"]["summary"]["new"], true);
}

TEST_P(CountyDatabaseTest, ATailIsAskedForOnceTheGraceIsOverAndTheOutboxIsEmpty) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {report("school-a", 1), state("school-a", true, 1, 8)});
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 30s).value().empty());
  // Outbox not empty yet: the backlog is still coming.
  ingest(*t.db, {health("school-a", 8, 5)}, T0 + 40s);
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 70s).value().empty());
  ingest(*t.db, {report("school-a", 2), health("school-a", 8, 0)}, T0 + 80s);
  auto plan = t.db->plan_repairs(quick_policy(), T0 + 81s).value();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].from_seq, 3);
  EXPECT_EQ(plan[0].to_seq, 8);
  auto g = gaps_of(*t.db);
  EXPECT_EQ(g[0]["cause"], "tail");
}

TEST_P(CountyDatabaseTest, ATailIsAskedForAfterTailWaitMaxEvenWithoutHealth) {
  RepairPolicy p = quick_policy();
  p.tail_wait_max = 300s;
  TempDb t(GetParam(), p);
  ingest(*t.db, {report("school-a", 1), state("school-a", true, 1, 4)});
  EXPECT_TRUE(t.db->plan_repairs(p, T0 + 299s).value().empty());
  EXPECT_EQ(t.db->plan_repairs(p, T0 + 301s).value().size(), 1u);
}

TEST_P(CountyDatabaseTest, AStaleWillDoesNotTakeTheSchoolOffline) {
  TempDb t(GetParam());
  ingest(*t.db, {state("school-a", true, 3, 0)});
  auto r = ingest(*t.db, {state("school-a", false, 2, 0, kStoreA, "will")});
  EXPECT_EQ(r.stale_wills, 1);
  EXPECT_EQ(school_row(*t.db)["online"], true);
  ingest(*t.db, {state("school-a", false, 3, 0, kStoreA, "stopped")}, T0 + 60s);
  EXPECT_EQ(school_row(*t.db)["online"], false);
  auto h = t.db->history("school-a", "", "");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h.value()["states"].size(), 2u);
  EXPECT_EQ(h.value()["states"][1]["reason"], "stopped");
}

TEST_P(CountyDatabaseTest, AQuarantinedReportIsAccountedAsLostNotAskedForAgain) {
  TempDb t(GetParam(), quick_policy());
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1)});
  Json bad = report("school-a", 2);
  bad["body"] = {{"summary", "not an object"}, {"findings", Json::array()}};
  auto r = ingest(*t.db, {bad, report("school-a", 3)});
  EXPECT_EQ(r.quarantined, 1);
  auto g = gaps_of(*t.db);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0]["state"], "lost");
  EXPECT_NE(g[0]["lost_reason"].get<std::string>().find("quarantined: bad_body"), std::string::npos);
  EXPECT_TRUE(t.db->plan_repairs(quick_policy(), T0 + 3600s).value().empty());
}

TEST_P(CountyDatabaseTest, AQuarantinedPayloadIsKeptByteForByteWhateverItHolds) {
  TempDb t(GetParam());
  // Bad input as it comes: JSON escapes (backslashes, quotes), bytes that are not UTF-8, a NUL.
  const std::string payload =
      std::string("{\"note\":\"say \\\"hi\\\" \\\\ \\u4e2d\" \xff\xfe") + std::string(1, '\0') + "\\x41 end";
  std::vector<Parsed> batch{parse(topic("school-a", "report/fiber"), payload)};
  auto r = t.db->ingest(batch, T0);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r.value().quarantined, 1);
  std::unique_ptr<sql::Connection> raw =
      t.engine == sql::Engine::Sqlite ? sql::open_sqlite(t.file.string(), SQLITE_OPEN_READONLY)
                                      : sql::open_postgres(t.url(), PostgresServer::get().password);
  const std::string hex = raw->scalar_text(t.engine == sql::Engine::Sqlite ? "SELECT lower(hex(payload)) FROM quarantine"
                                                                           : "SELECT encode(payload, 'hex') FROM quarantine");
  std::string want;
  for (unsigned char c : payload) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", c);
    want += b;
  }
  EXPECT_EQ(hex, want);
}

TEST_P(CountyDatabaseTest, DailyRowsGiveTheMonthlyPlanLine) {
  TempDb t(GetParam());
  auto fiber = [](double c) {
    Json part = {{"rooms", 10}, {"coverage", c}};
    return Json{{"classroom", part}, {"function_room", part}, {"office", part}};
  };
  Json rec = {{"classrooms", 2}, {"compliant", 2}};
  ingest(*t.db, {report("a", 1, "fiber", fiber(1.0), kStoreA, "2026-10-05T10:00:00+08:00"),
                 report("a", 2, "recording", rec, kStoreA, "2026-10-05T10:00:00+08:00"),
                 report("a", 3, "attendance", {{"open", 0}, {"overdue", 0}}, kStoreA, "2026-10-05T10:00:00+08:00"),
                 report("b", 1, "fiber", fiber(0.9), kStoreB, "2026-10-06T10:00:00+08:00"),
                 // November: school b reaches every target too.
                 report("b", 2, "fiber", fiber(1.0), kStoreB, "2026-11-02T10:00:00+08:00"),
                 report("b", 3, "recording", rec, kStoreB, "2026-11-02T10:00:00+08:00"),
                 report("b", 4, "attendance", {{"open", 0}}, kStoreB, "2026-11-02T10:00:00+08:00")});
  auto m = t.db->monthly({"a", "b", "c"});
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m.value().size(), 2u);
  const Json& oct = m.value()[0];
  EXPECT_EQ(oct["month"], "2026-10");
  EXPECT_EQ(oct["digital_campus"]["met"], 1);
  EXPECT_EQ(oct["digital_campus"]["known"], 2);    // b is known not to meet it (fiber 90%)
  EXPECT_EQ(oct["digital_campus"]["unknown"], 1);  // c has never reported
  EXPECT_NEAR(oct["digital_campus"]["share"].get<double>(), 1.0 / 3, 1e-3);
  EXPECT_EQ(oct["plan"], 1.0);
  EXPECT_EQ(m.value()[1]["digital_campus"]["met"], 2);
  auto h = t.db->history("b", "", "2026-10-01");
  ASSERT_EQ(h.value()["days"].size(), 2u);
  EXPECT_EQ(h.value()["days"][0]["fiber"]["classroom"], 0.9);
  EXPECT_EQ(h.value()["days"][1]["digital_campus"], true);
}

TEST_P(CountyDatabaseTest, CasesComeFromTheEventsWithTheirSteps) {
  TempDb t(GetParam());
  Json c = {{"id", "attendance-S1-1"}, {"subject", "S1"}, {"stage", "open"}, {"opened_at", "2026-11-28T21:00:00+08:00"},
            {"details", {{"class", "3-2"}, {"overdue", true}}}, {"steps", Json::array({{{"at", "2026-11-28T21:00:00+08:00"},
                                                                                         {"action", "opened"},
                                                                                         {"actor", "agent"},
                                                                                         {"note", ""}}})}};
  ingest(*t.db, {state("school-a", true, 1, 0),
                 event("school-a", 1, "attendance", {{"subject", "attendance-S1-1"}, {"case", c}, {"from", nullptr}, {"to", "open"}})});
  c["stage"] = "contacted";
  c["steps"].push_back({{"at", "2026-11-29T09:00:00+08:00"}, {"action", "contacted"}, {"actor", "county:wang"}, {"note", "called"}});
  ingest(*t.db, {event("school-a", 2, "attendance", {{"subject", "attendance-S1-1"}, {"case", c}, {"from", "open"}, {"to", "contacted"}})});
  auto open = t.db->cases("open", "");
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open.value().size(), 1u);
  EXPECT_EQ(open.value()[0]["stage"], "contacted");
  EXPECT_EQ(open.value()[0]["overdue"], true);
  ASSERT_EQ(open.value()[0]["steps"].size(), 2u);
  EXPECT_EQ(open.value()[0]["steps"][1]["actor"], "county:wang");
  EXPECT_TRUE(t.db->cases("closed", "").value().empty());
}

TEST_P(CountyDatabaseTest, PruningKeepsTheLastReportOfEachDayAndDuplicatesStayDuplicates) {
  TempDb t(GetParam());
  ingest(*t.db, {report("school-a", 1, "fiber", Json::object(), kStoreA, "2026-06-01T08:00:00+08:00"),
                 report("school-a", 2, "fiber", Json::object(), kStoreA, "2026-06-01T20:00:00+08:00")});
  Retention ret;
  ret.keep_reports = std::chrono::hours(24);
  auto n = t.db->prune(ret, T0 + std::chrono::hours(48));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value(), 1);
  EXPECT_EQ(t.db->totals(T0).value()["messages"], 1);
  auto r = ingest(*t.db, {report("school-a", 1, "fiber", Json::object(), kStoreA, "2026-06-01T08:00:00+08:00")}, T0 + std::chrono::hours(49));
  EXPECT_EQ(r.stored, 0);
  EXPECT_EQ(r.duplicates, 1);
}

// PostgreSQL keeps reports in a partition per month of their audit time: prune() makes the coming
// months ahead and drops a month past keep_reports whole, after moving each day's last report to
// report_kept, so the accounting (duplicates, conflicts) is what it is on SQLite.
TEST(CountyDatabasePostgres, PruningDropsWholeMonthsAndKeepsEachDaysLastReport) {
  TempDb t(campus::county::sql::Engine::Postgres);
  auto pg = campus::county::sql::open_postgres(t.url(), PostgresServer::get().password);
  auto partitions = [&] {
    std::vector<std::string> out;
    auto q = pg->prepare("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON "
                         "p.oid = i.inhparent WHERE p.relname = 'message_report' ORDER BY 1");
    while (q->step()) out.push_back(q->text(0));
    return out;
  };
  Retention ret;
  ret.keep_reports = std::chrono::hours(24 * 30);
  ASSERT_TRUE(t.db->prune(ret, T0).ok());  // T0 is 2027-01-15
  EXPECT_EQ(partitions(), (std::vector<std::string>{"message_report_202701", "message_report_202702",
                                                    "message_report_202703", "message_report_default"}));
  ingest(*t.db, {report("school-a", 1, "fiber", Json::object(), kStoreA, "2027-01-15T09:00:00+08:00"),
                 report("school-a", 2, "fiber", Json::object(), kStoreA, "2027-01-15T20:00:00+08:00"),
                 event("school-a", 3, "fiber", {}, kStoreA, "2027-01-15T20:00:01+08:00"),
                 // A clock months ahead: its month has no partition yet, so the default takes it.
                 report("school-a", 4, "recording", Json::object(), kStoreA, "2027-04-10T10:00:00+08:00")});
  EXPECT_EQ(pg->scalar_int("SELECT COUNT(*) FROM message_report_202701"), 2);
  EXPECT_EQ(pg->scalar_int("SELECT COUNT(*) FROM message_report_default"), 1);

  auto n = t.db->prune(ret, T0 + std::chrono::hours(24 * 60));  // 2027-03-16: January is past keep_reports
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(n.value(), 1) << "seq 1, the day's earlier report";
  EXPECT_EQ(partitions(), (std::vector<std::string>{"message_report_202702", "message_report_202703",
                                                    "message_report_202705", "message_report_default"}))
      << "April stays in the default partition, which holds a report of it";
  EXPECT_EQ(pg->scalar_int("SELECT seq FROM report_kept"), 2);
  EXPECT_EQ(t.db->totals(T0).value()["messages"], 3);

  const SystemTime later = T0 + std::chrono::hours(24 * 61);
  auto r = ingest(*t.db, {report("school-a", 1, "fiber", Json::object(), kStoreA, "2027-01-15T09:00:00+08:00"),
                          report("school-a", 2, "fiber", Json::object(), kStoreA, "2027-01-15T20:00:00+08:00")},
                  later);
  EXPECT_EQ(r.stored, 0);
  EXPECT_EQ(r.duplicates, 2);
  r = ingest(*t.db, {report("school-a", 2, "fiber", {{"rooms", 99}}, kStoreA, "2027-01-15T20:00:00+08:00")}, later);
  EXPECT_EQ(r.conflicts, 1) << "the kept copy is still compared with";
  EXPECT_TRUE(gaps_of(*t.db).empty());
}

TEST(CountyDatabase, ItRefusesAFileThatIsNotItsOwn) {
  TempDb t;
  auto other = t.dir / "other.db";
  {
    std::FILE* f = std::fopen(other.c_str(), "w");
    std::fputs("this is not sqlite at all, just text that is long enough to be a header......", f);
    std::fclose(f);
  }
  auto r = open_sqlite(other, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(other.string()), std::string::npos);
  DatabaseOptions ro;
  ro.read_only = true;
  auto missing = open_sqlite(t.dir / "missing.db", ro);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("no such database"), std::string::npos);
}

TEST_P(CountyDatabaseTest, WhenARequestsRangeIsSettledTheRestOfItsGapIsAskedForAtOnce) {
  RepairPolicy p = quick_policy();
  p.max_range = 5;
  TempDb t(GetParam(), p);
  ingest(*t.db, {state("school-a", true, 1, 0), report("school-a", 1), report("school-a", 14)});
  auto first = t.db->plan_repairs(p, T0 + 61s).value().at(0);
  EXPECT_EQ(first.to_seq, 6);
  std::vector<Json> copies;
  for (int s = 2; s <= 6; ++s) copies.push_back(event("school-a", s));
  ingest(*t.db, copies, T0 + 62s);
  ingest(*t.db, {reply("school-a", ok_reply(2, 6))}, T0 + 63s, first.correlation);
  auto next = t.db->plan_repairs(p, T0 + 64s).value();
  ASSERT_EQ(next.size(), 1u) << "the rest waited for the first request's timeout";
  EXPECT_EQ(next[0].from_seq, 7);
  EXPECT_EQ(next[0].to_seq, 11);
}

TEST_P(CountyDatabaseTest, ATakenOverSessionTheAgentCountsIsRecordedOnceAsAnEventOfTheSchool) {
  TempDb t(GetParam());
  ingest(*t.db, {state("school-a", true, 1, 0), health("school-a", 0, 0, kStoreA, "2026-11-28T21:00:00+08:00", 0, 60)});
  ingest(*t.db, {health("school-a", 0, 0, kStoreA, "2026-11-28T21:01:00+08:00", 2, 120)});  // two takeovers
  ingest(*t.db, {health("school-a", 0, 0, kStoreA, "2026-11-28T21:02:00+08:00", 2, 180)});  // no new one
  ingest(*t.db, {health("school-a", 0, 0, kStoreA, "2026-11-28T21:03:00+08:00", 1, 5)});    // restarted, then one
  EXPECT_EQ(school_row(*t.db)["takeovers"], 3);
  auto h = t.db->history("school-a", "", "");
  int rows = 0;
  for (const auto& s : h.value()["states"]) rows += s["reason"] == "taken_over";
  EXPECT_EQ(rows, 2);  // one event per health that showed new takeovers
  EXPECT_EQ(t.db->totals(T0).value()["counters"]["takeovers"], 3);
}

// Between calls no statement holds a read transaction: the WAL checkpoints completely (a
// statement left on a row kept the WAL's read mark and county.db-wal grew without end).
TEST(CountyDatabase, NothingHoldsTheWalBetweenCalls) {
  TempDb t;
  auto& db = *t.db;
  for (int i = 1; i <= 50; ++i)
    ingest(db, {state("school-a", true, 1, i - 1), report("school-a", 2 * i - 1), event("school-a", 2 * i)});
  ASSERT_TRUE(db.schools({}).ok());
  ASSERT_TRUE(db.totals(T0).ok());
  ASSERT_TRUE(db.status().ok());
  ASSERT_TRUE(db.plan_repairs(quick_policy(), T0 + 3600s).ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(t.file.c_str(), &other), SQLITE_OK);
  int log = -1, done = -1;
  ASSERT_EQ(sqlite3_exec(other, "SELECT COUNT(*) FROM sqlite_master", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_wal_checkpoint_v2(other, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done), SQLITE_OK)
      << sqlite3_errmsg(other);
  EXPECT_GT(log, 0);
  EXPECT_EQ(done, log) << "a statement of the county database holds the WAL at frame " << done;
  sqlite3_close(other);
}

// The status totals' "messages" is counter 'held', kept by ingest and retention (COUNT(*) of a
// province's message table every status_every would read every row). It must stay what a count
// gives, and a database from before the counter gets it on its first open.
TEST_P(CountyDatabaseTest, TheHeldMessagesAreCountedByIngestAndRetentionAndAnUpgradeStartsTheCount) {
  TempDb t(GetParam());
  auto raw = [&] {
    return t.engine == sql::Engine::Sqlite ? sql::open_sqlite(t.file.string(), SQLITE_OPEN_READWRITE)
                                           : sql::open_postgres(t.url(), PostgresServer::get().password);
  };
  auto counted = [&] {
    return raw()->scalar_int(t.engine == sql::Engine::Sqlite
                                 ? "SELECT COUNT(*) FROM message"
                                 : "SELECT (SELECT COUNT(*) FROM message) + (SELECT COUNT(*) FROM report_kept)");
  };
  auto held = [&] { return t.db->totals(T0).value()["messages"].get<std::int64_t>(); };
  EXPECT_EQ(held(), 0);
  ingest(*t.db, {report("school-a", 1, "fiber", Json::object(), kStoreA, "2026-06-01T08:00:00+08:00"),
                 report("school-a", 2, "fiber", Json::object(), kStoreA, "2026-06-01T20:00:00+08:00"),
                 event("school-a", 3), report("school-b", 1), event("school-b", 2)});
  ingest(*t.db, {event("school-a", 3), event("school-b", 2)});  // duplicates are not held twice
  EXPECT_EQ(held(), 5);
  EXPECT_EQ(counted(), 5);
  EXPECT_EQ(raw()->scalar_int("SELECT value FROM counter WHERE name = 'held'"), 5);
  EXPECT_FALSE(t.db->totals(T0).value()["counters"].contains("held")) << "a gauge, not one of the counters";

  Retention ret;
  ret.keep_reports = std::chrono::hours(24);
  ASSERT_TRUE(t.db->prune(ret, T0 + std::chrono::hours(48)).ok());
  EXPECT_EQ(counted(), 4) << "seq 1, the day's earlier report, is gone";
  EXPECT_EQ(held(), counted());
  ret.keep_history = std::chrono::hours(1);  // everything received at T0 is past it
  ASSERT_TRUE(t.db->prune(ret, T0 + std::chrono::hours(72)).ok());
  EXPECT_EQ(counted(), 0);
  EXPECT_EQ(held(), 0);

  // A database of schema version 2 (before the counter): its first open counts what it holds.
  ingest(*t.db, {event("school-a", 4), event("school-a", 5)}, T0 + std::chrono::hours(73));
  t.db.reset();
  raw()->exec("DELETE FROM counter WHERE name = 'held'");
  raw()->exec("UPDATE meta SET value = '2' WHERE key = 'schema_version'");
  t.db = t.open({});
  EXPECT_EQ(held(), 2);
  ingest(*t.db, {event("school-a", 6)}, T0 + std::chrono::hours(74));
  EXPECT_EQ(held(), 3);
}
