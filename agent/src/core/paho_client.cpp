// The agent's MQTT client on Paho C++ (async_client) over Paho C: the only file that includes
// Paho. Each workaround below is named by what it guards against; the runs that found them are
// in docs/reliability.md ("Incidents behind the workarounds"). Paho's own buffering is off:
// the store's outbox is the only buffer (docs/dependencies.md).
#include <algorithm>
#include <chrono>
#include <mutex>

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include "core/mqtt_client.hpp"
#include "core/mqtt_tls.hpp"

namespace campus {

std::string mqtt_reason_text(int reason) {
  switch (reason) {
    case 0x80: return "unspecified error";
    case 0x81: return "malformed packet";
    case 0x82: return "protocol error";
    case 0x83: return "implementation specific error";
    case 0x84: return "unsupported protocol version";
    case 0x85: return "client identifier not valid";
    case 0x86: return "bad user name or password";
    case 0x87: return "not authorized";
    case 0x88: return "server unavailable";
    case 0x89: return "server busy";
    case 0x8A: return "banned";
    case 0x8B: return "server shutting down";
    case 0x8C: return "bad authentication method";
    case 0x8D: return "keep alive timeout";
    case 0x8E: return "session taken over";
    case 0x90: return "topic name invalid";
    case 0x93: return "receive maximum exceeded";
    case 0x95: return "packet too large";
    case 0x97: return "quota exceeded";
    case 0x98: return "administrative action";
    case 0x99: return "payload format invalid";
    case 0x9C: return "use another server";
    case 0x9D: return "server moved";
    case 0x9F: return "connection rate exceeded";
    default: return "reason code " + std::to_string(reason);
  }
}

namespace {

std::string paho_rc_text(int rc) {
  switch (rc) {
    case MQTTASYNC_FAILURE: return "TCP/TLS connect failure";
    case MQTTASYNC_DISCONNECTED: return "disconnected";
    case MQTTASYNC_MAX_MESSAGES_INFLIGHT: return "maximum in-flight messages reached";
    case MQTTASYNC_BAD_UTF8_STRING: return "bad UTF-8 string";
    case MQTTASYNC_BAD_STRUCTURE: return "bad structure";
    case MQTTASYNC_BAD_QOS: return "bad QoS";
    case MQTTASYNC_OPERATION_INCOMPLETE: return "operation incomplete (the client was closed first)";
    case MQTTASYNC_MAX_BUFFERED_MESSAGES: return "no more messages can be buffered";
    case MQTTASYNC_BAD_PROTOCOL: return "bad protocol in URI";
    case 1: return "unacceptable protocol version";
    case 2: return "client identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
    default: return "Paho code " + std::to_string(rc);
  }
}

}  // namespace

std::string MqttError::text() const {
  if (reason >= 0x80) return mqtt_reason_text(reason);
  if (rc >= 0x80) return mqtt_reason_text(rc);  // Paho C puts a CONNACK reason code in the return code
  return paho_rc_text(rc);
}
bool MqttError::disconnected() const { return rc == MQTTASYNC_DISCONNECTED; }
bool MqttError::transport_failed() const { return rc == MQTTASYNC_FAILURE; }
bool MqttError::v5_refused() const { return code() == 0x84 || rc == 1; }
bool MqttError::credentials_refused() const {
  const int c = code();
  return c == 0x86 || c == 0x87 || c == 4 || c == 5;
}

namespace {

// What a token belongs to, packed with its value into Paho's user-context pointer (nothing
// allocated that a lost callback could leak).
enum class Ctx : std::intptr_t { Connect = 0, Outbox = 1, State = 2, Health = 3, Reply = 4, Subscribe = 5, Disconnect = 6, Copy = 7 };
void* pack(Ctx kind, std::int64_t value = 0) {
  return reinterpret_cast<void*>((static_cast<std::intptr_t>(value) << 3) | static_cast<std::intptr_t>(kind));
}
Ctx kind_of(void* ctx) { return static_cast<Ctx>(reinterpret_cast<std::intptr_t>(ctx) & 7); }
std::int64_t value_of(void* ctx) { return static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(ctx) >> 3); }

Ctx ctx_of(MqttToken token) {
  switch (token) {
    case MqttToken::Outbox: return Ctx::Outbox;
    case MqttToken::State: return Ctx::State;
    case MqttToken::Health: return Ctx::Health;
    case MqttToken::Reply: return Ctx::Reply;
    case MqttToken::Copy: return Ctx::Copy;
  }
  return Ctx::Outbox;
}
std::optional<MqttToken> token_of(Ctx ctx) {
  switch (ctx) {
    case Ctx::Outbox: return MqttToken::Outbox;
    case Ctx::State: return MqttToken::State;
    case Ctx::Health: return MqttToken::Health;
    case Ctx::Reply: return MqttToken::Reply;
    case Ctx::Copy: return MqttToken::Copy;
    case Ctx::Connect:
    case Ctx::Subscribe:
    case Ctx::Disconnect: return std::nullopt;
  }
  return std::nullopt;
}

// Guards against Paho C's use of freed memory after a failed write (eclipse-paho/paho.mqtt.c
// #1621 and #1622, open in 1.3.14): a publish whose socket write fails is failed with MQTTASYNC_FAILURE and its topic
// and payload are freed, while the copy in the client's in-flight list still points to them.
// Used again, such a client resends that memory; destroyed, it frees it a second time. Such a
// client is set aside here for good: reachable until the process ends, never destroyed, a
// deliberate and counted leak of one client per such failure (rare: docs/reliability.md has
// the figures). A mutex because tests run several clients.
struct ParkedClients {
  std::mutex mu;
  std::vector<std::unique_ptr<mqtt::async_client>> clients;
};
ParkedClients& parked_clients() {
  static auto* parked = new ParkedClients;  // never freed: destroying a parked client is the bug
  return *parked;
}

class PahoClient;

// Receives Paho's action results on Paho's threads and posts them to the io_context.
class Listener final : public mqtt::iaction_listener {
 public:
  Listener(asio::io_context& io, std::weak_ptr<PahoClient> owner) : io_(io), owner_(std::move(owner)) {}
  void on_success(const mqtt::token& tok) override;
  void on_failure(const mqtt::token& tok) override;

 private:
  asio::io_context& io_;
  std::weak_ptr<PahoClient> owner_;
  // PUBACKs of outbox rows are coalesced: one post to the io_context carries every ack that
  // arrived meanwhile (fewer thread wake-ups per message when draining a backlog).
  std::mutex acks_mu_;
  std::vector<std::int64_t> acks_;
};

class PahoClient final : public MqttClient, public std::enable_shared_from_this<PahoClient> {
 public:
  PahoClient(asio::io_context& io, const MqttConfig& config, std::string client_id, MqttEvents events,
             std::shared_ptr<spdlog::logger> log)
      : io_(io), config_(config), client_id_(std::move(client_id)), events_(std::move(events)), log_(std::move(log)) {}

  ~PahoClient() override {
    if (!client_) return;
    // Paho throws from disable_callbacks() (MQTTASYNC_FAILURE) while a connect is still
    // pending, e.g. when --once stops before the first connection completed.
    try {
      if (client_->is_connected()) client_->disconnect(std::chrono::milliseconds(1000))->wait_for(std::chrono::seconds(2));
    } catch (const std::exception&) {
    }
    try {
      client_->disable_callbacks();
    } catch (const std::exception&) {
    }
    if (client_tainted_) park(std::move(client_));
  }

  void init() { listener_ = std::make_unique<Listener>(io_, weak_from_this()); }

  void connect(const MqttConnect& how) override {
    auto keep_alive = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(config_.keep_alive).count());
    auto builder = mqtt::connect_options_builder();
    // The MQTT version goes before clean_start/clean_session: in Paho C++ 1.2.0 the builder's
    // version setter clears the other version's session flag, and Paho C refuses a v5 connect
    // with clean_session set (MQTTASYNC_BAD_MQTT_OPTION; no upstream issue). MQTT 3.1.1 has no Session Expiry: clean_session false keeps
    // the session as long as the broker keeps any.
    if (how.v311)
      builder.mqtt_version(MQTTVERSION_3_1_1).clean_session(how.clean_start);
    else
      builder.mqtt_version(MQTTVERSION_5).clean_start(how.clean_start);
    builder.keep_alive_interval(std::chrono::seconds(keep_alive))
        .connect_timeout(std::chrono::seconds(std::max<std::int64_t>(
            1, std::chrono::duration_cast<std::chrono::seconds>(config_.connect_timeout).count())))
        .automatic_reconnect(false)
        .will(mqtt::will_options(how.will_topic, how.will_payload, 1, true));
    if (!config_.insecure) {
      auto ssl = mqtt::ssl_options_builder()
                     .trust_store(config_.ca_file.string())
                     .enable_server_cert_auth(true)
                     .verify(config_.verify_hostname)
                     .ssl_version(MQTT_SSL_VERSION_TLS_1_2)
                     .finalize();
      if (!config_.cert_file.empty()) {
        ssl.set_key_store(config_.cert_file.string());
        ssl.set_private_key((config_.key_file.empty() ? config_.cert_file : config_.key_file).string());
      }
      builder.ssl(std::move(ssl));
    }
    if (!config_.username.empty()) builder.user_name(config_.username);
    if (config_.password) builder.password(*config_.password);
    mqtt::connect_options opts = builder.finalize();
    if (!how.v311) {
      // Guards against the CONNECT going out without the properties: in Paho C++ 1.2.0 those
      // given to the builder are lost on finalize() (eclipse-paho/paho.mqtt.cpp #362, fixed in
      // 1.3.0); they are set on the result.
      auto expiry = std::chrono::duration_cast<std::chrono::seconds>(config_.session_expiry).count();
      opts.set_properties(mqtt::properties{
          {mqtt::property::SESSION_EXPIRY_INTERVAL, static_cast<int32_t>(static_cast<uint32_t>(std::clamp<std::int64_t>(expiry, 0, 0xFFFFFFFF)))}});
    }
    // Paho C refuses to connect a client made for one MQTT version with the other's options.
    if (!client_ || client_had_connection_ || client_broker_ != how.broker || client_v311_ != how.v311)
      renew_client(how.broker, how.v311);
    try {
      client_->connect(opts, pack(Ctx::Connect, how.attempt), *listener_);
    } catch (const mqtt::exception& e) {
      const MqttError error{e.get_return_code(), e.get_reason_code()};
      asio::post(io_, [self = weak_from_this(), attempt = how.attempt, error] {
        if (auto s = self.lock()) s->events_.connect_failed(attempt, error);
      });
    }
  }

  std::optional<MqttError> publish(MqttToken token, std::int64_t value, const std::string& topic,
                                   std::string_view payload, int qos, bool retain,
                                   const std::optional<std::string>& correlation) override {
    if (!client_) return MqttError{MQTTASYNC_DISCONNECTED, 0};
    try {
      mqtt::message_ptr message;
      if (correlation && !client_v311_) {
        mqtt::properties props{{mqtt::property::CORRELATION_DATA, mqtt::binary(*correlation)}};
        message = mqtt::message::create(topic, payload.data(), payload.size(), qos, retain, props);
      } else {
        // No properties object on the outbox's path: the message would copy it.
        message = mqtt::message::create(topic, payload.data(), payload.size(), qos, retain);
      }
      client_->publish(std::move(message), pack(ctx_of(token), value), *listener_);
      return std::nullopt;
    } catch (const mqtt::exception& e) {
      return MqttError{e.get_return_code(), e.get_reason_code()};
    }
  }

  void subscribe(const std::vector<std::string>& topics) override {
    try {
      for (const auto& t : topics) client_->subscribe(t, 1, pack(Ctx::Subscribe), *listener_);
    } catch (const mqtt::exception& e) {
      events_.subscribe_failed(MqttError{e.get_return_code(), e.get_reason_code()});
    }
  }

  void disconnect() override {
    if (!client_) return;
    try {
      client_->disconnect(0, pack(Ctx::Disconnect), *listener_);  // reason 0: the will is not sent
    } catch (const mqtt::exception&) {
    }
  }

  bool speaks_v311() const override { return client_v311_; }
  std::int64_t clients_set_aside() const override { return set_aside_; }

  // ---- results from Paho, on the io thread ----
  void on_outbox_acked(std::vector<std::int64_t> seqs) { events_.outbox_acked(std::move(seqs)); }

  void on_result(Ctx kind, std::int64_t value, std::optional<MqttError> error, std::optional<int> receive_max) {
    if (kind == Ctx::Connect) {
      if (error) return events_.connect_failed(value, *error);
      client_had_connection_ = true;
      return events_.connected(value, receive_max);
    }
    if (kind == Ctx::Subscribe) {
      if (error) events_.subscribe_failed(*error);
      return;
    }
    auto token = token_of(kind);
    if (!token) return;  // Ctx::Disconnect
    if (error && error->rc == MQTTASYNC_FAILURE) note_failed_write();
    events_.published(*token, value, error);
  }

 private:
  // Guards against Paho resending an earlier connection's publishes: a fresh Paho client after
  // every connection, so that nothing of its in-flight state survives into the next. On a
  // resumed session Paho C resends every publish the last connection left unacknowledged, right
  // after the CONNACK and before anything of ours (as MQTT requires; eclipse-paho/paho.mqtt.c
  // #651), and in Paho C 1.3.12 those may be freed
  // memory (ParkedClients), reused by then for a later message: the county could get a copy of
  // a later seq in place of an earlier one. The broker session (Clean Start 0, commands queued
  // while away) belongs to the client id, not to Paho's object, so it survives; what the last
  // connection left unacknowledged is resent from the store, in seq order, as new publishes. A
  // client whose connects only failed has nothing in flight and is used again.
  void renew_client(std::size_t broker, bool v311) {
    const auto& b = config_.brokers[broker];
    const std::string uri = (config_.insecure ? "tcp://" : "ssl://") + b.host + ":" + std::to_string(b.port);
    client_broker_ = broker;
    client_v311_ = v311;
    mqtt::create_options create(v311 ? MQTTVERSION_3_1_1 : MQTTVERSION_5);
    create.set_send_while_disconnected(false);
    create.set_delete_oldest_messages(false);
    create.set_restore_messages(false);
    // Guards against -12 (MQTTASYNC_MAX_BUFFERED_MESSAGES) while connected: Paho's default
    // limit of 100 queued messages applies to a connected client too (by design:
    // eclipse-paho/paho.mqtt.c #1193). The publisher's window
    // bounds what it queues, plus the replies, health and birth around it.
    create.set_max_buffered_messages(std::max(1000, config_.inflight_window * 4));
    keep_openssl_until_exit();
    // The new client exists before the old one is destroyed: Paho C stops (and later restarts)
    // its send and receive threads whenever its last client goes (eclipse-paho/paho.mqtt.c
    // #578).
    auto old = std::move(client_);
    const bool old_tainted = client_tainted_;
    client_ = std::make_unique<mqtt::async_client>(uri, client_id_, create);
    client_had_connection_ = false;
    client_tainted_ = false;
    // The handlers carry the client they belong to: a late one from an older client is ignored.
    auto self = weak_from_this();
    const std::uint64_t generation = ++generation_;
    client_->set_connection_lost_handler([&io = io_, self, generation](const std::string& cause) {
      asio::post(io, [self, generation, cause] {
        if (auto s = self.lock(); s && generation == s->generation_) s->events_.lost(cause);
      });
    });
    // Guards against missing a DISCONNECT from the broker: it ends the connection without the
    // connection-lost callback (Paho C marks the client disconnected before it would call it:
    // eclipse-paho/paho.mqtt.c #1619, open), so this handler is where the agent learns of it, with the broker's reason.
    client_->set_disconnected_handler([&io = io_, self, generation](const mqtt::properties& props, mqtt::ReasonCode rc) {
      std::string detail;
      try {
        if (props.contains(mqtt::property::REASON_STRING))
          detail = mqtt::get<std::string>(props, mqtt::property::REASON_STRING);
      } catch (const std::exception&) {
      }
      asio::post(io, [self, generation, reason = static_cast<int>(rc), detail] {
        if (auto s = self.lock(); s && generation == s->generation_) s->events_.broker_disconnected(reason, detail);
      });
    });
    client_->set_message_callback([&io = io_, self](mqtt::const_message_ptr msg) {
      asio::post(io, [self, msg] {
        auto s = self.lock();
        if (!s) return;
        MqttIncoming in{msg->get_topic(), msg->to_string(), std::nullopt, std::nullopt};
        const auto& props = msg->get_properties();
        if (props.contains(mqtt::property::RESPONSE_TOPIC))
          in.response_topic = mqtt::get<std::string>(props, mqtt::property::RESPONSE_TOPIC);
        if (props.contains(mqtt::property::CORRELATION_DATA))
          in.correlation_data = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
        s->events_.message(std::move(in));
      });
    });
    if (!old) return;
    // Only a client whose connection is over gets here (lost, or Paho said disconnected). Its
    // outstanding publishes fail into the published event while the publisher is not
    // connected: nothing is retried from them, the next connection resends from the store.
    try {
      old->disable_callbacks();
    } catch (const std::exception&) {
    }
    if (old_tainted) {
      park(std::move(old));
      log_->warn("mqtt: the last connection's client is set aside, not reused or destroyed: Paho freed a publish "
                 "it still holds (upstream eclipse-paho/paho.mqtt.c #1621); {} client(s) set aside so far",
                 set_aside_);
    }
    old.reset();
  }

  void note_failed_write() {
    if (client_tainted_) return;
    client_tainted_ = true;
    log_->info("mqtt: a publish failed while being written; this client will be set aside after its connection");
  }

  void park(std::unique_ptr<mqtt::async_client> client) {
    ++set_aside_;
    auto& parked = parked_clients();
    std::lock_guard lock(parked.mu);
    parked.clients.push_back(std::move(client));
  }

  asio::io_context& io_;
  MqttConfig config_;
  std::string client_id_;
  MqttEvents events_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Listener> listener_;  // declared before client_: outlives it
  std::unique_ptr<mqtt::async_client> client_;
  bool client_had_connection_ = false;  // renewed before its next connect
  std::size_t client_broker_ = 0;       // the broker client_ was made for
  bool client_v311_ = false;            // client_ was made for MQTT 3.1.1
  bool client_tainted_ = false;         // a publish failed mid-write: set aside, never destroyed
  std::uint64_t generation_ = 0;        // which client's callbacks are current
  std::int64_t set_aside_ = 0;
};

void Listener::on_success(const mqtt::token& tok) {
  void* ctx = tok.get_user_context();
  if (kind_of(ctx) == Ctx::Outbox) {
    bool first;
    {
      std::lock_guard lock(acks_mu_);
      first = acks_.empty();
      acks_.push_back(value_of(ctx));
    }
    if (!first) return;
    asio::post(io_, [this, o = owner_] {
      auto s = o.lock();
      if (!s) return;
      std::vector<std::int64_t> batch;
      {
        std::lock_guard lock(acks_mu_);
        batch.swap(acks_);
      }
      s->on_outbox_acked(std::move(batch));
    });
    return;
  }
  std::optional<int> receive_max;
  if (kind_of(ctx) == Ctx::Connect) {
    try {
      const auto response = tok.get_connect_response();  // by value: keep it alive
      const auto& props = response.get_properties();
      if (props.contains(mqtt::property::RECEIVE_MAXIMUM))
        receive_max = mqtt::get<uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM);
    } catch (const std::exception&) {
    }
  }
  asio::post(io_, [o = owner_, ctx, receive_max] {
    if (auto s = o.lock()) s->on_result(kind_of(ctx), value_of(ctx), std::nullopt, receive_max);
  });
}

void Listener::on_failure(const mqtt::token& tok) {
  void* ctx = tok.get_user_context();
  const MqttError error{tok.get_return_code(), static_cast<int>(tok.get_reason_code())};
  asio::post(io_, [o = owner_, ctx, error] {
    if (auto s = o.lock()) s->on_result(kind_of(ctx), value_of(ctx), error, std::nullopt);
  });
}

}  // namespace

std::shared_ptr<MqttClient> make_paho_client(asio::io_context& io, const MqttConfig& config, std::string client_id,
                                             MqttEvents events, std::shared_ptr<spdlog::logger> log) {
  auto client = std::make_shared<PahoClient>(io, config, std::move(client_id), std::move(events), std::move(log));
  client->init();
  return client;
}

}  // namespace campus
