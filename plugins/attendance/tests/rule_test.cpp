// The absence rule, scenario by scenario, with explicit dates (calendar: test_support.hpp).
#include <gtest/gtest.h>

#include "rule.hpp"
#include "test_support.hpp"

namespace campus::attendance {
namespace {
using namespace testing;

struct Mark {
  const char* date;
  char mark;
  const char* cls = "3-2";
};

struct Scenario {
  const char* name;
  std::vector<Mark> marks;  // student S1 (a classmate S2 is present on every listed day)
  const char* today;
  RuleSettings rule;
  // Expected qualifying runs of S1: first, last, days, returned_on ("" = still going).
  struct Run { const char* first; const char* last; int days; const char* returned_on; int gap_days = 0; };
  std::vector<Run> runs;
  int current_run;
};

RuleSettings leave_breaks() { RuleSettings r; r.leave_breaks_run = true; return r; }
RuleSettings threshold(int n) { RuleSettings r; r.threshold_days = n; return r; }

const std::vector<Scenario> kScenarios = {
    {"RunAcrossWeekendCounts", {{"2026-11-04", 'P'}, {"2026-11-05", 'A'}, {"2026-11-06", 'A'}, {"2026-11-09", 'A'}},
     "2026-11-09", {}, {{"2026-11-05", "2026-11-09", 3, ""}}, 3},
    {"RunAcrossHolidayWeekCounts", {{"2026-09-28", 'P'}, {"2026-09-29", 'A'}, {"2026-09-30", 'A'}, {"2026-10-08", 'A'}},
     "2026-10-08", {}, {{"2026-09-29", "2026-10-08", 3, ""}}, 3},
    {"MakeUpSaturdayCountsAsSchoolDay", {{"2026-10-08", 'P'}, {"2026-10-09", 'A'}, {"2026-10-10", 'A'}, {"2026-10-12", 'A'}},
     "2026-10-12", {}, {{"2026-10-09", "2026-10-12", 3, ""}}, 3},
    {"PresentOnMakeUpSaturdayBreaksRun", {{"2026-10-09", 'A'}, {"2026-10-10", 'P'}, {"2026-10-12", 'A'}, {"2026-10-13", 'A'}},
     "2026-10-13", {}, {}, 2},
    {"MissingMakeUpSaturdayIsAGapNotABreak", {{"2026-10-08", 'P'}, {"2026-10-09", 'A'}, {"2026-10-12", 'A'}, {"2026-10-13", 'A'}},
     "2026-10-13", {}, {{"2026-10-09", "2026-10-13", 3, "", 1}}, 3},
    {"ApprovedLeaveSkippedByDefault", {{"2026-11-02", 'A'}, {"2026-11-03", 'E'}, {"2026-11-04", 'A'}, {"2026-11-05", 'A'}},
     "2026-11-05", {}, {{"2026-11-02", "2026-11-05", 3, ""}}, 3},
    {"ApprovedLeaveBreaksRunWhenConfigured", {{"2026-11-02", 'A'}, {"2026-11-03", 'E'}, {"2026-11-04", 'A'}, {"2026-11-05", 'A'}},
     "2026-11-05", leave_breaks(), {}, 2},
    {"UnapprovedLeaveCountsAsAbsence", {{"2026-11-02", 'A'}, {"2026-11-03", 'U'}, {"2026-11-04", 'A'}},
     "2026-11-04", {}, {{"2026-11-02", "2026-11-04", 3, ""}}, 3},
    {"LateCountsAsPresent", {{"2026-11-02", 'A'}, {"2026-11-03", 'A'}, {"2026-11-04", 'L'}, {"2026-11-05", 'A'}},
     "2026-11-05", {}, {}, 1},
    {"TwoDaysThenPresentOpensNothing", {{"2026-11-02", 'A'}, {"2026-11-03", 'A'}, {"2026-11-04", 'P'}},
     "2026-11-04", {}, {}, 0},
    {"ExactlyThreeDaysQualifies", {{"2026-11-02", 'P'}, {"2026-11-03", 'A'}, {"2026-11-04", 'A'}, {"2026-11-05", 'A'}},
     "2026-11-05", {}, {{"2026-11-03", "2026-11-05", 3, ""}}, 3},
    {"ThreeDaysBelowThresholdFour", {{"2026-11-02", 'P'}, {"2026-11-03", 'A'}, {"2026-11-04", 'A'}, {"2026-11-05", 'A'}},
     "2026-11-05", threshold(4), {}, 3},
    {"GapDayNeitherCountsNorBreaks", {{"2026-11-02", 'A'}, {"2026-11-04", 'A'}, {"2026-11-05", 'A'}},
     "2026-11-05", {}, {{"2026-11-02", "2026-11-05", 3, "", 1}}, 3},
    {"CompletedRunRemembersReturnDay", {{"2026-11-02", 'A'}, {"2026-11-03", 'A'}, {"2026-11-04", 'A'}, {"2026-11-05", 'P'}},
     "2026-11-06", {}, {{"2026-11-02", "2026-11-04", 3, "2026-11-05"}}, 0},
    {"RecordsOutsideTermAreIgnored", {{"2026-08-27", 'A'}, {"2026-08-28", 'A'}, {"2026-08-31", 'A'}, {"2026-09-01", 'P'}},
     "2026-09-01", {}, {}, 0},
    {"WeekendRecordsAreIgnored", {{"2026-11-06", 'A'}, {"2026-11-07", 'A'}, {"2026-11-08", 'A'}, {"2026-11-09", 'P'}},
     "2026-11-09", {}, {}, 0},
    {"ClassChangeKeepsTheRun", {{"2026-11-02", 'A', "3-2"}, {"2026-11-03", 'A', "3-3"}, {"2026-11-04", 'A', "3-3"}},
     "2026-11-04", {}, {{"2026-11-02", "2026-11-04", 3, ""}}, 3},
    {"SaturdayTodayEvaluatesThroughFriday", {{"2026-11-04", 'A'}, {"2026-11-05", 'A'}, {"2026-11-06", 'A'}},
     "2026-11-07", {}, {{"2026-11-04", "2026-11-06", 3, ""}}, 3},
};

class RuleScenario : public ::testing::TestWithParam<Scenario> {};

TEST_P(RuleScenario, FindsExactlyTheExpectedRuns) {
  const Scenario& s = GetParam();
  SchoolCalendar cal = test_calendar();
  AttendanceBook book;
  for (const auto& m : s.marks) {
    book.put(rec("S1", m.date, m.mark, m.cls));
    book.put(rec("S2", m.date, 'P', m.cls));
  }
  Evaluation ev = evaluate(book, cal, s.rule, D(s.today));
  const StudentStanding* st = nullptr;
  for (const auto& x : ev.standings)
    if (x.student->id == "S1") st = &x;
  ASSERT_EQ(s.runs.size(), st ? st->runs.size() : 0u) << s.name;
  for (std::size_t i = 0; i < s.runs.size(); ++i) {
    const auto& want = s.runs[i];
    const auto& got = st->runs[i];
    EXPECT_EQ(format_day(got.first), want.first) << s.name;
    EXPECT_EQ(format_day(got.last), want.last) << s.name;
    EXPECT_EQ(got.days, want.days) << s.name;
    EXPECT_EQ(got.returned_on ? format_day(*got.returned_on) : std::string(), want.returned_on) << s.name;
    EXPECT_EQ(got.gap_days, want.gap_days) << s.name;
  }
  // current_run of S1 (also when it does not qualify).
  int current = -1;
  {
    RuleSettings big = s.rule;
    big.threshold_days = 1;  // every run qualifies: the last one, if still going, is current
    Evaluation all = evaluate(book, cal, big, D(s.today));
    for (const auto& x : all.standings)
      if (x.student->id == "S1") current = x.current_run;
    if (current < 0) current = 0;
  }
  EXPECT_EQ(current, s.current_run) << s.name;
}

INSTANTIATE_TEST_SUITE_P(Scenarios, RuleScenario, ::testing::ValuesIn(kScenarios),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Rule, GapDayIsReportedPerClassAndDay) {
  AttendanceBook book;
  for (const char* d : {"2026-11-02", "2026-11-03", "2026-11-04"}) book.put(rec("S2", d, 'P'));
  book.put(rec("S1", "2026-11-02", 'P'));
  book.put(rec("S1", "2026-11-04", 'P'));
  book.put(rec("S3", "2026-11-02", 'P', "4-1"));
  book.put(rec("S3", "2026-11-04", 'P', "4-1"));
  Evaluation ev = evaluate(book, test_calendar(), {}, D("2026-11-04"));
  ASSERT_EQ(ev.gaps.size(), 2u);
  EXPECT_EQ(book.class_name(ev.gaps[0].class_index), "3-2");
  EXPECT_EQ(format_day(ev.gaps[0].day), "2026-11-03");
  EXPECT_EQ(ev.gaps[0].missing, 1);
  EXPECT_EQ(book.class_name(ev.gaps[1].class_index), "4-1");
}

TEST(Rule, TodayWithoutAnyRecordIsNotAGapYet) {
  AttendanceBook book;
  book.put(rec("S1", "2026-11-02", 'P'));
  Evaluation ev = evaluate(book, test_calendar(), {}, D("2026-11-03"));
  EXPECT_TRUE(ev.gaps.empty());
  EXPECT_EQ(format_day(ev.horizon), "2026-11-02");
}

TEST(Rule, StudentJoiningMidTermHasNoGapsBeforeFirstRecord) {
  AttendanceBook book;
  book.put(rec("S1", "2026-11-04", 'P'));
  Evaluation ev = evaluate(book, test_calendar(), {}, D("2026-11-04"));
  EXPECT_TRUE(ev.gaps.empty());
  EXPECT_EQ(ev.students, 1);
}

TEST(Rule, ClassChangeAttributesGapsToTheClassOfTheTime) {
  AttendanceBook book;
  book.put(rec("S1", "2026-11-02", 'P', "3-2"));
  book.put(rec("S1", "2026-11-04", 'P', "3-3"));
  book.put(rec("S1", "2026-11-06", 'P', "3-3"));
  for (const char* d : {"2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"}) book.put(rec("S2", d, 'P'));
  Evaluation ev = evaluate(book, test_calendar(), {}, D("2026-11-06"));
  ASSERT_EQ(ev.gaps.size(), 2u);
  EXPECT_EQ(book.class_name(ev.gaps[0].class_index), "3-2");  // 11-03, still in 3-2
  EXPECT_EQ(book.class_name(ev.gaps[1].class_index), "3-3");  // 11-05, moved
}

TEST(Rule, AtRiskCountsRunsOneDayShortOfTheThreshold) {
  AttendanceBook book;
  book.put(rec("S1", "2026-11-02", 'A'));
  book.put(rec("S1", "2026-11-03", 'A'));
  Evaluation ev = evaluate(book, test_calendar(), {}, D("2026-11-03"));
  EXPECT_EQ(ev.at_risk, 1);
  EXPECT_TRUE(ev.standings.empty());
}

TEST(Rule, CumulativeRuleCountsUnexcusedDaysInTheWindow) {
  RuleSettings r;
  r.cumulative_days = 4;
  r.cumulative_window = 10;
  AttendanceBook book;
  // Absent every Monday and Wednesday of two weeks, present otherwise: never 3 in a row.
  const char* days[] = {"2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06",
                        "2026-11-09", "2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"};
  const char marks[] = "APAPPAPAPP";
  for (int i = 0; i < 10; ++i) book.put(rec("S1", days[i], marks[i]));
  Evaluation ev = evaluate(book, test_calendar(), r, D("2026-11-13"));
  ASSERT_EQ(ev.standings.size(), 1u);
  ASSERT_EQ(ev.standings[0].runs.size(), 1u);
  EXPECT_TRUE(ev.standings[0].runs[0].cumulative);
  EXPECT_EQ(ev.standings[0].runs[0].days, 4);
  EXPECT_EQ(format_day(ev.standings[0].runs[0].first), "2026-11-02");
  r.cumulative_window = 5;  // only 11-09 .. 11-13: 2 days
  EXPECT_TRUE(evaluate(book, test_calendar(), r, D("2026-11-13")).standings.empty());
}

TEST(Calendar, SchoolDaysHolidaysAndMakeUps) {
  SchoolCalendar cal = test_calendar();
  EXPECT_TRUE(cal.is_school_day(D("2026-11-02")));    // Monday
  EXPECT_FALSE(cal.is_school_day(D("2026-11-07")));   // Saturday
  EXPECT_FALSE(cal.is_school_day(D("2026-10-05")));   // National Day week
  EXPECT_TRUE(cal.is_school_day(D("2026-10-10")));    // make-up Saturday
  EXPECT_FALSE(cal.is_school_day(D("2026-08-31")));   // before the term
  EXPECT_EQ(format_day(cal.school_days_after(D("2026-11-06"), 1)), "2026-11-09");
  EXPECT_EQ(format_day(cal.school_days_after(D("2026-09-30"), 1)), "2026-10-08");
  EXPECT_EQ(format_day(*cal.last_school_day_on_or_before(D("2026-10-04"))), "2026-09-30");
}

TEST(Calendar, RejectsBadRowsWithLine) {
  auto c = SchoolCalendar::parse("kind,start,end,name\nterm,2026-09-01,2027-01-22,A\nholiday,2026-13-01,,X\n", "cal.csv");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().where, "cal.csv:3 column start");
  EXPECT_FALSE(SchoolCalendar::parse("kind,start\nholiday,2026-10-01\n", "cal.csv").ok());  // no term
}

}  // namespace
}  // namespace campus::attendance
