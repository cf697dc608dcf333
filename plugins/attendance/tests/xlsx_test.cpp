// The XLSX reader and importer on workbooks assembled part by part (libzip), each part the way
// a spreadsheet writer lays it out, plus the files real writers saved (tests/data).
#include <gtest/gtest.h>

#include "campus/csv.hpp"
#include "test_support.hpp"
#include "xlsx_builder.hpp"
#include "xlsx_import.hpp"
#include "xlsx_reader.hpp"

namespace campus::attendance {
namespace {
using namespace testing;
namespace fs = std::filesystem;

struct Imported {
  ImportResult result;
  std::vector<AttendanceRecord> records;
  std::string errors() const {
    std::string s;
    for (const auto& e : result.errors) s += e.message() + "\n";
    return s;
  }
};

Imported import(const std::string& bytes, const std::string& sheet = "", RecordRules rules = {}) {
  Imported out;
  rules.keep_names = true;
  out.result = import_xlsx_bytes(bytes, "term.xlsx", FieldNames{}, sheet, rules,
                                 [&](const AttendanceRecord& r) { out.records.push_back(r); });
  return out;
}

TEST(Xlsx, SharedAndInlineStringsNumbersAndDateSerials) {
  Workbook wb;
  wb.shared = kHeaderStrings;
  wb.shared.push_back(si("3-2"));                                              // 7
  wb.shared.push_back("<r><rPr><b/></rPr><t>缺</t></r><r><t>勤</t></r>");       // 8: rich text runs
  wb.shared.push_back("<t>张三</t><rPh sb=\"0\" eb=\"2\"><t>ZHANG</t></rPh>");  // 9: phonetic run left out
  std::string rows = header_row();
  // 46328 = 2026-11-02 (1900 system); a time of day (.75) is the same day.
  rows += "<row r=\"2\">" + inline_cell("A2", "S1") + s_cell("B2", 7) + n_cell("C2", "3") + n_cell("D2", "46328") +
          s_cell("E2", 8) + "<c r=\"F2\" t=\"b\"><v>0</v></c>" + s_cell("G2", 9) + "</row>";
  rows += "<row r=\"3\">" + n_cell("A3", "20260001") + s_cell("B3", 7) + n_cell("C3", "3") + n_cell("D3", "46329.75") +
          inline_cell("E3", "病假") + "<c r=\"F3\" t=\"b\"><v>1</v></c></row>";
  // A text date, and a formula whose cached value is text.
  rows += "<row r=\"5\">" + n_cell("A5", "2.0260002E7") + s_cell("B5", 7) + inline_cell("D5", "2026年11月4日") +
          "<c r=\"E5\" t=\"str\"><f>IF(1,\"present\",\"\")</f><v>present</v></c></row>";
  wb.sheets = {{"考勤", rows}};
  auto got = import(wb.bytes());
  ASSERT_EQ(got.records.size(), 3u) << got.errors();
  EXPECT_TRUE(got.result.errors.empty()) << got.errors();
  EXPECT_EQ(got.records[0].student, "S1");
  EXPECT_EQ(got.records[0].class_name, "3-2");
  EXPECT_EQ(got.records[0].date, D("2026-11-02"));
  EXPECT_EQ(got.records[0].status, DayStatus::Absent);
  EXPECT_EQ(got.records[0].name, "张三");
  EXPECT_EQ(got.records[1].student, "20260001");  // a number cell, without ".0"
  EXPECT_EQ(got.records[1].date, D("2026-11-03"));
  EXPECT_EQ(got.records[1].status, DayStatus::Leave);
  EXPECT_TRUE(got.records[1].leave_approved);
  EXPECT_EQ(got.records[2].student, "20260002");
  EXPECT_EQ(got.records[2].grade, "");           // C5 missing: an empty cell
  EXPECT_EQ(got.records[2].date, D("2026-11-04"));
  EXPECT_EQ(got.records[2].status, DayStatus::Present);
}

TEST(Xlsx, Date1904SystemAndTheSerialsAroundExcelsLeapDay) {
  EXPECT_EQ(excel_serial_day(46328, false), D("2026-11-02"));
  EXPECT_EQ(excel_serial_day(46328 - 1462, true), D("2026-11-02"));
  EXPECT_EQ(excel_serial_day(61, false), day_from_ymd(1900, 3, 1));
  EXPECT_EQ(excel_serial_day(59, false), day_from_ymd(1900, 2, 28));
  EXPECT_FALSE(excel_serial_day(60, false));  // 1900-02-29 never was
  EXPECT_FALSE(excel_serial_day(0, false));
  EXPECT_FALSE(excel_serial_day(1e12, false));
  Workbook wb;
  wb.date1904 = true;
  wb.shared = kHeaderStrings;
  wb.sheets = {{"Sheet1", header_row() + "<row r=\"2\">" + inline_cell("A2", "S1") + inline_cell("B2", "1-1") +
                              n_cell("D2", std::to_string(46328 - 1462)) + inline_cell("E2", "absent") + "</row>"}};
  auto got = import(wb.bytes());
  ASSERT_EQ(got.records.size(), 1u) << got.errors();
  EXPECT_EQ(got.records[0].date, D("2026-11-02"));
}

// Text dates as spreadsheets export them (also CSV): separators, a Chinese long date, a time after it.
TEST(Xlsx, TextDatesAsSpreadsheetsWriteThem) {
  for (const char* t : {"2026-11-02", "2026/11/2", "2026.11.02", "2026年11月2日", "2026-11-02 00:00:00", "2026-11-02T08:30"})
    EXPECT_EQ(parse_day(t), D("2026-11-02")) << t;
  for (const char* t : {"2026年11月", "2026年13月2日", "11月2日", "2026-11-02x", "2026-11", "02/11/2026"})
    EXPECT_FALSE(parse_day(t)) << t;
}

TEST(Xlsx, TheNamedSheetOrTheFirstAndAMissingSheetListsTheSheets) {
  Workbook wb;
  wb.shared = kHeaderStrings;
  auto row = [](const char* id) {
    return "<row r=\"2\">" + inline_cell("A2", id) + inline_cell("B2", "1-1") + inline_cell("D2", "2026-11-02") +
           inline_cell("E2", "出勤") + "</row>";
  };
  wb.sheets = {{"说明", header_row() + row("FIRST")}, {"考勤", header_row() + row("SECOND")}};
  auto first = import(wb.bytes());
  ASSERT_EQ(first.records.size(), 1u) << first.errors();
  EXPECT_EQ(first.records[0].student, "FIRST");
  auto named = import(wb.bytes(), "考勤");
  ASSERT_EQ(named.records.size(), 1u) << named.errors();
  EXPECT_EQ(named.records[0].student, "SECOND");
  auto missing = import(wb.bytes(), "Attendance");
  EXPECT_TRUE(missing.result.fatal);
  ASSERT_EQ(missing.result.errors.size(), 1u);
  EXPECT_NE(missing.errors().find("no sheet \"Attendance\" (sheets: \"说明\", \"考勤\")"), std::string::npos)
      << missing.errors();
  EXPECT_NE(missing.errors().find("xlsx_sheet"), std::string::npos);
}

TEST(Xlsx, BadRowsAreNamedBySheetAndRowAndGoodRowsCount) {
  Workbook wb;
  wb.shared = kHeaderStrings;
  std::string rows = header_row();
  auto row = [](int r, const char* id, const char* date, const char* status) {
    auto n = std::to_string(r);
    return "<row r=\"" + n + "\">" + inline_cell("A" + n, id) + inline_cell("B" + n, "1-1") + inline_cell("D" + n, date) +
           inline_cell("E" + n, status) + "</row>";
  };
  rows += row(2, "S1", "2026-11-02", "absent");
  rows += row(3, "S2", "2026-11-31", "absent");
  rows += row(7, "S3", "2026-11-02", "病休");
  rows += "<row r=\"8\"><c r=\"A8\" t=\"inlineStr\"><is><t></t></is></c></row>";  // blank: skipped
  rows += row(9, "S4", "2026-11-02", "早退");
  wb.sheets = {{"Sheet1", rows}};
  auto got = import(wb.bytes());
  EXPECT_EQ(got.records.size(), 2u);
  EXPECT_EQ(got.result.rows, 4u);
  ASSERT_EQ(got.result.errors.size(), 2u) << got.errors();
  EXPECT_EQ(got.result.errors[0].where, "term.xlsx[Sheet1]:3 column date");
  EXPECT_EQ(got.result.errors[1].where, "term.xlsx[Sheet1]:7 column status");
  EXPECT_NE(got.result.errors[1].what.find("\"病休\""), std::string::npos);
  EXPECT_NE(got.result.errors[1].fix.find("audits.attendance.status_words"), std::string::npos);
  EXPECT_EQ(got.records[1].status, DayStatus::Late);  // 早退: at school that day
}

TEST(Xlsx, PrefixedNamespacesReadTheSame) {
  Workbook wb;
  wb.sheet_prefix = "x:";
  wb.shared = kHeaderStrings;
  std::string rows = header_row() + "<row r=\"2\">" + inline_cell("A2", "S1") + inline_cell("B2", "1-1") +
                     n_cell("D2", "46328") + inline_cell("E2", "late") + "</row>";
  for (const char* tag : {"row", "c", "v", "is", "t"}) {
    std::string open = std::string("<") + tag, close = std::string("</") + tag + ">";
    for (std::size_t p = 0; (p = rows.find(open, p)) != std::string::npos; p += 3)
      if (rows[p + open.size()] == ' ' || rows[p + open.size()] == '>') rows.replace(p, open.size(), "<x:" + std::string(tag));
    for (std::size_t p = 0; (p = rows.find(close, p)) != std::string::npos; p += 3) rows.replace(p, close.size(), "</x:" + std::string(tag) + ">");
  }
  wb.sheets = {{"Sheet1", rows}};
  auto got = import(wb.bytes());
  ASSERT_EQ(got.records.size(), 1u) << got.errors() << rows;
  EXPECT_EQ(got.records[0].status, DayStatus::Late);
}

TEST(Xlsx, FilesThatAreNotWorkbooksAndBrokenPartsSayWhat) {
  auto not_zip = import("student_id,class\nS1,1-1\n");
  EXPECT_TRUE(not_zip.result.fatal);
  EXPECT_NE(not_zip.errors().find("not an Excel workbook (.xlsx)"), std::string::npos) << not_zip.errors();
  EXPECT_NE(not_zip.errors().find("not .xls"), std::string::npos);

  auto no_workbook = import(Workbook::zip_parts({{"hello.txt", "hi"}}));
  EXPECT_TRUE(no_workbook.result.fatal);
  EXPECT_NE(no_workbook.errors().find("no part xl/workbook.xml"), std::string::npos) << no_workbook.errors();

  // Broken XML half way: the rows before it were imported, the error names the part and line.
  Workbook wb;
  wb.shared = kHeaderStrings;
  wb.sheets = {{"Sheet1", header_row() + "<row r=\"2\">" + inline_cell("A2", "S1") + inline_cell("B2", "1-1") +
                              inline_cell("D2", "2026-11-02") + inline_cell("E2", "absent") + "</row><row r=\"3\"><c r=\"A3\"><v>1</x></c>"}};
  auto broken = import(wb.bytes());
  EXPECT_EQ(broken.records.size(), 1u);
  EXPECT_FALSE(broken.result.fatal);
  EXPECT_NE(broken.errors().find("xl/worksheets/sheet1.xml is not well-formed XML"), std::string::npos) << broken.errors();

  // A DTD (entity expansion) is refused before any entity is read.
  auto with_dtd = Workbook::zip_parts(
      {{"_rels/.rels", kRootRels},
       {"xl/workbook.xml", R"(<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaa">]><workbook><sheets><sheet name="S" r:id="rId1" xmlns:r="r"/></sheets></workbook>)"}});
  auto refused = import(with_dtd);
  EXPECT_TRUE(refused.result.fatal);
  EXPECT_NE(refused.errors().find("has a DTD"), std::string::npos) << refused.errors();

  // A cell pointing past the shared strings.
  Workbook bad_ref;
  bad_ref.shared = kHeaderStrings;
  bad_ref.sheets = {{"Sheet1", header_row() + "<row r=\"2\">" + s_cell("A2", 99) + "</row>"}};
  auto dangling = import(bad_ref.bytes());
  EXPECT_NE(dangling.errors().find("term.xlsx[Sheet1]:2: a cell refers to a shared string that does not exist"),
            std::string::npos)
      << dangling.errors();
}

TEST(Xlsx, AMissingColumnIsAHeaderErrorAndAnEmptySheetSaysSo) {
  Workbook wb;
  wb.shared = {si("student_id"), si("class"), si("date")};
  wb.sheets = {{"Sheet1", "<row r=\"3\">" + s_cell("A3", 0) + s_cell("B3", 1) + s_cell("C3", 2) + "</row>"}};
  auto got = import(wb.bytes());
  EXPECT_TRUE(got.result.fatal);
  EXPECT_NE(got.errors().find("term.xlsx[Sheet1]:3: the header has no column \"status\""), std::string::npos)
      << got.errors();
  Workbook empty;
  empty.sheets = {{"Sheet1", ""}};
  auto none = import(empty.bytes());
  EXPECT_TRUE(none.result.fatal);
  EXPECT_NE(none.errors().find("the sheet is empty"), std::string::npos) << none.errors();
}

// Files saved by real spreadsheet programs (tests/data/README.md says how each was made).
TEST(Xlsx, AWorkbookSavedByLibreOffice) {
  fs::path file = fs::path(ATTENDANCE_TEST_DATA) / "libreoffice-export.xlsx";
  std::vector<AttendanceRecord> recs;
  RecordRules rules;
  rules.keep_names = true;
  auto r = import_xlsx_file(file, FieldNames{}, "", rules, [&](const AttendanceRecord& x) { recs.push_back(x); });
  std::string errors;
  for (const auto& e : r.errors) errors += e.message() + "\n";
  ASSERT_EQ(recs.size(), 4u) << errors;
  EXPECT_TRUE(r.errors.empty()) << errors;
  EXPECT_EQ(recs[0].student, "20260001");    // a number cell
  EXPECT_EQ(recs[0].class_name, "三年级二班");  // a shared string
  EXPECT_EQ(recs[0].date, D("2026-11-02"));  // a date cell: a serial with a date style
  EXPECT_EQ(recs[0].status, DayStatus::Leave);
  EXPECT_TRUE(recs[0].leave_approved);       // 是
  EXPECT_EQ(recs[1].date, D("2026-11-03"));
  EXPECT_EQ(recs[1].status, DayStatus::Absent);
  EXPECT_EQ(recs[2].name, "刘㐀");             // a character outside GBK
  EXPECT_EQ(recs[3].status, DayStatus::Late);  // 早退
}

}  // namespace
}  // namespace campus::attendance
