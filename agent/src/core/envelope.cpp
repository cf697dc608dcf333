// PROTOCOL.md envelope, topics and timestamps.
#include "core/envelope.hpp"

#include <cstdio>
#include <ctime>

namespace campus {

std::string topic(const Identity& who, const std::string& leaf) { return subtree(who) + leaf; }

std::string subtree(const Identity& who) { return "campus/v1/" + who.county + "/" + who.school + "/"; }

std::optional<int> parse_utc_offset(const std::string& text) {
  if (text == "Z" || text == "z") return 0;
  int h = 0, m = 0;
  char sign = 0;
  if (text.size() != 6 || (text[0] != '+' && text[0] != '-') || text[3] != ':') return std::nullopt;
  if (std::sscanf(text.c_str(), "%c%2d:%2d", &sign, &h, &m) != 3) return std::nullopt;
  for (int i : {1, 2, 4, 5})
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
  if (h > 14 || m > 59) return std::nullopt;
  int s = h * 3600 + m * 60;
  return sign == '-' ? -s : s;
}

std::string rfc3339(SystemTime t, const std::string& offset) {
  int off = parse_utc_offset(offset).value_or(0);
  std::time_t secs = std::chrono::system_clock::to_time_t(t) + off;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf) + (off == 0 && offset != "+00:00" ? "Z" : offset);
}

std::optional<SystemTime> parse_rfc3339(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return std::nullopt;
  std::string rest = text.substr(static_cast<std::size_t>(consumed));
  if (!rest.empty() && rest[0] == '.') {  // fractional seconds: ignored
    std::size_t i = 1;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') ++i;
    rest = rest.substr(i);
  }
  auto off = parse_utc_offset(rest);
  if (!off) return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t secs = timegm(&tm);
  return std::chrono::system_clock::from_time_t(secs - *off);
}

Json envelope(const Identity& who, const std::string& kind, SystemTime ts, Json body,
              std::optional<std::int64_t> seq, const std::string& audit) {
  Json j;
  j["v"] = 1;
  j["kind"] = kind;
  j["county"] = who.county;
  j["school"] = who.school;
  if (seq) {
    j["seq"] = *seq;
    j["id"] = who.school + ":" + std::to_string(*seq);
  }
  j["ts"] = rfc3339(ts, who.timezone_offset);
  j["agent"] = std::string("campus-agent/") + kAgentVersion;
  if (!audit.empty()) j["audit"] = audit;
  j["body"] = std::move(body);
  return j;
}

}  // namespace campus
