// One page of the school attendance API's JSON (http_import.hpp has the request side), parsed
// without any I/O so the importer, the unit tests and the fuzzer run exactly the same code.
//
//   {"records": [...], "next": "<url>" | null, "page": 1, "pages": 20}   or a bare [...] array
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/error.hpp"
#include "record.hpp"

namespace campus::attendance {

struct JsonPageFormat {
  std::string records_field = "records";
  std::string next_field = "next";
  FieldNames fields;
  RecordRules rules;
  bool numbered = false;  // the URL template has {page}: page numbers may follow this page
};

struct JsonPage {
  std::vector<AttendanceRecord> records;
  Errors row_errors;               // bad records (skipped): "<where> record 3 field date"
  std::optional<std::string> failure;  // the page is unusable (then nothing else is set)
  // What comes next: at most one of them; neither = this was the last page.
  std::optional<std::string> next_url;  // the `next` link, made absolute against page_url
  std::optional<int> next_page;         // the page number to put in the URL template
};

// `where` names the page in messages ("attendance API page 3"); `page_url` is the URL the
// body came from (relative `next` links are resolved against its origin); `page` is the
// number this page was asked for with (the body's own "page" member wins when valid).
// Record errors never echo a student number or name (record.hpp).
JsonPage parse_json_page(std::string_view body, const JsonPageFormat& format, const std::string& where,
                         const std::string& page_url, int page);

}  // namespace campus::attendance
