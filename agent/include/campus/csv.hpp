// CSV registers a school exports from a spreadsheet (rooms, recording classrooms, calendar,
// attendance). RFC 4180 quoting, UTF-8 with or without BOM, CRLF or LF. Rows are addressed by
// header name, so column order is free. Bad rows are reported with file:line and column and
// skipped; the rest of the file is still read. A bad row's subject (its id) is kept when it can
// be read, so a register can still report that room or classroom (as unknown, with the error)
// instead of losing it.
#pragma once
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/error.hpp"
#include "campus/export.hpp"

namespace campus {

struct CAMPUS_API CsvRow {
  std::string file;        // file name as given, for messages
  std::size_t line = 0;    // 1-based physical line where the record starts
  std::vector<std::string> cells;
  std::shared_ptr<const std::vector<std::string>> header;  // shared with the table

  // Cell by header name, empty string when the column is absent or the row is short.
  std::string get(std::string_view column) const;
  bool has(std::string_view column) const;
  // "rooms.csv:7 column type"
  std::string where(std::string_view column = {}) const;
};

// A row that could not be read (bad UTF-8, more cells than the header, an unclosed quote).
struct CsvBadRow {
  std::string where;  // "rooms.csv:7": file and the line where the record starts
  // The row's `id` cell (the first cell when the header has no `id`), trimmed; empty when that
  // cell is empty or is itself what is bad (not UTF-8, the cell an unclosed quote opened).
  std::string subject;
  Error error;
};

struct CsvTable {
  std::vector<std::string> header;  // lower-cased, trimmed names
  std::vector<CsvRow> rows;         // only rows that parsed (valid UTF-8, balanced quotes)
  Errors errors;                    // everything wrong with the file, with file:line and why
  std::vector<CsvBadRow> bad_rows;  // the row-level errors among `errors`, with their subjects
};

// A file that ends inside a quoted cell has a stray quote, not a cell spanning the rest of the
// file: every CSV reader here ends that record with the line the quote opened on, reports it with
// these words, and reads the lines after it as rows of their own.
inline std::string csv_unclosed_quote(std::size_t quote_line) {
  return "a quoted cell opened on line " + std::to_string(quote_line) +
         " is never closed (missing \"); the lines after it were read as rows of their own";
}
inline constexpr std::string_view kCsvUnclosedQuoteFix = "close the quote, or double a \" inside a quoted cell (\"\")";

// GB18030 is what Chinese spreadsheets save as "CSV": GBK's two-byte characters plus four-byte
// sequences for every other Unicode character (rare name characters among them).
enum class CsvEncoding { Utf8, Gb18030 };

// Detects the encoding of raw bytes: UTF-8 (BOM optional) or, when not valid UTF-8 but valid
// GB18030 (two- and four-byte sequences), Gb18030. Returns nullopt when it is neither.
CAMPUS_API std::optional<CsvEncoding> detect_encoding(std::string_view bytes);
// Converts GB18030 (and so GBK) bytes to UTF-8 (iconv). Error when a sequence is not GB18030.
CAMPUS_API Result<std::string> gb18030_to_utf8(std::string_view bytes);
// True when `s` is well-formed UTF-8.
CAMPUS_API bool is_valid_utf8(std::string_view s);

// Parses CSV text (already UTF-8; a BOM is skipped). `required` columns missing from the
// header give one Error and no rows. `name` is used in messages.
CAMPUS_API CsvTable parse_csv(std::string_view text, const std::string& name,
                              const std::vector<std::string>& required = {});
// Reads and parses a file. Bad UTF-8 in a row is an error for that row only.
CAMPUS_API Result<CsvTable> read_csv_file(const std::filesystem::path& file,
                                          const std::vector<std::string>& required = {});

// For a register read from `table`: every bad row whose subject could be read keeps an entry,
// marked invalid with the row's error (after `prefix`), so the report names it (unknown)
// instead of losing it. An entry already listed under that id gets the error added to its
// reason. Entry has string members `id`, `where` and `invalid`; `index` maps an id to its
// position in `entries` and is kept up to date.
template <class Entry>
void keep_bad_rows(const CsvTable& table, std::string_view prefix, std::vector<Entry>& entries,
                   std::map<std::string, std::size_t>& index) {
  for (const auto& b : table.bad_rows) {
    if (b.subject.empty()) continue;
    auto [at, added] = index.try_emplace(b.subject, entries.size());
    if (added) {
      Entry e;
      e.id = b.subject;
      e.where = b.where;
      entries.push_back(std::move(e));
    }
    Entry& e = entries[at->second];
    e.invalid += (e.invalid.empty() ? std::string(prefix) : std::string("; ")) + b.error.message();
  }
}

}  // namespace campus
