// A school's .xlsx export as outside input: the zip archive, the workbook's parts, shared
// strings and the sheet's XML, all through the importer the spool uses.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "xlsx_import.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  campus::attendance::RecordRules rules;
  rules.keep_names = true;
  std::size_t n = 0;
  (void)campus::attendance::import_xlsx_bytes(bytes, "fuzz.xlsx", campus::attendance::FieldNames{}, "", rules,
                                              [&](const campus::attendance::AttendanceRecord&) { ++n; });
  return 0;
}
