// The commit plan without SQLite: previous states and open cases plus a report in, events,
// state rows and case transitions out. (The store writing a plan: store_test.cpp.)
#include <gtest/gtest.h>

#include "core/commit_plan.hpp"

using namespace campus;

namespace {

const std::string kAt = "2026-11-10T08:00:00+08:00";

AuditReport findings(std::vector<Finding> fs) {
  AuditReport r;
  r.findings = std::move(fs);
  return r;
}

CaseAction act(CaseAction::Kind kind, const std::string& subject, Json details = Json::object()) {
  CaseAction a;
  a.kind = kind;
  a.subject = subject;
  a.details = std::move(details);
  return a;
}

CaseAction closing(const std::string& subject, CaseStepKind outcome) {
  CaseAction a = act(CaseAction::Kind::Close, subject);
  a.outcome = outcome;
  a.note = "back";
  return a;
}

WorkingCase open_case(const std::string& subject, int n, std::string stage = "open") {
  WorkingCase c;
  c.audit = "attendance";
  c.n = n;
  c.view.id = "attendance-" + subject + "-" + std::to_string(n);
  c.view.subject = subject;
  c.view.stage = std::move(stage);
  c.view.opened_at = "2026-11-06T08:00:00+08:00";
  c.view.details = Json{{"days", 3}};
  c.view.steps.push_back(CaseStep{c.view.opened_at, "opened", "agent", ""});
  c.saved_steps = 1;
  return c;
}

}  // namespace

TEST(CommitPlan, StateChangesAreEventsAndOnlyChangedRowsAreWritten) {
  CommitInputs in;
  in.subjects["sw1:1"] = {"up", ""};
  in.subjects["sw1:2"] = {"up", ""};
  in.subjects["sw1:3"] = {"down", "no link"};
  in.subjects["sw1:4"] = {"up", ""};
  AuditReport r = findings({{"sw1:1", "up", "", {}},                  // unchanged
                            {"sw1:2", "down", "no link", {{"if", 2}}},  // changed: an event
                            {"sw1:3", "down", "cable cut", {}},         // reason only: a row, no event
                            {"sw1:5", "up", "", {}}});                  // new: a row, no event
  CommitPlan plan = plan_commit("fiber", kAt, r, in, false);
  ASSERT_EQ(plan.events.size(), 2u);
  EXPECT_EQ(plan.events[0], (Json{{"subject", "sw1:2"}, {"from", "up"}, {"to", "down"}, {"reason", "no link"},
                                  {"details", {{"if", 2}}}}));
  EXPECT_EQ(plan.events[1]["subject"], "sw1:4") << "a subject no longer reported is removed, after the findings";
  EXPECT_EQ(plan.events[1]["to"], "removed");
  EXPECT_EQ(plan.removed_subjects, std::vector<std::string>{"sw1:4"});
  std::vector<std::string> written;
  for (const Finding* f : plan.states) written.push_back(f->subject);
  EXPECT_EQ(written, (std::vector<std::string>{"sw1:2", "sw1:3", "sw1:5"}));
  EXPECT_EQ(plan.states[0], &r.findings[1]) << "the plan points into the report, it does not copy it";
  EXPECT_EQ(plan.report_body["findings"].size(), 4u);
  EXPECT_EQ(plan.bytes, 0u) << "not counted unless asked";
  EXPECT_GT(plan_commit("fiber", kAt, r, in, true).bytes, plan.report_body.dump().size());
}

TEST(CommitPlan, AFirstReportHasNoStateEventsAndTheInputErrorsAreInTheBody) {
  AuditReport r = findings({{"room-101", "ok", "", {}}});
  r.input_errors.push_back(Error{"rooms.csv:4", "unknown room type", "use classroom, function or office"});
  CommitPlan plan = plan_commit("fiber", kAt, r, {}, false);
  EXPECT_TRUE(plan.events.empty());
  ASSERT_EQ(plan.report_body["errors"].size(), 1u);
  EXPECT_EQ(plan.report_body["errors"][0]["where"], "rooms.csv:4");
}

TEST(CommitPlan, OpeningNumbersTheCaseAfterTheSubjectsEarlierOnesAndAnOpenCaseCarriesOn) {
  CommitInputs in;
  in.cases_so_far["s1"] = 2;  // two earlier cases of s1, both closed
  in.open_cases["s2"] = open_case("s2", 1);
  AuditReport r;
  r.case_actions = {act(CaseAction::Kind::Open, "s1", {{"days", 3}}), act(CaseAction::Kind::Open, "s2"),
                    closing("s1", CaseStepKind::Returned), act(CaseAction::Kind::Open, "s1")};
  CommitPlan plan = plan_commit("attendance", kAt, r, in, false);
  ASSERT_EQ(plan.events.size(), 3u);
  EXPECT_EQ(plan.events[0]["subject"], "attendance-s1-3");
  EXPECT_EQ(plan.events[0]["action"], "opened");
  EXPECT_EQ(plan.events[0]["from"], nullptr);
  EXPECT_EQ(plan.events[0]["to"], "open");
  EXPECT_EQ(plan.events[1]["subject"], "attendance-s1-3");
  EXPECT_EQ(plan.events[1]["to"], "closed");
  EXPECT_EQ(plan.events[2]["subject"], "attendance-s1-4") << "opened again in the same commit: the next number";
  // The open case of s2 carried on unchanged; the changed cases are the open ones, then the closed.
  ASSERT_EQ(plan.cases.size(), 2u);
  EXPECT_EQ(plan.cases[0].view.id, "attendance-s1-4");
  EXPECT_TRUE(plan.cases[0].is_new);
  EXPECT_EQ(plan.cases[1].view.id, "attendance-s1-3");
  EXPECT_EQ(plan.cases[1].view.stage, "closed");
  EXPECT_EQ(plan.cases[1].view.outcome, "returned");
  EXPECT_EQ(plan.cases[1].view.closed_at, kAt);
  ASSERT_EQ(plan.cases[1].view.steps.size(), 2u);
  EXPECT_EQ(plan.cases[1].view.steps[1].action, "returned");
}

TEST(CommitPlan, AnUpdateIsHistoryAndAnEventOnlyWhenThePluginAnnouncesIt) {
  CommitInputs in;
  in.open_cases["s1"] = open_case("s1", 1);
  in.open_cases["s2"] = open_case("s2", 1);
  in.open_cases["s3"] = open_case("s3", 1, "contacted");
  AuditReport r;
  CaseAction quiet = act(CaseAction::Kind::Update, "s1", {{"days", 4}});
  CaseAction same = act(CaseAction::Kind::Update, "s2", {{"days", 3}});
  same.announce = true;
  CaseAction loud = act(CaseAction::Kind::Update, "s3", {{"days", 5}, {"overdue", true}});
  loud.announce = true;
  loud.note = "overdue";
  r.case_actions = {quiet, same, loud};
  CommitPlan plan = plan_commit("attendance", kAt, r, in, false);
  ASSERT_EQ(plan.events.size(), 1u);
  EXPECT_EQ(plan.events[0]["subject"], "attendance-s3-1");
  EXPECT_EQ(plan.events[0]["action"], "updated");
  EXPECT_EQ(plan.events[0]["from"], "contacted");
  EXPECT_EQ(plan.events[0]["to"], "contacted") << "an update never moves the stage";
  EXPECT_EQ(plan.events[0]["reason"], "overdue");
  ASSERT_EQ(plan.cases.size(), 2u) << "identical details change nothing, announced or not";
  EXPECT_EQ(plan.cases[0].view.details["days"], 4);
  EXPECT_EQ(plan.cases[0].view.steps.back().action, "updated");
  EXPECT_EQ(plan.cases[0].saved_steps, 1u) << "only the new step is to be written";
}

TEST(CommitPlan, ActionsWithoutAnOpenCaseAndClosesWithoutAnOutcomeAreReportErrorsAndChangeNothing) {
  CommitInputs in;
  in.open_cases["s1"] = open_case("s1", 1);
  AuditReport r;
  r.case_actions = {closing("s1", CaseStepKind::Contacted), act(CaseAction::Kind::Update, "s9", {{"days", 9}}),
                    closing("s8", CaseStepKind::Returned)};
  CommitPlan plan = plan_commit("attendance", kAt, r, in, false);
  EXPECT_TRUE(plan.events.empty());
  EXPECT_TRUE(plan.cases.empty());
  const Json& errors = plan.report_body["errors"];
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0]["where"], "case action close for subject s1");
  EXPECT_EQ(errors[0]["what"], "\"contacted\" is not an outcome that closes a case");
  EXPECT_EQ(errors[0]["fix"], "close with one of: returned, transferred, leave_approved, dropout_reported");
  EXPECT_EQ(errors[1]["where"], "case action update for subject s9");
  EXPECT_EQ(errors[2]["where"], "case action close for subject s8");
}

TEST(CasePlan, APersonsStepsMoveTheCaseForwardOnlyAndAnOutcomeClosesIt) {
  auto contacted = plan_case_update(open_case("s1", 1), "contacted", "school:wang", "called", kAt);
  ASSERT_TRUE(contacted.ok()) << contacted.error().message();
  EXPECT_EQ(contacted->first.view.stage, "contacted");
  EXPECT_EQ(contacted->second["from"], "open");
  EXPECT_EQ(contacted->second["to"], "contacted");
  EXPECT_EQ(contacted->second["action"], "contacted");
  EXPECT_EQ(contacted->first.view.steps.back().actor, "school:wang");

  auto back = plan_case_update(open_case("s1", 1, "visited"), "contacted", "county:li", "", kAt);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().fix, "record it as a note instead");
  auto note = plan_case_update(open_case("s1", 1, "visited"), "note", "county:li", "phoned again", kAt);
  ASSERT_TRUE(note.ok());
  EXPECT_EQ(note->first.view.stage, "visited");

  auto closed = plan_case_update(open_case("s1", 1, "visited"), "transferred", "county:li", "", kAt);
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ(closed->first.view.stage, "closed");
  EXPECT_EQ(closed->first.view.outcome, "transferred");
  EXPECT_EQ(closed->first.view.closed_at, kAt);
  auto after = plan_case_update(closed->first, "note", "county:li", "", kAt);
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.error().what.find("closed (transferred at " + kAt + ")"), std::string::npos);
}

TEST(CasePlan, OnlyThePersonsActionsAreAcceptedAndTheErrorListsThem) {
  for (const char* action : {"opened", "updated", "closed", "vanished", ""}) {
    auto r = plan_case_update(open_case("s1", 1), action, "county:li", "", kAt);
    ASSERT_FALSE(r.ok()) << action;
    EXPECT_EQ(r.error().fix, "use one of: contacted, visited, returned, transferred, leave_approved, dropout_reported, note");
  }
  EXPECT_EQ(kCaseUpdateActions, (std::vector<std::string>{"contacted", "visited", "returned", "transferred",
                                                          "leave_approved", "dropout_reported", "note"}));
  for (const auto& s : kCaseSteps) EXPECT_EQ(parse_case_step(s.name), s.kind);
}

TEST(CommitPlan, AStoredCaseClosedAndReopenedInOneReportGetsTheNextNumber) {
  // A returned student's case closes and a later run of absences opens a new one in the same
  // report (a late or batch export): the new case is numbered after every earlier one.
  CommitInputs in;
  in.open_cases["s1"] = open_case("s1", 2);
  in.cases_so_far["s1"] = 2;  // s1-1 (closed long ago) and s1-2 (open)
  AuditReport r;
  r.case_actions = {closing("s1", CaseStepKind::Returned), act(CaseAction::Kind::Open, "s1", {{"days", 3}})};
  CommitPlan plan = plan_commit("attendance", kAt, r, in, false);
  ASSERT_EQ(plan.events.size(), 2u);
  EXPECT_EQ(plan.events[0]["subject"], "attendance-s1-2");
  EXPECT_EQ(plan.events[0]["to"], "closed");
  EXPECT_EQ(plan.events[1]["subject"], "attendance-s1-3");
  EXPECT_EQ(plan.events[1]["to"], "open");
}

TEST(CommitPlan, ACloseThatNamesNoOutcomeIsRefused) {
  CommitInputs in;
  in.open_cases["s1"] = open_case("s1", 1);
  AuditReport r;
  r.case_actions = {act(CaseAction::Kind::Close, "s1")};  // outcome left at its default
  CommitPlan plan = plan_commit("attendance", kAt, r, in, false);
  EXPECT_TRUE(plan.events.empty());
  ASSERT_EQ(plan.report_body["errors"].size(), 1u);
  EXPECT_EQ(plan.report_body["errors"][0]["where"], "case action close for subject s1");
}
