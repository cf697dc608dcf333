// Alerts: the rules of county.toml [alerts], evaluated on the database thread from the county's
// record; their state and their outbox live in the database (CountyDatabase::record_alerts and
// claim_deliveries), so an alert fires once, resolves once and reaches its channels across
// collector restarts. Delivered by the collector through libcurl to WeCom and DingTalk group
// robots and to generic JSON webhooks (docs/county.md "Alerts").
//
//   evaluate_alerts (every [alerts] every): schools, cases, gaps, latest recording reports
//       --> alert_conditions (pure) --> record_alerts: pending / firing / resolved, deliveries queued
//   collector, per channel: claim_deliveries --> delivery_request --> HTTP --> judge_response
//       --> delivery_result (delivered, or queued again with backoff)
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "campus/error.hpp"
#include "campus/http.hpp"
#include "campus/units.hpp"
#include "database.hpp"

namespace campus::county {

// The rules, by the names config and messages use.
inline const std::vector<std::string> kAlertRules = {"offline", "coverage", "recording", "case_overdue", "gap_lost"};

enum class ChannelKind { WeCom, DingTalk, Webhook };

struct AlertChannel {
  std::string name;
  ChannelKind kind = ChannelKind::Webhook;
  std::string url;                     // a robot's URL carries its key: read from url_file when given
  std::optional<std::string> secret;   // DingTalk's signing secret ("加签", SEC...)
  std::vector<std::string> rules;      // empty: every rule
  Millis timeout{10000};
  std::optional<std::filesystem::path> ca_file;
};

struct AlertRules {
  std::vector<std::string> rules = kAlertRules;  // the rules that run
  Millis every{30000};                           // evaluation period
  Millis offline_after{std::chrono::minutes(30)};  // offline (or nothing received) longer than this
  double coverage_below = 0.9;                   // a room type's fiber coverage under this share
  Millis recording_failing_for{std::chrono::hours(2)};  // a recording classroom failing a check this long
  Millis retry_min{10000}, retry_max{std::chrono::hours(1)};
  Millis rate_limit_wait{60000};                 // after a robot says "too many" (20 a minute)
  int batch_max = 10;                            // alerts in one message at most
  std::string language = "zh";                   // of the messages
  std::string dashboard_url;                     // a link in each message when set
  std::vector<AlertChannel> channels;

  bool runs(const std::string& rule) const;
  std::vector<AlertRoute> routes() const;
};

// What the rules read, as the database gives it.
struct AlertInputs {
  std::vector<Json> schools;            // CountyDatabase::schools
  std::vector<Json> open_cases;         // CountyDatabase::cases("open", "")
  std::vector<Json> gaps;               // CountyDatabase::gaps("")
  std::map<std::string, Json> recording_failing;  // school -> findings_needing_attention(..., "recording")
};

// What is wrong now by the rules (pure).
std::vector<AlertCondition> alert_conditions(const AlertRules& rules, const AlertInputs& in, SystemTime now);

// Reads what the rules need and records the pass. On the database thread.
Result<AlertPass> evaluate_alerts(CountyDatabase& db, const AlertRules& rules,
                                  const std::vector<std::string>& register_codes, SystemTime now);

// The HTTP request that tells `channel` about `deliveries` (one message for all of them).
HttpRequest delivery_request(const AlertChannel& channel, const std::vector<AlertDelivery>& deliveries,
                             const std::string& county_code, const std::string& county_name, const AlertRules& rules,
                             SystemTime now);

// What a channel's answer means.
struct DeliveryVerdict {
  bool delivered = false;
  bool rate_limited = false;           // wait at least a minute (the robots allow 20 messages a minute)
  std::optional<Millis> retry_after;   // the server's Retry-After
  std::string error;                   // why not, with what to fix, for the log and the history page
};
DeliveryVerdict judge_response(const AlertChannel& channel, const Result<HttpResponse>& response);

// DingTalk's signature of a request at `timestamp_ms`: base64(HMAC-SHA256(secret,
// "{timestamp}\n{secret}")), URL-encoded for the query string.
std::string dingtalk_sign(const std::string& secret, std::int64_t timestamp_ms);

const char* channel_kind_name(ChannelKind kind);

}  // namespace campus::county
