// Rows the CSV reader cannot use keep their subject (the id cell) when it is readable, so a
// register can report that room or classroom as unknown instead of losing it.
#include <gtest/gtest.h>

#include "campus/csv.hpp"

using namespace campus;

namespace {
std::vector<std::string> subjects(const CsvTable& t) {
  std::vector<std::string> s;
  for (const auto& b : t.bad_rows) s.push_back(b.subject);
  return s;
}
}  // namespace

TEST(CsvBadRows, KeepTheIdOfRowsWithBadUtf8OrTooManyCells) {
  auto t = parse_csv(
      "name,id,type\n"
      "ok,A,classroom\n"
      "bad\xff,B,classroom\n"   // bad UTF-8 in another cell: the id is readable
      "x,\xfe,classroom\n"      // the id cell itself is not UTF-8: no subject
      "Lab, chem, C ,office\n"  // an unquoted comma: one cell too many, the id shifted but read
      ", ,classroom,x\n",       // empty id: no subject
      "rooms.csv", {"id"});
  ASSERT_EQ(t.rows.size(), 1u);
  ASSERT_EQ(t.bad_rows.size(), 4u);
  EXPECT_EQ(subjects(t), (std::vector<std::string>{"B", "", "chem", ""}));
  EXPECT_EQ(t.bad_rows[0].where, "rooms.csv:3");
  EXPECT_EQ(t.bad_rows[0].error.where, "rooms.csv:3 column name");
  EXPECT_EQ(t.bad_rows[0].error.what, "not valid UTF-8 text");
  EXPECT_FALSE(t.bad_rows[0].error.fix.empty());
  EXPECT_EQ(t.bad_rows[1].error.where, "rooms.csv:4 column id");
  EXPECT_EQ(t.bad_rows[2].error.what, "the row has 4 cells but the header has 3");
  // Every bad row is also in errors, for users that only list them.
  ASSERT_EQ(t.errors.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(t.errors[i].message(), t.bad_rows[i].error.message());
}

TEST(CsvBadRows, WithoutAnIdColumnTheFirstCellIsTheSubject) {
  auto t = parse_csv("kind,start\nholiday,2026-10-01,extra\n", "calendar.csv");
  ASSERT_EQ(t.bad_rows.size(), 1u);
  EXPECT_EQ(t.bad_rows[0].subject, "holiday");
}

TEST(CsvBadRows, AnUnclosedQuoteKeepsTheIdOnlyWhenTheQuoteIsNotInIt) {
  auto named = parse_csv("id,name\nA,ok\nB,\"unclosed\nC,x\n", "r.csv");
  ASSERT_EQ(named.bad_rows.size(), 1u);
  EXPECT_EQ(named.bad_rows[0].subject, "B");
  EXPECT_EQ(named.bad_rows[0].error.where, "r.csv:3");
  EXPECT_FALSE(named.bad_rows[0].error.fix.empty());
  auto swallowed = parse_csv("id,name\n\"B,unclosed\nC,x\n", "r.csv");
  ASSERT_EQ(swallowed.bad_rows.size(), 1u);
  EXPECT_EQ(swallowed.bad_rows[0].subject, "");
}

TEST(CsvBadRows, AStrayQuoteCostsOneRowNotTheRowsBelowIt) {
  // Before: the quote on line 3 took every line below it into its cell, and those rows
  // vanished without an error of their own.
  auto t = parse_csv("id,name\r\nA,ok\r\nB,\"Room 1\r\nC,x\r\n\r\nD,y\r\n", "r.csv");
  ASSERT_EQ(t.bad_rows.size(), 1u);
  EXPECT_EQ(t.bad_rows[0].subject, "B");
  EXPECT_EQ(t.bad_rows[0].error.where, "r.csv:3");
  EXPECT_NE(t.bad_rows[0].error.what.find("opened on line 3 is never closed"), std::string::npos)
      << t.bad_rows[0].error.what;
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[1].get("id"), "C");
  EXPECT_EQ(t.rows[1].line, 4u);
  EXPECT_EQ(t.rows[2].get("id"), "D");
  EXPECT_EQ(t.rows[2].line, 6u);
}

TEST(CsvBadRows, AQuotedCellOverSeveralLinesIsStillOneCell) {
  auto t = parse_csv("id,name\nA,\"two\nlines, quoted\"\nB,x\n", "r.csv");
  EXPECT_TRUE(t.errors.empty());
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].get("name"), "two\nlines, quoted");
  EXPECT_EQ(t.rows[1].line, 4u);
}

TEST(CsvBadRows, AnUnclosedQuoteInTheHeaderIsAFileError) {
  auto t = parse_csv("id,\"name\nA,x\n", "r.csv");
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_EQ(t.errors[0].where, "r.csv:1 (header)");
  EXPECT_TRUE(t.rows.empty());
  EXPECT_TRUE(t.bad_rows.empty());
}

TEST(CsvBadRows, HeaderErrorsAreNotRowErrors) {
  auto t = parse_csv("id,name\nA,b\n", "r.csv", {"id", "type"});
  EXPECT_EQ(t.errors.size(), 1u);
  EXPECT_TRUE(t.bad_rows.empty());
  EXPECT_TRUE(parse_csv("", "r.csv").bad_rows.empty());
}
