// One MQTT 5 client connection of the collector, kept up on the io_context: TCP or TLS (client
// certificate, CA, host name check), CONNECT with the configured session, the subscriptions at
// every connection, keep-alive, and reconnects with backoff. Incoming QoS 1 messages are
// acknowledged only when the owner calls ack() (after its commit), in the order they arrived.
#pragma once
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "campus/asio.hpp"
#include "campus/units.hpp"
#include "mqtt_wire.hpp"

namespace campus::county::mqtt {

struct SessionOptions {
  std::string name;  // for logs: "ingest", "live"
  std::string host = "localhost";
  std::uint16_t port = 8883;
  bool tls = true;
  std::filesystem::path ca_file, cert_file, key_file;
  bool verify_hostname = true;
  std::optional<std::string> username, password;
  std::string client_id;
  bool clean_start = false;
  std::uint32_t session_expiry_s = 0;
  std::uint16_t keep_alive_s = 30;
  std::uint16_t receive_maximum = 1000;  // how many unacknowledged QoS 1 messages the broker may send us
  std::vector<Subscription> subscriptions;  // subscribed again at every connection
  Millis connect_timeout{10000};
  Millis reconnect_min{1000}, reconnect_max{60000};
  std::size_t max_packet = 268'435'460;
};

// A message as it arrived: ack it (if qos 1) with its generation and packet id.
struct Delivery {
  Publish message;
  std::uint64_t generation = 0;  // which connection it came on
};

struct ConnectionInfo {
  bool session_present = false;
  std::uint16_t broker_receive_maximum = 65535;
  std::uint64_t generation = 0;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  struct Handlers {
    std::function<void(Delivery)> on_message;
    std::function<void(const ConnectionInfo&)> on_connected;     // CONNACK success and SUBACK seen
    std::function<void(const std::string& why)> on_disconnected;  // after a connection that had succeeded
  };
  Session(asio::io_context& io, SessionOptions options, Handlers handlers, std::shared_ptr<spdlog::logger> log);
  ~Session();

  void start();
  // Sends DISCONNECT (normal, session kept) when connected, closes, never reconnects; `done`
  // runs on the io_context once the connection is closed.
  void stop(std::function<void()> done);

  // PUBACK for a QoS 1 message, if it came on the current connection (after a reconnect the
  // broker sends what was not acknowledged again, with the same or new packet ids).
  void ack(std::uint64_t generation, std::uint16_t packet_id);
  // Publishes with QoS 1; `done(true)` on PUBACK success, `done(false)` when refused or when
  // the connection was lost first (it is not retried: the caller decides).
  void publish(Publish message, std::function<void(bool ok, const std::string& why)> done);

  // Flow control: while paused nothing more is read from the broker (TCP then holds it back, and
  // the broker keeps it in the session). Keep-alive goes on.
  void pause();
  void resume();
  bool paused() const { return paused_; }

  bool connected() const { return connected_; }
  std::uint64_t generation() const { return generation_; }
  const SessionOptions& options() const { return options_; }
  std::uint64_t connects() const { return connects_; }
  const std::string& last_error() const { return last_error_; }

 private:
  struct Connection;
  asio::awaitable<void> run();
  asio::awaitable<std::string> connect_once();
  asio::awaitable<void> read_loop(std::shared_ptr<Connection> c);
  asio::awaitable<void> keep_alive(std::shared_ptr<Connection> c);
  void send(const std::string& bytes);
  void write_next();
  void close_connection(const std::string& why);
  std::uint16_t next_packet_id();

  asio::io_context& io_;
  SessionOptions options_;
  Handlers handlers_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<Connection> conn_;
  bool stopping_ = false, connected_ = false;
  std::uint64_t generation_ = 0, connects_ = 0;
  std::string last_error_;
  std::deque<std::string> out_;
  bool writing_ = false;
  std::uint16_t packet_id_ = 0;
  std::map<std::uint16_t, std::function<void(bool, const std::string&)>> pending_publishes_;
  std::optional<std::uint16_t> pending_subscribe_;
  std::function<void()> stopped_;
  asio::steady_timer wake_;
  std::unique_ptr<asio::steady_timer> resume_;  // waited on by the read loop while paused
  bool paused_ = false;
  std::mt19937_64 rng_;
  bool running_ = false;
};

}  // namespace campus::county::mqtt
