// campusctl's one MQTT connection to the county broker, as the county account: retained
// messages of the schools, requests with Response Topic + Correlation Data, and their replies.
// Blocking by design (a command-line tool); one client per process (a second Paho client in
// the same process takes ~2 s to connect).
#pragma once
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "campus/error.hpp"

namespace campus {
using Json = nlohmann::json;  // the same alias as campus/plugin.hpp
}

namespace campus::ctl {

// campusctl.toml: where the county broker is and who we are on it.
struct CtlConfig {
  std::filesystem::path file;
  std::string county;
  std::vector<std::string> schools;  // optional register: schools listed even if never seen
  std::filesystem::path db;          // optional: the county collector's database ([county] db)
  std::string host = "localhost";
  int port = 8883;
  bool insecure = false;
  std::filesystem::path ca_file, cert_file, key_file;
  std::string username;
  std::optional<std::string> password;  // from password_file
  bool verify_hostname = true;
  std::string client_id;  // default campusctl-{county}-{random}
};

// Reads and validates campusctl.toml; every problem at once.
Result<CtlConfig> load_ctl_config(const std::filesystem::path& file);

struct Message {
  std::string topic;
  std::string payload;
  bool retained = false;
  std::optional<std::string> correlation;
  std::chrono::steady_clock::time_point received;
};

class CountyClient {
 public:
  // Connects (TLS as configured) within `timeout`. Error says why, in operator words.
  static Result<std::unique_ptr<CountyClient>> connect(const CtlConfig& config, std::chrono::milliseconds timeout);
  ~CountyClient();

  // Subscribes (QoS 1) and waits for the SUBACK.
  Status subscribe(const std::vector<std::string>& filters);
  // Publishes {"cmd":...} to campus/v1/{county}/{school}/cmd (school "all" for every school)
  // with our Response Topic; returns the correlation data used.
  Result<std::string> request(const std::string& school, const Json& payload);
  // The next message, or nullopt when `deadline` passed first.
  std::optional<Message> next(std::chrono::steady_clock::time_point deadline);

  // campus/v1/{county}/+/reply/{requester}: where every school answers us.
  const std::string& reply_filter() const { return reply_filter_; }
  const std::string& county() const { return county_; }

 private:
  struct Impl;
  explicit CountyClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string county_, requester_, reply_filter_, response_topic_;
  std::uint64_t counter_ = 0;
};

// "campus/v1/{county}/{school}/{leaf...}" -> {school, leaf}; nullopt for other topics.
std::optional<std::pair<std::string, std::string>> split_topic(const std::string& county, const std::string& topic);

}  // namespace campus::ctl
