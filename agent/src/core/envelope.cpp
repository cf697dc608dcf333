// docs/protocol.md's envelope, topic tree and timestamps: the one place they are built.
#include "core/envelope.hpp"

#include <cstdio>

namespace campus {

std::string subtree(const Identity& who) { return "campus/v1/" + who.county + "/" + who.school + "/"; }

std::string topic(const Identity& who, const std::string& leaf) { return subtree(who) + leaf; }

namespace {

bool digits(const std::string& s, std::size_t from, std::size_t count) {
  if (from + count > s.size()) return false;
  for (std::size_t i = from; i < from + count; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

int number(const std::string& s, std::size_t from, std::size_t count) {
  int v = 0;
  for (std::size_t i = from; i < from + count; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

std::string format_offset(int seconds) {
  char buf[8];
  int a = seconds < 0 ? -seconds : seconds;
  std::snprintf(buf, sizeof buf, "%c%02d:%02d", seconds < 0 ? '-' : '+', a / 3600 % 100, a / 60 % 60);
  return buf;
}

}  // namespace

std::optional<int> parse_utc_offset(const std::string& text) {
  if (text == "Z" || text == "z") return 0;
  if (text.size() != 6 || (text[0] != '+' && text[0] != '-') || text[3] != ':' || !digits(text, 1, 2) ||
      !digits(text, 4, 2))
    return std::nullopt;
  int h = number(text, 1, 2), m = number(text, 4, 2);
  if (h > 23 || m > 59) return std::nullopt;
  int s = h * 3600 + m * 60;
  return text[0] == '-' ? -s : s;
}

// Whole seconds (truncated toward the past), the offset written as ±HH:MM. An offset that does
// not parse falls back to UTC written "+00:00" rather than a wrong local time.
std::string rfc3339(SystemTime t, const std::string& offset) {
  using namespace std::chrono;
  int off = parse_utc_offset(offset).value_or(0);
  auto local = floor<seconds>(t) + seconds(off);
  auto day = floor<days>(local);
  year_month_day ymd{day};
  hh_mm_ss hms{local - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return std::string(buf) + format_offset(off);
}

// YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM); 't'/'z' accepted as RFC 3339 allows.
std::optional<SystemTime> parse_rfc3339(const std::string& s) {
  using namespace std::chrono;
  if (s.size() < 20 || !digits(s, 0, 4) || s[4] != '-' || !digits(s, 5, 2) || s[7] != '-' || !digits(s, 8, 2) ||
      (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2) || s[13] != ':' || !digits(s, 14, 2) || s[16] != ':' ||
      !digits(s, 17, 2))
    return std::nullopt;
  year_month_day ymd{year(number(s, 0, 4)), month(static_cast<unsigned>(number(s, 5, 2))),
                     day(static_cast<unsigned>(number(s, 8, 2)))};
  int hh = number(s, 11, 2), mm = number(s, 14, 2), ss = number(s, 17, 2);
  if (!ymd.ok() || hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  // SystemTime counts nanoseconds in 64 bits: 1678..2262 only. Found by fuzz_command: year
  // 0001 in a `cases` request's "since" overflowed (undefined behaviour) in the conversion.
  if (ymd.year() < year(1900) || ymd.year() > year(2200)) return std::nullopt;
  std::size_t i = 19;
  nanoseconds frac{0};
  if (s[i] == '.') {
    std::size_t start = ++i;
    long long scale = 100'000'000, v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == start) return std::nullopt;
    frac = nanoseconds(v);
  }
  auto off = parse_utc_offset(s.substr(i));
  if (!off) return std::nullopt;
  auto t = sys_days(ymd) + hours(hh) + minutes(mm) + seconds(ss) + frac - seconds(*off);
  return time_point_cast<SystemTime::duration>(t);
}

// Keys are the docs/protocol.md envelope. `seq`, `id` and `audit` appear only for the stored kinds
// (report, event): a state/health/reply message has no seq, so it has no id either.
Json envelope(const Identity& who, const std::string& kind, SystemTime ts, Json body,
              std::optional<std::int64_t> seq, const std::string& audit) {
  Json e = Json::object();
  e["v"] = 1;
  e["kind"] = kind;
  e["county"] = who.county;
  e["school"] = who.school;
  if (seq) {
    e["seq"] = *seq;
    e["id"] = who.school + ":" + std::to_string(*seq);
  }
  e["ts"] = rfc3339(ts, who.timezone_offset);
  e["agent"] = std::string("campus-agent/") + kAgentVersion;
  if (!audit.empty()) e["audit"] = audit;
  e["body"] = std::move(body);
  return e;
}

}  // namespace campus
