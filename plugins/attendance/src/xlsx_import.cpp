// XLSX sheet rows -> ExportRows, with the date column's serials turned into dates.
#include "xlsx_import.hpp"

#include <charconv>
#include <unordered_map>

#include "xlsx_reader.hpp"

namespace campus::attendance {
namespace {

constexpr bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

ImportResult import_workbook(Result<XlsxReader> opened, const std::string& name, const FieldNames& fields,
                             const std::string& sheet, const RecordRules& rules, const RecordSink& sink) {
  ImportResult result;
  if (!opened) {
    result.errors.push_back(opened.error());
    result.fatal = true;
    return result;
  }
  XlsxReader& book = opened.value();
  const std::string sheet_name = sheet.empty() ? book.sheet_names().front() : sheet;
  ExportRows rows(name + "[" + sheet_name + "]", fields, rules, sink, result);
  const bool date1904 = book.date1904();
  bool have_header = false;
  std::vector<std::string_view> cells;
  std::unordered_map<Day, std::string> date_texts;
  Status st = book.read_rows(sheet, [&](std::size_t line, const std::vector<XlsxCell>& row) {
    cells.clear();
    for (const auto& c : row) cells.push_back(trim(c.text));
    if (!have_header) {
      have_header = true;
      return rows.header(cells, line);  // a missing column: no row can be read
    }
    const int d = rows.date_column();
    if (d >= 0 && static_cast<std::size_t>(d) < row.size() && row[static_cast<std::size_t>(d)].number) {
      const std::string& v = row[static_cast<std::size_t>(d)].text;
      double serial = 0;
      auto r = std::from_chars(v.data(), v.data() + v.size(), serial);
      if (r.ec == std::errc()) {
        if (auto day = excel_serial_day(serial, date1904)) {
          // A term has ~180 distinct days: each is formatted once.
          auto [it, added] = date_texts.try_emplace(*day);
          if (added) it->second = format_day(*day);
          cells[static_cast<std::size_t>(d)] = it->second;
        }
      }
    }
    rows.row(cells, line);
    return true;
  });
  if (!st) {
    // Rows before a broken part of the sheet were imported: the file is rejected with them.
    result.errors.push_back(st.error());
    if (!have_header) result.fatal = true;
  } else if (!have_header) {
    result.errors.push_back({rows.name(), "the sheet is empty: expected a header row", "export the sheet with its header row"});
    result.fatal = true;
  }
  return result;
}

}  // namespace

ImportResult import_xlsx_file(const std::filesystem::path& file, const FieldNames& fields, const std::string& sheet,
                              const RecordRules& rules, const RecordSink& sink) {
  return import_workbook(XlsxReader::open_file(file), file.filename().string(), fields, sheet, rules, sink);
}

ImportResult import_xlsx_bytes(std::string_view bytes, const std::string& name, const FieldNames& fields,
                               const std::string& sheet, const RecordRules& rules, const RecordSink& sink) {
  return import_workbook(XlsxReader::open_bytes(bytes, name), name, fields, sheet, rules, sink);
}

}  // namespace campus::attendance
