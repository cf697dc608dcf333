// In-memory attendance book and its mapping to the store's records.
#include "book.hpp"

#include <algorithm>
#include <cstdio>

namespace campus::attendance {

namespace {

std::pair<int, unsigned> year_month(Day d) {
  std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(d))};
  return {static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month())};
}

char status_code(DayStatus s) {
  switch (s) {
    case DayStatus::Present: return 'P';
    case DayStatus::Late: return 'L';
    case DayStatus::Absent: return 'A';
    case DayStatus::Leave: return 'V';
  }
  return 'P';
}

bool status_from_code(char c, DayStatus& out) {
  switch (c) {
    case 'P': out = DayStatus::Present; return true;
    case 'L': out = DayStatus::Late; return true;
    case 'A': out = DayStatus::Absent; return true;
    case 'V': out = DayStatus::Leave; return true;
  }
  return false;
}

}  // namespace

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
  if (changed) {
    auto [y, m] = year_month(r.date);
    auto t = (static_cast<std::uint64_t>(index) << 32) | static_cast<std::uint64_t>(y * 12 + static_cast<int>(m) - 1);
    if (touched_.empty() || touched_.back() != t) touched_.push_back(t);
  }
  return changed;
}


RecordWrite AttendanceBook::month_write(const StudentDays& s, int year, unsigned month) const {
  Day first = day_from_ymd(year, month, 1);
  Day next = month == 12 ? day_from_ymd(year + 1, 1, 1) : day_from_ymd(year, month + 1, 1);
  auto begin = std::lower_bound(s.days.begin(), s.days.end(), first, [](const DayEntry& x, Day d) { return x.day < d; });
  // Sized exactly first: grown by appending, a month of 22 days (~250 bytes) often sat in a
  // 480-byte buffer, and a term's backfill holds 180,000 of these at once (21 MB of 192 MB).
  std::size_t size = 0;
  for (auto it = begin; it != s.days.end() && it->day < next; ++it) size += 8 + classes_[it->class_index].size();
  std::string days;
  days.reserve(size);
  for (auto it = begin; it != s.days.end() && it->day < next; ++it) {
    const int dom = static_cast<int>(it->day - first + 1);  // 1..31
    const char buf[] = {static_cast<char>('0' + dom / 10), static_cast<char>('0' + dom % 10), ',',
                        status_code(it->status), ',', it->leave_approved ? '1' : '0', ',', '\0'};
    if (!days.empty()) days += ';';
    days += buf;
    days += classes_[it->class_index];
  }
  Json v = {{"grade", s.grade}, {"days", std::move(days)}};
  if (!s.name.empty()) v["name"] = s.name;
  char ym[16];
  std::snprintf(ym, sizeof ym, "%04d-%02u", year, month);
  return RecordWrite{kMonthRecordKind, s.id + "|" + ym, std::move(v)};
}

std::vector<RecordWrite> AttendanceBook::take_writes() {
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  std::vector<RecordWrite> out;
  out.reserve(touched_.size());
  for (auto t : touched_) {
    const auto& s = students_[static_cast<std::size_t>(t >> 32)];
    auto ym = static_cast<int>(t & 0xffffffffu);
    out.push_back(month_write(s, ym / 12, static_cast<unsigned>(ym % 12 + 1)));
  }
  touched_.clear();
  return out;
}

std::size_t AttendanceBook::load(const RecordReader& reader, bool keep_names) {
  clear();
  std::size_t bad = 0;
  reader.scan(kMonthRecordKind, [&](const std::string& key, const Json& v) {
    auto bar = key.rfind('|');
    auto first = bar == std::string::npos ? std::nullopt : parse_day(key.substr(bar + 1) + "-01");
    if (!first || !v.is_object() || !v.contains("days") || !v["days"].is_string()) {
      ++bad;
      return;
    }
    AttendanceRecord r;
    r.student = key.substr(0, bar);
    r.grade = v.value("grade", "");
    r.name = keep_names ? v.value("name", "") : std::string();
    bool scrub = !keep_names && v.contains("name");  // publish_names was switched off
    std::string_view days = v["days"].get_ref<const std::string&>();
    while (!days.empty()) {
      auto semi = days.find(';');
      std::string_view e = days.substr(0, semi);
      days = semi == std::string_view::npos ? std::string_view{} : days.substr(semi + 1);
      // "DD,S,A,class" (the class may itself contain commas: it is the rest)
      if (e.size() < 7 || e[2] != ',' || e[4] != ',' || e[6] != ',' || !status_from_code(e[3], r.status)) {
        ++bad;
        continue;
      }
      r.date = *first + (e[0] - '0') * 10 + (e[1] - '0') - 1;
      r.leave_approved = e[5] == '1';
      r.class_name.assign(e.substr(7));
      put(r);
    }
    if (scrub) scrub_.push_back(r.student + "|" + key.substr(bar + 1));
  });
  // What was just read is what the store holds, except months that still carry a name.
  touched_.clear();
  for (const auto& k : scrub_) {
    auto bar = k.rfind('|');
    auto it = student_ids_.find(k.substr(0, bar));
    auto first = parse_day(k.substr(bar + 1) + "-01");
    if (it == student_ids_.end() || !first) continue;
    std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(*first))};
    touched_.push_back((static_cast<std::uint64_t>(it->second) << 32) |
                       static_cast<std::uint64_t>(static_cast<int>(ymd.year()) * 12 + static_cast<int>(static_cast<unsigned>(ymd.month())) - 1));
  }
  scrub_.clear();
  return bad;
}

void AttendanceBook::clear() {
  classes_.clear();
  class_ids_.clear();
  students_.clear();
  student_ids_.clear();
  records_ = 0;
  last_class_ = last_student_ = static_cast<std::size_t>(-1);
  touched_.clear();
}

std::vector<RecordWrite> AttendanceBook::forget(const std::function<bool(const std::string&)>& which) {
  std::vector<RecordWrite> erased;
  std::vector<StudentDays> kept;
  std::vector<std::int64_t> moved(students_.size(), -1);  // old index -> new index (-1: forgotten)
  for (std::size_t i = 0; i < students_.size(); ++i) {
    auto& s = students_[i];
    if (!which(s.id)) {
      moved[i] = static_cast<std::int64_t>(kept.size());
      kept.push_back(std::move(s));
      continue;
    }
    int last = -1;
    for (const auto& e : s.days) {
      auto [y, m] = year_month(e.day);
      int ym = y * 12 + static_cast<int>(m) - 1;
      if (ym == last) continue;
      last = ym;
      char text[16];
      std::snprintf(text, sizeof text, "%04d-%02u", y, m);
      erased.push_back(RecordWrite{kMonthRecordKind, s.id + "|" + text, std::nullopt});
    }
    records_ -= s.days.size();
  }
  students_ = std::move(kept);
  student_ids_.clear();
  for (std::size_t i = 0; i < students_.size(); ++i) student_ids_.emplace(students_[i].id, static_cast<std::uint32_t>(i));
  last_student_ = static_cast<std::size_t>(-1);
  // Months still to be written (names being scrubbed) follow their students to the new index.
  std::vector<std::uint64_t> touched;
  for (auto t : touched_)
    if (auto to = moved[static_cast<std::size_t>(t >> 32)]; to >= 0)
      touched.push_back((static_cast<std::uint64_t>(to) << 32) | (t & 0xffffffffu));
  touched_ = std::move(touched);
  return erased;
}

const StudentDays* AttendanceBook::find(const std::string& student) const {
  auto it = student_ids_.find(student);
  return it == student_ids_.end() ? nullptr : &students_[it->second];
}

std::string AttendanceBook::latest_class(const StudentDays& s) const {
  return s.days.empty() ? std::string{} : classes_[s.days.back().class_index];
}

}  // namespace campus::attendance
