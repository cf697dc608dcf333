// School calendar from CSV: which days are school days.
#include "calendar.hpp"

#include <algorithm>

#include "campus/csv.hpp"
#include "text_file.hpp"

namespace campus::attendance {

Result<SchoolCalendar> SchoolCalendar::parse(std::string_view text, const std::string& name) {
  CsvTable table = parse_csv(text, name, {"kind", "start"});
  Errors errors = table.errors;
  SchoolCalendar cal;
  for (const auto& row : table.rows) {
    std::string kind = row.get("kind");
    auto start = parse_day(row.get("start"));
    std::string end_text = row.get("end");
    auto end = end_text.empty() ? start : parse_day(end_text);
    if (!start) {
      errors.push_back({row.where("start"), "expected a date like 2026-09-01", ""});
      continue;
    }
    if (!end || *end < *start) {
      errors.push_back({row.where("end"), "expected a date on or after start, or empty for one day", ""});
      continue;
    }
    if (kind == "term") {
      cal.terms_.push_back({*start, *end, row.get("name")});
    } else if (kind == "holiday" || kind == "makeup") {
      auto& v = kind == "holiday" ? cal.holidays_ : cal.makeups_;
      for (Day d = *start; d <= *end; ++d) v.push_back(d);
    } else {
      errors.push_back({row.where("kind"), "expected term, holiday or makeup", ""});
    }
  }
  if (errors.empty() && cal.terms_.empty())
    errors.push_back({name, "the calendar has no term row", "add a line: term,2026-09-01,2027-01-22,Autumn term"});
  std::sort(cal.terms_.begin(), cal.terms_.end(), [](const Term& a, const Term& b) { return a.start < b.start; });
  for (std::size_t i = 1; i < cal.terms_.size(); ++i)
    if (cal.terms_[i].start <= cal.terms_[i - 1].end)
      errors.push_back({name, "terms \"" + cal.terms_[i - 1].name + "\" and \"" + cal.terms_[i].name + "\" overlap", ""});
  if (!errors.empty()) {
    Error e = errors.front();
    if (errors.size() > 1) e.what += " (and " + std::to_string(errors.size() - 1) + " more problems)";
    return e;
  }
  std::sort(cal.holidays_.begin(), cal.holidays_.end());
  std::sort(cal.makeups_.begin(), cal.makeups_.end());
  return cal;
}

Result<SchoolCalendar> SchoolCalendar::load(const std::filesystem::path& file) {
  auto text = read_text_file(file);
  if (!text) return text.error();
  return parse(*text, file.string());
}

const Term* SchoolCalendar::term_of(Day d) const {
  auto it = std::upper_bound(terms_.begin(), terms_.end(), d, [](Day x, const Term& t) { return x < t.start; });
  if (it == terms_.begin()) return nullptr;
  --it;
  return d <= it->end ? &*it : nullptr;
}

bool SchoolCalendar::is_school_day(Day d) const {
  if (!in_term(d)) return false;
  if (std::binary_search(makeups_.begin(), makeups_.end(), d)) return true;
  if (std::binary_search(holidays_.begin(), holidays_.end(), d)) return false;
  return weekday(d) < 5;
}

std::optional<Day> SchoolCalendar::last_school_day_on_or_before(Day d) const {
  for (auto it = terms_.rbegin(); it != terms_.rend(); ++it) {
    if (it->start > d) continue;
    for (Day x = std::min(d, it->end); x >= it->start; --x)
      if (is_school_day(x)) return x;
  }
  return std::nullopt;
}

Day SchoolCalendar::school_days_after(Day d, int n) const {
  Day x = d;
  for (int k = 0; k < n;) {
    ++x;
    bool beyond = !terms_.empty() && x > terms_.back().end;
    if (beyond ? weekday(x) < 5 : is_school_day(x)) ++k;
  }
  return x;
}

}  // namespace campus::attendance
