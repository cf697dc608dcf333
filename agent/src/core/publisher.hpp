// Delivery of the outbox to the county broker over MQTT 5 (mqtt_client.hpp), plus the
// ephemeral messages that are never stored: state (birth/will), health, replies.
// All public methods are called on the io_context thread, and every callback runs there.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "campus/asio.hpp"
#include "campus/plugin.hpp"
#include "core/config.hpp"
#include "core/envelope.hpp"
#include "core/store.hpp"
#include "core/store_executor.hpp"

namespace campus {

struct PublisherStats {
  bool connected = false;
  std::int64_t session = 0;
  std::int64_t reconnects = 0;          // connections after the first
  std::int64_t connect_attempts = 0;
  std::int64_t published = 0;           // PUBACKed outbox messages this run
  std::int64_t refused = 0;             // publishes the broker refused (e.g. 0x87)
  std::int64_t clients_set_aside = 0;   // Paho clients kept, not destroyed (paho_client.cpp ParkedClients)
  std::int64_t takeovers = 0;           // connections ended by DISCONNECT 0x8E (session taken over)
  std::string protocol = "5";           // the MQTT version of the (last) connection: "5" or "3.1.1"
  std::optional<SystemTime> last_publish;
  std::optional<SystemTime> last_takeover;
};

// A request received on .../cmd or .../all/cmd (issue 7 builds the handler).
struct IncomingRequest {
  std::string topic;
  std::string payload;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
};

class Publisher {
 public:
  virtual ~Publisher() = default;
  // Connects in the background (backoff with jitter between attempts) and drains the outbox.
  virtual void start() = 0;
  // New rows were committed: send them when the window allows.
  virtual void outbox_changed() = 0;
  // Retained .../health message; not stored, dropped when disconnected.
  virtual void publish_health(const Json& body) = 0;
  // Publishes a reply (not stored) to `topic`, with the request's correlation data.
  virtual void publish_reply(const std::string& topic, const std::optional<std::string>& correlation,
                             const Json& envelope) = 0;
  virtual void on_request(std::function<void(IncomingRequest)> handler) = 0;
  // Publishes a stored message again (`resend`): QoS 1, never retained, not stored, only inside
  // this school's subtree. done(true) on PUBACK; done(false) when not connected, refused, or the
  // connection dropped first. `done` always runs later on the io_context.
  virtual void publish_copy(const std::string& topic, const std::string& payload, std::function<void(bool)> done) = 0;
  // Clean shutdown: state online:false published, disconnect, bounded by `timeout`; then done().
  virtual void stop(Millis timeout, std::function<void()> done) = 0;
  virtual PublisherStats stats() const = 0;
};

// REQUIRES: io, store outlive the publisher. `audits` are the enabled audits (for the birth).
std::unique_ptr<Publisher> make_publisher(asio::io_context& io, StoreExecutor& store, const Identity& who,
                                          const MqttConfig& config, std::vector<std::string> audits,
                                          std::shared_ptr<spdlog::logger> log);

}  // namespace campus
