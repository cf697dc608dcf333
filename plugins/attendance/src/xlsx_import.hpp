// Attendance exports as Excel workbooks (.xlsx): the first sheet, or the one named by
// xlsx_sheet, read streaming (xlsx_reader.hpp); its first non-empty row is the header, and the
// rows become records through ExportRows exactly as a CSV file's do. In the date column a
// number is an Excel date serial (in the workbook's 1900 or 1904 system), text a date as in CSV.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include "export_rows.hpp"

namespace campus::attendance {

ImportResult import_xlsx_file(const std::filesystem::path& file, const FieldNames& fields, const std::string& sheet,
                              const RecordRules& rules, const RecordSink& sink);
// The same for a workbook in memory (tests, the fuzzer); `name` is used in messages.
ImportResult import_xlsx_bytes(std::string_view bytes, const std::string& name, const FieldNames& fields,
                               const std::string& sheet, const RecordRules& rules, const RecordSink& sink);

}  // namespace campus::attendance
