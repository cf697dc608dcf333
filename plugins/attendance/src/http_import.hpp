// The school attendance system's HTTP JSON API: pages of records for a date range.
//
//   GET {url with {from}, {to}, {page} filled in}   Authorization: Bearer <token file>
//   200 {"records": [{"student_id": "...", "class": "...", "grade": "...", "date": "2026-11-27",
//                     "status": "absent", "leave_approved": false, "name": "..."}, ...],
//        "next": "<url of the next page>" | null, "page": 1, "pages": 20}
//
// The next page is the `next` link when the body has one, else page+1 while the URL template
// has {page} and the page was not empty (and page < pages when given). A run's import is all
// or nothing: any failed page (HTTP error, not JSON, timeout) drops the run's pages and is
// reported; the records of earlier runs stay, and the next run asks again.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "campus/http.hpp"
#include "record.hpp"

namespace campus::attendance {

struct HttpSourceSettings {
  std::string url;                    // template: {from} {to} {page}
  std::optional<std::string> token;   // bearer token (from token_file); never logged
  Millis timeout{10000};              // per page
  bool verify_tls = true;
  std::optional<std::filesystem::path> ca_file;
  int lookback_days = 14;             // calendar days before today asked for on every run
  std::string records_field = "records";
  std::string next_field = "next";
  int max_pages = 500;
  FieldNames fields;
};

struct HttpImportResult {
  std::vector<AttendanceRecord> records;
  Errors row_errors;            // bad records (skipped), with page and index
  std::optional<Error> failure; // the run's import failed: records is empty
  int pages = 0;
};

// Fills {from}, {to}, {page} in a URL template.
std::string expand_url(const std::string& tmpl, Day from, Day to, int page);

// Fetches every page, then calls done exactly once (on the client's io_context). No page
// waits past `deadline` (the audit's): a page cut by it fails the import like a timeout.
void import_http(HttpClient& http, const HttpSourceSettings& settings, const RecordRules& rules, Day from, Day to,
                 std::function<void(HttpImportResult)> done,
                 std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());

}  // namespace campus::attendance
