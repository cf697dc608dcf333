// Recorder status: what the audit learned about a recorder, from its JSON status page (fields
// found by configurable JSON paths: "storage.free_percent", "channels[0].state", or a JSON
// pointer "/storage/free") or from a vendor API's disks and channels (recorder_api.hpp).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recorder_api.hpp"

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
  std::string api = "json";       // recorder_api: json | hikvision | dahua
  bool answered = false;          // the status came (HTTP 2xx with a JSON object, or the vendor's first call)
  std::string error;              // why not answered (HTTP 500, not JSON, timeout, ...)
  // The recorder answered but refused the register's credentials (401 after Digest) or has
  // locked the account: not broken, but not checked; the judge reports it as unknown.
  std::string credentials_error;
  std::optional<bool> recording;  // nullopt: not in the reply
  std::string recording_error;    // why recording is not known
  std::string recording_reason;   // why recording is false ("channels 2, 3 are not recording")
  std::optional<double> free_percent;
  std::string storage_error;      // why free storage is not known
  std::vector<std::string> storage_faults;  // disks in error: the storage check fails
  std::optional<double> clock_drift_s;      // the recorder's own clock (vendor APIs) - the agent's
  std::string clock_error;
  std::optional<RecorderIdentity> identity;
  Json raw_fields = Json::object();  // the values read, for the finding's details
  Json disks = Json::array();        // vendor APIs: every disk, as reported
  Json channels = Json::array();     // vendor APIs: every channel, as reported
};

// Interprets one HTTP reply (status, body) of the recorder's status URL.
RecorderStatus parse_recorder_status(long http_status, const std::string& body, const RecorderPaths& paths);

// Storage from a vendor recorder's disks: the free percentage over its healthy disks, and a
// fault for each disk that is not healthy (or when there is none).
void apply_disks(const std::vector<RecorderDisk>& disks, RecorderStatus& st);
// Recording from a vendor recorder's channels: every channel that is online (or whose online
// state is not reported) must be recording; the others are named in recording_reason.
void apply_channels(const std::vector<RecorderChannel>& channels, RecorderStatus& st);

}  // namespace campus::recording
