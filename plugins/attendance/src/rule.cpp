// Absence runs and data gaps, evaluated in one pass per student.
#include "rule.hpp"

#include <algorithm>
#include <deque>

namespace campus::attendance {

Evaluation evaluate(const AttendanceBook& book, const SchoolCalendar& calendar, const RuleSettings& rule, Day today) {
  Evaluation ev;
  auto as_of = calendar.last_school_day_on_or_before(today);
  // Counting records outside the term or on days off tells the school its calendar or export
  // is wrong; such records are kept but never counted by the rule.
  for (const auto& s : book.students())
    for (const auto& e : s.days) {
      if (!calendar.in_term(e.day)) ++ev.records_outside_term;
      else if (!calendar.is_school_day(e.day)) ++ev.records_on_non_school_days;
    }
  if (!as_of) return ev;
  ev.as_of = *as_of;
  ev.term = calendar.term_of(*as_of);
  const Term& term = *ev.term;

  // The term's school days up to as_of, and each calendar day's school-day ordinal.
  std::vector<Day> school_days;
  std::vector<int> ordinal(static_cast<std::size_t>(*as_of - term.start + 1), -1);
  for (Day d = term.start; d <= *as_of; ++d)
    if (calendar.is_school_day(d)) {
      ordinal[static_cast<std::size_t>(d - term.start)] = static_cast<int>(school_days.size());
      school_days.push_back(d);
    }
  // A day nobody has a record for yet is today's export not having run, not a gap of
  // every class: evaluate up to the day before in that case.
  bool any_today = false;
  for (const auto& s : book.students())
    if (!s.days.empty() && s.days.back().day >= *as_of) {
      auto it = std::lower_bound(s.days.begin(), s.days.end(), *as_of, [](const DayEntry& x, Day d) { return x.day < d; });
      if (it != s.days.end() && it->day == *as_of) { any_today = true; break; }
    }
  int last_k = static_cast<int>(school_days.size()) - 1 - (any_today ? 0 : 1);
  ev.horizon = last_k >= 0 ? school_days[static_cast<std::size_t>(last_k)] : term.start;

  const std::size_t n_classes = std::max<std::size_t>(book.class_count(), 1);
  std::vector<int> gap_count(n_classes * school_days.size(), 0);
  const int threshold = rule.threshold_days;

  for (const auto& s : book.students()) {
    // First record inside the term: a student who joins mid-term has no gaps before.
    auto it = std::lower_bound(s.days.begin(), s.days.end(), term.start, [](const DayEntry& x, Day d) { return x.day < d; });
    if (it == s.days.end() || it->day > ev.horizon) continue;
    ++ev.students;
    int start_k = -1;
    for (Day d = it->day; d <= ev.horizon; ++d)
      if (int k = ordinal[static_cast<std::size_t>(d - term.start)]; k >= 0) { start_k = k; break; }
    if (start_k < 0) continue;

    StudentStanding st;
    st.student = &s;
    AbsenceRun run;
    std::uint16_t cls = it->class_index;
    std::deque<int> window;  // ordinals of unexcused days within the cumulative window
    auto end_run = [&](std::optional<Day> returned) {
      if (run.days >= threshold) {
        run.returned_on = returned;
        st.runs.push_back(run);
      }
      run = AbsenceRun{};
    };
    auto p = it;
    for (int k = start_k; k <= last_k; ++k) {
      Day d = school_days[static_cast<std::size_t>(k)];
      while (p != s.days.end() && p->day < d) ++p;
      if (p == s.days.end() || p->day != d) {
        // Data gap: never assumed present or absent. It neither counts nor breaks a run.
        ++gap_count[cls * school_days.size() + static_cast<std::size_t>(k)];
        if (run.days > 0) ++run.gap_days;
        continue;
      }
      cls = p->class_index;
      switch (day_kind(p->status, p->leave_approved)) {
        case DayKind::Attended:
          end_run(d);
          break;
        case DayKind::Unexcused:
          if (run.days == 0) run.first = d;
          ++run.days;
          run.last = d;
          if (run.days == threshold) run.qualified_on = d;
          if (rule.cumulative_days > 0) window.push_back(k);
          break;
        case DayKind::Excused:
          if (rule.leave_breaks_run) end_run(std::nullopt);
          else if (run.days > 0) ++run.excused_days;
          break;
      }
    }
    st.current_run = run.days;
    if (run.days == threshold - 1) ++ev.at_risk;
    bool consecutive_now = run.days >= threshold;
    end_run(std::nullopt);
    if (rule.cumulative_days > 0 && !consecutive_now) {
      while (!window.empty() && window.front() <= last_k - rule.cumulative_window) window.pop_front();
      if (static_cast<int>(window.size()) >= rule.cumulative_days) {
        AbsenceRun c;
        c.first = school_days[static_cast<std::size_t>(window.front())];
        c.last = school_days[static_cast<std::size_t>(window.back())];
        c.days = static_cast<int>(window.size());
        c.cumulative = true;
        c.qualified_on = c.last;
        st.runs.push_back(c);
      }
    }
    if (!st.runs.empty()) ev.standings.push_back(std::move(st));
  }
  for (std::size_t k = 0; k < school_days.size(); ++k)
    for (std::size_t c = 0; c < n_classes; ++c)
      if (int m = gap_count[c * school_days.size() + k]; m > 0)
        ev.gaps.push_back({static_cast<std::uint16_t>(c), school_days[k], m});
  return ev;
}

}  // namespace campus::attendance
