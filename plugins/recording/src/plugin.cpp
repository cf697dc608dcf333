// The recording-classroom audit plugin: configuration from [audits.recording] and the entry
// point the agent loads (campus-recording.so).
#include "campus/plugin.hpp"

#include "audit_run.hpp"

namespace campus::recording {

class RecordingAudit final : public AuditPlugin {
 public:
  void configure(TableReader& r, const PluginEnv& env) override {
    RecordingSettings s;
    // required_string reports a missing or mistyped key; path() then resolves and checks the file.
    if (!r.required_string("register").empty()) s.register_file = r.path("register", {}, /*must_exist=*/true);
    s.min_cameras = static_cast<int>(r.integer("min_cameras", 2, 0, 64));
    s.min_free_percent = r.number("min_free_percent", 15, 0, 100);
    s.max_clock_drift = r.duration("max_clock_drift", std::chrono::seconds(5));
    s.require_recording = r.boolean("require_recording", true);
    s.rtsp.timeout = r.duration("rtsp_timeout", std::chrono::seconds(5), Millis(100), std::chrono::minutes(5));
    s.rtsp.max_response_bytes = r.size("max_rtsp_response", 256 * 1024);
    s.rtsp.deep_check = r.boolean("deep_check", false);
    if (auto codecs = r.string_array("codecs"); !codecs.empty()) {
      s.rtsp.codecs.clear();
      for (auto c : codecs) {
        for (auto& ch : c) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        s.rtsp.codecs.push_back(c);
      }
    }
    s.http_timeout = r.duration("http_timeout", std::chrono::seconds(5), Millis(100), std::chrono::minutes(5));
    s.max_response_bytes = r.size("max_status_response", 1 << 20);
    s.verify_tls = r.boolean("verify_tls", true);
    if (auto ca = r.optional_path("ca_file", true)) s.ca_file = ca->string();
    s.max_parallel = static_cast<std::size_t>(r.integer("max_parallel", 256, 1, 4096));
    {
      std::string offset = r.string("recorder_utc_offset", "+08:00");
      if (auto minutes = parse_utc_offset(offset)) s.recorder_utc_offset_minutes = *minutes;
      else r.error("recorder_utc_offset", "expected a UTC offset like \"+08:00\", got \"" + offset + "\"",
                   "the recorders' time zone, e.g. \"+08:00\" for China Standard Time");
    }
    auto json_path = [&](const std::string& key, const std::string& def) {
      std::string p = r.string(key, def);
      if (auto why = json_path_check(p); !why.empty()) r.error(key, why, "use a.b[0].c or a JSON pointer /a/b/0/c");
      return p;
    };
    s.paths.recording = json_path("status_recording_path", s.paths.recording);
    if (auto v = r.string_array("status_recording_values"); !v.empty()) s.paths.recording_values = v;
    s.paths.free_percent = json_path("status_free_percent_path", s.paths.free_percent);
    s.paths.free_bytes = json_path("status_free_bytes_path", s.paths.free_bytes);
    s.paths.total_bytes = json_path("status_total_bytes_path", s.paths.total_bytes);
    r.finish();
    settings_ = std::move(s);
    log_ = env.log;
  }

  void audit(AuditContext ctx, std::function<void(AuditReport)> done) override {
    run_ = run_recording_audit(ctx, settings_, read_secret_file, std::move(done));
  }

  void cancel() override {
    if (run_) run_->cancel();
  }

 private:
  RecordingSettings settings_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<RecordingRun> run_;
};

}  // namespace campus::recording

CAMPUS_DEFINE_PLUGIN("recording", "0.1.0", campus::recording::RecordingAudit)
