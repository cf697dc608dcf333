// A streaming reader of Excel workbooks (.xlsx, Office Open XML spreadsheets): the zip archive
// through libzip, the workbook, relationships and shared strings through expat, the worksheet
// through XmlScanner (xml_scan.hpp: expat alone needed 6.2 s for a term's sheet). A sheet is
// read row by row from the compressed stream, never held whole in memory; only the
// shared-strings table (each distinct text once) is kept while the sheet is read.
//
// What it understands: the workbook's sheet list and its date system (1900 or 1904), shared
// strings (rich text runs joined, phonetic runs left out), inline strings, numbers, booleans,
// formula results (the cached value), error values as their text, and sparse rows (cells
// placed by their references). Styles are not read: which cells are dates is for the caller
// to know (the export's date column).
#pragma once
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/error.hpp"
#include "day.hpp"

namespace campus::attendance {

struct XlsxCell {
  std::string text;     // the value as text: numbers without a trailing ".0", booleans 1/0
  bool number = false;  // a numeric cell (a date serial in a date column)
};

class XlsxReader {
 public:
  // Limits that keep a hostile or broken file from taking the box: the shared strings
  // (decompressed XML) and any one sheet's decompressed XML.
  static constexpr std::size_t kMaxSharedStringsXml = 64u << 20;
  static constexpr std::uint64_t kMaxSheetXml = 8ull << 30;
  static constexpr std::size_t kMaxColumns = 16384;  // Excel's XFD

  // Errors name `name` and what is wrong (not a zip archive, not a workbook, broken XML).
  static Result<XlsxReader> open_file(const std::filesystem::path& file);
  // The same for a workbook already in memory (tests, the fuzzer); `bytes` must outlive it.
  static Result<XlsxReader> open_bytes(std::string_view bytes, std::string name);
  XlsxReader(XlsxReader&&) noexcept;
  XlsxReader& operator=(XlsxReader&&) noexcept;
  ~XlsxReader();

  const std::vector<std::string>& sheet_names() const;
  bool date1904() const;

  // Calls `row` for each row with at least one non-empty cell, in file order, with the row's
  // number (1-based, as Excel shows it) and its cells from column A (missing cells empty),
  // until it returns false.
  // `sheet` empty: the first sheet. Error: no such sheet (the message lists the sheets),
  // broken XML (with the row it was in), a part over its limit.
  using RowFn = std::function<bool(std::size_t row, const std::vector<XlsxCell>& cells)>;
  Status read_rows(const std::string& sheet, const RowFn& row);

 private:
  struct Workbook;
  explicit XlsxReader(std::unique_ptr<Workbook> wb);
  static Result<XlsxReader> open_zip(void* archive, std::string name);  // takes the zip_t
  std::unique_ptr<Workbook> wb_;
};

// The day an Excel date serial stands for (the integer part; a time of day is dropped), in the
// workbook's date system. Serial 60 of the 1900 system (Excel's 1900-02-29) has no day.
std::optional<Day> excel_serial_day(double serial, bool date1904);

}  // namespace campus::attendance
