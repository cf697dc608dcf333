// One page of the school attendance API (plugins/attendance/src/json_page.hpp), as the HTTP
// importer parses it. The first byte picks the format knobs, the rest is the page body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "json_page.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  campus::attendance::JsonPageFormat format;
  format.numbered = data[0] & 1;
  format.rules.keep_names = data[0] & 2;
  if (data[0] & 4) format.records_field = "data";
  int page = (data[0] & 8) ? 2147483647 : 1 + (data[0] >> 4);
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto p = campus::attendance::parse_json_page(body, format, "page", "https://127.0.0.1:8443/api?page=1", page);
  // The page's outcome must be one thing: failed, or records + at most one way on.
  if (p.failure && (!p.records.empty() || !p.row_errors.empty() || p.next_url || p.next_page)) __builtin_trap();
  if (p.next_url && p.next_page) __builtin_trap();
  if (p.next_page && *p.next_page < 1) __builtin_trap();
  return 0;
}
