// The attendance book: every imported day of every student, compact and sorted, in memory.
// It mirrors the plugin's "month" records in the store: one per student and month (key
// "<student>|2026-11", value {"grade", "name"?, "days": "02,A,0,3-2;03,P,0,3-2;..."}), so a
// restart rebuilds it with one scan, a term of 5,000 students is 45,000 rows (not 900,000),
// and each run writes only the months that changed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "campus/plugin.hpp"
#include "record.hpp"

namespace campus::attendance {

struct DayEntry {
  Day day = 0;
  std::uint16_t class_index = 0;
  DayStatus status = DayStatus::Present;
  bool leave_approved = false;
};

struct StudentDays {
  std::string id;
  std::string grade;   // from the latest record
  std::string name;    // only with publish_names
  std::vector<DayEntry> days;  // sorted by day, one entry per day
};

inline constexpr const char* kMonthRecordKind = "month";

class AttendanceBook {
 public:
  // Upserts one record: a later import of the same student and day replaces the earlier one.
  // Returns true when the book changed (the month is then remembered as touched).
  bool put(const AttendanceRecord& r);
  // The month records of everything put() changed since the last call, and forgets them.
  std::vector<RecordWrite> take_writes();
  // The month record of one student and month (for tests and tools).
  RecordWrite month_write(const StudentDays& s, int year, unsigned month) const;
  // Rebuilds the book from the store. Unparseable entries are skipped and counted. Without
  // keep_names, stored names are dropped and their months queued for rewriting (take_writes).
  std::size_t load(const RecordReader& reader, bool keep_names = false);
  void clear();
  // Removes the students `which` selects and returns the erasures of their month records
  // (a rotated pseudonym key: their keys can never be matched again).
  std::vector<RecordWrite> forget(const std::function<bool(const std::string& student)>& which);

  const std::vector<StudentDays>& students() const { return students_; }
  const std::string& class_name(std::uint16_t index) const { return classes_[index]; }
  std::size_t class_count() const { return classes_.size(); }
  std::size_t record_count() const { return records_; }
  const StudentDays* find(const std::string& student) const;
  // Class of the student's latest record, "" when unknown.
  std::string latest_class(const StudentDays& s) const;

 private:
  std::uint16_t class_index(const std::string& name);
  std::vector<std::string> classes_;
  std::unordered_map<std::string, std::uint16_t> class_ids_;
  std::vector<StudentDays> students_;
  std::unordered_map<std::string, std::uint32_t> student_ids_;
  std::size_t records_ = 0;
  std::size_t last_class_ = static_cast<std::size_t>(-1);    // one-entry lookup caches
  std::size_t last_student_ = static_cast<std::size_t>(-1);
  std::vector<std::uint64_t> touched_;
  std::vector<std::string> scrub_;  // (student index << 32) | (year * 12 + month - 1)
};

}  // namespace campus::attendance
