// Date parsing and formatting for attendance records and the school calendar.
#include "day.hpp"

#include <charconv>
#include <cstdio>

namespace campus::attendance {
namespace {

bool parse_uint(std::string_view s, int& out) {
  if (s.empty() || s.size() > 4) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::optional<Day> parse_day(std::string_view text) {
  int y = 0, m = 0, d = 0;
  constexpr std::string_view kYear = "年", kMonth = "月", kDay = "日";
  if (auto n = text.find(kYear); n != std::string_view::npos) {
    // 2026年11月27日, as a spreadsheet's Chinese long date is exported as text.
    auto mo = text.find(kMonth, n);
    if (n != 4 || mo == std::string_view::npos || text.size() < kDay.size() ||
        text.substr(text.size() - kDay.size()) != kDay || !parse_uint(text.substr(0, n), y) ||
        !parse_uint(text.substr(n + kYear.size(), mo - n - kYear.size()), m) ||
        !parse_uint(text.substr(mo + kMonth.size(), text.size() - kDay.size() - mo - kMonth.size()), d))
      return std::nullopt;
  } else {
    // A time after the date ("2026-11-27 00:00:00", "2026-11-27T08:00") is the same day.
    if (auto t = text.find_first_of(" T"); t != std::string_view::npos && t >= 8) text = text.substr(0, t);
    char sep = text.find('-') != std::string_view::npos ? '-' : text.find('/') != std::string_view::npos ? '/' : '.';
    auto a = text.find(sep);
    if (a == std::string_view::npos) return std::nullopt;
    auto b = text.find(sep, a + 1);
    if (b == std::string_view::npos) return std::nullopt;
    if (a != 4 || !parse_uint(text.substr(0, a), y) || !parse_uint(text.substr(a + 1, b - a - 1), m) ||
        !parse_uint(text.substr(b + 1), d))
      return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(m)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok() || y < 1970) return std::nullopt;
  return static_cast<Day>(std::chrono::sys_days(ymd).time_since_epoch().count());
}

std::string format_day(Day d) {
  std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(d))};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

int weekday(Day d) {
  // 1970-01-01 was a Thursday (3 with Monday = 0).
  int w = (d + 3) % 7;
  return w < 0 ? w + 7 : w;
}

Day local_day(std::chrono::system_clock::time_point t, std::string_view utc_offset) {
  int sign = 1, hh = 0, mm = 0;
  if (utc_offset.size() >= 6 && (utc_offset[0] == '+' || utc_offset[0] == '-')) {
    sign = utc_offset[0] == '-' ? -1 : 1;
    parse_uint(utc_offset.substr(1, 2), hh);
    parse_uint(utc_offset.substr(4, 2), mm);
  }
  auto local = t + std::chrono::minutes(sign * (hh * 60 + mm));
  return static_cast<Day>(std::chrono::floor<std::chrono::days>(local).time_since_epoch().count());
}

std::string rfc3339(std::chrono::system_clock::time_point t, std::string_view utc_offset) {
  Day d = local_day(t, utc_offset);
  int sign = 1, hh = 0, mm = 0;
  if (utc_offset.size() >= 6 && (utc_offset[0] == '+' || utc_offset[0] == '-')) {
    sign = utc_offset[0] == '-' ? -1 : 1;
    parse_uint(utc_offset.substr(1, 2), hh);
    parse_uint(utc_offset.substr(4, 2), mm);
  }
  auto local = std::chrono::floor<std::chrono::seconds>(t) + std::chrono::minutes(sign * (hh * 60 + mm));
  auto secs = (local - std::chrono::sys_days(std::chrono::days(d))).count();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%sT%02d:%02d:%02d%s", format_day(d).c_str(), static_cast<int>(secs / 3600),
                static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60),
                utc_offset.size() >= 6 ? std::string(utc_offset.substr(0, 6)).c_str() : "+00:00");
  return buf;
}

}  // namespace campus::attendance
