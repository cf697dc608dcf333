// In-memory attendance book and its mapping to the store's records.
#include "book.hpp"

#include <algorithm>

namespace campus::attendance {

std::uint16_t AttendanceBook::class_index(const std::string& name) {
  // Exports come sorted by class or by student: the last class is usually the next one.
  if (last_class_ < classes_.size() && classes_[last_class_] == name) return static_cast<std::uint16_t>(last_class_);
  auto it = class_ids_.find(name);
  if (it != class_ids_.end()) {
    last_class_ = it->second;
    return it->second;
  }
  auto idx = static_cast<std::uint16_t>(classes_.size());
  classes_.push_back(name);
  class_ids_.emplace(name, idx);
  last_class_ = idx;
  return idx;
}

bool AttendanceBook::put(const AttendanceRecord& r) {
  std::uint32_t index;
  if (last_student_ < students_.size() && students_[last_student_].id == r.student) {
    index = static_cast<std::uint32_t>(last_student_);
  } else {
    auto [it, inserted] = student_ids_.try_emplace(r.student, static_cast<std::uint32_t>(students_.size()));
    if (inserted) students_.push_back(StudentDays{r.student, {}, {}, {}});
    index = it->second;
    last_student_ = index;
  }
  StudentDays& s = students_[index];
  DayEntry e{r.date, class_index(r.class_name), r.status, r.leave_approved};
  auto& days = s.days;
  bool changed = false;
  if (days.empty() || days.back().day < r.date) {
    days.push_back(e);
    ++records_;
    changed = true;
  } else {
    auto pos = std::lower_bound(days.begin(), days.end(), r.date, [](const DayEntry& x, Day d) { return x.day < d; });
    if (pos != days.end() && pos->day == r.date) {
      changed = pos->class_index != e.class_index || pos->status != e.status || pos->leave_approved != e.leave_approved;
      *pos = e;
    } else {
      days.insert(pos, e);
      ++records_;
      changed = true;
    }
  }
  if (days.back().day == r.date && s.grade != r.grade) {
    s.grade = r.grade;
    changed = true;
  }
  // A name arriving (publish_names switched on) is written with the next record that has it.
  if (!r.name.empty() && s.name != r.name) {
    s.name = r.name;
    changed = true;
  }
  return changed;
}

RecordWrite AttendanceBook::to_write(const AttendanceRecord& r) {
  Json v = {{"class", r.class_name}, {"grade", r.grade}, {"status", status_name(r.status)},
            {"leave_approved", r.leave_approved}};
  if (!r.name.empty()) v["name"] = r.name;
  return RecordWrite{kDayRecordKind, r.student + "|" + format_day(r.date), std::move(v)};
}

std::size_t AttendanceBook::load(const RecordReader& reader) {
  clear();
  std::size_t bad = 0;
  reader.scan(kDayRecordKind, [&](const std::string& key, const Json& v) {
    auto bar = key.rfind('|');
    AttendanceRecord r;
    auto day = bar == std::string::npos ? std::nullopt : parse_day(std::string_view(key).substr(bar + 1));
    if (!day || !v.is_object()) { ++bad; return; }
    r.student = key.substr(0, bar);
    r.date = *day;
    r.class_name = v.value("class", "");
    r.grade = v.value("grade", "");
    r.name = v.value("name", "");
    r.leave_approved = v.value("leave_approved", false);
    if (!parse_status(v.value("status", ""), r.status)) { ++bad; return; }
    put(r);
  });
  return bad;
}

void AttendanceBook::clear() {
  classes_.clear();
  class_ids_.clear();
  students_.clear();
  student_ids_.clear();
  records_ = 0;
  last_class_ = last_student_ = static_cast<std::size_t>(-1);
}

const StudentDays* AttendanceBook::find(const std::string& student) const {
  auto it = student_ids_.find(student);
  return it == student_ids_.end() ? nullptr : &students_[it->second];
}

std::string AttendanceBook::latest_class(const StudentDays& s) const {
  return s.days.empty() ? std::string{} : classes_[s.days.back().class_index];
}

}  // namespace campus::attendance
