// Parsing and formatting of durations and sizes used throughout the config.
#include "campus/units.hpp"

#include <cctype>
#include <limits>

namespace campus {
namespace {

// Reads a run of digits (optionally with one decimal point) at s[i]; advances i.
bool read_number(std::string_view s, std::size_t& i, long double& out) {
  std::size_t start = i;
  bool dot = false;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] == '.' && !dot))) {
    if (s[i] == '.') dot = true;
    ++i;
  }
  if (i == start || (i == start + 1 && dot)) return false;
  out = std::stold(std::string(s.substr(start, i - start)));
  return true;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

Result<Millis> parse_duration(std::string_view text) {
  const std::string expected = "expected a duration like \"90s\", \"15m\", \"1h30m\" or \"500ms\", got " + quoted(text);
  if (text.empty()) return Error{"", expected, ""};
  long double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    long double n = 0;
    if (!read_number(text, i, n)) return Error{"", expected, ""};
    std::size_t u = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(u, i - u);
    long double scale;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    else if (unit == "d") scale = 86'400'000;
    else if (unit.empty()) return Error{"", expected + " (the unit is missing: ms, s, m, h or d)", ""};
    else return Error{"", expected + " (unknown unit " + quoted(unit) + ": use ms, s, m, h or d)", ""};
    total_ms += n * scale;
    if (total_ms > static_cast<long double>(std::numeric_limits<std::int64_t>::max() / 4))
      return Error{"", expected + " (too large)", ""};
  }
  return Millis(static_cast<std::int64_t>(total_ms + 0.5L));
}

std::string utf8_prefix(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

std::string format_duration(Millis d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  struct Unit { std::int64_t ms; const char* name; };
  static constexpr Unit units[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& u : units) {
    if (ms >= u.ms) {
      out += std::to_string(ms / u.ms) + u.name;
      ms %= u.ms;
    }
  }
  return out;
}

Result<std::uint64_t> parse_size(std::string_view text) {
  const std::string expected = "expected a size like \"256MiB\", \"10MB\" or a byte count, got " + quoted(text);
  std::size_t i = 0;
  long double n = 0;
  if (!read_number(text, i, n)) return Error{"", expected, ""};
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  long double scale;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "KiB") scale = 1024.0L;
  else if (unit == "MiB") scale = 1024.0L * 1024;
  else if (unit == "GiB") scale = 1024.0L * 1024 * 1024;
  else return Error{"", expected + " (unknown unit " + quoted(unit) + ": use B, KB, MB, GB, KiB, MiB or GiB)", ""};
  long double bytes = n * scale;
  if (bytes > static_cast<long double>(std::numeric_limits<std::uint64_t>::max() / 2))
    return Error{"", expected + " (too large)", ""};
  return static_cast<std::uint64_t>(bytes + 0.5L);
}

std::string format_size(std::uint64_t bytes) {
  static constexpr struct { std::uint64_t n; const char* name; } units[] = {
      {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& u : units)
    if (bytes >= u.n && bytes % u.n == 0) return std::to_string(bytes / u.n) + u.name;
  return std::to_string(bytes) + "B";
}

}  // namespace campus
