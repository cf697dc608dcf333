// Orchestrates one recording audit and applies the compliance rule.
#include "audit_run.hpp"

#include <cmath>
#include <deque>

#include "campus/units.hpp"
#include "recorder_probe.hpp"

namespace campus::recording {
namespace {

using Clock = std::chrono::steady_clock;

struct Check {
  std::string name;
  std::string status;  // pass | fail | unknown
  std::string reason;
};

std::string fmt_percent(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", v);
  return b;
}

std::string fmt_seconds(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1fs", v);
  return b;
}

// The classroom's state from its checks: noncompliant when one failed, else unknown when one
// could not be checked, else compliant; the reason joins those checks' reasons.
Finding verdict(const std::string& subject, const std::vector<Check>& checks, Json details) {
  Finding f;
  f.subject = subject;
  Json checks_json = Json::object();
  std::vector<std::string> failed, unknown;
  std::string fail_reason, unknown_reason;
  for (const auto& k : checks) {
    checks_json[k.name] = k.reason.empty() ? Json{{"status", k.status}} : Json{{"status", k.status}, {"reason", k.reason}};
    if (k.status == "fail") {
      failed.push_back(k.name);
      fail_reason += (fail_reason.empty() ? "" : "; ") + k.reason;
    } else if (k.status == "unknown") {
      unknown.push_back(k.name);
      unknown_reason += (unknown_reason.empty() ? "" : "; ") + k.reason;
    }
  }
  if (!failed.empty()) {
    f.state = "noncompliant";
    f.reason = fail_reason;
  } else if (!unknown.empty()) {
    f.state = "unknown";
    f.reason = unknown_reason;
  } else {
    f.state = "compliant";
  }
  details["compliant"] = f.state == "compliant";
  details["failed_checks"] = failed;
  details["unknown_checks"] = unknown;
  details["checks"] = checks_json;
  f.details = std::move(details);
  return f;
}

// Why nothing is known from the recorder's status: it did not answer, or refused us.
std::string unavailable(const ClassroomObservation& o) {
  if (o.recorder && !o.recorder->credentials_error.empty())
    return "not checked: the recorder refused the credentials";
  return "recorder status unavailable";
}

}  // namespace

Finding judge_classroom(const RecordingClassroom& c, const ClassroomObservation& o, const RecordingSettings& s) {
  std::vector<Check> checks;
  int min_cameras = c.min_cameras.value_or(s.min_cameras);
  Json details = Json::object();
  details["name"] = c.name;
  // A bad register row is not probed: what it would be checked against is not known.
  if (!c.invalid.empty()) {
    details["register_row"] = c.where;
    details["live_cameras"] = 0;
    details["min_cameras"] = min_cameras;
    return verdict(c.id, {{"register", "unknown", c.invalid}}, std::move(details));
  }

  // The recorder answers (status URL and/or ONVIF device service).
  {
    Check k{"recorder", "pass", {}};
    std::vector<std::string> why;
    // A recorder that refused the register's credentials did answer: see recorder_credentials.
    if (!c.recorder_url.empty() && o.recorder && !o.recorder->answered && o.recorder->credentials_error.empty())
      why.push_back("recorder status " + c.recorder_url + ": " + o.recorder->error);
    if (!c.onvif_url.empty() && o.onvif && !o.onvif->reachable)
      why.push_back("ONVIF " + c.onvif_url + ": " + o.onvif->error);
    for (const auto& w : why) k.reason += (k.reason.empty() ? "" : "; ") + w;
    if (!why.empty()) k.status = "fail";
    checks.push_back(k);
  }
  // The recorder's API refused the register's credentials, or has locked the account.
  if (!c.recorder_url.empty() && o.recorder && !o.recorder->credentials_error.empty()) {
    std::string file = c.credentials_file.empty() ? std::string("the credentials file") : c.credentials_file.string();
    checks.push_back({"recorder_credentials", "unknown",
                      "recorder " + o.recorder->credentials_error + ": write the recorder's user and password into " +
                          file + " as username:password" +
                          (o.recorder->credentials_error.find("locked") != std::string::npos
                               ? ", then wait until the recorder unlocks the account (or unlock it on the recorder)"
                               : "")});
  }
  // Recording state (only where the recorder reports it).
  if (!c.recorder_url.empty() && s.require_recording) {
    Check k{"recording", "pass", {}};
    if (!o.recorder || !o.recorder->answered) {
      k = {"recording", "unknown", unavailable(o)};
    } else if (!o.recorder->recording) {
      k = {"recording", "unknown", o.recorder->recording_error};
    } else if (!*o.recorder->recording) {
      k = {"recording", "fail", o.recorder->recording_reason.empty() ? "recorder reports it is not recording"
                                                                      : "recorder: " + o.recorder->recording_reason};
    }
    checks.push_back(k);
  }
  // Cameras and streams.
  int live = 0, unknown_streams = 0;
  Json streams = Json::array();
  for (std::size_t i = 0; i < c.streams.size(); ++i) {
    const auto& spec = c.streams[i];
    StreamResult r = i < o.streams.size() ? o.streams[i] : StreamResult{};
    if (i >= o.streams.size()) r.error = "not probed";
    Check k{"stream:" + spec.role, "pass", {}};
    switch (r.outcome) {
      case StreamResult::Outcome::Video: ++live; break;
      case StreamResult::Outcome::AuthFailed:
        ++unknown_streams;
        k = {k.name, "unknown", spec.role + " camera: " + r.error};
        break;
      default: k = {k.name, "fail", spec.role + " camera: " + r.error}; break;
    }
    checks.push_back(k);
    Json js = {{"role", spec.role}, {"url", spec.url}, {"state", to_string(r.outcome)},
               {"video_tracks", r.video_tracks}, {"codecs", r.video_codecs}, {"auth", r.auth},
               {"elapsed_ms", r.elapsed.count()}};
    if (s.rtsp.deep_check) js["rtp_received"] = r.rtp_received;
    if (!r.rtp_transport.empty()) js["rtp_transport"] = r.rtp_transport;
    if (r.status) js["rtsp_status"] = r.status;
    if (!r.error.empty()) js["error"] = r.error;
    streams.push_back(std::move(js));
  }
  {
    Check k{"cameras", "pass", {}};
    std::string counted = std::to_string(live) + " of " + std::to_string(c.streams.size()) +
                          " cameras live, the standard requires " + std::to_string(min_cameras);
    if (live < min_cameras) k = {"cameras", live + unknown_streams >= min_cameras ? "unknown" : "fail", counted};
    checks.push_back(k);
  }
  // Storage.
  {
    Check k{"storage", "pass", {}};
    if (c.recorder_url.empty()) {
      k = {"storage", "unknown", "no recorder status URL in the register: free storage cannot be checked"};
    } else if (!o.recorder || !o.recorder->answered) {
      k = {"storage", "unknown", unavailable(o)};
    } else {
      // Disks in error fail the check whatever the free space on the others.
      std::vector<std::string> faults = o.recorder->storage_faults;
      if (o.recorder->free_percent && *o.recorder->free_percent < s.min_free_percent)
        faults.push_back("storage free " + fmt_percent(*o.recorder->free_percent) + " is below " +
                         fmt_percent(s.min_free_percent));
      if (!faults.empty()) {
        k = {"storage", "fail", {}};
        for (const auto& f : faults) k.reason += (k.reason.empty() ? "" : "; ") + f;
      } else if (!o.recorder->free_percent) {
        k = {"storage", "unknown", o.recorder->storage_error};
      }
    }
    checks.push_back(k);
  }
  // Clock.
  {
    Check k{"clock", "pass", {}};
    double max_s = std::chrono::duration<double>(s.max_clock_drift).count();
    // ONVIF's clock when it was read, else the recorder API's own (Hikvision, Dahua).
    std::optional<double> drift = o.onvif ? o.onvif->clock_drift_s : std::nullopt;
    if (!drift && o.recorder) drift = o.recorder->clock_drift_s;
    if (drift) {
      if (std::fabs(*drift) > max_s)
        k = {"clock", "fail", "clock drift " + fmt_seconds(*drift) + " exceeds " + format_duration(s.max_clock_drift)};
    } else if (c.onvif_url.empty() && (!o.recorder || o.recorder->api == "json")) {
      k = {"clock", "unknown", "no ONVIF address in the register: clock drift cannot be checked"};
    } else {
      std::vector<std::string> why;
      if (o.onvif && !o.onvif->error.empty()) why.push_back(o.onvif->error);
      if (o.recorder && o.recorder->api != "json") {
        if (!o.recorder->clock_error.empty()) why.push_back(o.recorder->clock_error);
        else if (!o.recorder->answered) why.push_back(unavailable(o));
      }
      std::string reason = "clock unknown";
      for (std::size_t n = 0; n < why.size(); ++n) reason += (n == 0 ? ": " : "; ") + why[n];
      k = {"clock", "unknown", reason};
    }
    checks.push_back(k);
  }
  // The register's credentials, refused by the device (ONVIF NotAuthorized, or HTTP 401 after
  // Digest): nothing is known to be broken, but the device could not be checked as the
  // register says it can be, so the classroom is not reported healthy.
  if (!c.onvif_url.empty() && o.onvif && o.onvif->info_unauthorized) {
    std::string file = c.credentials_file.empty() ? std::string("the credentials file") : c.credentials_file.string();
    checks.push_back({"onvif_credentials", "unknown",
                      "ONVIF " + c.onvif_url + " refused the credentials in " + file + " (" + o.onvif->info_error +
                          "): write the device's ONVIF user and password into " + file + " as username:password"});
  }

  Finding f = verdict(c.id, checks, std::move(details));
  Json& d = f.details;
  d["live_cameras"] = live;
  d["min_cameras"] = min_cameras;
  d["streams"] = streams;
  if (o.recorder) {
    Json r = {{"url", c.recorder_url}, {"answered", o.recorder->answered}};
    if (!o.recorder->error.empty()) r["error"] = o.recorder->error;
    if (o.recorder->recording) r["recording"] = *o.recorder->recording;
    if (o.recorder->free_percent) r["storage_free_percent"] = std::round(*o.recorder->free_percent * 10) / 10;
    if (!o.recorder->raw_fields.empty()) r["fields"] = o.recorder->raw_fields;
    if (o.recorder->api != "json") {
      r["api"] = o.recorder->api;
      if (o.recorder->identity) {
        r["model"] = o.recorder->identity->model;
        r["serial"] = o.recorder->identity->serial;
        if (!o.recorder->identity->firmware.empty()) r["firmware"] = o.recorder->identity->firmware;
      }
      r["disks"] = o.recorder->disks;
      r["channels"] = o.recorder->channels;
      if (o.recorder->clock_drift_s) r["clock_drift_s"] = std::round(*o.recorder->clock_drift_s * 1000) / 1000;
      if (!o.recorder->credentials_error.empty()) r["credentials_error"] = o.recorder->credentials_error;
      for (auto [key, text] : {std::pair<const char*, const std::string*>{"storage_error", &o.recorder->storage_error},
                               {"clock_error", &o.recorder->clock_error},
                               {"recording_error", &o.recorder->recording_error}})
        if (!text->empty()) r[key] = *text;
    }
    d["recorder"] = r;
  }
  if (o.onvif) {
    Json v = {{"url", c.onvif_url}, {"reachable", o.onvif->reachable}};
    if (!o.onvif->error.empty()) v["error"] = o.onvif->error;
    if (o.onvif->clock_drift_s) v["clock_drift_s"] = std::round(*o.onvif->clock_drift_s * 1000) / 1000;
    if (o.onvif->info) {
      v["manufacturer"] = o.onvif->info->manufacturer;
      v["model"] = o.onvif->info->model;
      v["firmware"] = o.onvif->info->firmware;
      v["serial"] = o.onvif->info->serial;
      v["auth"] = o.onvif->auth_used;
    }
    if (!o.onvif->info_error.empty()) v["info_error"] = o.onvif->info_error;
    d["onvif"] = v;
  }
  return f;
}

Json summarize(const std::vector<Finding>& findings, std::size_t register_errors) {
  std::size_t compliant = 0, noncompliant = 0, unknown = 0, expected = 0, live = 0;
  for (const auto& f : findings) {
    if (f.state == "compliant") ++compliant;
    else if (f.state == "noncompliant") ++noncompliant;
    else ++unknown;
    expected += f.details.value("streams", Json::array()).size();
    live += f.details.value("live_cameras", 0);
  }
  Json s = {{"classrooms", findings.size()}, {"compliant", compliant}, {"noncompliant", noncompliant},
            {"unknown", unknown}, {"streams_expected", expected}, {"streams_live", live},
            {"register_errors", register_errors}};
  s["compliant_ratio"] = findings.empty() ? Json(nullptr)
                                          : Json(std::round(10000.0 * compliant / findings.size()) / 10000.0);
  return s;
}

namespace {

class Run final : public RecordingRun, public std::enable_shared_from_this<Run> {
 public:
  Run(AuditContext& ctx, RecordingSettings s, std::function<void(AuditReport)> done)
      // Probes end a little before the core's deadline, so the report (devices that did not
      // answer marked, with "no answer before the audit deadline") is committed in time.
      : io_(ctx.io), http_(ctx.http), deadline_(report_by(ctx.deadline)), log_(ctx.log), settings_(std::move(s)),
        done_(std::move(done)) {}

  void start(const SecretReader& read_secret) {
    classrooms_ = load_register(settings_.register_file, read_secret, report_.input_errors);
    observations_.resize(classrooms_.size());
    for (std::size_t i = 0; i < classrooms_.size(); ++i) {
      const auto& c = classrooms_[i];
      if (!c.invalid.empty()) continue;  // reported unknown with its register error, not probed
      observations_[i].streams.resize(c.streams.size());
      pending_ += c.streams.size() + (c.recorder_url.empty() ? 0 : 1) + (c.onvif_url.empty() ? 0 : 1);
    }
    if (pending_ == 0) {
      asio::post(io_, [self = shared_from_this()] { self->finish(); });
      return;
    }
    auto self = shared_from_this();
    for (std::size_t i = 0; i < classrooms_.size(); ++i) {
      const auto& c = classrooms_[i];
      if (!c.invalid.empty()) continue;
      if (!c.recorder_url.empty()) fetch_recorder(i);
      if (!c.onvif_url.empty()) {
        OnvifTarget t;
        t.url = c.onvif_url;
        if (c.credentials) {
          t.username = c.credentials->username;
          t.password = c.credentials->password;
        }
        t.timeout = settings_.http_timeout;
        t.deadline = deadline_;
        t.verify_tls = settings_.verify_tls;
        t.ca_file = settings_.ca_file;
        probe_onvif(http_, t, [self, i](OnvifResult r) {
          self->observations_[i].onvif = std::move(r);
          self->one_done();
        });
      }
      for (std::size_t k = 0; k < c.streams.size(); ++k) queue_.emplace_back(i, k);
    }
    pump();
  }

  void cancel() override {
    cancelled_ = true;
    for (auto& [id, p] : probes_) p->cancel();
    // The recorder and ONVIF requests too (ctx.http is this audit's own view): a run left
    // waiting for them would never call done, and at shutdown the plugin and the run, which
    // hold each other until then, would never be freed (LeakSanitizer found it).
    http_.cancel_all();
  }

 private:
  void fetch_recorder(std::size_t i) {
    const auto& c = classrooms_[i];
    RecorderTarget t;
    t.url = c.recorder_url;
    t.api = c.recorder_api;
    t.credentials = c.credentials;
    t.timeout = settings_.http_timeout;
    t.deadline = deadline_;
    t.max_response_bytes = settings_.max_response_bytes;
    t.verify_tls = settings_.verify_tls;
    t.ca_file = settings_.ca_file;
    t.paths = settings_.paths;
    t.utc_offset_minutes = settings_.recorder_utc_offset_minutes;
    probe_recorder(http_, std::move(t), [self = shared_from_this(), i](RecorderStatus st) {
      self->observations_[i].recorder = std::move(st);
      self->one_done();
    });
  }

  void pump() {
    while (!queue_.empty() && probes_.size() < settings_.max_parallel) {
      auto [i, k] = queue_.front();
      queue_.pop_front();
      const auto& c = classrooms_[i];
      std::uint64_t id = next_probe_++;
      if (cancelled_) {
        observations_[i].streams[k].error = "cancelled";
        asio::post(io_, [self = shared_from_this()] { self->one_done(); });
        continue;
      }
      auto probe = probe_rtsp(io_, c.streams[k].url, c.camera_credentials, settings_.rtsp, deadline_,
                              // Named copies: clang 14 cannot capture structured bindings.
                              [self = shared_from_this(), ci = i, sk = k, id](StreamResult r) {
                                self->observations_[ci].streams[sk] = std::move(r);
                                self->probes_.erase(id);
                                self->one_done();
                                self->pump();
                              });
      probes_.emplace(id, std::move(probe));
    }
  }

  void one_done() {
    if (--pending_ == 0) finish();
  }

  void finish() {
    for (std::size_t i = 0; i < classrooms_.size(); ++i)
      report_.findings.push_back(judge_classroom(classrooms_[i], observations_[i], settings_));
    report_.summary = summarize(report_.findings, report_.input_errors.size());
    if (log_) {
      log_->info("recording: {} classrooms, {} compliant, {} noncompliant, {} unknown",
                 report_.summary["classrooms"].get<std::size_t>(), report_.summary["compliant"].get<std::size_t>(),
                 report_.summary["noncompliant"].get<std::size_t>(), report_.summary["unknown"].get<std::size_t>());
    }
    auto done = std::move(done_);
    done(std::move(report_));
  }

  asio::io_context& io_;
  HttpClient& http_;
  std::chrono::steady_clock::time_point deadline_;
  std::shared_ptr<spdlog::logger> log_;
  RecordingSettings settings_;
  std::function<void(AuditReport)> done_;
  AuditReport report_;
  std::vector<RecordingClassroom> classrooms_;
  std::vector<ClassroomObservation> observations_;
  std::size_t pending_ = 0;
  std::deque<std::pair<std::size_t, std::size_t>> queue_;
  std::map<std::uint64_t, std::shared_ptr<RtspProbe>> probes_;
  std::uint64_t next_probe_ = 0;
  bool cancelled_ = false;
};

}  // namespace

std::shared_ptr<RecordingRun> run_recording_audit(AuditContext& ctx, const RecordingSettings& settings,
                                                  const SecretReader& read_secret,
                                                  std::function<void(AuditReport)> done) {
  auto run = std::make_shared<Run>(ctx, settings, std::move(done));
  run->start(read_secret);
  return run;
}

}  // namespace campus::recording
