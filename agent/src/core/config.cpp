// agent.toml: the agent's own keys. Plugin keys are checked by the plugins (plugin_host.cpp).
#include "core/config.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "campus/config_table.hpp"
#include "core/codes.hpp"
#include "core/envelope.hpp"

namespace campus {
namespace {

void read_agent(TableReader& r, AgentConfig& c, Errors& errors) {
  c.county = r.required_string("county");
  const auto county_problem = code_syntax_problem(c.county, "county code");
  if (!c.county.empty() && county_problem) r.error("county", *county_problem, "e.g. county = \"zhenkang\"");
  c.school = r.required_string("school");
  // The county's own code is reserved for schools; a bad county code is reported once, above.
  const auto school_problem = county_problem ? code_syntax_problem(c.school, "school code") : code_problem(c.school, c.county);
  if (!c.school.empty() && school_problem) r.error("school", *school_problem);
  c.timezone_offset = r.string("timezone", c.timezone_offset);
  if (!parse_utc_offset(c.timezone_offset))
    r.error("timezone", "expected a UTC offset like \"+08:00\", got \"" + c.timezone_offset + "\"");
  c.data_dir = r.path("data_dir", c.data_dir, false);
  c.plugin_dir = r.path("plugin_dir", c.plugin_dir, false);
  c.log_level = r.choice("log_level", c.log_level, {"trace", "debug", "info", "warn", "error"});
  r.finish();
  (void)errors;
}

// "host", "host:port" or "[v6-address]:port"; the port defaults to `port`. On nullopt, `why`
// says what is wrong.
std::optional<MqttBroker> parse_broker(const std::string& entry, std::uint16_t port, std::string& why) {
  auto fail = [&](const char* what) -> std::optional<MqttBroker> {
    why = what;
    return std::nullopt;
  };
  std::string host = entry, rest;
  if (!entry.empty() && entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string::npos) return fail("an IPv6 address without its closing ']'");
    host = entry.substr(1, close - 1);
    rest = entry.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return fail("expected ':PORT' after ']'");
  } else if (const auto colon = entry.find(':'); colon != std::string::npos) {
    if (entry.find(':', colon + 1) != std::string::npos)
      return fail("an IPv6 address must be written in brackets: [ADDRESS]:PORT");
    host = entry.substr(0, colon);
    rest = entry.substr(colon);
  }
  if (host.empty()) return fail("no host");
  if (host.find_first_of(" \t/") != std::string::npos) return fail("not a host name or address");
  if (!rest.empty()) {
    const std::string digits = rest.substr(1);
    if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(digits) < 1 || std::stoi(digits) > 65535)
      return fail("the port is not 1-65535");
    port = static_cast<std::uint16_t>(std::stoi(digits));
  }
  return MqttBroker{host, port};
}

void read_mqtt(TableReader& r, MqttConfig& m, const AgentConfig& c) {
  m.enabled = r.boolean("enabled", m.enabled);
  const bool one_host = r.has("host");
  m.host = r.string("host", m.host);
  m.insecure = r.boolean("insecure", m.insecure);
  m.port = static_cast<std::uint16_t>(r.integer("port", m.insecure ? 1883 : 8883, 1, 65535));
  m.brokers.clear();
  if (r.has("brokers")) {
    if (one_host)
      r.error("brokers", "is set together with host", "list every broker in brokers and remove host");
    bool bad = false;
    for (const auto& entry : r.string_array("brokers")) {
      std::string why;
      if (auto b = parse_broker(entry, m.port, why)) {
        m.brokers.push_back(*b);
      } else {
        r.error("brokers", "entry \"" + entry + "\": " + why, "write each as \"HOST\" or \"HOST:PORT\" (port 1-65535)");
        bad = true;
      }
    }
    if (m.brokers.empty() && !bad)
      r.error("brokers", "is empty", "list the county broker's addresses, e.g. [\"mqtt1.county.example:8883\"]");
  }
  if (m.brokers.empty()) m.brokers.push_back({m.host, m.port});
  m.host = m.brokers.front().host;
  m.port = m.brokers.front().port;
  m.client_id = r.string("client_id", "campus-" + c.county + "-" + c.school);
  bool need_tls = m.enabled && !m.insecure;
  if (need_tls && !r.optional_string("ca_file")) {
    r.error("", "mqtt.ca_file is required unless insecure = true",
            "set ca_file to the county CA certificate, e.g. \"/etc/campus-agent/county-ca.crt\"");
  }
  m.ca_file = r.path("ca_file", {}, m.enabled);
  m.cert_file = r.path("cert_file", {}, m.enabled);
  if (auto key = r.optional_path("key_file", m.enabled)) {
    m.key_file = *key;
    if (m.enabled) {
      auto s = read_secret_file(*key);
      if (!s) r.error("key_file", s.error().what + ": " + key->string(), s.error().fix);
    }
  }
  if (!m.cert_file.empty() && m.key_file.empty())
    r.error("cert_file", "a client certificate needs its key", "set key_file too");
  m.username = r.string("username", m.username);
  if (auto pw = r.secret_file("password_file", false)) m.password = *pw;
  m.verify_hostname = r.boolean("verify_hostname", m.verify_hostname);
  m.keep_alive = r.duration("keep_alive", m.keep_alive, Millis(1000), Millis(3'600'000));
  m.session_expiry = r.duration("session_expiry", m.session_expiry, Millis(0), Millis(std::int64_t(4294967295) * 1000));
  m.connect_timeout = r.duration("connect_timeout", m.connect_timeout, Millis(100), Millis(600'000));
  m.inflight_window = static_cast<int>(r.integer("inflight_window", m.inflight_window, 1, 65535));
  m.reconnect_min = r.duration("reconnect_min", m.reconnect_min, Millis(10), Millis(3'600'000));
  m.reconnect_max = r.duration("reconnect_max", m.reconnect_max, Millis(10), Millis(86'400'000));
  if (m.reconnect_max < m.reconnect_min)
    r.error("reconnect_max", "must not be shorter than reconnect_min (" + format_duration(m.reconnect_min) + ")");
  m.health_interval = r.duration("health_interval", m.health_interval, Millis(1000), Millis(86'400'000));
  r.finish();
}

}  // namespace

ConfigLoad load_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    ConfigLoad out;
    out.config.file = file;
    out.errors.push_back({file.string(), "cannot read the configuration file: " + std::string(std::strerror(errno)),
                          "create it from config/agent.toml, or give another file with --config PATH"});
    return out;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), file);
}

ConfigLoad parse_config(std::string_view text, const std::filesystem::path& file) {
  ConfigLoad out;
  AgentConfig& c = out.config;
  Errors& errors = out.errors;
  c.file = file;
  try {
    c.raw = std::make_shared<const toml::table>(toml::parse(text, file.string()));
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    std::string where = file.string();
    if (b) where += ":" + std::to_string(b.line) + ":" + std::to_string(b.column);
    errors.push_back({where, "not valid TOML: " + std::string(e.description()), ""});
    return out;
  }

  TableReader top(*c.raw, "", file, errors);
  if (auto t = top.table("agent")) {
    TableReader r(*t, "agent", file, errors);
    read_agent(r, c, errors);
  } else {
    errors.push_back({file.string(), "the [agent] table is missing", "add [agent] with county and school"});
  }
  if (auto t = top.table("buffer")) {
    TableReader r(*t, "buffer", file, errors);
    c.buffer.max_size = r.size("max_size", c.buffer.max_size);
    if (c.buffer.max_size < (1u << 20)) r.error("max_size", "must be at least 1MiB, got " + format_size(c.buffer.max_size));
    c.buffer.keep_sent = r.duration("keep_sent", c.buffer.keep_sent, Millis(0), Millis(std::int64_t(3650) * 86'400'000));
    r.finish();
  }
  {
    static const toml::table empty;
    const toml::table* t = top.table("mqtt");
    TableReader r(t ? *t : empty, "mqtt", file, errors);
    read_mqtt(r, c.mqtt, c);
  }
  if (auto audits = top.table("audits")) {
    for (const auto& [k, node] : *audits) {
      std::string name(k.str());
      AuditSchedule s;
      s.name = name;
      if (auto p = code_syntax_problem(name, "audit name")) {
        errors.push_back({file.string() + " key audits." + name, *p, ""});
        continue;
      }
      auto t = node.as_table();
      if (!t) {
        errors.push_back({file.string() + " key audits." + name, "expected a table [audits." + name + "]", ""});
        continue;
      }
      // The schedule keys; TableReader::finish() for the rest is the plugin's (plugin_host.cpp).
      TableReader r(*t, "audits." + name, file, errors);
      s.enabled = r.boolean("enabled", s.enabled);
      s.interval = r.duration("interval", s.interval, Millis(1000), Millis(std::int64_t(30) * 86'400'000));
      s.jitter = r.duration("jitter", s.jitter, Millis(0), Millis(86'400'000));
      s.timeout = r.duration("timeout", s.timeout, Millis(100), Millis(86'400'000));
      s.first_delay = r.duration("first_delay", s.first_delay, Millis(0), Millis(86'400'000));
      s.plugin = r.string("plugin", name);
      if (s.jitter > s.interval) r.error("jitter", "must not be longer than interval (" + format_duration(s.interval) + ")");
      c.audits.push_back(s);
      c.audit_tables[name] = t;
    }
  }
  top.finish();
  return out;
}

std::string redacted_summary(const AgentConfig& c) {
  nlohmann::json j;
  j["file"] = c.file.string();
  j["agent"] = {{"county", c.county}, {"school", c.school}, {"timezone", c.timezone_offset},
                {"data_dir", c.data_dir.string()}, {"plugin_dir", c.plugin_dir.string()}, {"log_level", c.log_level}};
  j["buffer"] = {{"max_size", format_size(c.buffer.max_size)}, {"keep_sent", format_duration(c.buffer.keep_sent)}};
  const auto& m = c.mqtt;
  nlohmann::json brokers = nlohmann::json::array();
  for (const auto& b : m.brokers) brokers.push_back(b.host + ":" + std::to_string(b.port));
  j["mqtt"] = {{"enabled", m.enabled}, {"brokers", brokers}, {"client_id", m.client_id},
               {"insecure", m.insecure}, {"ca_file", m.ca_file.string()}, {"cert_file", m.cert_file.string()},
               {"key_file", m.key_file.empty() ? "" : "(secret file, not shown)"}, {"username", m.username},
               {"password", m.password ? "(redacted)" : ""}, {"verify_hostname", m.verify_hostname},
               {"keep_alive", format_duration(m.keep_alive)}, {"session_expiry", format_duration(m.session_expiry)},
               {"inflight_window", m.inflight_window}, {"reconnect_min", format_duration(m.reconnect_min)},
               {"reconnect_max", format_duration(m.reconnect_max)}, {"health_interval", format_duration(m.health_interval)}};
  for (const auto& a : c.audits) {
    nlohmann::json t;
    // Plugin keys are shown as configured, except anything that names a secret.
    auto it = c.audit_tables.find(a.name);
    if (it != c.audit_tables.end()) {
      std::ostringstream os;
      os << toml::json_formatter{*it->second};
      t = nlohmann::json::parse(os.str(), nullptr, false);
      if (t.is_discarded()) t = nlohmann::json::object();
      for (auto& [k, v] : t.items()) {
        if (k.find("password") != std::string::npos || k.find("token") != std::string::npos ||
            k.find("secret") != std::string::npos || k.find("community") != std::string::npos) {
          if (!v.is_string() || v.get<std::string>().find('/') == std::string::npos) v = "(redacted)";
        }
      }
    }
    t["enabled"] = a.enabled;
    t["interval"] = format_duration(a.interval);
    t["jitter"] = format_duration(a.jitter);
    t["timeout"] = format_duration(a.timeout);
    j["audits"][a.name] = t;
  }
  return j.dump(2);
}

}  // namespace campus
