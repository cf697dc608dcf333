// One student's attendance on one day, as imported from CSV or the school's HTTP API.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "campus/error.hpp"
#include "campus/pseudonym.hpp"
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
// yes/no, true/false, 1/0, y/n, 是/否, empty = no.
bool parse_yes_no(std::string_view text, bool& out);

// What one word of a school's status column means for the rule: attended, late (counts as
// attended), absent, leave (excused only when the record's leave is approved), or
// excused_leave (excused by itself: leave the school itself grants, such as 公假).
enum class StatusMeaning : std::uint8_t { Attended, Late, Absent, Leave, ExcusedLeave };

const char* meaning_name(StatusMeaning m);
// attended | late | absent | leave | excused_leave
bool parse_meaning(std::string_view text, StatusMeaning& out);

// The school's status words (README "Status words"): the shipped defaults (出勤, 到校, 正常,
// 迟到, 早退, 旷课, 缺勤, 未到, 病假, 事假, 公假, 请假 and their English forms), with the
// words the config maps added or replacing them. Words match ignoring ASCII case, and with
// '_' and '-' read as spaces ("Sick_Leave" = "sick leave").
class StatusVocabulary {
 public:
  static const StatusVocabulary& defaults();
  // Adds `word` or changes what it means.
  void set(std::string_view word, StatusMeaning meaning);
  bool lookup(std::string_view word, StatusMeaning& out) const;
  // Every word and its meaning, sorted by word (the README table, tests).
  std::vector<std::pair<std::string, StatusMeaning>> entries() const;
  // The normal form words are compared in; empty when the word is too long to be one.
  static std::string normal_form(std::string_view word);

 private:
  std::unordered_map<std::string, StatusMeaning> words_;
};

// What the importers need besides the column names: which status words mean what, whether
// names are kept, and whether the student key is replaced by a pseudonym (then any value,
// 学籍号 and ID card numbers included, is accepted and never kept as it is).
// Shared, so an HTTP import in flight keeps what it started with across a reload.
struct RecordRules {
  std::shared_ptr<const StatusVocabulary> statuses;     // nullptr: the shipped defaults
  bool keep_names = false;
  std::shared_ptr<const StudentPseudonyms> pseudonyms;  // set: the student key becomes its pseudonym
  // The config key that maps status words, named in the error for an unknown word.
  std::string status_words_key = "audits.attendance.status_words";
};

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
// names the field and never echoes a student number or name (they are personal data), nor a
// cell that looks like an identifier (an export with shifted columns). National ID numbers
// are never read: no field maps to them. Without pseudonyms, a student number that has the
// shape of a national ID number (or of a 学籍号) is refused, so one cannot enter the store by
// mistake; with them, the student key is the value's pseudonym and the value is dropped.
Result<AttendanceRecord> make_record(const std::function<std::string(const std::string&)>& field,
                                     const FieldNames& names, const RecordRules& rules);

// The same from the seven values, already picked out of a row (the CSV and XLSX fast path).
struct RecordFields {
  std::string_view student_id, class_name, grade, date, status, leave_approved, name;
};
Result<AttendanceRecord> make_record(const RecordFields& f, const FieldNames& names, const RecordRules& rules);

// True for 15 or 18 character national ID numbers, bare or behind a one-letter prefix
// (the national student number G + ID).
bool looks_like_national_id(std::string_view s);

}  // namespace campus::attendance
