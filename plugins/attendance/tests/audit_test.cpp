// The audit end to end against an in-memory store: imports, cases, deadlines, restarts, privacy.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "campus/csv.hpp"
#include "test_support.hpp"
#include "xlsx_builder.hpp"

namespace campus::attendance {
namespace {
using namespace testing;
namespace fs = std::filesystem;

const char* kHeader = "student_id,class,grade,date,status,leave_approved,name\n";

// One spool file for one day: S1's mark, and classmates S2, S3 present.
std::string day_csv(const char* date, char s1) {
  std::string status = s1 == 'A' ? "absent" : s1 == 'L' ? "late" : s1 == 'E' ? "leave" : "present";
  std::string csv = kHeader;
  csv += std::string("S1,3-2,3,") + date + "," + status + "," + (s1 == 'E' ? "yes" : "no") + ",Zhang San\n";
  csv += std::string("S2,3-2,3,") + date + ",present,no,Li Si\n";
  csv += std::string("S3,3-2,3,") + date + ",present,no,Wang Wu\n";
  return csv;
}

// "<status> <class>" of one stored day, read back the way a restarted agent reads it.
std::string stored(const FakeStore& store, const std::string& student, const char* date) {
  AttendanceBook book;
  EXPECT_EQ(book.load(store), 0u);
  const StudentDays* s = book.find(student);
  if (!s) return "no student";
  for (const auto& e : s->days)
    if (e.day == D(date)) return std::string(status_name(e.status)) + " " + book.class_name(e.class_index);
  return "no record";
}

class AttendanceAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    settings.calendar_file = dir.write("calendar.csv", kCalendarCsv);
    fs::create_directories(dir.path / "spool");
    settings.spool_dir = dir.path / "spool";
    ASSERT_TRUE(audit.apply(settings).ok());
  }
  // Drops a file into the spool, runs the audit at 18:00 school time on `date`, commits.
  AuditReport day(const char* date, char s1, bool commit = true) {
    dir.write(std::string("spool/") + date + ".csv", day_csv(date, s1));
    return run(date, commit);
  }
  AuditReport run(const char* date, bool commit = true) {
    AuditReport r = run_audit(audit, store, http, io, std::string(date) + "T18:00:00");
    if (commit) store.commit(r, std::string(date) + "T18:00:00+08:00");
    return r;
  }
  static int count(const AuditReport& r, CaseAction::Kind k) {
    return static_cast<int>(std::count_if(r.case_actions.begin(), r.case_actions.end(), [&](const auto& a) { return a.kind == k; }));
  }
  static int writes(const AuditReport& r, const char* kind) {
    return static_cast<int>(std::count_if(r.records.begin(), r.records.end(), [&](const auto& w) { return w.kind == kind; }));
  }
  static const Finding* finding(const AuditReport& r, const std::string& subject) {
    for (const auto& f : r.findings)
      if (f.subject == subject) return &f;
    return nullptr;
  }

  TempDir dir;
  AttendanceSettings settings;
  AttendanceAudit audit;
  FakeStore store;
  asio::io_context io;
  FakeHttp http{io};
};

TEST_F(AttendanceAuditTest, OpensCaseOnThirdDayAndClosesItselfOnReturn) {
  EXPECT_EQ(count(day("2026-11-02", 'A'), CaseAction::Kind::Open), 0);
  EXPECT_EQ(count(day("2026-11-03", 'A'), CaseAction::Kind::Open), 0);
  AuditReport r = day("2026-11-04", 'A');
  ASSERT_EQ(count(r, CaseAction::Kind::Open), 1);
  EXPECT_EQ(r.case_actions[0].subject, "S1");
  EXPECT_EQ(r.case_actions[0].details["run_days"], 3);
  EXPECT_EQ(r.case_actions[0].details["first_day"], "2026-11-02");
  EXPECT_EQ(r.summary["open"], 1);
  EXPECT_EQ(r.summary["open_cases"][0]["student"], "S1");
  EXPECT_EQ(r.summary["open_cases"][0]["class"], "3-2");
  EXPECT_EQ(r.summary["open_cases"][0]["run_days"], 3);
  EXPECT_EQ(finding(r, "class:3-2")->state, "open_cases");
  ASSERT_NE(store.open_case("S1"), nullptr);

  r = day("2026-11-05", 'P');
  ASSERT_EQ(count(r, CaseAction::Kind::Close), 1);
  EXPECT_EQ(r.case_actions[0].outcome, CaseStepKind::Returned);
  EXPECT_EQ(store.open_case("S1"), nullptr);
  EXPECT_EQ(r.summary["open"], 0);
  EXPECT_EQ(r.summary["opened_in_period"], 1);
  EXPECT_EQ(r.summary["closed_in_period"], 1);
  EXPECT_EQ(finding(r, "class:3-2")->state, "ok");
  // Spool files went to done/ after each commit.
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/2026-11-05.csv"));
  EXPECT_FALSE(fs::exists(dir.path / "spool/2026-11-05.csv"));
}

TEST_F(AttendanceAuditTest, RunGrowsWhileOpenWithoutSecondCase) {
  day("2026-11-02", 'A');
  day("2026-11-03", 'A');
  day("2026-11-04", 'A');
  AuditReport r = day("2026-11-05", 'A');
  EXPECT_EQ(count(r, CaseAction::Kind::Open), 0);
  ASSERT_EQ(count(r, CaseAction::Kind::Update), 1);
  EXPECT_EQ(store.open_case("S1")->details["run_days"], 4);
  EXPECT_EQ(store.open_case("S1")->details["last_absent_day"], "2026-11-05");
}

TEST_F(AttendanceAuditTest, OverdueWhenNotContactedWithinOneSchoolDay) {
  day("2026-11-04", 'A');
  day("2026-11-05", 'A');
  AuditReport r = day("2026-11-06", 'A');  // opened Friday: deadline Monday 11-09
  ASSERT_EQ(count(r, CaseAction::Kind::Open), 1);
  EXPECT_EQ(r.case_actions[0].details["deadline_day"], "2026-11-09");
  r = day("2026-11-09", 'A');
  EXPECT_EQ(r.summary["overdue"], 0);
  // The run grows (an update of the case's details), but the county hears of it only when
  // the case becomes overdue: the plugin announces that update and no other.
  auto announced = [](const AuditReport& rep) {
    return std::count_if(rep.case_actions.begin(), rep.case_actions.end(),
                         [](const CaseAction& a) { return a.kind == CaseAction::Kind::Update && a.announce; });
  };
  ASSERT_EQ(count(r, CaseAction::Kind::Update), 1);
  EXPECT_EQ(announced(r), 0);
  r = day("2026-11-10", 'A');
  EXPECT_EQ(announced(r), 1);
  EXPECT_EQ(r.summary["overdue"], 1);
  EXPECT_EQ(r.summary["open_cases"][0]["overdue"], true);
  EXPECT_EQ(store.open_case("S1")->details["overdue"], true);
  EXPECT_EQ(finding(r, "class:3-2")->state, "overdue");
  EXPECT_EQ(r.summary["handled_within_deadline"]["due"], 1);
  EXPECT_EQ(r.summary["handled_within_deadline"]["within"], 0);
}

TEST_F(AttendanceAuditTest, LateExportDoesNotResetTheDeadline) {
  std::string csv = kHeader;
  for (const char* d : {"2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-09"})
    csv += std::string("S1,3-2,3,") + d + ",absent,no,\n";
  dir.write("spool/late.csv", csv);  // a week's export arrives on Tuesday 11-10
  AuditReport r = run("2026-11-10");
  ASSERT_EQ(count(r, CaseAction::Kind::Open), 1);
  EXPECT_EQ(r.case_actions[0].details["deadline_day"], "2026-11-05");  // qualified 11-04
  EXPECT_EQ(r.summary["overdue"], 1);
}

TEST_F(AttendanceAuditTest, ContactedInTimeIsNotOverdueAndCountsAsHandled) {
  day("2026-11-04", 'A');
  day("2026-11-05", 'A');
  day("2026-11-06", 'A');
  CaseView* c = store.open_case("S1");
  c->stage = "contacted";
  c->steps.push_back({"2026-11-09T09:30:00+08:00", "contacted", "school:head-teacher", "phoned the parents"});
  AuditReport r = day("2026-11-10", 'A');
  EXPECT_EQ(r.summary["overdue"], 0);
  EXPECT_EQ(r.summary["open_cases"][0]["stage"], "contacted");
  EXPECT_EQ(r.summary["handled_within_deadline"]["within"], 1);
  EXPECT_EQ(r.summary["handled_within_deadline"]["share"], 1.0);
}

TEST_F(AttendanceAuditTest, RestartWithOpenCasesLosesNothingAndOpensNoDuplicate) {
  day("2026-11-02", 'A');
  day("2026-11-03", 'A');
  day("2026-11-04", 'A');
  ASSERT_NE(store.open_case("S1"), nullptr);
  AttendanceAudit restarted;  // a new process: empty memory, same store
  ASSERT_TRUE(restarted.apply(settings).ok());
  dir.write("spool/2026-11-05.csv", day_csv("2026-11-05", 'A'));
  AuditReport r = run_audit(restarted, store, http, io, "2026-11-05T18:00:00");
  EXPECT_EQ(count(r, CaseAction::Kind::Open), 0);
  store.commit(r, "2026-11-05T18:00:00+08:00");  // FakeStore throws on a second open case
  EXPECT_EQ(store.open_case("S1")->details["run_days"], 4);
  EXPECT_EQ(r.summary["records"], 12);
  EXPECT_EQ(store.cases.size(), 1u);
}

TEST_F(AttendanceAuditTest, ClosedCaseIsNotReopenedForTheSameRun) {
  day("2026-11-02", 'A');
  day("2026-11-03", 'A');
  day("2026-11-04", 'A');
  store.open_case("S1")->stage = "closed";  // the county closed it: transferred
  AuditReport r = day("2026-11-05", 'A');
  EXPECT_EQ(count(r, CaseAction::Kind::Open), 0);
  EXPECT_EQ(r.summary["closed_in_period"], 1);
}

TEST_F(AttendanceAuditTest, ReimportOfTheSameCsvIsIdempotent) {
  std::string csv = day_csv("2026-11-02", 'A');
  dir.write("spool/a.csv", csv);
  AuditReport first = run("2026-11-02");
  EXPECT_EQ(writes(first, kMonthRecordKind), 3);
  dir.write("spool/a.csv", csv);
  AuditReport again = run("2026-11-02");
  EXPECT_EQ(writes(again, kMonthRecordKind), 0);
  EXPECT_TRUE(again.case_actions.empty());
  EXPECT_EQ(again.summary["records"], 3);
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/a.csv"));
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/a.1.csv"));
}

TEST_F(AttendanceAuditTest, FailedCommitKeepsFilesAndReimportsThem) {
  day("2026-11-02", 'A');
  day("2026-11-03", 'A');
  AuditReport lost = day("2026-11-04", 'A', /*commit=*/false);  // the store refused (disk full)
  EXPECT_EQ(count(lost, CaseAction::Kind::Open), 1);
  EXPECT_TRUE(fs::exists(dir.path / "spool/2026-11-04.csv"));
  AuditReport r = run("2026-11-04");
  EXPECT_EQ(writes(r, kMonthRecordKind), 3);
  EXPECT_EQ(count(r, CaseAction::Kind::Open), 1);
}

TEST_F(AttendanceAuditTest, BatchImportOfAFinishedRunOpensAndClosesTheCase) {
  std::string csv = kHeader;
  for (const char* d : {"2026-11-02", "2026-11-03", "2026-11-04"}) csv += std::string("S1,3-2,3,") + d + ",absent,no,\n";
  csv += "S1,3-2,3,2026-11-05,present,no,\n";
  dir.write("spool/week.csv", csv);
  AuditReport r = run("2026-11-06");
  ASSERT_EQ(r.case_actions.size(), 2u);
  EXPECT_EQ(r.case_actions[0].kind, CaseAction::Kind::Open);
  EXPECT_EQ(r.case_actions[1].kind, CaseAction::Kind::Close);
  EXPECT_EQ(r.case_actions[1].outcome, CaseStepKind::Returned);
  EXPECT_EQ(r.summary["open"], 0);
  EXPECT_EQ(r.summary["opened_in_period"], 1);
  AuditReport again = run("2026-11-09");
  EXPECT_TRUE(again.case_actions.empty());
}

TEST_F(AttendanceAuditTest, DuplicatesLastRowInFileWinsAndLaterImportWins) {
  std::string csv = kHeader;
  csv += "S1,3-2,3,2026-11-02,absent,no,\n";
  csv += "S1,3-2,3,2026-11-02,present,no,\n";  // corrected later in the same file
  dir.write("spool/1.csv", csv);
  run("2026-11-02");
  EXPECT_EQ(stored(store, "S1", "2026-11-02"), "present 3-2");
  dir.write("spool/2.csv", std::string(kHeader) + "S1,3-2,3,2026-11-02,late,no,\n");
  run("2026-11-02");
  EXPECT_EQ(stored(store, "S1", "2026-11-02"), "late 3-2");
  EXPECT_EQ(store.records["month"].size(), 1u);
  EXPECT_EQ(store.records["month"]["S1|2026-11"]["days"], "02,L,0,3-2");
}

TEST_F(AttendanceAuditTest, HalfBadCsvImportsGoodRowsAndRejectsTheFileWithLines) {
  std::string csv = kHeader;
  csv += "S1,3-2,3,2026-11-02,absent,no,\n";          // line 2 good
  csv += "S2,3-2,3,2026-11-31,present,no,\n";         // line 3 bad date
  csv += "S3,3-2,3,2026-11-02,sick,no,\n";            // line 4 bad status
  csv += "110101201001011234,3-2,3,2026-11-02,present,no,\n";  // line 5 national ID as key
  csv += "S4,3-2,3,2026-11-02,present,no,\n";          // line 6 good
  csv += "S5,\"3-2,3,2026-11-02,present,no,\n";        // line 7 unclosed quote
  dir.write("spool/half.csv", csv);
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(writes(r, kMonthRecordKind), 2);
  EXPECT_EQ(r.summary["imports"]["rows_imported"], 2);
  EXPECT_EQ(r.summary["imports"]["files_rejected"][0], "half.csv");
  EXPECT_EQ(finding(r, "source:spool")->state, "rejected_files");
  ASSERT_TRUE(fs::exists(dir.path / "spool/rejected/half.csv"));
  std::ifstream in(dir.path / "spool/rejected/half.csv.error");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("half.csv:3 column date"), std::string::npos) << text;
  EXPECT_NE(text.find("half.csv:4 column status"), std::string::npos) << text;
  EXPECT_NE(text.find("half.csv:5 column student_id"), std::string::npos) << text;
  EXPECT_NE(text.find("half.csv:7"), std::string::npos) << text;
  EXPECT_EQ(text.find("110101201001011234"), std::string::npos) << "a national ID number was echoed";
  for (const auto& e : r.input_errors) EXPECT_EQ(e.message().find("110101201001011234"), std::string::npos);
}

TEST_F(AttendanceAuditTest, AStrayQuoteCostsOneRowNotTheRowsBelowIt) {
  std::string csv = kHeader;
  csv += "S1,3-2,3,2026-11-02,absent,no,\n";    // line 2 good
  csv += "S5,\"3-2,3,2026-11-02,present,no,\n";  // line 3: a quote opened and never closed
  csv += "S6,3-2,3,2026-11-02,absent,no,\n";    // line 4 good
  csv += "S7,3-2,3,2026-11-02,present,no,\n";   // line 5 good
  dir.write("spool/stray.csv", csv);
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(r.summary["imports"]["rows_imported"], 3);
  EXPECT_EQ(writes(r, kMonthRecordKind), 3);
  EXPECT_EQ(r.summary["imports"]["files_rejected"][0], "stray.csv");
  std::ifstream in(dir.path / "spool/rejected/stray.csv.error");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("stray.csv:3"), std::string::npos) << text;
  EXPECT_NE(text.find("opened on line 3 is never closed"), std::string::npos) << text;
  EXPECT_NE(text.find("close the quote"), std::string::npos) << text;
  EXPECT_EQ(text.find("stray.csv:4"), std::string::npos) << text;
}

TEST_F(AttendanceAuditTest, NationalIdColumnIsDroppedAndNamesOnlyWithPublishNames) {
  std::string csv = "student_id,class,grade,date,status,leave_approved,name,id_card\n";
  for (const char* d : {"2026-11-02", "2026-11-03", "2026-11-04"})
    csv += std::string("S1,3-2,3,") + d + ",absent,no,Zhang San,11010120100101123X\n";
  dir.write("spool/a.csv", csv);
  AuditReport r = run("2026-11-04");
  std::string everything;
  for (const auto& w : r.records) everything += w.key + (w.value ? w.value->dump() : "");
  for (const auto& a : r.case_actions) everything += a.details.dump() + a.note;
  everything += r.summary.dump();
  EXPECT_EQ(everything.find("11010120100101123X"), std::string::npos);
  EXPECT_EQ(everything.find("Zhang San"), std::string::npos);

  settings.publish_names = true;
  ASSERT_TRUE(audit.apply(settings).ok());
  dir.write("spool/b.csv", csv);
  r = run("2026-11-04");
  EXPECT_EQ(store.records["month"]["S1|2026-11"]["name"], "Zhang San");
  EXPECT_EQ(r.summary["open_cases"][0]["name"], "Zhang San");
  EXPECT_EQ(r.summary.dump().find("11010120100101123X"), std::string::npos);
}

TEST_F(AttendanceAuditTest, SwitchingPublishNamesOffScrubsStoredNames) {
  settings.publish_names = true;
  ASSERT_TRUE(audit.apply(settings).ok());
  day("2026-11-02", 'P');
  ASSERT_EQ(store.records["month"]["S1|2026-11"]["name"], "Zhang San");
  settings.publish_names = false;
  ASSERT_TRUE(audit.apply(settings).ok());
  run("2026-11-02");
  EXPECT_FALSE(store.records["month"]["S1|2026-11"].contains("name"));
  EXPECT_EQ(stored(store, "S1", "2026-11-02"), "present 3-2");
}

TEST_F(AttendanceAuditTest, MonthRecordsRoundTripEveryStatusAndClass) {
  std::string csv = kHeader;
  csv += "S1,\"3-2, east\",3,2026-11-02,absent,no,\nS1,3-2,3,2026-11-03,leave,yes,\nS1,3-2,3,2026-11-04,late,no,\n"
         "S1,3-2,3,2026-11-30,leave,no,\nS1,3-2,3,2026-12-01,present,no,\n";
  dir.write("spool/a.csv", csv);
  AuditReport r = run("2026-12-01");
  EXPECT_EQ(writes(r, kMonthRecordKind), 2);
  EXPECT_EQ(stored(store, "S1", "2026-11-02"), "absent 3-2, east");
  EXPECT_EQ(stored(store, "S1", "2026-11-03"), "leave 3-2");
  EXPECT_EQ(stored(store, "S1", "2026-11-04"), "late 3-2");
  EXPECT_EQ(stored(store, "S1", "2026-11-30"), "leave 3-2");
  EXPECT_EQ(stored(store, "S1", "2026-12-01"), "present 3-2");
  AttendanceBook book;
  book.load(store);
  EXPECT_TRUE(book.find("S1")->days[1].leave_approved);
  EXPECT_FALSE(book.find("S1")->days[3].leave_approved);
}

TEST_F(AttendanceAuditTest, GbkCsvWithChineseHeadersIsConverted) {
  settings.csv_fields.student_id = "学号";
  settings.csv_fields.class_name = "班级";
  settings.csv_fields.grade = "年级";
  settings.csv_fields.date = "日期";
  settings.csv_fields.status = "状态";
  settings.csv_fields.leave_approved = "请假批准";
  settings.csv_fields.name = "姓名";
  ASSERT_TRUE(audit.apply(settings).ok());
  // GBK bytes: 学号,班级,年级,日期,状态,请假批准,姓名 / S1,三年级二班,3,2026-11-02,缺勤,否,张三
  std::string header = "\xd1\xa7\xba\xc5,\xb0\xe0\xbc\xb6,\xc4\xea\xbc\xb6,\xc8\xd5\xc6\xda,\xd7\xb4\xcc\xac,"
                       "\xc7\xeb\xbc\xd9\xc5\xfa\xd7\xbc,\xd0\xd5\xc3\xfb\r\n";
  std::string row = "S1,\xc8\xfd\xc4\xea\xbc\xb6\xb6\xfe\xb0\xe0,3,2026-11-02,\xc8\xb1\xc7\xda,\xb7\xf1,\xd5\xc5\xc8\xfd\r\n";
  ASSERT_EQ(detect_encoding(header + row), CsvEncoding::Gb18030);
  dir.write("spool/gbk.csv", header + row);
  AuditReport r = run("2026-11-02");
  ASSERT_EQ(writes(r, kMonthRecordKind), 1) << (r.input_errors.empty() ? "" : r.input_errors[0].message());
  EXPECT_EQ(stored(store, "S1", "2026-11-02"), "absent 三年级二班");
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/gbk.csv"));
}

TEST_F(AttendanceAuditTest, Utf8CsvWithBomIsImportedAndMovedToDone) {
  // Excel's "CSV UTF-8" starts the file with a BOM (EF BB BF) before the header: without
  // skipping it the first column would be "\xEF\xBB\xBFstudent_id", not student_id.
  std::string csv = std::string("\xEF\xBB\xBF") + kHeader +
                    "S1,三年级二班,3,2026-11-02,absent,no,张三\r\n"
                    "S2,三年级二班,3,2026-11-02,present,no,李四\r\n";
  dir.write("spool/bom.csv", csv);
  AuditReport r = run("2026-11-02");
  EXPECT_TRUE(r.input_errors.empty()) << r.input_errors[0].message();
  EXPECT_EQ(r.summary["imports"]["rows_rejected"], 0) << r.summary.dump();
  EXPECT_EQ(stored(store, "S1", "2026-11-02"), "absent 三年级二班");
  EXPECT_EQ(stored(store, "S2", "2026-11-02"), "present 三年级二班");
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/bom.csv"));
  EXPECT_FALSE(fs::exists(dir.path / "spool/rejected/bom.csv"));
  EXPECT_FALSE(fs::exists(dir.path / "spool/bom.csv"));
}

TEST_F(AttendanceAuditTest, FileThatIsNeitherUtf8NorGbkIsRejectedWithTheFix) {
  dir.write("spool/bad.csv", std::string(kHeader) + "S1,\xff\xfe\xff,3,2026-11-02,absent,no,\n");
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(writes(r, kMonthRecordKind), 0);
  std::ifstream in(dir.path / "spool/rejected/bad.csv.error");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("CSV UTF-8"), std::string::npos) << text;
}

TEST_F(AttendanceAuditTest, DataGapIsReportedPerClassAndDay) {
  day("2026-11-02", 'P');
  std::string csv = kHeader;  // 11-03: S3 missing
  csv += "S1,3-2,3,2026-11-03,present,no,\nS2,3-2,3,2026-11-03,present,no,\n";
  dir.write("spool/2026-11-03.csv", csv);
  AuditReport r = run("2026-11-03");
  EXPECT_EQ(r.summary["data_gaps"]["class_days"], 1);
  EXPECT_EQ(r.summary["data_gaps"]["missing_records"], 1);
  EXPECT_EQ(r.summary["data_gaps"]["latest"][0]["class"], "3-2");
  EXPECT_EQ(r.summary["data_gaps"]["latest"][0]["date"], "2026-11-03");
  EXPECT_EQ(finding(r, "class:3-2")->state, "data_gap");
}

TEST_F(AttendanceAuditTest, RecordOutsideTermIsCountedNotEvaluated) {
  day("2026-11-02", 'P');
  dir.write("spool/old.csv", std::string(kHeader) + "S1,3-2,3,2026-07-15,absent,no,\n");
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(r.summary["records_outside_term"], 1);
  EXPECT_TRUE(r.case_actions.empty());
}

TEST_F(AttendanceAuditTest, StudentChangingClassKeepsCaseUnderNewClass) {
  std::string csv = kHeader;
  csv += "S1,3-2,3,2026-11-02,absent,no,\nS1,3-3,3,2026-11-03,absent,no,\nS1,3-3,3,2026-11-04,absent,no,\n";
  dir.write("spool/a.csv", csv);
  AuditReport r = run("2026-11-04");
  ASSERT_EQ(count(r, CaseAction::Kind::Open), 1);
  EXPECT_EQ(r.case_actions[0].details["class"], "3-3");
  EXPECT_EQ(finding(r, "class:3-3")->state, "open_cases");
  EXPECT_EQ(finding(r, "class:3-2")->state, "ok");
}

// ---- 学籍号 and other identifiers that must not leave the school ----------------------------

const char* kXuejihao = "G530102201001011234";  // G + an 18-character ID number

class StudentKeyTest : public AttendanceAuditTest {
 protected:
  void SetUp() override {
    AttendanceAuditTest::SetUp();
    settings.pseudonymize_students = true;
    settings.pseudonym_key_file = dir.path / "student-pseudonym.key";
    settings.csv_fields.student_id = "学籍号";
    ASSERT_TRUE(audit.apply(settings).ok());
  }
  void drop(const char* date, const char* status, const char* file = nullptr) {
    std::string csv = "学籍号,class,grade,date,status,leave_approved,name\n";
    csv += std::string(kXuejihao) + ",3-2,3," + date + "," + status + ",no,\n";
    csv += std::string("G530102201001015678,3-2,3,") + date + ",present,no,\n";
    dir.write(std::string("spool/") + (file ? file : date) + ".csv", csv);
  }
  std::string pseudonym() const {
    auto keys = StudentPseudonyms::open(settings.pseudonym_key_file, false);
    EXPECT_TRUE(keys.ok());
    return keys.ok() ? keys->pseudonym(kXuejihao) : "";
  }
  // Everything a report carries, and everything the store holds.
  std::string everything(const AuditReport& r) const {
    std::string all = r.summary.dump();
    for (const auto& w : r.records) all += w.key + (w.value ? w.value->dump() : "");
    for (const auto& a : r.case_actions) all += a.subject + a.note + a.details.dump();
    for (const auto& f : r.findings) all += f.subject + f.reason + f.details.dump();
    for (const auto& e : r.input_errors) all += e.message();
    for (const auto& [kind, recs] : store.records)
      for (const auto& [k, v] : recs) all += k + v.dump();
    for (const auto& c : store.cases) all += c.id + c.subject + c.details.dump();
    return all;
  }
};

TEST_F(StudentKeyTest, AXuejihaoBecomesItsPseudonymAndTheNumberIsNowhere) {
  drop("2026-11-02", "absent");
  drop("2026-11-03", "旷课");
  AuditReport r = run("2026-11-03");
  drop("2026-11-04", "未到");
  r = run("2026-11-04");
  ASSERT_EQ(count(r, CaseAction::Kind::Open), 1) << (r.input_errors.empty() ? "" : r.input_errors[0].message());
  const std::string p = pseudonym();
  EXPECT_TRUE(StudentPseudonyms::is_pseudonym(p)) << p;
  EXPECT_EQ(r.case_actions[0].subject, p);
  EXPECT_EQ(store.cases.at(0).subject, p);
  EXPECT_EQ(r.summary["open_cases"][0]["student"], p);
  EXPECT_EQ(r.summary["student_key"]["pseudonyms"], true);
  EXPECT_EQ(r.summary["student_key"]["key"], StudentPseudonyms::open(settings.pseudonym_key_file, false)->fingerprint());
  std::string all = everything(r);
  EXPECT_EQ(all.find("530102201001011234"), std::string::npos) << "a 学籍号 reached the report or the store";
  EXPECT_EQ(all.find("530102201001015678"), std::string::npos);
  // The key was made on the first run, for this school only.
  struct stat st {};
  ASSERT_EQ(::stat(settings.pseudonym_key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/2026-11-04.csv"));
}

TEST_F(StudentKeyTest, WithoutPseudonymsAXuejihaoIsRefusedAndTheFixNamesTheOption) {
  settings.pseudonymize_students = false;
  ASSERT_TRUE(audit.apply(settings).ok());
  drop("2026-11-02", "absent");
  AuditReport r = run("2026-11-02");
  EXPECT_EQ(r.summary["imports"]["rows_imported"], 0);
  ASSERT_EQ(r.input_errors.size(), 2u);
  EXPECT_NE(r.input_errors[0].message().find("学籍号"), std::string::npos) << r.input_errors[0].message();
  EXPECT_NE(r.input_errors[0].fix.find("pseudonymize_students = true"), std::string::npos);
  EXPECT_EQ(everything(r).find("530102201001011234"), std::string::npos);
  EXPECT_FALSE(fs::exists(settings.pseudonym_key_file));
}

TEST_F(StudentKeyTest, AKeyFileThatWentMissingIsNeverReplacedByANewOne) {
  drop("2026-11-02", "absent");
  run("2026-11-02");
  const std::string fp = StudentPseudonyms::open(settings.pseudonym_key_file, false)->fingerprint();
  fs::remove(settings.pseudonym_key_file);
  drop("2026-11-03", "absent");
  AuditReport r = run("2026-11-03");
  EXPECT_FALSE(fs::exists(settings.pseudonym_key_file));
  EXPECT_EQ(r.summary["imports"]["rows_imported"], 0);
  EXPECT_EQ(finding(r, "source:spool")->state, "unknown");
  EXPECT_NE(finding(r, "source:spool")->reason.find(fp), std::string::npos) << finding(r, "source:spool")->reason;
  EXPECT_NE(finding(r, "source:spool")->reason.find("restore the key file"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir.path / "spool/2026-11-03.csv"));  // kept for when the key is back
}

TEST_F(StudentKeyTest, ReplacingTheKeyWaitsUntilNoCaseIsOpenThenStartsAfresh) {
  drop("2026-11-02", "absent");
  drop("2026-11-03", "absent");
  drop("2026-11-04", "absent");
  run("2026-11-04");
  const std::string old_p = pseudonym();
  ASSERT_NE(store.open_case(old_p), nullptr);
  std::ofstream(settings.pseudonym_key_file, std::ios::trunc) << "a new key for this school, long enough\n";
  const std::string new_fp = StudentPseudonyms::open(settings.pseudonym_key_file, false)->fingerprint();
  drop("2026-11-05", "absent");
  AuditReport r = run("2026-11-05");
  EXPECT_EQ(r.summary["imports"]["rows_imported"], 0);
  EXPECT_EQ(finding(r, "source:spool")->state, "unknown");
  EXPECT_NE(finding(r, "source:spool")->reason.find("1 absence case(s) keyed by the old key are open"), std::string::npos)
      << finding(r, "source:spool")->reason;
  EXPECT_TRUE(store.records["month"].count(old_p + "|2026-11"));

  // The school closes the case, then the new key is taken: the old key's attendance goes (it
  // can never be matched again), the exports dropped again are imported under the new key.
  store.open_case(old_p)->stage = "closed";
  drop("2026-11-02", "absent", "again-02");
  drop("2026-11-03", "absent", "again-03");
  drop("2026-11-04", "absent", "again-04");
  r = run("2026-11-05");
  EXPECT_FALSE(store.records["month"].count(old_p + "|2026-11"));
  const std::string new_p = pseudonym();
  EXPECT_NE(new_p, old_p);
  EXPECT_TRUE(store.records["month"].count(new_p + "|2026-11"));
  EXPECT_EQ(store.records["pseudonym_key"]["current"]["fingerprint"], new_fp);
  ASSERT_NE(store.open_case(new_p), nullptr);  // the same absences, now under the new key
  bool said = false;
  for (const auto& e : r.input_errors) said = said || e.what.find("the pseudonym key changed") != std::string::npos;
  EXPECT_TRUE(said);
}

// A name with characters outside GBK (four-byte GB18030 sequences) in a spreadsheet's "CSV".
TEST_F(AttendanceAuditTest, Gb18030CsvWithFourByteCharactersIsConverted) {
  settings.publish_names = true;
  ASSERT_TRUE(audit.apply(settings).ok());
  // S1,三年级二班,3,2026-11-02,leave,否,刘㐀 and S2 ... 𠀀 in GB18030
  std::string csv = std::string(kHeader) +
                    "S1,\xc8\xfd\xc4\xea\xbc\xb6\xb6\xfe\xb0\xe0,3,2026-11-02,leave,\xb7\xf1,\xc1\xf5\x81\x39\xee\x39\n"
                    "S2,\xc8\xfd\xc4\xea\xbc\xb6\xb6\xfe\xb0\xe0,3,2026-11-02,present,no,\x95\x32\x82\x36\n";
  ASSERT_EQ(detect_encoding(csv), CsvEncoding::Gb18030);
  dir.write("spool/gb18030.csv", csv);
  AuditReport r = run("2026-11-02");
  EXPECT_TRUE(r.input_errors.empty()) << r.input_errors[0].message();
  EXPECT_EQ(store.records["month"]["S1|2026-11"]["name"], "刘㐀");
  EXPECT_EQ(store.records["month"]["S2|2026-11"]["name"], "𠀀");
  EXPECT_EQ(stored(store, "S1", "2026-11-02"), "leave 三年级二班");
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/gb18030.csv"));
}

TEST_F(AttendanceAuditTest, XlsxInTheSpoolIsImportedAndMovedAsCsvIs) {
  Workbook wb;
  wb.shared = kHeaderStrings;
  auto row = [](int r, const char* id, const char* serial, const char* status) {
    auto n = std::to_string(r);
    return "<row r=\"" + n + "\">" + inline_cell("A" + n, id) + inline_cell("B" + n, "3-2") + n_cell("C" + n, "3") +
           n_cell("D" + n, serial) + inline_cell("E" + n, status) + "</row>";
  };
  // 46328..46330 = Mon 2026-11-02 .. Wed 11-04
  wb.sheets = {{"Sheet1", header_row() + row(2, "S1", "46328", "缺勤") + row(3, "S1", "46329", "旷课") +
                              row(4, "S1", "46330", "未到") + row(5, "S2", "46330", "正常")}};
  dir.write("spool/2026-11-04.XLSX", wb.bytes());
  AuditReport r = run("2026-11-04");
  ASSERT_EQ(count(r, CaseAction::Kind::Open), 1) << (r.input_errors.empty() ? "" : r.input_errors[0].message());
  EXPECT_EQ(r.summary["imports"]["files_imported"][0], "2026-11-04.XLSX");
  EXPECT_TRUE(fs::exists(dir.path / "spool/done/2026-11-04.XLSX"));

  wb.sheets = {{"Sheet1", header_row() + row(2, "S3", "46331", "absent") + row(3, "S4", "60", "absent")}};
  dir.write("spool/2026-11-05.xlsx", wb.bytes());
  r = run("2026-11-05");
  EXPECT_EQ(r.summary["imports"]["files_rejected"][0], "2026-11-05.xlsx");
  std::ifstream in(dir.path / "spool/rejected/2026-11-05.xlsx.error");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("2026-11-05.xlsx[Sheet1]:3 column date"), std::string::npos) << text;
  EXPECT_EQ(stored(store, "S3", "2026-11-05"), "absent 3-2");
}

// Clock jumps (docs/reliability.md "Clock jumps"). "today" is the school's clock when the audit
// runs (ctx.now, the system clock); a deadline is a school day. Correct means: overdue is that
// day compared with the deadline day, and once said it is not taken back while the case stays
// open (real time never goes back), so a clock set back across midnight and set right again
// sends the county no pair of contradictory overdue events.
class AttendanceClockTest : public AttendanceAuditTest {
 protected:
  void SetUp() override {
    AttendanceAuditTest::SetUp();
    day("2026-11-04", 'A');
    day("2026-11-05", 'A');
    AuditReport r = day("2026-11-06", 'A');  // opened Friday: deadline Monday 11-09
    ASSERT_EQ(count(r, CaseAction::Kind::Open), 1);
  }
  AuditReport at(const std::string& local) {
    AuditReport r = run_audit(audit, store, http, io, local);
    store.commit(r, local + "+08:00");
    return r;
  }
  static bool says_in_time_again(const AuditReport& r) {
    for (const auto& a : r.case_actions)
      if (a.kind == CaseAction::Kind::Update && (!a.details.value("overdue", false) || a.announce)) return true;
    return false;
  }
};

TEST_F(AttendanceClockTest, ClockSetBackAcrossMidnightDoesNotTakeBackOverdue) {
  AuditReport r = at("2026-11-10T00:30:00");
  EXPECT_EQ(r.summary["overdue"], 1);
  ASSERT_EQ(store.open_case("S1")->details["overdue"], true);
  r = at("2026-11-09T23:30:00");  // the clock is set back an hour: "today" is Monday again
  EXPECT_EQ(r.summary["overdue"], 1);
  EXPECT_FALSE(says_in_time_again(r));
  EXPECT_EQ(store.open_case("S1")->details["overdue"], true);
  r = at("2026-11-10T00:35:00");  // and set right
  EXPECT_EQ(r.summary["overdue"], 1);
  // Details may follow "today" (data gap days), but overdue never flipped, so the plugin
  // announced no update and the store sent the county no case event.
  EXPECT_FALSE(says_in_time_again(r));
  EXPECT_EQ(store.open_case("S1")->details["overdue"], true);
}

TEST_F(AttendanceClockTest, ClockSetForwardAcrossMidnightDecidesByTheSchoolsClockAndSticks) {
  AuditReport r = at("2026-11-09T23:30:00");
  EXPECT_EQ(r.summary["overdue"], 0);  // Monday is the deadline day itself: in time
  r = at("2026-11-10T00:30:00");       // an hour ahead: the school's clock says Tuesday
  EXPECT_EQ(r.summary["overdue"], 1);
  r = at("2026-11-09T23:45:00");       // set right: Monday again, but overdue was said
  EXPECT_EQ(r.summary["overdue"], 1);
  EXPECT_FALSE(says_in_time_again(r));
}

TEST_F(AttendanceClockTest, ACaseContactedAfterAnOverdueSaidIsNoLongerOverdue) {
  // Stickiness ends where it should: handling the case (stage leaves "open").
  at("2026-11-10T00:30:00");
  store.open_case("S1")->stage = "contacted";
  AuditReport r = at("2026-11-10T09:00:00");
  EXPECT_EQ(r.summary["overdue"], 0);
}

}  // namespace
}  // namespace campus::attendance
