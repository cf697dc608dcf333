// Recorder status over HTTP (JSON). Vendors differ, so the fields are found by configurable JSON
// paths: "storage.free_percent", "channels[0].state", or a JSON pointer "/storage/free".
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace campus::recording {

using Json = nlohmann::json;

// Looks a path up; nullptr when any step is missing. Syntax errors give nullptr and `error`.
const Json* json_at(const Json& doc, const std::string& path, std::string* error = nullptr);
// Empty when `path` is syntactically valid, else why not (used at configure time).
std::string json_path_check(const std::string& path);

struct RecorderPaths {
  std::string recording = "recording";  // bool, or a string/number compared with recording_values
  std::vector<std::string> recording_values{"recording", "on", "true", "yes", "running", "1"};
  std::string free_percent = "storage.free_percent";
  // Used when free_percent is absent from the reply: 100 * free / total.
  std::string free_bytes = "storage.free_bytes";
  std::string total_bytes = "storage.total_bytes";
};

struct RecorderStatus {
  bool answered = false;          // HTTP 2xx with a JSON object
  std::string error;              // why not answered (HTTP 500, not JSON, timeout, ...)
  std::optional<bool> recording;  // nullopt: not in the reply
  std::string recording_error;
  std::optional<double> free_percent;
  std::string storage_error;
  Json raw_fields = Json::object();  // the values read, for the finding's details
};

// Interprets one HTTP reply (status, body) of the recorder's status URL.
RecorderStatus parse_recorder_status(long http_status, const std::string& body, const RecorderPaths& paths);

}  // namespace campus::recording
