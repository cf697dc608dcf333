// The rows of one school export, CSV or a sheet of an XLSX workbook, turned into records with
// the same header lookup and the same bad-row messages for both formats.
//
// Policy (README "Spool directory"): every good row is imported, every bad row is reported
// with its line and reason; a file with any bad row is moved to rejected/ (after its good rows
// are committed) with a .error file beside it. Within a file, the last row for a student and
// day wins; across files and runs, the later import wins.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/error.hpp"
#include "record.hpp"

namespace campus::attendance {

struct ImportResult {
  std::size_t rows = 0;       // data rows seen
  std::size_t imported = 0;   // rows handed to the sink
  Errors errors;              // one per bad row (or one for a bad header / file)
  bool fatal = false;         // nothing could be read (encoding, header, not a workbook)
};

using RecordSink = std::function<void(const AttendanceRecord&)>;

class ExportRows {
 public:
  // `name` starts every message: "2026-11-27.csv", "term.xlsx[考勤]".
  ExportRows(std::string name, const FieldNames& fields, const RecordRules& rules, const RecordSink& sink,
             ImportResult& result);
  // The header row (its line, for messages). False, with a fatal error in the result, when a
  // column the record needs is missing.
  bool header(const std::vector<std::string_view>& cells, std::size_t line);
  // One data row. REQUIRES: header() returned true.
  void row(const std::vector<std::string_view>& cells, std::size_t line);
  // A row that could not be read at all (an unclosed quote, a cell that is not text).
  void bad_row(std::size_t line, std::string what, std::string fix);
  const std::string& name() const { return name_; }
  // The date column's index in the header, -1 before header() (an XLSX sheet's date serials).
  int date_column() const { return date_; }

 private:
  std::string where(std::size_t line) const { return name_ + ":" + std::to_string(line); }
  std::string name_;
  const FieldNames& fields_;
  const RecordRules& rules_;
  const RecordSink& sink_;
  ImportResult& result_;
  std::size_t width_ = 0;
  int student_ = -1, class_ = -1, grade_ = -1, date_ = -1, status_ = -1, approved_ = -1, name_col_ = -1;
};

}  // namespace campus::attendance
