// Calendar dates as whole days since 1970-01-01: the unit every attendance rule counts in.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace campus::attendance {

using Day = std::int32_t;  // days since 1970-01-01 (civil, in the school's time zone)

inline Day day_from_ymd(int y, unsigned m, unsigned d) {
  return static_cast<Day>(
      std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(m) / std::chrono::day(d))
          .time_since_epoch()
          .count());
}

// "2026-11-27" (also "2026/11/27", "2026.11.27", "2026-9-1", "2026年11月27日", and with a time
// after it, "2026-11-27 00:00:00", as spreadsheets write them). nullopt when it is not a real date.
std::optional<Day> parse_day(std::string_view text);
std::string format_day(Day d);
// 0 = Monday ... 6 = Sunday.
int weekday(Day d);
// The school's local date of a wall-clock time, given its UTC offset like "+08:00".
Day local_day(std::chrono::system_clock::time_point t, std::string_view utc_offset);

}  // namespace campus::attendance

namespace campus::attendance {
// "2026-11-28T21:00:00+08:00": a wall-clock time in the school's offset.
std::string rfc3339(std::chrono::system_clock::time_point t, std::string_view utc_offset);
}  // namespace campus::attendance
