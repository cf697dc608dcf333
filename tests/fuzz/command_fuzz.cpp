// A county request payload (agent/src/core/commands.hpp parse_request), as the agent receives
// it from the broker. The reply body must always serialise: a request that is not UTF-8, not
// JSON, or of any shape gets an error reply, never an exception.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  campus::CommandLimits limits;
  limits.max_payload = 4096;  // the cap itself is exercised too (inputs go up to -max_len)
  limits.max_resend = 100;
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  auto parsed = campus::parse_request(payload, limits);
  if (parsed.error) {
    const campus::Json& e = *parsed.error;
    if (e.value("ok", true) || !e["error"]["code"].is_string() || !e["error"]["message"].is_string()) __builtin_trap();
  } else {
    const auto& r = parsed.request;
    if (r.cmd.empty()) __builtin_trap();
    if (r.cmd == "resend" && (r.from_seq < 1 || r.from_seq > r.to_seq || r.to_seq - r.from_seq >= limits.max_resend))
      __builtin_trap();
  }
  // Throws (and so crashes the fuzzer) if anything in the reply is not valid UTF-8.
  campus::Json reply = parsed.error.value_or(campus::Json::object());
  reply["cmd"] = parsed.request.cmd;
  (void)reply.dump();
  return 0;
}
