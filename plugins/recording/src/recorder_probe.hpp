// Asking one recorder for its status over HTTP: the JSON status page (one GET), or a vendor
// API's calls one after another (Hikvision ISAPI, Dahua CGI; Digest auth), stopping at the
// first refusal of the credentials so a wrong password does not lock the account sooner.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "campus/http.hpp"
#include "classroom_register.hpp"
#include "recorder_status.hpp"

namespace campus::recording {

struct RecorderTarget {
  std::string url;  // JSON: the status URL; vendor APIs: the recorder's base URL
  RecorderApi api = RecorderApi::Json;
  std::optional<Credentials> credentials;
  std::chrono::milliseconds timeout{5000};  // per request
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::size_t max_response_bytes = 1 << 20;
  bool verify_tls = true;
  std::optional<std::string> ca_file;
  RecorderPaths paths;          // JSON only
  int utc_offset_minutes = 480;  // recorders that report local time without a zone (Dahua)
};

// `done` runs once on the client's io_context with what the recorder said.
void probe_recorder(HttpClient& http, RecorderTarget target, std::function<void(RecorderStatus)> done);

}  // namespace campus::recording
