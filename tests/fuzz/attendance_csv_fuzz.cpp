// A school's attendance export as outside input (after encoding detection, as in the spool).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "csv_import.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  campus::attendance::FieldNames fields;
  campus::attendance::RecordRules rules;
  rules.keep_names = true;
  std::size_t n = 0;
  (void)campus::attendance::import_csv_text(text, "fuzz.csv", fields, rules,
                                            [&](const campus::attendance::AttendanceRecord&) { ++n; });
  return 0;
}
