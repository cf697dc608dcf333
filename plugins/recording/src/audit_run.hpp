// One run of the recording audit: every classroom's recorder status, ONVIF device and camera
// streams probed concurrently, then each classroom judged against the standard.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "campus/plugin.hpp"
#include "classroom_register.hpp"
#include "onvif.hpp"
#include "recorder_status.hpp"
#include "rtsp_probe.hpp"

namespace campus::recording {

struct RecordingSettings {
  std::filesystem::path register_file;
  int min_cameras = 2;
  double min_free_percent = 15;
  std::chrono::milliseconds max_clock_drift{5000};
  bool require_recording = true;
  RtspOptions rtsp;
  std::chrono::milliseconds http_timeout{5000};
  std::size_t max_response_bytes = 1 << 20;  // recorder status reply
  bool verify_tls = true;
  std::optional<std::string> ca_file;
  RecorderPaths paths;
  int recorder_utc_offset_minutes = 480;  // recorders reporting local time without a zone (Dahua)
  std::size_t max_parallel = 256;  // RTSP connections open at once
};

// What the probes saw for one classroom.
struct ClassroomObservation {
  std::vector<StreamResult> streams;  // parallel to RecordingClassroom::streams
  std::optional<RecorderStatus> recorder;  // when recorder_url is set
  std::optional<OnvifResult> onvif;        // when onvif_url is set
};

// The compliance rule (plugins/recording/README.md, "What it checks"): the finding for one classroom.
Finding judge_classroom(const RecordingClassroom& c, const ClassroomObservation& o, const RecordingSettings& s);
// Totals and compliant ratio over the findings.
Json summarize(const std::vector<Finding>& findings, std::size_t register_errors);

class RecordingRun {
 public:
  virtual ~RecordingRun() = default;
  virtual void cancel() = 0;
};

// Loads the register and probes everything; `done` runs once on ctx.io.
std::shared_ptr<RecordingRun> run_recording_audit(AuditContext& ctx, const RecordingSettings& settings,
                                                  const SecretReader& read_secret,
                                                  std::function<void(AuditReport)> done);

}  // namespace campus::recording
