// Record validation shared by the CSV and HTTP importers.
#include "record.hpp"

#include <algorithm>
#include <cctype>

#include "campus/units.hpp"

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

// A cell as it may appear in an error message: at most `max` bytes, cut at a character
// boundary, and never a value that looks like an identifier (6 or more digits in a row: a
// student or ID number in the wrong column of a shifted export).
std::string shown(std::string_view cell, std::size_t max) {
  std::size_t digits = 0;
  for (char c : cell) {
    digits = (c >= '0' && c <= '9') ? digits + 1 : 0;
    if (digits >= 6) return "(a value with a long number, not shown)";
  }
  return "\"" + utf8_prefix(cell, max) + "\"";
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

const char* meaning_name(StatusMeaning m) {
  switch (m) {
    case StatusMeaning::Attended: return "attended";
    case StatusMeaning::Late: return "late";
    case StatusMeaning::Absent: return "absent";
    case StatusMeaning::Leave: return "leave";
    case StatusMeaning::ExcusedLeave: return "excused_leave";
  }
  return "attended";
}

bool parse_meaning(std::string_view text, StatusMeaning& out) {
  for (auto m : {StatusMeaning::Attended, StatusMeaning::Late, StatusMeaning::Absent, StatusMeaning::Leave,
                 StatusMeaning::ExcusedLeave})
    if (text == meaning_name(m)) {
      out = m;
      return true;
    }
  return false;
}

std::string StatusVocabulary::normal_form(std::string_view word) {
  if (word.size() > 64) return {};
  std::string w(word);
  for (auto& c : w) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    else if (c == '_' || c == '-') c = ' ';
  }
  return w;
}

// The shipped defaults; README "Status words" gives the reason for each.
const StatusVocabulary& StatusVocabulary::defaults() {
  static const StatusVocabulary v = [] {
    StatusVocabulary d;
    using M = StatusMeaning;
    const std::pair<const char*, M> words[] = {
        {"出勤", M::Attended}, {"到校", M::Attended}, {"正常", M::Attended},
        {"present", M::Attended}, {"arrived", M::Attended}, {"normal", M::Attended}, {"p", M::Attended},
        {"迟到", M::Late}, {"late", M::Late}, {"l", M::Late},
        {"早退", M::Late}, {"left early", M::Late},
        {"旷课", M::Absent}, {"缺勤", M::Absent}, {"未到", M::Absent},
        {"truant", M::Absent}, {"absent", M::Absent}, {"not arrived", M::Absent}, {"a", M::Absent},
        {"病假", M::Leave}, {"事假", M::Leave}, {"请假", M::Leave},
        {"sick leave", M::Leave}, {"personal leave", M::Leave}, {"leave", M::Leave},
        {"公假", M::ExcusedLeave}, {"official leave", M::ExcusedLeave},
    };
    for (const auto& [w, m] : words) d.set(w, m);
    return d;
  }();
  return v;
}

void StatusVocabulary::set(std::string_view word, StatusMeaning meaning) { words_[normal_form(word)] = meaning; }

// Runs once per imported row (3.6 million for a term of 60,000 students): a lower-cased copy
// of a short word stays in the string's own buffer, and one hash lookup follows.
bool StatusVocabulary::lookup(std::string_view word, StatusMeaning& out) const {
  if (word.empty()) return false;
  auto w = normal_form(word);
  if (w.empty()) return false;
  auto it = words_.find(w);
  if (it == words_.end()) return false;
  out = it->second;
  return true;
}

std::vector<std::pair<std::string, StatusMeaning>> StatusVocabulary::entries() const {
  std::vector<std::pair<std::string, StatusMeaning>> out(words_.begin(), words_.end());
  std::sort(out.begin(), out.end());
  return out;
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
                                     const FieldNames& names, const RecordRules& rules) {
  std::string v[7] = {field(names.student_id), field(names.class_name), field(names.grade), field(names.date),
                      field(names.status), field(names.leave_approved),
                      rules.keep_names ? field(names.name) : std::string()};
  return make_record(RecordFields{v[0], v[1], v[2], v[3], v[4], v[5], v[6]}, names, rules);
}

Result<AttendanceRecord> make_record(const RecordFields& f, const FieldNames& names, const RecordRules& rules) {
  AttendanceRecord r;
  if (f.student_id.empty()) return Error{names.student_id, "the student number is empty", ""};
  if (f.student_id.size() > 64 || f.student_id.find('|') != std::string_view::npos)
    return Error{names.student_id, "the student number is longer than 64 characters or contains '|'", ""};
  if (!rules.pseudonyms && looks_like_national_id(f.student_id))
    return Error{names.student_id,
                 "the student number has the shape of a national ID number or a national student number (学籍号); "
                 "it was not imported",
                 "export the school's own student number, or set pseudonymize_students = true so such numbers are "
                 "replaced by pseudonyms at import (plugins/attendance/README.md, \"Students keyed by 学籍号\")"};
  if (f.class_name.empty()) return Error{names.class_name, "the class is empty", ""};
  auto d = parse_day(f.date);
  if (!d) return Error{names.date, "expected a date like 2026-11-27, got " + shown(f.date, 20), ""};
  StatusMeaning meaning;
  const StatusVocabulary& words = rules.statuses ? *rules.statuses : StatusVocabulary::defaults();
  if (!words.lookup(f.status, meaning)) {
    if (f.status.empty()) return Error{names.status, "the status is empty", ""};
    std::string word = shown(f.status, 40);
    return Error{names.status, "unknown status " + word,
                 "map the word in [" + rules.status_words_key + "]: " + word +
                     " = \"attended\", \"late\", \"absent\", \"leave\" or \"excused_leave\""};
  }
  if (!parse_yes_no(f.leave_approved, r.leave_approved))
    return Error{names.leave_approved, "expected yes or no, got " + shown(f.leave_approved, 10), ""};
  switch (meaning) {
    case StatusMeaning::Attended: r.status = DayStatus::Present; break;
    case StatusMeaning::Late: r.status = DayStatus::Late; break;
    case StatusMeaning::Absent: r.status = DayStatus::Absent; break;
    case StatusMeaning::Leave: r.status = DayStatus::Leave; break;
    case StatusMeaning::ExcusedLeave:
      r.status = DayStatus::Leave;
      r.leave_approved = true;  // excused by itself, whatever the approval column says
      break;
  }
  r.date = *d;
  if (rules.pseudonyms) r.student = rules.pseudonyms->pseudonym(f.student_id);
  else r.student.assign(f.student_id);
  r.class_name.assign(f.class_name);
  r.grade.assign(f.grade);
  if (rules.keep_names) r.name.assign(f.name);
  return r;
}

}  // namespace campus::attendance
