// The attendance audit: import (spool CSV, HTTP API), evaluate the absence rule, propose case
// actions, and report open cases, deadlines and data gaps.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "book.hpp"
#include "calendar.hpp"
#include "campus/plugin.hpp"
#include "http_import.hpp"
#include "rule.hpp"

namespace campus::attendance {

// The plugin's record of the key its stored attendance was keyed with (kind, key).
inline constexpr const char* kPseudonymKeyRecordKind = "pseudonym_key";
inline constexpr const char* kPseudonymKeyRecordKey = "current";

struct AttendanceSettings {
  std::filesystem::path calendar_file;
  RuleSettings rule;
  int contact_within = 1;            // school days after the opening day
  bool publish_names = false;
  std::optional<std::filesystem::path> spool_dir;
  FieldNames csv_fields;                 // CSV columns, and the header row of an XLSX sheet
  std::string xlsx_sheet;                // the sheet to read; empty: the first one
  std::shared_ptr<const StatusVocabulary> status_words;  // nullptr: the shipped defaults
  // The student column (学籍号, ...) is replaced at import by its keyed pseudonym.
  bool pseudonymize_students = false;
  std::filesystem::path pseudonym_key_file = kDefaultStudentKeyFile;
  std::optional<HttpSourceSettings> http;
  std::string timezone_offset = "+08:00";
  int max_gap_entries = 50;          // data-gap lines in the report (totals are always exact)
  int max_error_entries = 100;       // bad-row errors in the report
};

// What the plugin remembers about each case it opened (records kind "case", key
// "<student>|<first day>"): which absences it covers, so no run ever opens a second case,
// and when it was handled, for the share handled within the deadline.
struct CaseMarker {
  Day first = 0;
  Day last = 0;
  bool cumulative = false;
  Day open_day = 0;
  Day deadline_day = 0;
  std::optional<Day> handled_day;
  std::optional<Day> closed_day;
  std::string outcome;
  Json to_json() const;
  static std::optional<CaseMarker> from_json(const Json& j);
};

inline constexpr const char* kCaseRecordKind = "case";

// Reads and validates [audits.attendance] (settings.cpp). Problems
// go to reader.error(); the calendar is loaded to check it. nullopt when a problem was found
// in a sub-table or the calendar (top-level key errors are only known to the reader's owner).
std::optional<AttendanceSettings> read_settings(TableReader& reader, const PluginEnv& env);

// The audit's logic; plugin.cpp wraps it in the AuditPlugin interface (configure reads the
// TOML table into AttendanceSettings, see settings.cpp).
class AttendanceAudit {
 public:
  // As AuditPlugin::audit: `done` is called exactly once, on ctx.io.
  void audit(AuditContext ctx, std::function<void(AuditReport)> done);
  void cancel();
  // The records are read once (book, case markers, the stored key's fingerprint) and kept in
  // memory; again only after a settings change or a report whose commit was not confirmed.
  bool reads_records() const { return !loaded_ || dirty_; }

  // Takes validated settings (tests, and configure() after validation).
  campus::Status apply(AttendanceSettings settings);
  const AttendanceSettings& settings() const { return settings_; }

 private:
  struct Run;        // one audit in flight
  struct CaseTally;  // what a run's case pass found
  // The run's imports are done: evaluate, follow the cases, summarize, report.
  void finish(std::shared_ptr<Run> run);
  void carry_open_cases(Run& run, const Evaluation& ev, CaseTally& t);
  void open_new_cases(Run& run, const Evaluation& ev, CaseTally& t);
  void write_changed_markers(Run& run, const CaseTally& t) const;
  Json summarize(const Run& run, const Evaluation& ev, const CaseTally& t) const;
  void add_findings(Run& run, const Evaluation& ev, CaseTally& t) const;
  void hand_over(Run& run, CaseTally& t);
  Json case_details(const std::string& student, const AbsenceRun& r, const CaseMarker& m, bool overdue,
                    Day horizon) const;
  // The first present/late school day strictly after `after`.
  std::optional<Day> returned_after(const std::string& student, Day after) const;
  void reload(const RecordReader& records);
  // Opens the pseudonym key for this run (creating it on the very first run) and checks it
  // against the key the stored attendance was made with. False: nothing may be imported.
  bool open_student_key(Run& run);
  RecordRules rules() const;

  AttendanceSettings settings_;
  std::optional<SchoolCalendar> calendar_;
  std::filesystem::file_time_type calendar_mtime_{};
  AttendanceBook book_;
  std::map<std::string, std::vector<CaseMarker>> markers_;  // by student
  bool loaded_ = false;
  bool dirty_ = false;  // the last report's writes are not known to be committed
  std::string stored_key_fingerprint_;  // the key the stored attendance was made with ("" none)
  HttpClient* http_in_flight_ = nullptr;
  std::shared_ptr<const StudentPseudonyms> pseudonyms_;  // this run's key (pseudonymize_students)
};

}  // namespace campus::attendance
