// campusctl's MQTT 5 client (Paho C++), connected as the county account.
#include "ctl/county_client.hpp"

#include <fstream>
#include <random>
#include <sstream>

#include <mqtt/async_client.h>
#include <toml++/toml.h>

#include "core/codes.hpp"
#include "core/mqtt_tls.hpp"

namespace campus::ctl {
namespace {

std::string random_hex(int bytes) {
  std::random_device rd;
  std::string out;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < bytes; ++i) {
    auto v = rd() & 0xff;
    out += hex[v >> 4];
    out += hex[v & 15];
  }
  return out;
}

// A reply's body.correlation (the agent puts it there for requesters on MQTT 3.1.1).
std::optional<std::string> body_correlation(const std::string& payload) {
  const Json env = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!env.is_object()) return std::nullopt;
  const auto kind = env.find("kind");
  if (kind == env.end() || *kind != "reply" || !env.contains("body") || !env["body"].is_object()) return std::nullopt;
  const auto it = env["body"].find("correlation");
  if (it == env["body"].end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

Result<CtlConfig> load_ctl_config(const std::filesystem::path& file) {
  CtlConfig c;
  c.file = file;
  // toml++ reports a missing file as a parse error; say what is actually wrong.
  if (std::error_code ec; !std::filesystem::is_regular_file(file, ec))
    return Error{file.string(), "no such file", "pass the county's campusctl.toml with --config (docs/campusctl.md)"};
  toml::table t;
  try {
    t = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << e.description() << " at line " << e.source().begin.line;
    return Error{file.string(), os.str(), "fix the TOML syntax"};
  } catch (const std::exception& e) {
    return Error{file.string(), e.what(), "pass the county's campusctl.toml with --config"};
  }
  std::vector<std::string> problems;
  // Keys live in [county] / [mqtt]; a flat file (county = "...", host = ..., ca_file = ...) is
  // accepted too.
  auto find = [&](const std::string& path) -> toml::node_view<toml::node> {
    if (auto n = t.at_path(path)) return n;
    auto dot = path.find('.');
    return dot == std::string::npos ? toml::node_view<toml::node>{} : t.at_path(path.substr(dot + 1));
  };
  auto str = [&](const char* path, std::string& out, bool required) {
    auto node = find(path);
    if (!node) {
      if (required) problems.push_back(std::string("key ") + path + " is required");
      return;
    }
    if (auto v = node.value<std::string>()) out = *v;
    else problems.push_back(std::string("key ") + path + ": expected a string");
  };
  if (auto flat = t["county"].value<std::string>()) c.county = *flat;
  else str("county.code", c.county, true);
  const auto county_problem = c.county.empty() ? std::nullopt : code_syntax_problem(c.county, "county code");
  if (county_problem) problems.push_back("key county.code: " + *county_problem);
  if (auto arr = find("county.schools").as_array()) {
    for (auto& v : *arr) {
      auto s = v.value<std::string>();
      if (!s) {
        problems.push_back("key county.schools: every entry must be a string (a school code)");
        continue;
      }
      auto p = county_problem ? code_syntax_problem(*s, "school code") : code_problem(*s, c.county);
      if (p) problems.push_back("key county.schools: " + *p);
      else c.schools.push_back(*s);
    }
  }
  std::string db;
  str("county.db", db, false);
  str("mqtt.host", c.host, false);
  if (auto p = find("mqtt.port")) {
    auto v = p.value<std::int64_t>();
    if (!v || *v < 1 || *v > 65535) problems.push_back("key mqtt.port: expected 1..65535");
    else c.port = static_cast<int>(*v);
  }
  if (auto v = find("mqtt.insecure").value<bool>()) c.insecure = *v;
  if (auto v = find("mqtt.verify_hostname").value<bool>()) c.verify_hostname = *v;
  std::string ca, cert, key, pwfile;
  str("mqtt.ca_file", ca, false);
  str("mqtt.cert_file", cert, false);
  str("mqtt.key_file", key, false);
  str("mqtt.username", c.username, false);
  str("mqtt.password_file", pwfile, false);
  str("mqtt.client_id", c.client_id, false);
  auto rel = [&](const std::string& p) -> std::filesystem::path {
    if (p.empty()) return {};
    std::filesystem::path path(p);
    return path.is_absolute() ? path : file.parent_path() / path;
  };
  c.db = db.rfind("postgres", 0) == 0 ? std::filesystem::path(db) : rel(db);  // a PostgreSQL URL as it is
  c.ca_file = rel(ca);
  c.cert_file = rel(cert);
  c.key_file = rel(key);
  if (!c.insecure && c.ca_file.empty()) problems.push_back("key mqtt.ca_file is required unless mqtt.insecure = true");
  for (const auto& f : {c.ca_file, c.cert_file, c.key_file})
    if (!f.empty() && !std::filesystem::exists(f)) problems.push_back("file " + f.string() + " does not exist");
  if (!pwfile.empty()) {
    std::ifstream in(rel(pwfile));
    std::string pw;
    if (!in || !std::getline(in, pw)) problems.push_back("key mqtt.password_file: cannot read " + rel(pwfile).string());
    else c.password = pw;
  }
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    return Error{file.string(), all, "see docs/campusctl.md for every key"};
  }
  return c;
}

std::optional<std::pair<std::string, std::string>> split_topic(const std::string& county, const std::string& topic) {
  const std::string root = "campus/v1/" + county + "/";
  if (!topic.starts_with(root)) return std::nullopt;
  auto rest = topic.substr(root.size());
  auto slash = rest.find('/');
  if (slash == std::string::npos) return std::nullopt;
  return std::make_pair(rest.substr(0, slash), rest.substr(slash + 1));
}

struct CountyClient::Impl {
  std::unique_ptr<mqtt::async_client> client;
  std::chrono::milliseconds timeout{5000};
};

CountyClient::CountyClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CountyClient::~CountyClient() {
  if (!impl_ || !impl_->client) return;
  try {
    // Waits for Paho to close the connection (its TLS objects go with it); returns as soon as it has.
    if (impl_->client->is_connected()) impl_->client->disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const std::exception&) {
  }
}

Result<std::unique_ptr<CountyClient>> CountyClient::connect(const CtlConfig& config, std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->timeout = timeout;
  const std::string where = (config.insecure ? "tcp://" : "ssl://") + config.host + ":" + std::to_string(config.port);
  const std::string id = config.client_id.empty() ? "campusctl-" + config.county + "-" + random_hex(4) : config.client_id;
  mqtt::create_options create(MQTTVERSION_5);
  create.set_send_while_disconnected(false);
  create.set_max_buffered_messages(10000);
  keep_openssl_until_exit();
  try {
    impl->client = std::make_unique<mqtt::async_client>(where, id, create);
    impl->client->start_consuming();
    auto b = mqtt::connect_options_builder()
                 .mqtt_version(MQTTVERSION_5)
                 .clean_start(true)
                 .keep_alive_interval(std::chrono::seconds(30))
                 .connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout) + std::chrono::seconds(1))
                 .automatic_reconnect(false);
    if (!config.insecure) {
      auto ssl = mqtt::ssl_options_builder()
                     .trust_store(config.ca_file.string())
                     .enable_server_cert_auth(true)
                     .verify(config.verify_hostname)
                     .ssl_version(MQTT_SSL_VERSION_TLS_1_2)
                     .finalize();
      if (!config.cert_file.empty()) {
        ssl.set_key_store(config.cert_file.string());
        ssl.set_private_key((config.key_file.empty() ? config.cert_file : config.key_file).string());
      }
      b.ssl(std::move(ssl));
    }
    if (!config.username.empty()) b.user_name(config.username);
    if (config.password) b.password(*config.password);
    auto tok = impl->client->connect(b.finalize());
    if (!tok->wait_for(timeout) || !impl->client->is_connected()) {
      std::string why = "no answer within " + std::to_string(timeout.count()) + " ms";
      return Error{where, "cannot connect: " + why, "check mqtt.host/port in " + config.file.string()};
    }
  } catch (const mqtt::exception& e) {
    std::string why = e.what();
    if (!config.insecure) {
      TlsProbe probe{config.host, static_cast<unsigned short>(config.port), config.ca_file, config.cert_file,
                     config.key_file, config.verify_hostname, std::chrono::milliseconds(3000)};
      if (auto d = diagnose_tls(probe); !d.empty()) why = d;
    }
    return Error{where, "cannot connect: " + why, "check the [mqtt] keys of " + config.file.string()};
  }
  std::unique_ptr<CountyClient> c(new CountyClient(std::move(impl)));
  c->county_ = config.county;
  c->requester_ = "ctl-" + random_hex(6);
  c->reply_filter_ = "campus/v1/" + config.county + "/+/reply/" + c->requester_;
  // The county-wide form: each school answers in its own subtree (docs/protocol.md, docs/campusctl.md).
  c->response_topic_ = "campus/v1/" + config.county + "/all/reply/" + c->requester_;
  return c;
}

Status CountyClient::subscribe(const std::vector<std::string>& filters) {
  try {
    for (const auto& f : filters) {
      auto tok = impl_->client->subscribe(f, 1);
      if (!tok->wait_for(impl_->timeout)) return Error{f, "no SUBACK from the broker", ""};
    }
  } catch (const mqtt::exception& e) {
    return Error{"subscribe", e.what(), ""};
  }
  return {};
}

Result<std::string> CountyClient::request(const std::string& school, const Json& payload) {
  std::string corr = requester_ + "-" + std::to_string(++counter_) + "-" + random_hex(4);
  const std::string t = "campus/v1/" + county_ + "/" + school + "/cmd";
  mqtt::properties props{{mqtt::property::RESPONSE_TOPIC, response_topic_},
                         {mqtt::property::CORRELATION_DATA, mqtt::binary(corr)}};
  // The same in the payload, for a school whose broker took it only on MQTT 3.1.1.
  Json with_reply = payload;
  with_reply["reply_to"] = response_topic_;
  with_reply["correlation"] = corr;
  std::string body = with_reply.dump();
  try {
    auto msg = mqtt::message::create(t, body.data(), body.size(), 1, false, props);
    auto tok = impl_->client->publish(msg);
    if (!tok->wait_for(impl_->timeout)) return Error{t, "the broker did not acknowledge the request", ""};
    if (tok->get_reason_code() >= 0x80)
      return Error{t, "the broker refused the request (reason " + std::to_string(tok->get_reason_code()) + ")",
                   "the county account needs `topic write campus/v1/" + county_ + "/+/cmd` in the broker ACL"};
  } catch (const mqtt::exception& e) {
    return Error{t, e.what(), ""};
  }
  return corr;
}

std::optional<Message> CountyClient::next(std::chrono::steady_clock::time_point deadline) {
  while (true) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    mqtt::const_message_ptr msg;
    if (!impl_->client->try_consume_message_for(&msg, deadline - now)) return std::nullopt;
    if (!msg) return std::nullopt;  // connection lost
    Message m{msg->get_topic(), msg->to_string(), msg->is_retained(), std::nullopt, std::chrono::steady_clock::now()};
    const auto& props = msg->get_properties();
    if (props.contains(mqtt::property::CORRELATION_DATA))
      m.correlation = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
    else
      m.correlation = body_correlation(m.payload);  // a school on MQTT 3.1.1
    return m;
  }
}

}  // namespace campus::ctl
