// The store's promises (docs/store.md, docs/reliability.md), each proved on a
// real SQLite file in a fresh temporary directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <sqlite3.h>
#include <thread>

#include "core/sqlite.hpp"
#include "core/store.hpp"

using namespace campus;
using namespace std::chrono_literals;

namespace {

const Identity kSchool{"zhenkang", "nansan", "+08:00"};
const SystemTime kT0 = SystemTime(std::chrono::sys_days(std::chrono::year(2026) / 11 / 28)) + 13h;

AuditReport report_of(const std::vector<std::pair<std::string, std::string>>& states, Json summary = Json::object()) {
  AuditReport r;
  r.summary = std::move(summary);
  for (const auto& [subject, state] : states)
    r.findings.push_back(Finding{subject, state, state == "up" ? "" : "link " + state, Json{{"port", subject}}});
  return r;
}

Json payload(const OutboxMessage& m) { return Json::parse(m.payload); }

std::string sql_text(const std::filesystem::path& file, const std::string& sql) {
  sqlite::Connection db(file.string(), SQLITE_OPEN_READWRITE);
  return db.scalar_text(sql);
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/campus-store-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    file_ = dir_ / "agent.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> open(StoreOptions options = {}) {
    auto s = Store::open(file_, options);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
    return s.ok() ? std::move(s).value() : nullptr;
  }

  CommitOutcome commit(Store& s, const std::string& audit, const AuditReport& r, SystemTime ts = kT0) {
    auto c = s.commit(kSchool, audit, ts, r);
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message());
    return c.ok() ? c.value() : CommitOutcome{};
  }

  std::vector<std::int64_t> seqs(Store& s) {
    std::vector<std::int64_t> out;
    for (const auto& m : s.range(1, s.last_seq())) out.push_back(m.seq);
    return out;
  }

  std::filesystem::path dir_;
  std::filesystem::path file_;
};

std::vector<std::int64_t> one_to(std::int64_t n) {
  std::vector<std::int64_t> v;
  for (std::int64_t i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

}  // namespace

// ---- seq and the outbox ----

TEST_F(StoreTest, SeqStartsAtOneAndStaysGapFreeAcrossCloseAndReopen) {
  {
    auto s = open();
    EXPECT_EQ(s->last_seq(), 0);
    EXPECT_EQ(commit(*s, "fiber", report_of({{"r1", "up"}})).report_seq, 1);
    commit(*s, "fiber", report_of({{"r1", "down"}}));  // report 2, event 3
    EXPECT_EQ(s->last_seq(), 3);
  }
  {
    auto s = open();
    EXPECT_EQ(s->last_seq(), 3);
    auto c = commit(*s, "fiber", report_of({{"r1", "up"}}));
    EXPECT_EQ(c.report_seq, 4);
    EXPECT_EQ(c.event_seqs, std::vector<std::int64_t>{5});
  }
  auto s = open();
  commit(*s, "recording", report_of({{"c1", "compliant"}}));
  EXPECT_EQ(seqs(*s), one_to(6));
  for (const auto& m : s->range(1, 6)) {
    EXPECT_EQ(payload(m)["seq"], m.seq);
    EXPECT_EQ(payload(m)["id"], "nansan:" + std::to_string(m.seq));
  }
}

TEST_F(StoreTest, ReportIsRetainedQos1WithSummaryFindingsAndInputErrors) {
  auto s = open();
  AuditReport r = report_of({{"r1", "down"}}, Json{{"rooms", 1}});
  r.input_errors.push_back(Error{"rooms.csv:7 column type", "unknown room type \"lab\"", "use classroom"});
  commit(*s, "fiber", r);
  auto msgs = s->unsent(0, 10);
  ASSERT_EQ(msgs.size(), 1u);
  const auto& m = msgs[0];
  EXPECT_EQ(m.topic, "campus/v1/zhenkang/nansan/report/fiber");
  EXPECT_TRUE(m.retain);
  EXPECT_EQ(m.qos, 1);
  EXPECT_EQ(m.kind, "report");
  EXPECT_EQ(m.created, kT0);
  Json e = payload(m);
  EXPECT_EQ(e["kind"], "report");
  EXPECT_EQ(e["audit"], "fiber");
  EXPECT_EQ(e["ts"], "2026-11-28T21:00:00+08:00");
  EXPECT_EQ(e["body"]["summary"], (Json{{"rooms", 1}}));
  EXPECT_EQ(e["body"]["findings"],
            (Json::array({{{"subject", "r1"}, {"state", "down"}, {"reason", "link down"}, {"details", {{"port", "r1"}}}}})));
  EXPECT_EQ(e["body"]["errors"], (Json::array({{{"where", "rooms.csv:7 column type"},
                                                {"what", "unknown room type \"lab\""},
                                                {"fix", "use classroom"}}})));
  EXPECT_EQ(*s->latest_report("fiber").value(), e["body"]);
  EXPECT_FALSE(s->latest_report("recording").value().has_value());
  EXPECT_EQ(*s->latest_summary("fiber").value(), (Json{{"rooms", 1}}));
  EXPECT_FALSE(s->latest_summary("recording").value().has_value());
}

TEST_F(StoreTest, InvalidUtf8FromAPluginIsStoredWithReplacementCharacters) {
  auto s = open();
  AuditReport r = report_of({{"r1", "up"}});
  r.findings[0].reason = "\xb7\xbf\xbc\xe4 101";  // GBK bytes from a spreadsheet export
  r.summary = Json{{"note", "\xff"}};
  auto c = s->commit(kSchool, "fiber", kT0, r);
  ASSERT_TRUE(c.ok()) << c.error().message();
  Json e = payload(s->range(1, 1).at(0));
  EXPECT_EQ(e["body"]["summary"]["note"], "\xef\xbf\xbd");
}

TEST_F(StoreTest, HandsOutUnsentInSeqOrderAndKeepsAcknowledgedOnesForResend) {
  auto s = open();
  for (int i = 0; i < 3; ++i) commit(*s, "fiber", report_of({{"r1", i % 2 ? "down" : "up"}}));  // seqs 1..5
  auto batch = s->unsent(0, 2);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].seq, 1);
  EXPECT_EQ(batch[1].seq, 2);
  EXPECT_EQ(s->unsent(2, 10).front().seq, 3);
  s->mark_sent({1, 2}, kT0 + 1s);
  s->mark_attempt(3, "refused 0x87");
  auto rest = s->unsent(0, 10);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].seq, 3);
  EXPECT_EQ(rest[0].attempts, 1);
  EXPECT_EQ(s->range(1, 5).size(), 5u);  // sent rows stay for resend
  auto st = s->stats();
  EXPECT_EQ(st.unsent, 3);
  EXPECT_EQ(st.sent_kept, 2);
  EXPECT_EQ(st.last_seq, 5);
  EXPECT_EQ(st.oldest_unsent_created, kT0);
  EXPECT_FALSE(st.buffer_full);
  EXPECT_GT(st.db_bytes, 0u);
}

TEST_F(StoreTest, SessionCounterRisesAndSurvivesReopen) {
  {
    auto s = open();
    EXPECT_EQ(s->next_session(), 1);
    EXPECT_EQ(s->next_session(), 2);
  }
  EXPECT_EQ(open()->next_session(), 3);
}

TEST_F(StoreTest, ConcurrentCommitsAndAcksFromThreadsKeepSeqGapFree) {
  auto s = open();
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        auto c = s->commit(kSchool, "audit" + std::to_string(t), kT0, report_of({{"x", i % 2 ? "down" : "up"}}));
        ASSERT_TRUE(c.ok());
        std::vector<std::int64_t> acked{c->report_seq};
        s->mark_sent(acked, kT0);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(seqs(*s), one_to(3 * (15 + 14)));
  auto msgs = s->range(1, s->last_seq());  // each event follows its own audit's report
  for (std::size_t i = 1; i < msgs.size(); ++i)
    if (msgs[i].kind == "event") {
      EXPECT_EQ(payload(msgs[i - 1])["audit"], payload(msgs[i])["audit"]);
    }
  EXPECT_EQ(s->stats().unsent, 3 * 14);
}

TEST_F(StoreTest, MissingDataDirectoryIsAClearError) {
  auto s = Store::open(dir_ / "no-such-dir" / "agent.db", {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().what.find("cannot create the store"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().fix.find("data directory"), std::string::npos);
}

// ---- events ----

TEST_F(StoreTest, NoEventWhenASubjectIsSeenForTheFirstTime) {
  auto s = open();
  auto c = commit(*s, "fiber", report_of({{"r1", "up"}, {"r2", "down"}}));
  EXPECT_TRUE(c.event_seqs.empty());
  c = commit(*s, "fiber", report_of({{"r1", "up"}, {"r2", "down"}, {"r3", "down"}}));
  EXPECT_TRUE(c.event_seqs.empty());
}

TEST_F(StoreTest, EventOnlyForStateChangesRightAfterTheReport) {
  auto s = open();
  commit(*s, "fiber", report_of({{"r1", "up"}, {"r2", "up"}, {"r3", "up"}}));
  auto c = commit(*s, "fiber", report_of({{"r1", "down"}, {"r2", "up"}, {"r3", "degraded"}}));
  EXPECT_EQ(c.report_seq, 2);
  EXPECT_EQ(c.event_seqs, (std::vector<std::int64_t>{3, 4}));
  auto msgs = s->range(3, 4);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].topic, "campus/v1/zhenkang/nansan/event/fiber");
  EXPECT_FALSE(msgs[0].retain);
  EXPECT_EQ(msgs[0].kind, "event");
  Json e = payload(msgs[0]);
  EXPECT_EQ(e["kind"], "event");
  EXPECT_EQ(e["audit"], "fiber");
  EXPECT_EQ(e["body"], (Json{{"subject", "r1"}, {"from", "up"}, {"to", "down"},
                             {"reason", "link down"}, {"details", {{"port", "r1"}}}}));
  EXPECT_EQ(payload(msgs[1])["body"]["subject"], "r3");
  // The same states again: no event; a reason change alone is no event either.
  AuditReport same = report_of({{"r1", "down"}, {"r2", "up"}, {"r3", "degraded"}});
  same.findings[0].reason = "optical power low";
  EXPECT_TRUE(commit(*s, "fiber", same).event_seqs.empty());
}

TEST_F(StoreTest, SubjectThatDisappearsGetsARemovedEventAndIsForgotten) {
  auto s = open();
  commit(*s, "fiber", report_of({{"r1", "up"}, {"r2", "down"}}));
  auto c = commit(*s, "fiber", report_of({{"r1", "up"}}));
  ASSERT_EQ(c.event_seqs.size(), 1u);
  Json body = payload(s->range(c.event_seqs[0], c.event_seqs[0]).at(0))["body"];
  EXPECT_EQ(body["subject"], "r2");
  EXPECT_EQ(body["from"], "down");
  EXPECT_EQ(body["to"], "removed");
  // Back again: first sight, so no event.
  EXPECT_TRUE(commit(*s, "fiber", report_of({{"r1", "up"}, {"r2", "down"}})).event_seqs.empty());
}

TEST_F(StoreTest, StatesAreTrackedPerAudit) {
  auto s = open();
  commit(*s, "fiber", report_of({{"x", "up"}}));
  EXPECT_TRUE(commit(*s, "recording", report_of({{"x", "down"}})).event_seqs.empty());
  EXPECT_TRUE(commit(*s, "fiber", report_of({{"x", "up"}})).event_seqs.empty());
}

// ---- cases ----

namespace {
CaseAction open_case(const std::string& subject, Json details = Json{{"days", 3}}) {
  return CaseAction{CaseAction::Kind::Open, subject, {}, "absent 3 days", std::move(details)};
}
CaseAction update_case(const std::string& subject, Json details, bool announce = false) {
  CaseAction a{CaseAction::Kind::Update, subject, {}, "", std::move(details)};
  a.announce = announce;
  return a;
}
CaseAction close_case(const std::string& subject, CaseStepKind outcome) {
  return CaseAction{CaseAction::Kind::Close, subject, outcome, "back in class", Json::object()};
}
AuditReport with_actions(std::vector<CaseAction> actions) {
  AuditReport r;
  r.case_actions = std::move(actions);
  return r;
}
}  // namespace

TEST_F(StoreTest, CaseOpensOnceWithAnEventAndCarriesOnWhileOpen) {
  auto s = open();
  auto c = commit(*s, "attendance", with_actions({open_case("s1")}));
  ASSERT_EQ(c.event_seqs.size(), 1u);
  ASSERT_EQ(c.cases_changed.size(), 1u);
  EXPECT_EQ(c.cases_changed[0].id, "attendance-s1-1");
  Json e = payload(s->range(c.event_seqs[0], c.event_seqs[0]).at(0));
  EXPECT_EQ(e["body"]["subject"], "attendance-s1-1");
  EXPECT_EQ(e["body"]["from"], nullptr);
  EXPECT_EQ(e["body"]["to"], "open");
  EXPECT_EQ(e["body"]["action"], "opened");
  EXPECT_EQ(e["body"]["case"]["stage"], "open");
  EXPECT_EQ(e["body"]["case"]["details"], (Json{{"days", 3}}));
  EXPECT_EQ(e["body"]["case"]["steps"][0]["actor"], "agent");
  EXPECT_EQ(e["body"]["case"]["opened_at"], "2026-11-28T21:00:00+08:00");

  // Opening again while open changes nothing.
  c = commit(*s, "attendance", with_actions({open_case("s1")}));
  EXPECT_TRUE(c.event_seqs.empty());
  EXPECT_TRUE(c.cases_changed.empty());
  auto open_cases = s->cases(CaseFilter{"attendance", "open", std::nullopt}).value();
  ASSERT_EQ(open_cases.size(), 1u);
  EXPECT_EQ(open_cases[0].steps.size(), 1u);
}

TEST_F(StoreTest, CaseUpdateStoresDetailsAndRaisesAnEventOnlyWhenThePluginAnnouncesIt) {
  auto s = open();
  commit(*s, "attendance", with_actions({open_case("s1")}));
  auto c = commit(*s, "attendance", with_actions({update_case("s1", Json{{"days", 4}, {"overdue", false}})}));
  EXPECT_TRUE(c.event_seqs.empty());  // not announced: history only
  c = commit(*s, "attendance", with_actions({update_case("s1", Json{{"days", 5}, {"overdue", true}})}));
  EXPECT_TRUE(c.event_seqs.empty()) << "no key of the details is magic to the store";
  ASSERT_EQ(c.cases_changed.size(), 1u);
  EXPECT_EQ(c.cases_changed[0].details["days"], 5);
  c = commit(*s, "attendance", with_actions({update_case("s1", Json{{"days", 6}, {"overdue", true}}, true)}));
  ASSERT_EQ(c.event_seqs.size(), 1u);
  Json body = payload(s->range(c.event_seqs[0], c.event_seqs[0]).at(0))["body"];
  EXPECT_EQ(body["action"], "updated");
  EXPECT_EQ(body["from"], "open");
  EXPECT_EQ(body["to"], "open");
  EXPECT_EQ(body["case"]["details"]["overdue"], true);
  // Identical details: no step, no event, announced or not.
  c = commit(*s, "attendance", with_actions({update_case("s1", Json{{"days", 6}, {"overdue", true}}, true)}));
  EXPECT_TRUE(c.event_seqs.empty());
  EXPECT_TRUE(c.cases_changed.empty());
  EXPECT_EQ(s->find_case("attendance-s1-1").value()->steps.size(), 4u);  // opened + 3 updates
}

TEST_F(StoreTest, CaseLifecycleThroughUpdateCaseEndsClosedAndANewRunOpensANewCase) {
  auto s = open();
  commit(*s, "attendance", with_actions({open_case("s1")}));
  auto r = s->update_case(kSchool, kT0 + 1h, "attendance-s1-1", "contacted", "school:wang", "called parents");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->stage, "contacted");
  r = s->update_case(kSchool, kT0 + 2h, "attendance-s1-1", "note", "county:li", "family moved?");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stage, "contacted");
  r = s->update_case(kSchool, kT0 + 3h, "attendance-s1-1", "visited", "school:wang", "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stage, "visited");
  r = s->update_case(kSchool, kT0 + 4h, "attendance-s1-1", "returned", "school:wang", "back on monday");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stage, "closed");
  EXPECT_EQ(r->outcome, "returned");
  EXPECT_EQ(r->closed_at, "2026-11-29T01:00:00+08:00");

  auto stored = s->find_case("attendance-s1-1").value();
  ASSERT_TRUE(stored.has_value());
  std::vector<std::string> actions, actors;
  for (const auto& st : stored->steps) {
    actions.push_back(st.action);
    actors.push_back(st.actor);
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"opened", "contacted", "note", "visited", "returned"}));
  EXPECT_EQ(actors, (std::vector<std::string>{"agent", "school:wang", "county:li", "school:wang", "school:wang"}));
  EXPECT_TRUE(s->cases(CaseFilter{"attendance", "open", std::nullopt}).value().empty());
  EXPECT_EQ(s->cases(CaseFilter{"attendance", "closed", std::nullopt}).value().size(), 1u);

  auto c = commit(*s, "attendance", with_actions({open_case("s1")}));
  ASSERT_EQ(c.cases_changed.size(), 1u);
  EXPECT_EQ(c.cases_changed[0].id, "attendance-s1-2");
  EXPECT_EQ(s->cases(CaseFilter{"", "all", std::nullopt}).value().size(), 2u);
  EXPECT_EQ(s->cases(CaseFilter{"", "all", kT0 + 90min}).value().size(), 1u);  // only the one changed since
}

TEST_F(StoreTest, UpdateCaseAppendsItsEventWithTheNextSeq) {
  auto s = open();
  commit(*s, "attendance", with_actions({open_case("s1")}));  // seqs 1, 2
  auto r = s->update_case(kSchool, kT0, "attendance-s1-1", "visited", "county:li", "home visit");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(s->last_seq(), 3);
  auto m = s->range(3, 3).at(0);
  EXPECT_EQ(m.topic, "campus/v1/zhenkang/nansan/event/attendance");
  Json e = payload(m);
  EXPECT_EQ(e["seq"], 3);
  EXPECT_EQ(e["audit"], "attendance");
  EXPECT_EQ(e["body"]["subject"], "attendance-s1-1");
  EXPECT_EQ(e["body"]["from"], "open");
  EXPECT_EQ(e["body"]["to"], "visited");
  EXPECT_EQ(e["body"]["action"], "visited");
  EXPECT_EQ(e["body"]["case"]["steps"].back()["actor"], "county:li");
}

TEST_F(StoreTest, UpdateCaseRejectsUnknownCaseUnknownActionBackwardsAndClosed) {
  auto s = open();
  commit(*s, "attendance", with_actions({open_case("s1")}));
  auto before = s->last_seq();
  auto r = s->update_case(kSchool, kT0, "attendance-nobody-1", "contacted", "county:li", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().where, "case attendance-nobody-1");
  EXPECT_EQ(r.error().what, "no such case");

  r = s->update_case(kSchool, kT0, "attendance-s1-1", "called", "county:li", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().what.find("unknown action \"called\""), std::string::npos);
  EXPECT_NE(r.error().fix.find("contacted, visited"), std::string::npos);

  ASSERT_TRUE(s->update_case(kSchool, kT0, "attendance-s1-1", "visited", "county:li", "").ok());
  r = s->update_case(kSchool, kT0, "attendance-s1-1", "contacted", "county:li", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().what.find("back from stage \"visited\""), std::string::npos);

  ASSERT_TRUE(s->update_case(kSchool, kT0, "attendance-s1-1", "transferred", "county:li", "").ok());
  r = s->update_case(kSchool, kT0, "attendance-s1-1", "note", "county:li", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().what.find("closed (transferred"), std::string::npos);
  EXPECT_EQ(s->last_seq(), before + 2);  // only the two accepted steps reached the outbox
}

TEST_F(StoreTest, ACaseClosedAndReopenedInOneReportIsStoredUnderTheNextNumber) {
  auto s = open();
  commit(*s, "attendance", with_actions({open_case("s1")}));  // attendance-s1-1
  // The student came back (close) and a later run of absences opens a case, in one report.
  auto c = commit(*s, "attendance", with_actions({close_case("s1", CaseStepKind::Returned), open_case("s1")}));
  ASSERT_EQ(c.event_seqs.size(), 2u);
  EXPECT_EQ(s->find_case("attendance-s1-1").value()->stage, "closed");
  auto reopened = s->find_case("attendance-s1-2").value();
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->stage, "open");
  EXPECT_EQ(s->cases(CaseFilter{"attendance", "open", std::nullopt}).value().size(), 1u);
}

TEST_F(StoreTest, CaseClosedByTheAuditAndBadActionsLandInTheReportErrors) {
  auto s = open();
  commit(*s, "attendance", with_actions({open_case("s1"), open_case("s2")}));
  auto c = commit(*s, "attendance",
                  with_actions({close_case("s1", CaseStepKind::LeaveApproved), close_case("s2", CaseStepKind::Note),
                                update_case("s9", Json::object())}));
  ASSERT_EQ(c.event_seqs.size(), 1u);
  Json body = payload(s->range(c.event_seqs[0], c.event_seqs[0]).at(0))["body"];
  EXPECT_EQ(body["action"], "leave_approved");
  EXPECT_EQ(body["to"], "closed");
  EXPECT_EQ(body["case"]["outcome"], "leave_approved");
  Json errors = s->latest_report("attendance").value()->at("errors");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0]["where"], "case action close for subject s2");
  EXPECT_NE(errors[0]["what"].get<std::string>().find("\"note\" is not an outcome"), std::string::npos);
  EXPECT_EQ(errors[1]["where"], "case action update for subject s9");
  EXPECT_EQ(s->find_case("attendance-s2-1").value()->stage, "open");
}

TEST_F(StoreTest, AgentAndLocalCampusctlShareTheFileWithoutReusingSeqOrLosingSteps) {
  auto agent = open();
  auto ctl = open();  // campusctl case update (not --local read-only): a second connection
  commit(*agent, "attendance", with_actions({open_case("s1")}));                          // 1, 2
  ASSERT_TRUE(ctl->update_case(kSchool, kT0, "attendance-s1-1", "contacted", "school:wang", "").ok());  // 3
  auto c = commit(*agent, "attendance", with_actions({update_case("s1", Json{{"overdue", true}}, true)}));  // 4, 5
  EXPECT_EQ(c.report_seq, 4);
  EXPECT_EQ(c.event_seqs, std::vector<std::int64_t>{5});
  auto stored = agent->find_case("attendance-s1-1").value();
  EXPECT_EQ(stored->stage, "contacted");  // the agent's update did not undo campusctl's step
  EXPECT_EQ(stored->steps.size(), 3u);
  EXPECT_EQ(seqs(*ctl), one_to(5));
}

// ---- records ----

TEST_F(StoreTest, RecordsRoundTripScopedToThePluginAndSurviveReopen) {
  {
    auto s = open();
    AuditReport r;
    r.records = {{"attendance", "2026-11-27/s1", Json{{"status", "absent"}}},
                 {"attendance", "2026-11-28/s1", Json{{"status", "present"}}},
                 {"import", "last", Json("file-7.csv")}};
    commit(*s, "attendance", r);
    AuditReport erase;
    erase.records = {{"attendance", "2026-11-28/s1", std::nullopt},
                     {"attendance", "2026-11-27/s1", Json{{"status", "leave"}}}};
    commit(*s, "attendance", erase);
  }
  auto s = open();
  const RecordReader& mine = s->records("attendance");
  EXPECT_EQ(mine.get("import", "last"), Json("file-7.csv"));
  EXPECT_EQ(mine.get("attendance", "2026-11-27/s1"), (Json{{"status", "leave"}}));
  EXPECT_FALSE(mine.get("attendance", "2026-11-28/s1").has_value());
  std::vector<std::string> keys;
  mine.scan("attendance", [&](const std::string& k, const Json&) { keys.push_back(k); });
  EXPECT_EQ(keys, std::vector<std::string>{"2026-11-27/s1"});
  EXPECT_FALSE(s->records("fiber").get("import", "last").has_value());
  EXPECT_EQ(&s->records("attendance"), &mine);
}

// ---- retention and the size cap ----

TEST_F(StoreTest, PruneRemovesOnlyAcknowledgedRowsOlderThanKeepSent) {
  StoreOptions o;
  o.keep_sent = std::chrono::hours(24);
  auto s = open(o);
  for (int i = 0; i < 4; ++i) commit(*s, "fiber", report_of({{"r1", "up"}}), kT0 + std::chrono::hours(i));
  s->mark_sent({1}, kT0);
  s->mark_sent({2}, kT0 + 20h);
  EXPECT_EQ(s->prune(kT0 + 25h), 1);  // seq 1 acknowledged 25h ago; seq 2 only 5h ago; 3, 4 unsent
  EXPECT_EQ(seqs(*s), (std::vector<std::int64_t>{2, 3, 4}));
  EXPECT_EQ(s->prune(kT0 + 25h), 0);
  EXPECT_EQ(s->prune(kT0 + 100h), 1);
  EXPECT_EQ(seqs(*s), (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(s->last_seq(), 4);
}

TEST_F(StoreTest, SizeCapPrunesSentRowsThenSupersededReportsNeverEventsThenRefuses) {
  StoreOptions o;
  o.max_size = 512 << 10;
  const std::string padding(20'000, 'x'), detail(12'000, 'y');
  auto make = [&](int i) {
    AuditReport r;
    r.summary = Json{{"run", i}, {"padding", padding}};
    r.findings.push_back(Finding{"room", i % 2 ? "down" : "up", "", Json{{"d", detail}}});
    return r;
  };
  std::set<std::int64_t> sent, events, reports;
  bool sent_pruned = false, report_pruned = false;
  std::optional<Error> refused;
  int i = 0;
  {
    auto s = open(o);
    // Another audit's only report is superseded by nothing: newer fiber reports must not count.
    auto lone = s->commit(kSchool, "recording", kT0, make(0));
    ASSERT_TRUE(lone.ok());
    for (; i < 200 && !refused; ++i) {
      auto c = s->commit(kSchool, "fiber", kT0 + std::chrono::minutes(i), make(i));
      if (!c.ok()) {
        refused = c.error();
        break;
      }
      reports.insert(c->report_seq);
      events.insert(c->event_seqs.begin(), c->event_seqs.end());
      if (i < 3) {  // the first runs were delivered
        std::vector<std::int64_t> acked{c->report_seq};
        acked.insert(acked.end(), c->event_seqs.begin(), c->event_seqs.end());
        s->mark_sent(acked, kT0);
        sent.insert(acked.begin(), acked.end());
      }
      std::set<std::int64_t> held;
      for (auto seq : seqs(*s)) held.insert(seq);
      for (auto e : events)
        if (!sent.count(e)) {
          ASSERT_TRUE(held.count(e)) << "unsent event " << e << " was pruned after run " << i;
        }
      ASSERT_TRUE(held.count(c->report_seq));
      ASSERT_TRUE(held.count(lone->report_seq)) << "the recording report was pruned as if a fiber report superseded it";
      bool any_sent_held = false;
      for (auto seq : sent) any_sent_held |= held.count(seq) > 0;
      sent_pruned |= !any_sent_held;
      for (auto r : reports)
        if (!sent.count(r) && !held.count(r)) {
          report_pruned = true;
          ASSERT_FALSE(any_sent_held) << "unsent report " << r << " pruned while acknowledged rows remain";
        }
    }
    ASSERT_TRUE(refused.has_value()) << "the cap was never reached";
    EXPECT_TRUE(sent_pruned);
    EXPECT_TRUE(report_pruned);
    EXPECT_NE(refused->what.find("buffer full"), std::string::npos) << refused->message();
    EXPECT_NE(refused->fix.find("buffer.max_size"), std::string::npos);
    EXPECT_EQ(refused->where, file_.string());

    auto last = s->last_seq();
    auto held = seqs(*s);
    auto st = s->stats();
    EXPECT_TRUE(st.buffer_full);
    EXPECT_EQ(st.refused_commits, 1);
    EXPECT_LE(st.db_bytes, o.max_size);
    std::printf("[ figures  ] cap %llu KiB: refused after %d runs, %zu messages held, db %llu KiB\n",
                static_cast<unsigned long long>(o.max_size / 1024), i, held.size(),
                static_cast<unsigned long long>(st.db_bytes / 1024));
    EXPECT_FALSE(s->commit(kSchool, "fiber", kT0 + 1000min, make(i)).ok());  // the same run again
    EXPECT_EQ(s->last_seq(), last);  // a refused commit writes nothing
    EXPECT_EQ(seqs(*s), held);
    EXPECT_EQ(s->latest_report("fiber").value()->at("summary").at("run"), i - 1);
  }
  auto s = open(o);
  auto st = s->stats();
  EXPECT_TRUE(st.buffer_full);
  EXPECT_EQ(st.refused_commits, 2);
  // The link comes back: everything is acknowledged, the next commit fits and clears the flag.
  std::vector<std::int64_t> all;
  for (const auto& m : s->unsent(0, 100000)) all.push_back(m.seq);
  s->mark_sent(all, kT0);
  auto c = s->commit(kSchool, "fiber", kT0 + 2000min, make(i));  // the refused run, now it fits
  ASSERT_TRUE(c.ok()) << c.error().message();
  st = s->stats();
  EXPECT_FALSE(st.buffer_full);
  EXPECT_EQ(st.refused_commits, 2);
  EXPECT_LE(st.db_bytes, o.max_size);  // pruned pages went back to the file system
  auto now_held = seqs(*s);
  EXPECT_EQ(now_held, (std::vector<std::int64_t>{c->report_seq, c->report_seq + 1}));  // acknowledged rows made room
}

// ---- the file ----

TEST_F(StoreTest, CreatesTheDatabaseReadableByItsOwnerOnly) {
  auto s = open();
  commit(*s, "fiber", report_of({{"r1", "up"}}));
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat((file_.string() + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << suffix;
  }
  EXPECT_EQ(sql_text(file_, "PRAGMA journal_mode"), "wal");
}

TEST_F(StoreTest, TightensAWorldReadableDatabase) {
  open().reset();
  ::chmod(file_.c_str(), 0644);
  open().reset();
  struct stat st {};
  ASSERT_EQ(::stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(StoreTest, RefusesAFileThatIsNotADatabaseAndSaysHowToMoveItAside) {
  std::ofstream(file_) << std::string(8192, 'A') << "this is somebody's spreadsheet\n";
  auto s = Store::open(file_, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().where, file_.string());
  EXPECT_NE(s.error().what.find("not a campus-agent store"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().fix.find("mv " + file_.string() + " " + file_.string() + ".broken"), std::string::npos);
  EXPECT_NE(s.error().fix.find("starts a fresh store"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(file_), 8192u + 31u);  // untouched
}

TEST_F(StoreTest, RefusesAnotherApplicationsSqliteDatabase) {
  {
    sqlite::Connection db(file_.string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("CREATE TABLE grades(student TEXT, grade INTEGER)");
  }
  auto s = Store::open(file_, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().what.find("not a campus-agent store"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().fix.find(".broken"), std::string::npos);
}

TEST_F(StoreTest, RefusesACorruptDatabaseInsteadOfResettingIt) {
  {
    auto s = open();
    AuditReport r = report_of({{"r1", "up"}}, Json{{"padding", std::string(50'000, 'p')}});
    for (int i = 0; i < 5; ++i) commit(*s, "fiber", r);
  }
  ASSERT_GT(std::filesystem::file_size(file_), 40'960u);
  {
    std::fstream f(file_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 * 3);
    std::string garbage(4096 * 4, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto s = Store::open(file_, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().where, file_.string());
  EXPECT_NE(s.error().what.find("corrupt"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().fix.find("mv "), std::string::npos);
}

TEST_F(StoreTest, ReadOnlyOpenReadsEverythingAndRefusesWrites) {
  StoreOptions ro;
  ro.read_only = true;
  auto missing = Store::open(file_, ro);
  ASSERT_FALSE(missing.ok());
  EXPECT_FALSE(std::filesystem::exists(file_));  // read-only never creates the store
  {
    auto s = open();
    commit(*s, "attendance", with_actions({open_case("s1")}));
    s->next_session();
  }
  auto s = open(ro);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->last_seq(), 2);
  EXPECT_EQ(s->cases(CaseFilter{}).value().size(), 1u);
  EXPECT_TRUE(s->latest_report("attendance").value().has_value());
  auto c = s->commit(kSchool, "attendance", kT0, AuditReport{});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().what.find("read-only"), std::string::npos);
  EXPECT_FALSE(s->update_case(kSchool, kT0, "attendance-s1-1", "note", "school:x", "").ok());
  s->mark_sent({1, 2}, kT0);
  EXPECT_EQ(s->stats().unsent, 2);
  EXPECT_EQ(s->next_session(), 1);  // reads the counter, never raises it
}

// ---- crashes ----

// A child commits in a loop (each report flips 10 subjects, so every report but the first
// carries 10 events) and is SIGKILLed at random moments. After every kill the file passes
// integrity_check; at the end seq is gap-free and every report has all its events.
TEST_F(StoreTest, SigkillAtRandomMomentsLeavesWholeReportsAndGapFreeSeq) {
  constexpr int kKills = 40;
  constexpr int kSubjects = 10;
  std::mt19937 rng(std::random_device{}());
  int killed_mid_run = 0;
  for (int k = 0; k < kKills; ++k) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = Store::open(file_, {});
      if (!s.ok()) ::_exit(2);
      for (;;) {
        auto last = (*s)->latest_report("loop").value();
        int run = last ? (*last)["summary"]["run"].get<int>() + 1 : 0;
        AuditReport r;
        r.summary = Json{{"run", run}};
        for (int i = 0; i < kSubjects; ++i)
          r.findings.push_back(Finding{"s" + std::to_string(i), run % 2 ? "down" : "up", "", Json::object()});
        if (!(*s)->commit(kSchool, "loop", kT0, r).ok()) ::_exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(1'000, 60'000)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited by itself with " << WEXITSTATUS(status);
    killed_mid_run += WTERMSIG(status) == SIGKILL;
    if (std::filesystem::exists(file_)) {
      ASSERT_EQ(sql_text(file_, "PRAGMA integrity_check"), "ok") << "after kill " << k;
    }
  }
  EXPECT_EQ(killed_mid_run, kKills);

  auto s = open();
  ASSERT_NE(s, nullptr);
  auto msgs = s->range(1, s->last_seq());
  ASSERT_FALSE(msgs.empty());
  std::int64_t expect_seq = 1;
  int expect_run = 0;
  for (std::size_t i = 0; i < msgs.size();) {
    ASSERT_EQ(msgs[i].seq, expect_seq++);
    ASSERT_EQ(msgs[i].kind, "report") << "seq " << msgs[i].seq;
    Json rep = payload(msgs[i]);
    ASSERT_EQ(rep["body"]["summary"]["run"], expect_run) << "seq " << msgs[i].seq;
    std::size_t want = expect_run == 0 ? 0 : kSubjects;
    ++i;
    for (std::size_t e = 0; e < want; ++e, ++i) {
      ASSERT_LT(i, msgs.size()) << "report of run " << expect_run << " lacks events";
      ASSERT_EQ(msgs[i].seq, expect_seq++);
      ASSERT_EQ(msgs[i].kind, "event");
      ASSERT_EQ(payload(msgs[i])["body"]["to"], expect_run % 2 ? "down" : "up");
    }
    ++expect_run;
  }
  std::printf("[ figures  ] %d SIGKILLs, %d whole reports, last seq %lld\n", kKills, expect_run,
              static_cast<long long>(s->last_seq()));
}

