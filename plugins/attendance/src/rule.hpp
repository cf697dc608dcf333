// The absence rule: runs of unexcused absences over school days, and data gaps.
//
// One linear pass per student over the term's school days (records are kept sorted), so a
// term of 5,000 students x 180 days evaluates in milliseconds.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "book.hpp"
#include "calendar.hpp"

namespace campus::attendance {

struct RuleSettings {
  int threshold_days = 3;        // consecutive unexcused school days that open a case (inclusive)
  bool leave_breaks_run = false; // an approved-leave day ends a run (default: it is skipped)
  int cumulative_days = 0;       // 0 = off; else unexcused days within cumulative_window
  int cumulative_window = 20;    // school days
};

// A run of unexcused absences that reached a rule's threshold.
struct AbsenceRun {
  Day first = 0;                  // first unexcused day
  Day last = 0;                   // last unexcused day so far
  int days = 0;                   // unexcused school days in the run
  Day qualified_on = 0;           // the day the run reached the threshold (deadlines count from it)
  int gap_days = 0;               // school days without a record inside the run
  int excused_days = 0;           // approved-leave days inside the run (skipped)
  std::optional<Day> returned_on; // first present/late day after it, if any
  bool cumulative = false;        // opened by the cumulative rule
};

struct StudentStanding {
  const StudentDays* student = nullptr;
  std::vector<AbsenceRun> runs;   // qualifying runs in the term, oldest first
  int current_run = 0;            // unexcused days in the run still going at the horizon
};

struct ClassDayGap {
  std::uint16_t class_index = 0;
  Day day = 0;
  int missing = 0;  // students of the class without a record that day
};

struct Evaluation {
  const Term* term = nullptr;     // nullptr: no term on or before today (nothing evaluated)
  Day as_of = 0;                  // last school day <= today
  Day horizon = 0;                // last school day evaluated (as_of, or the day before when
                                  // nothing at all was imported for as_of yet)
  std::vector<StudentStanding> standings;  // only students with a qualifying run
  std::vector<ClassDayGap> gaps;           // sorted by day, then class
  int students = 0;               // students with records in the term
  int at_risk = 0;                // current run == threshold - 1
  int records_outside_term = 0;
  int records_on_non_school_days = 0;
};

Evaluation evaluate(const AttendanceBook& book, const SchoolCalendar& calendar, const RuleSettings& rule, Day today);

}  // namespace campus::attendance
