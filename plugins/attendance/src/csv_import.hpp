// Attendance CSV exports (UTF-8 or GBK) turned into records, streaming: a term-sized file of
// 900,000 rows is read in chunks, never held as one table of strings.
//
// Rows become records through ExportRows (export_rows.hpp), as an XLSX sheet's do.
#pragma once
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "export_rows.hpp"

namespace campus::attendance {

// `text` must be UTF-8 (see text_file.hpp). `name` is used in messages ("2026-11-27.csv").
ImportResult import_csv_text(std::string_view text, const std::string& name, const FieldNames& fields,
                             const RecordRules& rules, const RecordSink& sink);
// UTF-8 (mapped, never copied) or GB18030 (converted in memory).
ImportResult import_csv_file(const std::filesystem::path& file, const FieldNames& fields, const RecordRules& rules,
                             const RecordSink& sink);

}  // namespace campus::attendance
