// Recorder API names and civil time conversion.
#include "recorder_api.hpp"

#include <cctype>
#include <string>

namespace campus::recording {

std::optional<RecorderApi> parse_recorder_api(std::string_view name) {
  std::string n;
  for (char c : name) n.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (n.empty() || n == "json") return RecorderApi::Json;
  if (n == "hikvision") return RecorderApi::Hikvision;
  if (n == "dahua") return RecorderApi::Dahua;
  return std::nullopt;
}

const char* to_string(RecorderApi api) {
  switch (api) {
    case RecorderApi::Json: return "json";
    case RecorderApi::Hikvision: return "hikvision";
    case RecorderApi::Dahua: return "dahua";
  }
  return "json";
}

std::optional<int> parse_utc_offset(std::string_view t) {
  if (t == "Z" || t == "+00:00" || t == "-00:00") return 0;
  if (t.size() != 6 || (t[0] != '+' && t[0] != '-') || t[3] != ':') return std::nullopt;
  for (std::size_t i : {1u, 2u, 4u, 5u})
    if (!std::isdigit(static_cast<unsigned char>(t[i]))) return std::nullopt;
  int h = (t[1] - '0') * 10 + (t[2] - '0'), m = (t[4] - '0') * 10 + (t[5] - '0');
  if (h > 14 || m > 59) return std::nullopt;
  return (t[0] == '-' ? -1 : 1) * (h * 60 + m);
}

std::optional<double> utc_seconds(int y, int mo, int d, int h, int mi, double s, int utc_offset_minutes) {
  if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      !(s >= 0 && s < 61) || utc_offset_minutes < -14 * 60 || utc_offset_minutes > 14 * 60)
    return std::nullopt;
  static const int days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > days_in[mo - 1] + (mo == 2 && leap ? 1 : 0)) return std::nullopt;
  // Days from 1970-01-01 (H. Hinnant's days_from_civil).
  y -= mo <= 2;
  const long era = y / 400;
  const long yoe = y - era * 400;
  const long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const long days = era * 146097 + doe - 719468;
  return static_cast<double>(days) * 86400.0 + h * 3600.0 + mi * 60.0 + s - utc_offset_minutes * 60.0;
}

}  // namespace campus::recording
