// The MQTT client the publisher drives, without Paho in sight: connect with a will, publish
// with a token that names what the message is, subscribe, disconnect. The one implementation,
// make_paho_client (paho_client.cpp), is the only file of the agent that includes Paho and
// holds every workaround it needs. Every method is called on the io_context thread and every
// event arrives there.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/asio.hpp"
#include "core/config.hpp"

namespace spdlog {
class logger;
}

namespace campus {

// MQTT 5 reason codes (CONNACK, PUBACK, DISCONNECT) as words; "reason code N" for others.
std::string mqtt_reason_text(int reason);

// Why an operation failed: the client library's return code and, from MQTT 5, the broker's
// reason code (>= 0x80 when the broker refused).
struct MqttError {
  int rc = 0;
  int reason = 0;

  std::string text() const;
  int code() const { return reason >= 0x80 ? reason : rc; }
  bool refused_by_broker() const { return reason >= 0x80; }
  // The client says it is not connected (the connection is gone, told or not).
  bool disconnected() const;
  // The TCP or TLS connection could not be made (a TLS diagnosis says why).
  bool transport_failed() const;
  // The broker does not speak MQTT 5: CONNACK 0x84, or 3.1.1 return code 1 from a broker that
  // answers a CONNECT it cannot read in its own form.
  bool v5_refused() const;
  // Bad user name or password, or not authorized (MQTT 5 and 3.1.1 codes).
  bool credentials_refused() const;
};

// What a message or operation is; the client hands it back with its result.
enum class MqttToken { Outbox, State, Health, Reply, Copy };

struct MqttConnect {
  std::int64_t attempt = 0;   // handed back in the connected/failed event
  std::size_t broker = 0;     // index into MqttConfig::brokers
  bool v311 = false;          // MQTT 3.1.1 instead of 5
  bool clean_start = false;
  std::string will_topic, will_payload;  // QoS 1, retained
};

struct MqttIncoming {
  std::string topic, payload;
  std::optional<std::string> response_topic, correlation_data;
};

// The client's events, each run on the io_context thread.
struct MqttEvents {
  std::function<void(std::int64_t attempt, std::optional<int> receive_max)> connected;
  std::function<void(std::int64_t attempt, MqttError)> connect_failed;
  // The connection ended without a DISCONNECT from the broker (or the client noticed late).
  std::function<void(std::string cause)> lost;
  // The broker ended the connection with a DISCONNECT: its reason code and Reason String.
  std::function<void(int reason, std::string detail)> broker_disconnected;
  // Outbox messages (MqttToken::Outbox) the broker acknowledged, by their value (the seq);
  // acknowledgements that arrive together come in one batch.
  std::function<void(std::vector<std::int64_t> seqs)> outbox_acked;
  // Any other publish's result, and an outbox message's failure.
  std::function<void(MqttToken, std::int64_t value, std::optional<MqttError>)> published;
  std::function<void(MqttError)> subscribe_failed;
  std::function<void(MqttIncoming)> message;
};

class MqttClient {
 public:
  virtual ~MqttClient() = default;
  virtual void connect(const MqttConnect& how) = 0;
  // Publishes; an error now means nothing was queued and no result event will follow.
  // `correlation` is sent as Correlation Data on MQTT 5 and dropped on 3.1.1.
  virtual std::optional<MqttError> publish(MqttToken token, std::int64_t value, const std::string& topic,
                                           std::string_view payload, int qos, bool retain,
                                           const std::optional<std::string>& correlation = std::nullopt) = 0;
  virtual void subscribe(const std::vector<std::string>& topics) = 0;
  // A normal DISCONNECT (reason 0: the broker does not send the will); no event follows.
  virtual void disconnect() = 0;
  // The MQTT version of the current (or last) connection.
  virtual bool speaks_v311() const = 0;
  // Clients kept alive for the life of the process instead of destroyed (paho_client.cpp).
  virtual std::int64_t clients_set_aside() const = 0;
};

// REQUIRES: io outlives the client; config.brokers is not empty.
std::shared_ptr<MqttClient> make_paho_client(asio::io_context& io, const MqttConfig& config, std::string client_id,
                                             MqttEvents events, std::shared_ptr<spdlog::logger> log);

}  // namespace campus
