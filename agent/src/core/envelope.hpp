// The one place the docs/protocol.md envelope and topics are built.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "campus/plugin.hpp"

namespace campus {

inline constexpr const char* kAgentVersion = "0.1.0";

struct Identity {
  std::string county;
  std::string school;
  std::string timezone_offset = "+08:00";  // the school's offset, for `ts`
};

// campus/v1/{county}/{school}/{leaf}: leaf is "state", "health", "report/fiber", ...
std::string topic(const Identity& who, const std::string& leaf);
// The subtree every topic of this school starts with ("campus/v1/zhenkang/nansan/").
std::string subtree(const Identity& who);

// RFC 3339 with the school's offset: "2026-11-28T21:00:00+08:00".
std::string rfc3339(SystemTime t, const std::string& offset);
// Parses what rfc3339 writes (any offset, or Z). nullopt when malformed.
std::optional<SystemTime> parse_rfc3339(const std::string& text);
// "+08:00" -> seconds east of UTC; nullopt when malformed.
std::optional<int> parse_utc_offset(const std::string& text);

// kind: state | report | event | health | reply. seq/audit only for report and event.
Json envelope(const Identity& who, const std::string& kind, SystemTime ts, Json body,
              std::optional<std::int64_t> seq = std::nullopt, const std::string& audit = {});

}  // namespace campus
