// campusctl's commands that read the county collector's database (campus-county) instead of
// the broker: no school needs to be online, and every figure says how old it is.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace campus::ctl {

struct RecordOptions {
  std::filesystem::path db;                 // the collector's county.db or PostgreSQL URL (read-only)
  std::string county;                       // for the report's title ("" when unknown)
  std::vector<std::string> register_schools;  // campusctl.toml's county.schools (the collector's own register is added)
  bool json = false;
};

// Each returns campusctl's exit code (0 ok, 1 failed).
int record_status(const RecordOptions& o, const std::optional<std::string>& school);
int record_cases(const RecordOptions& o, const std::string& school, const std::string& state);
int record_history(const RecordOptions& o, const std::string& school, const std::string& audit, const std::string& since);
int record_gaps(const RecordOptions& o, const std::string& school, bool open_only);
int record_report(const RecordOptions& o, const std::string& html_file, int year, const std::string& lang);

}  // namespace campus::ctl
