// The attendance book: every imported day of every student, compact and sorted, in memory.
// It mirrors the plugin's "day" records in the store (key "<student>|<date>"), so a restart
// rebuilds it with one scan and each run only writes what changed.
#pragma once
#include <cstdint>
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

inline constexpr const char* kDayRecordKind = "day";

class AttendanceBook {
 public:
  // Upserts one record: a later import of the same student and day replaces the earlier one.
  // Returns true when the book changed.
  bool put(const AttendanceRecord& r);
  // The record as stored in the plugin's records (kind "day").
  static RecordWrite to_write(const AttendanceRecord& r);
  // Rebuilds the book from the store. Unparseable entries are skipped and counted.
  std::size_t load(const RecordReader& reader);
  void clear();

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
};

}  // namespace campus::attendance
