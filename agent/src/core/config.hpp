// The agent's own configuration (agent.toml). Plugin sections are validated by the plugins
// themselves (AuditPlugin::configure) through the same TableReader.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "campus/error.hpp"
#include "campus/units.hpp"

namespace campus {

// One address of the county broker (a node of a cluster, or the one broker).
struct MqttBroker {
  std::string host;
  std::uint16_t port = 8883;
  bool operator==(const MqttBroker&) const = default;
};

struct MqttConfig {
  bool enabled = true;
  std::string host = "localhost";     // brokers[0]
  std::uint16_t port = 8883;
  // Where to connect, in order: the agent stays with the one that works and moves to the next
  // when a connect fails ([mqtt] brokers, or host and port as the only one).
  std::vector<MqttBroker> brokers;
  std::string client_id;              // default campus-{county}-{school}
  bool insecure = false;              // plain TCP, no TLS; warned at every start
  std::filesystem::path ca_file;      // required unless insecure
  std::filesystem::path cert_file;    // client certificate (mTLS), optional
  std::filesystem::path key_file;     // its key (a secret file: 0600)
  std::string username;
  std::optional<std::string> password;  // read from password_file; never logged
  bool verify_hostname = true;
  Millis keep_alive{30000};
  Millis session_expiry{std::chrono::hours(24 * 7)};
  Millis connect_timeout{10000};
  int inflight_window = 20;           // clamped to the broker's Receive Maximum (Mosquitto default 20)
  Millis reconnect_min{1000};
  Millis reconnect_max{300000};
  Millis health_interval{60000};
};

struct BufferConfig {
  std::uint64_t max_size = 256ull << 20;  // buffer.max_size
  Millis keep_sent{std::chrono::hours(24 * 30)};
};

// Scheduling keys every [audits.<name>] table has; the rest belongs to the plugin.
struct AuditSchedule {
  std::string name;
  bool enabled = true;
  Millis interval{std::chrono::minutes(15)};
  Millis jitter{std::chrono::seconds(30)};
  Millis timeout{std::chrono::minutes(2)};  // the audit's deadline
  Millis first_delay{std::chrono::seconds(5)};
  std::string plugin;                        // module name, default = name
};

struct AgentConfig {
  std::filesystem::path file;  // where it was read from
  std::string county;
  std::string school;
  std::string timezone_offset = "+08:00";
  std::filesystem::path data_dir = "/var/lib/campus-agent";
  std::filesystem::path plugin_dir = "/usr/lib/campus-agent/plugins";
  std::string log_level = "info";
  MqttConfig mqtt;
  BufferConfig buffer;
  std::vector<AuditSchedule> audits;           // in file order
  // The parsed file, shared by every copy of this config: toml++ does not copy source
  // positions, and plugins' errors need their line numbers. Never modified after parsing.
  std::shared_ptr<const toml::table> raw = std::make_shared<const toml::table>();
  std::map<std::string, const toml::table*> audit_tables;  // [audits.<name>], inside *raw
};

// Parses and validates agent.toml (not the plugins' own keys: see plugin_host.hpp).
// All problems are returned at once; an empty Errors means valid.
struct ConfigLoad {
  AgentConfig config;
  Errors errors;
};
ConfigLoad load_config(const std::filesystem::path& file);
// The same from text already read; `file` names it in messages and anchors relative paths.
ConfigLoad parse_config(std::string_view text, const std::filesystem::path& file);

// The effective config as JSON for `config` replies and --check-config, secrets redacted.
std::string redacted_summary(const AgentConfig& config);

}  // namespace campus
