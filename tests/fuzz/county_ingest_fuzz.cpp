// campus-county's ingest parser (county/src/ingest.cpp): a topic line, then the payload. Every
// input is either accepted or quarantined with a reason; never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ingest.hpp"
#include "json_skim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  std::string_view topic = nl == std::string_view::npos ? in : in.substr(0, nl);
  std::string_view payload = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  campus::county::IngestRules rules;
  rules.county = "zhenkang";
  rules.max_payload = 4096;
  auto p = campus::county::parse_message(rules, topic, payload, size % 2 == 0, std::string("corr"));
  if (auto* q = std::get_if<campus::county::Quarantined>(&p)) {
    if (q->reason.empty()) __builtin_trap();  // a quarantined message always says why
  } else {
    // The stored copy is still one JSON object and has lost its top-level "resent" member (a
    // "resent" inside the body is the school's data and stays).
    const auto& m = std::get<campus::county::Incoming>(p);
    auto stored = campus::county::skim_json(m.payload);
    if (m.sha256.size() != 64 || !stored.ok || !stored.object || stored.find("resent")) __builtin_trap();
  }
  rules.registered = [](const std::string& s) { return s == "school-a"; };
  (void)campus::county::parse_message(rules, topic, payload, false);
  return 0;
}
