// The recorder status calls and how each answer is read.
#include "recorder_probe.hpp"

#include <algorithm>
#include <memory>
#include <vector>

#include "dahua_cgi.hpp"
#include "hikvision_isapi.hpp"
#include "rtsp_message.hpp"

namespace campus::recording {
namespace {

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

// What one vendor call reads, and where its failure goes.
enum class Part { Identity, Storage, Clock, Recording };

struct Call {
  std::string_view path;
  Part part;
};

std::vector<Call> calls_of(RecorderApi api) {
  switch (api) {
    case RecorderApi::Hikvision:
      return {{hikvision::kDeviceInfo, Part::Identity}, {hikvision::kStorage, Part::Storage},
              {hikvision::kTime, Part::Clock}, {hikvision::kWorkingStatus, Part::Recording}};
    case RecorderApi::Dahua:
      return {{dahua::kSystemInfo, Part::Identity}, {dahua::kStorage, Part::Storage}, {dahua::kTime, Part::Clock},
              {dahua::kRecordMode, Part::Recording}};
    case RecorderApi::Json: break;
  }
  return {};
}

class Probe : public std::enable_shared_from_this<Probe> {
 public:
  Probe(HttpClient& http, RecorderTarget t, std::function<void(RecorderStatus)> done)
      : http_(http), t_(std::move(t)), done_(std::move(done)), calls_(calls_of(t_.api)) {
    st_.api = to_string(t_.api);
    // A base URL given with a trailing slash still joins to one slash.
    while (!t_.url.empty() && t_.url.back() == '/' && t_.api != RecorderApi::Json) t_.url.pop_back();
  }

  void start() {
    if (t_.api == RecorderApi::Json) return fetch(t_.url, [self = shared_from_this()](Result<HttpResponse> res) {
      self->json_answer(std::move(res));
    });
    next();
  }

 private:
  // A 401 with stale=TRUE (the nonce expired between challenge and answer) is answered again
  // with the new nonce by libcurl itself, inside the same transfer.
  HttpRequest request(const std::string& url) const {
    HttpRequest r;
    r.url = url;
    r.headers = {{"Accept", t_.api == RecorderApi::Json ? "application/json" : "*/*"}};
    auto left = std::chrono::duration_cast<Millis>(t_.deadline - Clock::now());
    r.timeout = std::max(Millis(1), std::min(Millis(t_.timeout), left));
    r.max_response_bytes = t_.max_response_bytes;
    r.verify_tls = t_.verify_tls;
    if (t_.ca_file) r.ca_file = *t_.ca_file;
    if (t_.credentials) {
      // The vendor APIs speak Digest; the JSON page whatever it asks for.
      r.auth = t_.api == RecorderApi::Json ? HttpAuth::Any : HttpAuth::Digest;
      r.username = t_.credentials->username;
      r.password = t_.credentials->password;
    }
    return r;
  }

  void fetch(const std::string& url, std::function<void(Result<HttpResponse>)> then) {
    sent_ = WallClock::now();
    http_.fetch(request(url), std::move(then));
  }

  void json_answer(Result<HttpResponse> res) {
    if (!res.ok()) st_.error = res.error().what;
    else if (res->status == 401) st_.error = "status URL answered HTTP 401: credentials missing or rejected";
    else st_ = parse_recorder_status(res->status, res->body, t_.paths);
    finish();
  }

  void next() {
    if (index_ >= calls_.size()) return finish();
    std::string url = t_.url + std::string(calls_[index_].path);
    fetch(url, [self = shared_from_this(), url](Result<HttpResponse> res) { self->answer(url, std::move(res)); });
  }

  void answer(const std::string& url, Result<HttpResponse> res) {
    const Part part = calls_[index_].part;
    auto failed = [&](const std::string& why) {
      std::string what = url + ": " + why;
      switch (part) {
        case Part::Identity: st_.error = what; break;
        case Part::Storage: st_.storage_error = what; break;
        case Part::Clock: st_.clock_error = what; break;
        case Part::Recording: st_.recording_error = what; break;
      }
    };
    if (!res.ok()) {
      failed(res.error().what);
      // The recorder did not answer its first call: it is down, nothing else is asked.
      if (part == Part::Identity) return finish();
      ++index_;
      return next();
    }
    const HttpResponse& r = *res;
    if (r.status == 401 || r.status == 403) {
      std::optional<std::string> lock =
          t_.api == RecorderApi::Hikvision ? hikvision::account_lock(r.body) : dahua::account_lock(r.body);
      if (lock) return refused("the recorder has locked the account " + user() + " (" + *lock + ")", url);
      if (r.status == 401)
        return refused(t_.credentials ? "the recorder refused user " + user() + " (HTTP 401 after Digest)"
                                      : "the recorder requires credentials (HTTP 401) and the register gives none",
                       url);
    }
    if (r.status < 200 || r.status > 299) {
      std::optional<std::string> said =
          t_.api == RecorderApi::Hikvision ? hikvision::response_status(r.body) : dahua::error_body(r.body);
      failed("HTTP " + std::to_string(r.status) + (said && !said->empty() ? ": " + *said : "") +
             (part == Part::Identity ? " (check that recorder_url is the recorder's base address and recorder_api is right)"
                                     : ""));
    } else {
      read(part, url, r);
    }
    if (part == Part::Identity && !st_.answered) return finish();
    ++index_;
    next();
  }

  // One 2xx answer of `part`.
  void read(Part part, const std::string& url, const HttpResponse& r) {
    const bool hik = t_.api == RecorderApi::Hikvision;
    auto because = [&](const Error& e) { return url + ": " + e.what; };
    switch (part) {
      case Part::Identity: {
        auto id = hik ? hikvision::parse_device_info(r.body) : dahua::parse_system_info(r.body);
        if (!id.ok()) st_.error = because(id.error());
        else {
          st_.answered = true;
          st_.identity = *id;
        }
        break;
      }
      case Part::Storage: {
        auto disks = hik ? hikvision::parse_storage(r.body) : dahua::parse_storage(r.body);
        if (!disks.ok()) st_.storage_error = because(disks.error());
        else apply_disks(*disks, st_);
        break;
      }
      case Part::Clock: {
        auto device = hik ? hikvision::parse_time(r.body, t_.utc_offset_minutes)
                          : dahua::parse_time(r.body, t_.utc_offset_minutes);
        if (!device.ok()) {
          st_.clock_error = because(device.error());
          break;
        }
        // Compared with the agent's clock at the middle of the round trip.
        auto mid = sent_ + (WallClock::now() - sent_) / 2;
        st_.clock_drift_s = *device - std::chrono::duration<double>(mid.time_since_epoch()).count();
        break;
      }
      case Part::Recording: {
        auto channels = hik ? hikvision::parse_working_status(r.body) : dahua::parse_record_mode(r.body);
        if (!channels.ok()) st_.recording_error = because(channels.error());
        else apply_channels(*channels, st_);
        break;
      }
    }
  }

  std::string user() const { return t_.credentials ? "\"" + printable(t_.credentials->username, 40) + "\"" : "(none)"; }

  // The credentials were refused: stop here, every further call would count as another wrong
  // password against the recorder's lock-out.
  void refused(const std::string& why, const std::string& url) {
    st_.credentials_error = url + ": " + why;
    finish();
  }

  void finish() {
    auto done = std::move(done_);
    if (done) done(std::move(st_));
  }

  HttpClient& http_;
  RecorderTarget t_;
  std::function<void(RecorderStatus)> done_;
  std::vector<Call> calls_;
  std::size_t index_ = 0;
  WallClock::time_point sent_;
  RecorderStatus st_;
};

}  // namespace

void probe_recorder(HttpClient& http, RecorderTarget target, std::function<void(RecorderStatus)> done) {
  std::make_shared<Probe>(http, std::move(target), std::move(done))->start();
}

}  // namespace campus::recording
