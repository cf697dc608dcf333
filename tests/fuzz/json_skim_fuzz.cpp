// The collector's JSON scanner (county/src/json_skim.cpp) against nlohmann's parser: the same
// documents are accepted, and every member it finds holds the value nlohmann parses there.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "json_skim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto s = campus::county::skim_json(text);
  auto j = nlohmann::json::parse(text, nullptr, false);
  // nlohmann takes a NUL byte outside a string for the end of the input and accepts what came
  // before it; the scanner refuses it. Otherwise both accept the same documents.
  const bool has_nul = text.find('\0') != std::string_view::npos;
  if (s.ok && j.is_discarded()) __builtin_trap();
  if (!has_nul && !s.ok && !j.is_discarded()) __builtin_trap();
  if (!s.ok) return 0;
  if (s.object != j.is_object()) __builtin_trap();
  for (const auto& m : s.members) {
    if (!j.contains(m.key)) __builtin_trap();
    if (text.substr(m.begin).substr(0, 1) != "\"") __builtin_trap();
    auto v = nlohmann::json::parse(m.value, nullptr, false);
    // A repeated key: nlohmann keeps the last value, and so does find().
    if (s.find(m.key) == &m && v != j[m.key]) __builtin_trap();
  }
  if (!s.nested.empty()) {
    const auto& body = j["body"];
    for (const auto& m : s.nested)
      if (s.find_nested(m.key) == &m && nlohmann::json::parse(m.value, nullptr, false) != body[m.key]) __builtin_trap();
  }
  return 0;
}
