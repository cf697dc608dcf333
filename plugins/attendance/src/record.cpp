// Record validation shared by the CSV and HTTP importers.
#include "record.hpp"

#include <algorithm>
#include <cctype>

namespace campus::attendance {
namespace {

// ASCII case-insensitive equality; `lower_word` is already lower case. Bytes of multi-byte
// UTF-8 characters are never letters, so they compare exactly.
bool iequals(std::string_view text, std::string_view lower_word) {
  if (text.size() != lower_word.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower_word[i]) return false;
  }
  return true;
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

const char* status_name(DayStatus s) {
  switch (s) {
    case DayStatus::Present: return "present";
    case DayStatus::Late: return "late";
    case DayStatus::Absent: return "absent";
    case DayStatus::Leave: return "leave";
  }
  return "present";
}

// Both run once per imported row (3.6 million for a term of 60,000 students): compared in
// place, without a lower-cased copy of the cell.
bool parse_status(std::string_view text, DayStatus& out) {
  auto is = [&](std::string_view w) { return iequals(text, w); };
  if (is("present") || is("出勤") || is("到校") || is("p")) out = DayStatus::Present;
  else if (is("late") || is("迟到") || is("l")) out = DayStatus::Late;
  else if (is("absent") || is("缺勤") || is("旷课") || is("a")) out = DayStatus::Absent;
  else if (is("leave") || is("请假")) out = DayStatus::Leave;
  else return false;
  return true;
}

bool parse_yes_no(std::string_view text, bool& out) {
  auto is = [&](std::string_view w) { return iequals(text, w); };
  if (text.empty() || is("no") || is("n") || is("false") || is("0") || is("否")) out = false;
  else if (is("yes") || is("y") || is("true") || is("1") || is("是")) out = true;
  else return false;
  return true;
}

bool looks_like_national_id(std::string_view s) {
  if (s.size() == 19 && std::isalpha(static_cast<unsigned char>(s[0]))) s.remove_prefix(1);
  if (s.size() == 15) return all_digits(s);
  if (s.size() == 18) return all_digits(s.substr(0, 17)) && (std::isdigit(static_cast<unsigned char>(s[17])) || s[17] == 'X' || s[17] == 'x');
  return false;
}

Result<AttendanceRecord> make_record(const std::function<std::string(const std::string&)>& field,
                                     const FieldNames& names, bool keep_name) {
  std::string v[7] = {field(names.student_id), field(names.class_name), field(names.grade), field(names.date),
                      field(names.status), field(names.leave_approved), keep_name ? field(names.name) : std::string()};
  return make_record(RecordFields{v[0], v[1], v[2], v[3], v[4], v[5], v[6]}, names, keep_name);
}

Result<AttendanceRecord> make_record(const RecordFields& f, const FieldNames& names, bool keep_name) {
  AttendanceRecord r;
  if (f.student_id.empty()) return Error{names.student_id, "the student number is empty", ""};
  if (f.student_id.size() > 64 || f.student_id.find('|') != std::string_view::npos)
    return Error{names.student_id, "the student number is longer than 64 characters or contains '|'", ""};
  if (looks_like_national_id(f.student_id))
    return Error{names.student_id, "the student number has the shape of a national ID number; it was not imported",
                 "export the school's own student number, never the ID card number"};
  if (f.class_name.empty()) return Error{names.class_name, "the class is empty", ""};
  auto d = parse_day(f.date);
  if (!d) return Error{names.date, "expected a date like 2026-11-27, got \"" + std::string(f.date.substr(0, 20)) + "\"", ""};
  if (!parse_status(f.status, r.status))
    return Error{names.status, "expected present, late, absent or leave, got \"" + std::string(f.status.substr(0, 20)) + "\"", ""};
  if (!parse_yes_no(f.leave_approved, r.leave_approved))
    return Error{names.leave_approved, "expected yes or no, got \"" + std::string(f.leave_approved.substr(0, 10)) + "\"", ""};
  r.date = *d;
  r.student.assign(f.student_id);
  r.class_name.assign(f.class_name);
  r.grade.assign(f.grade);
  if (keep_name) r.name.assign(f.name);
  return r;
}

}  // namespace campus::attendance
