// The recorder status APIs a register row can name (its recorder_api column), and what the
// vendor APIs report, in one shape for Hikvision ISAPI and Dahua CGI.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace campus::recording {

enum class RecorderApi {
  Json,       // recorder_url is a JSON status page read through the configured JSON paths
  Hikvision,  // recorder_url is the recorder's base URL; ISAPI calls (XML, Digest)
  Dahua,      // recorder_url is the recorder's base URL; CGI calls (key=value, Digest)
};
// "json", "hikvision", "dahua" (any case; empty is json); nullopt for anything else.
std::optional<RecorderApi> parse_recorder_api(std::string_view name);
const char* to_string(RecorderApi api);

struct RecorderIdentity {
  std::string model, serial, firmware;
};

// One disk (or NAS) the recorder records on.
struct RecorderDisk {
  std::string id;        // "1" (Hikvision hdd id), "/dev/sda" (Dahua)
  std::string status;    // the device's own word: "ok", "error", "Success", "Error"
  bool healthy = false;  // usable for recording
  std::optional<double> capacity_bytes, free_bytes;
};

// One video channel of the recorder.
struct RecorderChannel {
  int number = 0;               // 1-based, as the recorder's own screens count
  std::optional<bool> online;   // the camera is connected (Hikvision); nullopt: not reported
  bool recording = false;
  std::string state;            // the device's word for it: "recording", "idle", "stopped", ...
};

// "+08:00", "-05:30" (or "Z") -> minutes east of UTC; nullopt for anything else.
std::optional<int> parse_utc_offset(std::string_view text);

// Seconds since the epoch (UTC) of a civil date and time at `utc_offset_minutes`; nullopt when
// a field is out of range.
std::optional<double> utc_seconds(int year, int month, int day, int hour, int minute, double second,
                                  int utc_offset_minutes);

}  // namespace campus::recording
