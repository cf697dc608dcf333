// Attendance CSV exports (UTF-8 or GBK) turned into records, streaming: a term-sized file of
// 900,000 rows is read in chunks, never held as one table of strings.
//
// Policy (README "Spool directory"): every good row is imported, every bad row is reported with
// its line and reason; a file with any bad row is moved to rejected/ (after its good rows are
// committed) with a .error file beside it. Within a file, the last row for a student and day
// wins; across files and runs, the later import wins.
#pragma once
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "campus/error.hpp"
#include "record.hpp"

namespace campus::attendance {

struct CsvImportResult {
  std::size_t rows = 0;       // data rows seen
  std::size_t imported = 0;   // rows handed to the callback
  Errors errors;              // one per bad row (or one for a bad header / encoding)
  bool fatal = false;         // nothing could be read (encoding, header)
};

using RecordSink = std::function<void(const AttendanceRecord&)>;

// `text` must be UTF-8 (see text_file.hpp). `name` is used in messages ("2026-11-27.csv").
CsvImportResult import_csv_text(std::string_view text, const std::string& name, const FieldNames& fields,
                                bool keep_names, const RecordSink& sink);
CsvImportResult import_csv_file(const std::filesystem::path& file, const FieldNames& fields, bool keep_names,
                                const RecordSink& sink);

}  // namespace campus::attendance
