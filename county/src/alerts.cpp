// Alerts (see alerts.hpp).
#include "alerts.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "core/envelope.hpp"
#include "county_view.hpp"

namespace campus::county {
namespace {

std::string text_of(const Json& v, const std::string& none = "") {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return none;
  return v.dump();
}

std::string name_of(const Json& school) {
  const std::string code = school.value("school", "");
  const std::string name = text_of(school.value("name", Json(nullptr)));
  return name.empty() || name == code ? code : name + " (" + code + ")";
}

// A UTF-8 string cut to at most `max` bytes on a character boundary, "…" added when cut.
std::string clip(const std::string& s, std::size_t max) { return s.size() <= max ? s : utf8_prefix(s, max) + "…"; }

std::string pct(double v) { return std::to_string(static_cast<int>(std::floor(v * 100 + 0.5))) + "%"; }

// How long, as an operator reads it: whole minutes ("2h5m"), seconds under a minute.
std::string human_duration(Millis d) {
  if (d < std::chrono::minutes(1)) return format_duration(std::chrono::floor<std::chrono::seconds>(d));
  return format_duration(std::chrono::floor<std::chrono::minutes>(d));
}

std::optional<SystemTime> time_of(const Json& v) {
  return v.is_string() ? parse_rfc3339(v.get<std::string>()) : std::nullopt;
}

struct RoomType {
  const char* key;
  const char* en;
  const char* zh;
};
constexpr RoomType kRoomTypes[] = {
    {"classroom", "classrooms", "教室"}, {"function_room", "function rooms", "功能室"}, {"office", "offices", "办公室"}};

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += {'%', hex[c >> 4], hex[c & 15]};
  }
  return out;
}

// A URL without its query and user part: robots carry their key in the query, never logged.
std::string url_for_log(const std::string& url) {
  std::string u = url.substr(0, url.find_first_of("?#"));
  const auto scheme = u.find("://");
  if (const auto at = u.find('@'); scheme != std::string::npos && at != std::string::npos && at > scheme)
    u = u.substr(0, scheme + 3) + u.substr(at + 1);
  return u;
}

AlertCondition condition(std::string key, const char* rule, const std::string& school, std::string subject) {
  AlertCondition c;
  c.key = std::move(key), c.rule = rule, c.school = school, c.subject = std::move(subject);
  return c;
}

}  // namespace

bool AlertRules::runs(const std::string& rule) const {
  return std::find(rules.begin(), rules.end(), rule) != rules.end();
}

std::vector<AlertRoute> AlertRules::routes() const {
  std::vector<AlertRoute> out;
  for (const auto& c : channels) out.push_back({c.name, c.rules});
  return out;
}

const char* channel_kind_name(ChannelKind kind) {
  switch (kind) {
    case ChannelKind::WeCom: return "wecom";
    case ChannelKind::DingTalk: return "dingtalk";
    case ChannelKind::Webhook: return "webhook";
  }
  return "webhook";
}

std::vector<AlertCondition> alert_conditions(const AlertRules& rules, const AlertInputs& in, SystemTime now) {
  const bool zh = rules.language == "zh";
  std::vector<AlertCondition> out;
  std::map<std::string, std::string> names;
  for (const auto& s : in.schools) names[s.value("school", "")] = name_of(s);
  auto name = [&](const std::string& code) {
    auto it = names.find(code);
    return it == names.end() ? code : it->second;
  };

  for (const auto& rec : in.schools) {
    if (!rec.value("seen", false)) continue;  // never heard from: the quality page lists it, no alert
    const std::string code = rec["school"].get<std::string>();
    if (rules.runs("offline")) {
      const auto state_at = time_of(rec.value("state_at", Json(nullptr)));
      const auto received = time_of(rec.value("last_received", Json(nullptr)));
      const bool offline = rec.value("online", Json(nullptr)) == false && state_at && now - *state_at >= rules.offline_after;
      const bool silent = received && now - *received >= rules.offline_after;
      if (offline || silent) {
        AlertCondition c = condition("offline/" + code, "offline", code, "");
        const SystemTime since = offline ? *state_at : *received;
        const std::string dur = human_duration(std::chrono::duration_cast<Millis>(now - since));
        const std::string at = rfc3339(since, "+00:00");
        const std::string reason = text_of(rec.value("state_reason", Json(nullptr)));
        if (offline)
          c.summary = zh ? name(code) + "：离线 " + dur + "（自 " + at + (reason.empty() ? "" : "，" + reason) + "）"
                         : name(code) + ": offline for " + dur + " (since " + at + (reason.empty() ? "" : ", " + reason) + ")";
        else
          c.summary = zh ? name(code) + "：" + dur + " 未收到任何消息（最后 " + at + "）"
                         : name(code) + ": nothing received for " + dur + " (last at " + at + ")";
        c.detail = {{"since", at}, {"online", rec.value("online", Json(nullptr))}, {"reason", reason}};
        out.push_back(std::move(c));
      }
    }
    if (rules.runs("coverage")) {
      const Json row = school_row_of_record(rec);
      for (const auto& t : kRoomTypes) {
        const Json v = row.value("fiber", Json::object()).value(t.key, Json(nullptr));
        if (!v.is_number() || v.get<double>() >= rules.coverage_below) continue;
        AlertCondition c = condition("coverage/" + code + "/" + t.key, "coverage", code, t.key);
        const double share = v.get<double>();
        c.summary = zh ? name(code) + "：" + t.zh + "光纤覆盖率 " + pct(share) + "，低于 " + pct(rules.coverage_below)
                       : name(code) + ": fiber coverage of " + t.en + " " + pct(share) + ", below " + pct(rules.coverage_below);
        c.detail = {{"coverage", share}, {"threshold", rules.coverage_below}};
        out.push_back(std::move(c));
      }
    }
  }
  if (rules.runs("recording"))
    for (const auto& [code, findings] : in.recording_failing)
      for (const auto& f : findings) {
        const std::string room = text_of(f.value("subject", Json(nullptr)), "?");
        AlertCondition c = condition("recording/" + code + "/" + room, "recording", code, room);
        const std::string why = text_of(f.value("state", Json(nullptr))) +
                                (f.value("reason", Json(nullptr)).is_null() ? "" : ": " + text_of(f["reason"]));
        c.summary = zh ? name(code) + "：录播教室 " + room + " 未通过检查（" + why + "）"
                       : name(code) + ": recording classroom " + room + " fails a check (" + why + ")";
        c.detail = f;
        c.hold = rules.recording_failing_for;
        out.push_back(std::move(c));
      }
  if (rules.runs("case_overdue"))
    for (const auto& k : in.open_cases) {
      if (k.value("overdue", Json(nullptr)) != true) continue;
      const std::string code = k.value("school", ""), id = k.value("id", "");
      AlertCondition c = condition("case/" + code + "/" + id, "case_overdue", code, id);
      const Json details = k.value("details", Json::object());
      const std::string deadline = text_of(details.value("deadline", Json(nullptr)));
      const std::string subject = text_of(k.value("subject", Json(nullptr)));
      c.summary = zh ? name(code) + "：控辍案件 " + id + "（" + subject + "）已逾期" + (deadline.empty() ? "" : "，期限 " + deadline)
                     : name(code) + ": absence case " + id + " (" + subject + ") is overdue" +
                           (deadline.empty() ? "" : ", deadline " + deadline);
      c.detail = {{"stage", k.value("stage", Json(nullptr))}, {"opened_at", k.value("opened_at", Json(nullptr))},
                  {"deadline", deadline.empty() ? Json(nullptr) : Json(deadline)}};
      out.push_back(std::move(c));
    }
  if (rules.runs("gap_lost"))
    for (const auto& g : in.gaps) {
      const std::int64_t lost = g.value("lost", std::int64_t{0});
      if (lost <= 0) continue;
      const std::string code = g.value("school", "");
      const std::string range = std::to_string(g.value("from_seq", std::int64_t{0})) + ".." +
                                std::to_string(g.value("to_seq", std::int64_t{0}));
      AlertCondition c = condition("gap/" + std::to_string(g.value("id", std::int64_t{0})), "gap_lost", code, range);
      const std::string reason = text_of(g.value("lost_reason", Json(nullptr)));
      c.summary = zh ? name(code) + "：序号 " + range + " 中 " + std::to_string(lost) + " 条消息已丢失（" + reason + "）"
                     : name(code) + ": " + std::to_string(lost) + " message(s) of seq " + range + " lost (" + reason + ")";
      c.detail = {{"lost", lost}, {"reason", reason}, {"store", g.value("store", Json(nullptr))}};
      c.one_shot = true;
      out.push_back(std::move(c));
    }
  for (auto& c : out) c.summary = clip(c.summary, 300);
  return out;
}

Result<AlertPass> evaluate_alerts(CountyDatabase& db, const AlertRules& rules,
                                  const std::vector<std::string>& register_codes, SystemTime now) {
  AlertInputs in;
  auto schools = db.schools(register_codes);
  if (!schools.ok()) return schools.error();
  in.schools = std::move(schools.value());
  if (rules.runs("case_overdue")) {
    auto cases = db.cases("open", "");
    if (!cases.ok()) return cases.error();
    in.open_cases = std::move(cases.value());
  }
  if (rules.runs("gap_lost")) {
    auto gaps = db.gaps("");
    if (!gaps.ok()) return gaps.error();
    in.gaps = std::move(gaps.value());
  }
  if (rules.runs("recording"))
    for (const auto& rec : in.schools) {
      // Only schools whose latest summary says a classroom is not compliant: their full report
      // names which and why.
      const Json row = school_row_of_record(rec);
      const Json r = row.value("recording", Json::object());
      const Json compliant = r.value("compliant", Json(nullptr)), total = r.value("total", Json(nullptr));
      if (!compliant.is_number() || !total.is_number() || compliant.get<double>() >= total.get<double>()) continue;
      const std::string code = rec["school"].get<std::string>();
      auto latest = db.latest_reports(code);
      if (!latest.ok()) return latest.error();
      Json failing = findings_needing_attention(latest.value(), "recording");
      if (!failing.empty()) in.recording_failing[code] = std::move(failing);
    }
  return db.record_alerts(alert_conditions(rules, in, now), rules.routes(), now);
}

std::string dingtalk_sign(const std::string& secret, std::int64_t timestamp_ms) {
  const std::string to_sign = std::to_string(timestamp_ms) + "\n" + secret;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(to_sign.data()),
       to_sign.size(), mac, &len);
  std::string b64(4 * ((len + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), mac, static_cast<int>(len));
  b64.resize(static_cast<std::size_t>(n));
  return url_encode(b64);
}

HttpRequest delivery_request(const AlertChannel& channel, const std::vector<AlertDelivery>& deliveries,
                             const std::string& county_code, const std::string& county_name, const AlertRules& rules,
                             SystemTime now) {
  const bool zh = rules.language == "zh";
  HttpRequest req;
  req.method = "POST";
  req.url = channel.url;
  req.timeout = channel.timeout;
  req.ca_file = channel.ca_file;
  req.max_response_bytes = 64 * 1024;
  req.headers = {{"Content-Type", "application/json; charset=utf-8"}};
  // Each message carries its deliveries' ids: after a crash between sending and recording the
  // one repeated message says it is a repeat of the same alert (and a webhook can drop it).
  std::string ids;
  for (const auto& d : deliveries) ids += (ids.empty() ? "" : ",") + std::to_string(d.id);
  if (channel.kind == ChannelKind::Webhook) {
    Json alerts = Json::array();
    for (const auto& d : deliveries)
      alerts.push_back({{"id", "campus-alert-" + std::to_string(d.alert) + "-" + d.transition}, {"delivery", d.id},
                        {"alert", d.alert}, {"state", d.transition}, {"rule", d.rule}, {"school", d.school},
                        {"subject", d.subject}, {"summary", d.summary}, {"detail", d.detail},
                        {"since", d.since.empty() ? Json(nullptr) : Json(d.since)},
                        {"fired_at", d.fired_at.empty() ? Json(nullptr) : Json(d.fired_at)},
                        {"resolved_at", d.transition == "resolved" && !d.resolved_at.empty() ? Json(d.resolved_at) : Json(nullptr)},
                        {"attempt", d.attempts}});
    req.headers.emplace_back("Idempotency-Key", "campus-deliveries-" + ids);
    req.body = Json{{"source", "campus-county"}, {"county", county_code}, {"county_name", county_name},
                    {"sent_at", rfc3339(now, "+00:00")}, {"alerts", alerts},
                    {"dashboard", rules.dashboard_url.empty() ? Json(nullptr) : Json(rules.dashboard_url)}}
                   .dump();
    return req;
  }
  // The robots: markdown, one line per alert; the title carries 告警 / "alert", which is the
  // keyword to give a robot whose security setting is "custom keywords".
  const std::string title = county_name + (zh ? " 校园监测告警" : " campus alert");
  std::string text;
  for (const auto& d : deliveries) {
    const bool firing = d.transition == "firing";
    std::string tag;
    if (channel.kind == ChannelKind::WeCom)
      tag = firing ? std::string("<font color=\"warning\">") + (zh ? "告警" : "FIRING") + "</font>"
                   : std::string("<font color=\"info\">") + (zh ? "恢复" : "RESOLVED") + "</font>";
    else
      tag = firing ? (zh ? "**【告警】**" : "**[FIRING]**") : (zh ? "**【恢复】**" : "**[RESOLVED]**");
    text += (channel.kind == ChannelKind::WeCom ? "> " : "- ") + tag + " " + d.summary;
    if (!firing && !d.resolved_at.empty()) text += zh ? "（恢复于 " + d.resolved_at + "）" : " (resolved " + d.resolved_at + ")";
    text += " `#" + std::to_string(d.alert) + "`\n";
  }
  if (!rules.dashboard_url.empty()) text += std::string("\n[") + (zh ? "打开看板" : "Open the dashboard") + "](" + rules.dashboard_url + ")\n";
  if (channel.kind == ChannelKind::WeCom) {
    // WeCom's markdown content is at most 4096 bytes.
    req.body = Json{{"msgtype", "markdown"}, {"markdown", {{"content", clip("**" + title + "**\n" + text, 4000)}}}}.dump();
  } else {
    req.body = Json{{"msgtype", "markdown"}, {"markdown", {{"title", title}, {"text", clip("#### " + title + "\n\n" + text, 18000)}}}}
                   .dump();
    if (channel.secret) {
      const auto ts = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
      req.url += std::string(req.url.find('?') == std::string::npos ? "?" : "&") + "timestamp=" + std::to_string(ts) +
                 "&sign=" + dingtalk_sign(*channel.secret, ts);
    }
  }
  return req;
}

DeliveryVerdict judge_response(const AlertChannel& channel, const Result<HttpResponse>& response) {
  DeliveryVerdict v;
  const std::string who = std::string("alert channel ") + channel.name + " (" + channel_kind_name(channel.kind) + ")";
  if (!response.ok()) {
    v.error = who + ": " + url_for_log(channel.url) + ": " + response.error().what;
    return v;
  }
  const HttpResponse& r = response.value();
  if (auto it = r.headers.find("retry-after"); it != r.headers.end()) {
    try {
      v.retry_after = Millis(std::stoll(it->second) * 1000);
    } catch (const std::exception&) {
    }
  }
  const std::string body = clip(r.body, 300);
  if (r.status == 429) {
    v.rate_limited = true;
    v.error = who + ": HTTP 429 (too many requests): " + body;
    return v;
  }
  if (r.status < 200 || r.status > 299) {
    v.error = who + ": HTTP " + std::to_string(r.status) + ": " + body +
              (r.status >= 500 ? " (the server's trouble: retried)" : " (check the channel's url)");
    return v;
  }
  if (channel.kind == ChannelKind::Webhook) {
    v.delivered = true;
    return v;
  }
  // The robots answer HTTP 200 with {"errcode": N, "errmsg": "..."}; 0 is success.
  const Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("errcode") || !j["errcode"].is_number_integer()) {
    v.error = who + ": not a robot's answer (no errcode): " + body + " (check the channel's url)";
    return v;
  }
  const std::int64_t code = j["errcode"].get<std::int64_t>();
  if (code == 0) {
    v.delivered = true;
    return v;
  }
  const std::string msg = text_of(j.value("errmsg", Json(nullptr)));
  std::string fix;
  if (channel.kind == ChannelKind::WeCom) {
    if (code == 45009) v.rate_limited = true, fix = "more than 20 messages a minute to this robot: retried after a minute";
    else if (code == 93000) fix = "the robot's key is wrong or the robot was removed: check url (…/webhook/send?key=...)";
    else if (code == -1) fix = "WeCom is busy: retried";
    else fix = "see WeCom's error code list";
  } else {
    if (code == 130101) v.rate_limited = true, fix = "more than 20 messages a minute to this robot: retried after a minute";
    else if (code == 310000)
      fix = "the signature, the keywords or the IP list do not match: check secret_file (SEC...), the robot's keywords "
            "(messages carry \"告警\"/\"alert\") and its IP list";
    else if (code == 300001) fix = "the access_token is wrong or the robot was removed: check url (…/robot/send?access_token=...)";
    else fix = "see DingTalk's error code list";
  }
  v.error = who + ": errcode " + std::to_string(code) + " " + msg + " (" + fix + ")";
  return v;
}

}  // namespace campus::county
