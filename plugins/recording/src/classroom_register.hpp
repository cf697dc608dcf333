// The register of recording classrooms: a CSV a school keeps in its spreadsheet.
//
//   id,name,recorder_url,onvif_url,streams,credentials,camera_credentials,min_cameras[,recorder_api]
//   R101,"101 录播教室",http://10.0.1.10/api/status,http://10.0.1.10/onvif/device_service,
//        "teacher=rtsp://10.0.1.11/main;students=rtsp://10.0.1.12/main",secrets/r101.cred,,2
//
// Credential files hold one line "username:password" (mode 0600); paths are relative to the
// register's directory.
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "campus/csv.hpp"
#include "campus/error.hpp"
#include "recorder_api.hpp"

namespace campus::recording {

struct Credentials {
  std::string username, password;
};

struct StreamSpec {
  std::string role;  // teacher, students, board, ...
  std::string url;   // rtsp://host[:port]/path, no credentials inside
};

struct RecordingClassroom {
  std::string id, name;
  std::string recorder_url;  // may be empty; the base URL for the vendor APIs
  RecorderApi recorder_api = RecorderApi::Json;  // how recorder_url is asked
  std::string onvif_url;     // may be empty
  std::vector<StreamSpec> streams;
  std::optional<Credentials> credentials;         // recorder + ONVIF
  std::optional<Credentials> camera_credentials;  // RTSP (defaults to credentials)
  std::optional<int> min_cameras;                 // overrides the audit's default
  std::filesystem::path credentials_file;         // where `credentials` came from (for reasons)
  std::string where;                              // "classrooms.csv:4"
  // Non-empty: the row is bad (every error of the row, "where: what (fix: ...)", joined by
  // "; "). The classroom is not probed and is reported unknown with this as the reason.
  std::string invalid;
};

using SecretReader = std::function<Result<std::string>(const std::filesystem::path&)>;

// Parses "teacher=rtsp://...;students=rtsp://...". Empty string and `error` set when invalid.
std::vector<StreamSpec> parse_streams(const std::string& cell, std::string& error);
// "user:password" -> Credentials; nullopt when there is no ':' or no user.
std::optional<Credentials> parse_credentials(const std::string& text);

// Reads the register. Every problem is an Error with file:line and column in `errors`; a bad
// row whose id can be read is still returned, marked `invalid`, so the report names it
// (unknown) instead of losing it. A duplicated id marks the first row with it invalid too.
std::vector<RecordingClassroom> parse_register(const CsvTable& table, const std::filesystem::path& base_dir,
                                               const SecretReader& read_secret, Errors& errors);
std::vector<RecordingClassroom> load_register(const std::filesystem::path& file, const SecretReader& read_secret,
                                              Errors& errors);

}  // namespace campus::recording
