// The school calendar: terms, holidays and make-up school days. Weekends are off unless a
// make-up day says otherwise. Every rule counts school days through this one class.
//
// calendar.csv (header names, any column order):
//   kind,start,end,name
//   term,2026-09-01,2027-01-22,Autumn term
//   holiday,2026-10-01,2026-10-07,National Day
//   makeup,2026-10-10,,Make-up for National Day   (a Saturday that is a school day)
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/error.hpp"
#include "day.hpp"

namespace campus::attendance {

struct Term {
  Day start = 0;
  Day end = 0;  // inclusive
  std::string name;
};

class SchoolCalendar {
 public:
  // Parses calendar CSV text. Errors name line and reason; any error makes the whole
  // calendar invalid (a wrong calendar would count the wrong days).
  static Result<SchoolCalendar> parse(std::string_view text, const std::string& name);
  static Result<SchoolCalendar> load(const std::filesystem::path& file);

  bool in_term(Day d) const { return term_of(d) != nullptr; }
  bool is_school_day(Day d) const;
  const Term* term_of(Day d) const;
  // The last school day <= d inside a term (the day an evaluation on day d looks at), if any.
  std::optional<Day> last_school_day_on_or_before(Day d) const;
  // The n-th school day after d (n >= 1); d itself when n == 0. Past every term: counts
  // weekdays, so a deadline never becomes "never".
  Day school_days_after(Day d, int n) const;
  const std::vector<Term>& terms() const { return terms_; }

 private:
  std::vector<Term> terms_;      // sorted, non-overlapping
  std::vector<Day> holidays_;    // sorted
  std::vector<Day> makeups_;     // sorted
};

}  // namespace campus::attendance
