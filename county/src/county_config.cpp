// county.toml (see county_config.hpp; every key documented in config/county.toml).
#include "county_config.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "campus/asio.hpp"
#include "campus/config_table.hpp"
#include "campus/csv.hpp"
#include "core/codes.hpp"
#include "core/envelope.hpp"

namespace campus::county {
namespace {

const Millis kYear = Millis(std::int64_t(366) * 86'400'000);

void read_register(CountyConfig& c, const std::filesystem::path& file, Errors& errors) {
  auto table = read_csv_file(file, {"code"});
  if (!table.ok()) {
    errors.push_back(table.error());
    return;
  }
  for (const auto& e : table->errors) errors.push_back(e);
  std::map<std::string, std::size_t> seen;
  for (const auto& row : table->rows) {
    RegisteredSchool s{row.get("code"), row.get("name"), row.get("name_en")};
    if (auto bad = code_problem(s.code, c.county)) {
      errors.push_back({row.where("code"), *bad, "school codes are the CN of each school's certificate (scripts/make-certs)"});
      continue;
    }
    if (auto [at, added] = seen.emplace(s.code, row.line); !added) {
      errors.push_back({row.where("code"), "school " + s.code + " is listed twice (first on line " +
                                               std::to_string(at->second) + ")",
                        "keep one row per school"});
      continue;
    }
    c.schools.push_back(std::move(s));
  }
}

}  // namespace

CountyConfigLoad load_county_config(const std::filesystem::path& file) {
  CountyConfigLoad out;
  CountyConfig& c = out.config;
  Errors& errors = out.errors;
  c.file = file;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    errors.push_back({file.string(), "cannot read the configuration file: " + std::string(std::strerror(errno)),
                      "create it from config/county.toml, or give another file with --config PATH"});
    return out;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  toml::table raw;
  try {
    raw = toml::parse(ss.str(), file.string());
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    std::string where = file.string();
    if (b) where += ":" + std::to_string(b.line) + ":" + std::to_string(b.column);
    errors.push_back({where, "not valid TOML: " + std::string(e.description()), ""});
    return out;
  }
  static const toml::table empty;
  TableReader top(raw, "", file, errors);
  auto section = [&](const char* name) -> const toml::table& {
    const toml::table* t = top.table(name);
    return t ? *t : empty;
  };

  {
    TableReader r(section("county"), "county", file, errors);
    c.county = r.required_string("code");
    if (!c.county.empty())
      if (auto bad = code_syntax_problem(c.county, "county code")) r.error("code", *bad, "e.g. code = \"zhenkang\"");
    c.name = r.string("name", c.county);
    c.timezone_offset = r.string("timezone", c.timezone_offset);
    if (!parse_utc_offset(c.timezone_offset))
      r.error("timezone", "expected a UTC offset like \"+08:00\", got \"" + c.timezone_offset + "\"");
    c.register_file = r.optional_path("register", true);
    c.log_level = r.choice("log_level", c.log_level, {"trace", "debug", "info", "warn", "error"});
    r.finish();
  }
  {
    auto& m = c.mqtt;
    TableReader r(section("mqtt"), "mqtt", file, errors);
    m.host = r.string("host", m.host);
    m.insecure = r.boolean("insecure", m.insecure);
    m.port = static_cast<std::uint16_t>(r.integer("port", m.insecure ? 1883 : 8883, 1, 65535));
    if (!m.insecure && !r.optional_string("ca_file"))
      r.error("", "mqtt.ca_file is required unless insecure = true", "set ca_file to the county CA, e.g. \"/etc/campus-county/ca.crt\"");
    m.ca_file = r.path("ca_file", {}, true);
    m.cert_file = r.path("cert_file", {}, true);
    if (auto key = r.optional_path("key_file", true)) {
      m.key_file = *key;
      if (auto s = read_secret_file(*key); !s) r.error("key_file", s.error().what + ": " + key->string(), s.error().fix);
    }
    if (!m.cert_file.empty() && m.key_file.empty()) r.error("cert_file", "a client certificate needs its key", "set key_file too");
    m.username = r.string("username", m.username);
    if (auto pw = r.secret_file("password_file", false)) m.password = *pw;
    m.verify_hostname = r.boolean("verify_hostname", m.verify_hostname);
    m.client_id = r.string("client_id", "campus-county-" + c.county);
    m.live_client_id = r.string("live_client_id", m.client_id + "-live");
    if (m.client_id == m.live_client_id) r.error("live_client_id", "must differ from client_id", "leave it unset");
    m.session_expiry = r.duration("session_expiry", m.session_expiry, Millis(60'000), Millis(std::int64_t(4294967295) * 1000));
    m.keep_alive = r.duration("keep_alive", m.keep_alive, Millis(1000), Millis(65'535'000));
    m.receive_maximum = static_cast<int>(r.integer("receive_maximum", m.receive_maximum, 1, 65535));
    m.connect_timeout = r.duration("connect_timeout", m.connect_timeout, Millis(100), Millis(600'000));
    m.reconnect_min = r.duration("reconnect_min", m.reconnect_min, Millis(10), Millis(3'600'000));
    m.reconnect_max = r.duration("reconnect_max", m.reconnect_max, Millis(10), Millis(86'400'000));
    if (m.reconnect_max < m.reconnect_min)
      r.error("reconnect_max", "must not be shorter than reconnect_min (" + format_duration(m.reconnect_min) + ")");
    r.finish();
  }
  {
    auto& d = c.database;
    TableReader r(section("database"), "database", file, errors);
    d.url = r.string("url", "");
    if (!d.url.empty()) {
      if (d.url.rfind("postgresql://", 0) != 0 && d.url.rfind("postgres://", 0) != 0)
        r.error("url", "is not a PostgreSQL URL: \"" + d.url + "\"",
                "write it as postgresql://USER@HOST:PORT/DATABASE, or remove it to use the SQLite file (path)");
      else if (const auto at = d.url.find('@'); at != std::string::npos &&
                                                 d.url.substr(0, at).find(':', d.url.find("//") + 2) != std::string::npos)
        r.error("url", "carries a password", "remove it from the URL and put it in a file named by password_file (mode 0600)");
    }
    if (auto pw = r.secret_file("password_file", false)) d.password = *pw;
    d.path = r.path("path", d.path, false);
    d.synchronous_full = r.choice("synchronous", "full", {"full", "normal"}) == "full";
    d.batch_max = static_cast<int>(r.integer("batch_max", d.batch_max, 1, 100000));
    r.finish();
  }
  {
    TableReader r(section("ingest"), "ingest", file, errors);
    c.ingest.max_payload = r.size("max_payload", c.ingest.max_payload);
    if (c.ingest.max_payload < 4096 || c.ingest.max_payload > (256ull << 20))
      r.error("max_payload", "must be between 4KiB and 256MiB, got " + format_size(c.ingest.max_payload));
    c.ingest.max_pending = r.size("max_pending", c.ingest.max_pending);
    if (c.ingest.max_pending < c.ingest.max_payload)
      r.error("max_pending", "must be at least max_payload (" + format_size(c.ingest.max_payload) + ")");
    c.ingest.quarantine_log_every = r.duration("quarantine_log_every", c.ingest.quarantine_log_every, Millis(0), kYear);
    r.finish();
  }
  {
    auto& p = c.repair;
    TableReader r(section("repair"), "repair", file, errors);
    p.enabled = r.boolean("enabled", p.enabled);
    p.reorder_grace = r.duration("reorder_grace", p.reorder_grace, Millis(0), Millis(86'400'000));
    p.tail_wait_max = r.duration("tail_wait_max", p.tail_wait_max, Millis(0), Millis(7 * 86'400'000));
    p.request_timeout = r.duration("request_timeout", p.request_timeout, Millis(1000), Millis(86'400'000));
    p.max_schools = static_cast<int>(r.integer("max_schools", p.max_schools, 1, 100000));
    p.max_range = r.integer("max_range", p.max_range, 1, 10000);
    p.backoff_min = r.duration("backoff_min", p.backoff_min, Millis(100), Millis(86'400'000));
    p.backoff_max = r.duration("backoff_max", p.backoff_max, Millis(100), Millis(7 * 86'400'000));
    if (p.backoff_max < p.backoff_min)
      r.error("backoff_max", "must not be shorter than backoff_min (" + format_duration(p.backoff_min) + ")");
    p.requester = r.string("requester", p.requester);
    if (auto bad = code_syntax_problem(p.requester, "requester"))
      r.error("requester", *bad + " (it is a topic level: .../reply/{requester})", "e.g. \"collector\"");
    c.repair_tick = r.duration("tick", c.repair_tick, Millis(50), Millis(3'600'000));
    r.finish();
  }
  {
    auto& h = c.history;
    TableReader r(section("history"), "history", file, errors);
    h.keep_reports = r.duration("keep_reports", h.keep_reports, Millis(86'400'000), Millis(std::int64_t(3650) * 86'400'000));
    h.keep_history = r.duration("keep_history", h.keep_history, Millis(86'400'000), Millis(std::int64_t(3650) * 86'400'000));
    h.health_every = r.duration("health_every", h.health_every, Millis(0), Millis(86'400'000));
    h.keep_quarantine = r.duration("keep_quarantine", h.keep_quarantine, Millis(86'400'000), Millis(std::int64_t(3650) * 86'400'000));
    c.silent_after = r.duration("silent_after", c.silent_after, Millis(1000), Millis(std::int64_t(365) * 86'400'000));
    c.status_every = r.duration("status_every", c.status_every, Millis(100), Millis(3'600'000));
    r.finish();
  }
  {
    auto& d = c.dashboard;
    TableReader r(section("dashboard"), "dashboard", file, errors);
    const std::string listen = r.string("listen", "");
    if (!listen.empty()) {
      const auto colon = listen.rfind(':');
      std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      boost::system::error_code ec;
      const auto address = asio::ip::make_address(host, ec);
      long port = -1;
      try {
        std::size_t used = 0;
        port = colon == std::string::npos ? -1 : std::stol(listen.substr(colon + 1), &used);
        if (used != listen.size() - colon - 1) port = -1;
      } catch (const std::exception&) {
        port = -1;
      }
      if (ec || port < 0 || port > 65535) {
        r.error("listen", "expected ADDRESS:PORT with an IP address, got \"" + listen + "\"",
                "e.g. listen = \"127.0.0.1:8480\" (or remove it: no dashboard)");
      } else {
        d.enabled = true;
        d.host = host;
        d.port = static_cast<std::uint16_t>(port);
        d.loopback = address.is_loopback();
      }
    }
    d.accounts = r.path("accounts", d.accounts, false);
    d.session_lifetime = r.duration("session_lifetime", d.session_lifetime, Millis(1000), Millis(std::int64_t(30) * 86'400'000));
    if (auto cert = r.optional_path("tls_cert", true)) d.tls_cert = *cert;
    if (auto key = r.optional_path("tls_key", true)) {
      d.tls_key = *key;
      if (auto sec = read_secret_file(*key); !sec) r.error("tls_key", sec.error().what + ": " + key->string(), sec.error().fix);
    }
    if (d.tls_cert.empty() != d.tls_key.empty()) r.error("tls_cert", "TLS needs both tls_cert and tls_key", "set both, or neither");
    if (d.enabled && !d.loopback && d.tls_cert.empty())
      r.error("listen", "\"" + listen + "\" is beyond this machine and the dashboard has no TLS: passwords would cross the network in clear",
              "set tls_cert and tls_key, or listen on 127.0.0.1");
    d.language = r.choice("language", d.language, {"zh", "en"});
    r.finish();
  }
  {
    auto& a = c.alerts;
    TableReader r(section("alerts"), "alerts", file, errors);
    // `rules` of [alerts] (which run) and of a channel (which it gets): names from kAlertRules.
    auto read_rules = [](TableReader& t, std::vector<std::string>& rules) {
      if (!t.has("rules")) return;
      rules = t.string_array("rules");
      for (const auto& rule : rules)
        if (std::find(kAlertRules.begin(), kAlertRules.end(), rule) == kAlertRules.end())
          t.error("rules", "unknown rule \"" + rule + "\"", "the rules are offline, coverage, recording, case_overdue, gap_lost");
    };
    read_rules(r, a.rules);
    a.every = r.duration("every", a.every, Millis(100), Millis(3'600'000));
    a.offline_after = r.duration("offline_after", a.offline_after, Millis(1000), Millis(std::int64_t(30) * 86'400'000));
    a.coverage_below = r.number("coverage_below", a.coverage_below, 0.0, 1.0);
    a.recording_failing_for = r.duration("recording_failing_for", a.recording_failing_for, Millis(0),
                                         Millis(std::int64_t(30) * 86'400'000));
    a.retry_min = r.duration("retry_min", a.retry_min, Millis(100), Millis(86'400'000));
    a.retry_max = r.duration("retry_max", a.retry_max, Millis(100), Millis(7 * 86'400'000));
    if (a.retry_max < a.retry_min)
      r.error("retry_max", "must not be shorter than retry_min (" + format_duration(a.retry_min) + ")");
    a.rate_limit_wait = r.duration("rate_limit_wait", a.rate_limit_wait, Millis(100), Millis(3'600'000));
    a.batch_max = static_cast<int>(r.integer("batch_max", a.batch_max, 1, 20));
    a.language = r.choice("language", c.dashboard.language, {"zh", "en"});
    a.dashboard_url = r.string("dashboard_url", "");
    if (const toml::table* channels = r.table("channel")) {
      for (const auto& [key, node] : *channels) {
        const std::string name(key.str());
        const std::string path = "alerts.channel." + name;
        const toml::table* t = node.as_table();
        if (!t) {
          r.error("channel", "channel." + name + " is not a table", "write [alerts.channel." + name + "] with kind and url");
          continue;
        }
        TableReader cr(*t, path, file, errors);
        AlertChannel ch;
        ch.name = name;
        if (auto bad = code_syntax_problem(name, "channel name")) cr.error("", *bad, "e.g. [alerts.channel.county-it]");
        const std::string kind = cr.choice("kind", "webhook", {"wecom", "dingtalk", "webhook"});
        ch.kind = kind == "wecom" ? ChannelKind::WeCom : kind == "dingtalk" ? ChannelKind::DingTalk : ChannelKind::Webhook;
        // A robot's URL is its password (the key is in it): url_file keeps it out of the config.
        if (auto u = cr.secret_file("url_file", false)) ch.url = *u;
        if (auto u = cr.optional_string("url")) {
          if (!ch.url.empty()) cr.error("url", "both url and url_file are set", "keep one (url_file for a robot's URL)");
          ch.url = *u;
        }
        if (ch.url.empty()) {
          cr.error("", "a channel needs url or url_file",
                   kind == "wecom"      ? "the group robot's webhook: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."
                   : kind == "dingtalk" ? "the group robot's webhook: https://oapi.dingtalk.com/robot/send?access_token=..."
                                        : "the URL that takes a JSON POST");
        } else if (ch.url.rfind("http://", 0) != 0 && ch.url.rfind("https://", 0) != 0) {
          cr.error(cr.has("url") ? "url" : "url_file", "is not an http(s) URL", "e.g. https://...");
        }
        if (auto sec = cr.secret_file("secret_file", false)) {
          if (ch.kind != ChannelKind::DingTalk) cr.error("secret_file", "only DingTalk robots sign their requests", "remove it");
          ch.secret = *sec;
        }
        read_rules(cr, ch.rules);
        ch.timeout = cr.duration("timeout", ch.timeout, Millis(100), Millis(120'000));
        ch.ca_file = cr.optional_path("ca_file", true);
        cr.finish();
        a.channels.push_back(std::move(ch));
      }
    }
    r.finish();
  }
  top.finish();
  if (c.register_file && !c.county.empty()) read_register(c, *c.register_file, errors);
  return out;
}

std::string redacted_summary(const CountyConfig& c) {
  nlohmann::json j;
  j["file"] = c.file.string();
  j["county"] = {{"code", c.county}, {"name", c.name}, {"timezone", c.timezone_offset},
                 {"register", c.register_file ? c.register_file->string() : ""}, {"schools", c.schools.size()},
                 {"log_level", c.log_level}};
  const auto& m = c.mqtt;
  j["mqtt"] = {{"host", m.host}, {"port", m.port}, {"insecure", m.insecure}, {"ca_file", m.ca_file.string()},
               {"cert_file", m.cert_file.string()}, {"key_file", m.key_file.empty() ? "" : "(secret file, not shown)"},
               {"username", m.username}, {"password", m.password ? "(redacted)" : ""},
               {"verify_hostname", m.verify_hostname}, {"client_id", m.client_id}, {"live_client_id", m.live_client_id},
               {"session_expiry", format_duration(m.session_expiry)}, {"keep_alive", format_duration(m.keep_alive)},
               {"receive_maximum", m.receive_maximum}};
  j["database"] = {{"url", c.database.url}, {"password", c.database.password ? "(redacted)" : ""},
                   {"path", c.database.url.empty() ? c.database.path.string() : ""}, {"synchronous", c.database.synchronous_full ? "full" : "normal"},
                   {"batch_max", c.database.batch_max}};
  j["ingest"] = {{"max_payload", format_size(c.ingest.max_payload)}, {"max_pending", format_size(c.ingest.max_pending)},
                 {"quarantine_log_every", format_duration(c.ingest.quarantine_log_every)}};
  const auto& p = c.repair;
  j["repair"] = {{"enabled", p.enabled}, {"reorder_grace", format_duration(p.reorder_grace)},
                 {"tail_wait_max", format_duration(p.tail_wait_max)}, {"request_timeout", format_duration(p.request_timeout)},
                 {"max_schools", p.max_schools}, {"max_range", p.max_range}, {"backoff_min", format_duration(p.backoff_min)},
                 {"backoff_max", format_duration(p.backoff_max)}, {"requester", p.requester},
                 {"tick", format_duration(c.repair_tick)}};
  j["history"] = {{"keep_reports", format_duration(c.history.keep_reports)},
                  {"keep_history", format_duration(c.history.keep_history)},
                  {"health_every", format_duration(c.history.health_every)},
                  {"keep_quarantine", format_duration(c.history.keep_quarantine)},
                  {"silent_after", format_duration(c.silent_after)}, {"status_every", format_duration(c.status_every)}};
  const auto& d = c.dashboard;
  j["dashboard"] = {{"listen", d.enabled ? d.host + ":" + std::to_string(d.port) : ""}, {"accounts", d.accounts.string()},
                    {"session_lifetime", format_duration(d.session_lifetime)}, {"tls_cert", d.tls_cert.string()},
                    {"tls_key", d.tls_key.empty() ? "" : "(secret file, not shown)"}, {"language", d.language}};
  const auto& a = c.alerts;
  j["alerts"] = {{"rules", a.rules}, {"every", format_duration(a.every)}, {"offline_after", format_duration(a.offline_after)},
                 {"coverage_below", a.coverage_below}, {"recording_failing_for", format_duration(a.recording_failing_for)},
                 {"retry_min", format_duration(a.retry_min)}, {"retry_max", format_duration(a.retry_max)},
                 {"rate_limit_wait", format_duration(a.rate_limit_wait)}, {"batch_max", a.batch_max}, {"language", a.language}, {"dashboard_url", a.dashboard_url},
                 {"channels", nlohmann::json::array()}};
  for (const auto& ch : a.channels)
    j["alerts"]["channels"].push_back({{"name", ch.name}, {"kind", channel_kind_name(ch.kind)}, {"url", "(secret, not shown)"},
                                       {"secret", ch.secret ? "(secret, not shown)" : ""}, {"rules", ch.rules},
                                       {"timeout", format_duration(ch.timeout)}});
  return j.dump(2);
}

}  // namespace campus::county
