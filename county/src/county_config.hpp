// county.toml: the collector's configuration (every key in config/county.toml), read with the
// core's TableReader so its errors speak like the agent's:
//   "county.toml:12:15 key repair.reorder_grace: expected a duration like "90s", got "soon""
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "campus/error.hpp"
#include "campus/units.hpp"
#include "alerts.hpp"
#include "database.hpp"

namespace campus::county {

// One school of the county register (register.csv: code, name, name_en).
struct RegisteredSchool {
  std::string code;
  std::string name;     // the school's name as the county writes it (Chinese)
  std::string name_en;  // optional
};

struct CountyConfig {
  std::filesystem::path file;
  std::string county;                 // [county] code
  std::string name;                   // [county] name, for pages and reports
  std::string timezone_offset = "+08:00";
  std::optional<std::filesystem::path> register_file;
  std::vector<RegisteredSchool> schools;  // the register, when configured
  std::string log_level = "info";

  struct Mqtt {
    std::string host = "localhost";
    std::uint16_t port = 8883;
    bool insecure = false;
    std::filesystem::path ca_file, cert_file, key_file;
    std::string username;
    std::optional<std::string> password;
    bool verify_hostname = true;
    std::string client_id;            // default campus-county-{county}: the durable session
    std::string live_client_id;       // default {client_id}-live: health, clean session
    Millis session_expiry{std::chrono::hours(24 * 7)};
    Millis keep_alive{30000};
    int receive_maximum = 1000;
    Millis connect_timeout{10000};
    Millis reconnect_min{1000}, reconnect_max{60000};
  } mqtt;

  struct Database {
    // PostgreSQL when set ("postgresql://county@db.example:5432/county"), else the SQLite file.
    std::string url;
    std::optional<std::string> password;  // from password_file
    std::filesystem::path path = "/var/lib/campus-county/county.db";
    bool synchronous_full = true;
    int batch_max = 1000;             // messages per transaction at most
  } database;

  struct Ingest {
    std::uint64_t max_payload = 16u << 20;
    std::uint64_t max_pending = 32u << 20;  // received, not yet committed: above it, reading pauses
    Millis quarantine_log_every{std::chrono::hours(1)};
  } ingest;

  // The web dashboard (dashboard.hpp); off unless listen is set.
  struct Dashboard {
    std::string host;                 // listen = "127.0.0.1:8480"
    std::uint16_t port = 0;           // 0 with host set: any free port (the log says which)
    bool enabled = false;
    bool loopback = true;
    std::filesystem::path accounts = "/etc/campus-county/dashboard-accounts";
    Millis session_lifetime{std::chrono::hours(12)};
    std::filesystem::path tls_cert, tls_key;  // required when listening beyond the loopback
    std::string language = "zh";      // when the browser asks for neither Chinese nor English
  } dashboard;

  AlertRules alerts;  // [alerts] and its [alerts.channel.NAME] tables

  RepairPolicy repair;
  Millis repair_tick{5000};
  Retention history;
  Millis silent_after{std::chrono::minutes(30)};
  Millis status_every{10000};
};

struct CountyConfigLoad {
  CountyConfig config;
  Errors errors;
};

// Parses and validates county.toml and the register it names; every problem at once.
CountyConfigLoad load_county_config(const std::filesystem::path& file);

// The effective configuration as JSON, secrets redacted (--check-config).
std::string redacted_summary(const CountyConfig& config);

}  // namespace campus::county
