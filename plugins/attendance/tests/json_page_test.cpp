// parse_json_page on its own: records, row errors, the next page by link or by number, and
// the bodies the fuzzer showed need care (page numbers at the edge of int, non-objects).
#include <gtest/gtest.h>

#include "json_page.hpp"

namespace campus::attendance {
namespace {

const std::string kUrl = "https://sis.school.example:8443/api/attendance?page=1";

JsonPageFormat numbered() {
  JsonPageFormat f;
  f.numbered = true;
  return f;
}

TEST(JsonPage, RecordsAndRowErrorsWithoutEchoingPersonalData) {
  auto p = parse_json_page(R"({"records": [
      {"student_id": "S1", "class": "3-1", "grade": 3, "date": "2026-11-27", "status": "absent",
       "leave_approved": false, "id_card": "110101201001011234"},
      {"student_id": "S2", "class": "3-1", "grade": 3, "date": "27/11/2026", "status": "absent"},
      "not an object",
      {"student_id": "110101201001011234", "class": "3-1", "grade": 3, "date": "2026-11-27", "status": "absent"}]})",
                           JsonPageFormat{}, "attendance API page 1", kUrl, 1);
  ASSERT_FALSE(p.failure);
  ASSERT_EQ(p.records.size(), 1u);
  EXPECT_EQ(p.records[0].student, "S1");
  EXPECT_EQ(p.records[0].status, DayStatus::Absent);
  ASSERT_EQ(p.row_errors.size(), 3u);
  EXPECT_EQ(p.row_errors[0].where, "attendance API page 1 record 2 field date");
  EXPECT_EQ(p.row_errors[1].where, "attendance API page 1 record 3");
  EXPECT_EQ(p.row_errors[1].what, "not a JSON object");
  for (const auto& e : p.row_errors) EXPECT_EQ(e.message().find("110101201001011234"), std::string::npos) << e.message();
  EXPECT_FALSE(p.next_url);
  EXPECT_FALSE(p.next_page);
}

TEST(JsonPage, UnusablePages) {
  EXPECT_EQ(parse_json_page("<html>", {}, "p", kUrl, 1).failure, "the response is not JSON");
  EXPECT_EQ(parse_json_page(R"({"rows": []})", {}, "p", kUrl, 1).failure, "the response has no \"records\" array");
  EXPECT_EQ(parse_json_page(R"({"records": {}})", {}, "p", kUrl, 1).failure, "the response has no \"records\" array");
  EXPECT_EQ(parse_json_page("42", {}, "p", kUrl, 1).failure, "the response has no \"records\" array");
  JsonPageFormat f;
  f.records_field = "data";
  EXPECT_FALSE(parse_json_page(R"({"data": []})", f, "p", kUrl, 1).failure);
}

TEST(JsonPage, NextLinkIsAuthoritativeAndRelativeLinksKeepTheOrigin) {
  auto p = parse_json_page(R"({"records": [], "next": "/api/attendance?cursor=abc", "page": 1, "pages": 1})",
                           numbered(), "p", kUrl, 1);
  EXPECT_EQ(p.next_url, "https://sis.school.example:8443/api/attendance?cursor=abc");
  EXPECT_FALSE(p.next_page);
  EXPECT_EQ(parse_json_page(R"({"records": [], "next": "http://other/x"})", {}, "p", kUrl, 1).next_url, "http://other/x");
  auto last = parse_json_page(R"({"records": [{}], "next": null, "page": 1, "pages": 9})", numbered(), "p", kUrl, 1);
  EXPECT_FALSE(last.next_url);
  EXPECT_FALSE(last.next_page);
  EXPECT_FALSE(parse_json_page(R"({"records": [], "next": ""})", {}, "p", kUrl, 1).next_url);
}

TEST(JsonPage, PageNumbers) {
  EXPECT_EQ(parse_json_page(R"({"records": [], "page": 2, "pages": 3})", numbered(), "p", kUrl, 2).next_page, 3);
  EXPECT_FALSE(parse_json_page(R"({"records": [{}], "page": 3, "pages": 3})", numbered(), "p", kUrl, 3).next_page);
  // Without "pages": until an empty page.
  EXPECT_EQ(parse_json_page(R"({"records": [{}]})", numbered(), "p", kUrl, 4).next_page, 5);
  EXPECT_FALSE(parse_json_page(R"({"records": []})", numbered(), "p", kUrl, 4).next_page);
  EXPECT_EQ(parse_json_page(R"([{}])", numbered(), "p", kUrl, 4).next_page, 5);
  EXPECT_FALSE(parse_json_page(R"([])", numbered(), "p", kUrl, 4).next_page);
  // No {page} in the URL template: one page only.
  EXPECT_FALSE(parse_json_page(R"({"records": [{}], "page": 1, "pages": 3})", JsonPageFormat{}, "p", kUrl, 1).next_page);
}

TEST(JsonPage, HostilePageNumbersNeitherWrapNorGoBackwards) {
  // page INT_MAX: no successor (page + 1 would overflow).
  EXPECT_FALSE(parse_json_page(R"({"records": [{}], "page": 2147483647, "pages": 4294967295})", numbered(), "p", kUrl, 1)
                   .next_page);
  // A page the int cannot hold, zero or negative is ignored: our own count goes on.
  EXPECT_EQ(parse_json_page(R"({"records": [{}], "page": 4294967297, "pages": 5})", numbered(), "p", kUrl, 2).next_page, 3);
  EXPECT_EQ(parse_json_page(R"({"records": [{}], "page": -7, "pages": 5})", numbered(), "p", kUrl, 2).next_page, 3);
  // "pages" that is not a usable count ends the paging rather than running to max_pages.
  EXPECT_FALSE(parse_json_page(R"({"records": [{}], "page": 1, "pages": -1})", numbered(), "p", kUrl, 1).next_page);
  // A non-integer "pages" is no count at all: until an empty page, as without one.
  EXPECT_EQ(parse_json_page(R"({"records": [{}], "page": 1, "pages": 1e300})", numbered(), "p", kUrl, 1).next_page, 2);
  EXPECT_FALSE(parse_json_page(R"([{}])", numbered(), "p", kUrl, 2147483647).next_page);
}

}  // namespace
}  // namespace campus::attendance
