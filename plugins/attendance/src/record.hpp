// One student's attendance on one day, as imported from CSV or the school's HTTP API.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "campus/error.hpp"
#include "day.hpp"

namespace campus::attendance {

enum class DayStatus : std::uint8_t { Present, Late, Absent, Leave };

// How a day counts for the rule. Late counts as present; a leave or absence with approved
// leave is excused; an absence, or a leave that was not approved, is unexcused.
enum class DayKind : std::uint8_t { Attended, Unexcused, Excused };

inline DayKind day_kind(DayStatus s, bool leave_approved) {
  if (s == DayStatus::Present || s == DayStatus::Late) return DayKind::Attended;
  return leave_approved ? DayKind::Excused : DayKind::Unexcused;
}

const char* status_name(DayStatus s);
// present|late|absent|leave, also 出勤/到校/迟到/缺勤/旷课/请假; case-insensitive.
bool parse_status(std::string_view text, DayStatus& out);
// yes/no, true/false, 1/0, y/n, 是/否, empty = no.
bool parse_yes_no(std::string_view text, bool& out);

struct AttendanceRecord {
  std::string student;     // the school's student number: the case subject
  std::string class_name;
  std::string grade;
  Day date = 0;
  DayStatus status = DayStatus::Present;
  bool leave_approved = false;
  std::string name;        // empty unless publish_names
};

// Field (CSV column or JSON member) names of the record shape; configurable per school.
struct FieldNames {
  std::string student_id = "student_id";
  std::string class_name = "class";
  std::string grade = "grade";
  std::string date = "date";
  std::string status = "status";
  std::string leave_approved = "leave_approved";
  std::string name = "name";
};

// Builds a record from a field getter (missing field = empty string). The Error's `what`
// names the field and never echoes a student number or name (they are personal data).
// National ID numbers are never read: no field maps to them. A student number that has the
// shape of a national ID number is refused, so one cannot enter the store by mistake.
Result<AttendanceRecord> make_record(const std::function<std::string(const std::string&)>& field,
                                     const FieldNames& names, bool keep_name);

// The same from the seven values, already picked out of a row (the CSV fast path).
struct RecordFields {
  std::string_view student_id, class_name, grade, date, status, leave_approved, name;
};
Result<AttendanceRecord> make_record(const RecordFields& f, const FieldNames& names, bool keep_name);

// True for 15 or 18 character national ID numbers, bare or behind a one-letter prefix
// (the national student number G + ID).
bool looks_like_national_id(std::string_view s);

}  // namespace campus::attendance
