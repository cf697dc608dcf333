// Registers and exports as outside input: CSV parsing, encoding detection and GB18030 conversion,
// and the small value parsers (durations, sizes, timestamps) that read cells and keys.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "campus/csv.hpp"
#include "campus/units.hpp"
#include "core/envelope.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string text(bytes);
  if (auto enc = campus::detect_encoding(bytes); enc == campus::CsvEncoding::Gb18030) {
    auto utf8 = campus::gb18030_to_utf8(bytes);
    if (utf8.ok()) text = utf8.value();
  }
  auto table = campus::parse_csv(text, "fuzz.csv", {"id"});
  for (const auto& row : table.rows) {
    (void)row.get("id");
    (void)row.where("name");
  }
  if (size < 64) {
    (void)campus::parse_duration(bytes);
    (void)campus::parse_size(bytes);
    (void)campus::parse_rfc3339(text);
    (void)campus::parse_utc_offset(text);
  }
  return 0;
}
