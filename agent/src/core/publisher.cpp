// The MQTT publisher: Paho C++ async_client (MQTT 5, TLS), the outbox drain, birth and will,
// health and replies. Every piece of state lives on the io_context thread; Paho's callbacks
// (on Paho's threads) only post to it. Paho's own buffering is off: the SQLite outbox is the
// only buffer, and a row is marked sent only when its PUBACK arrived (docs/dependencies.md). After
// every connection the next attempt gets a fresh Paho client, so Paho never replays an earlier
// connection's publishes (renew_client says why).
#include "core/publisher.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <mqtt/async_client.h>

#include "core/backoff.hpp"
#include "core/mqtt_tls.hpp"

namespace campus {
namespace {

// What a token belongs to, packed into Paho's user-context pointer (no allocation to leak).
enum class Ctx : std::intptr_t { Connect = 0, Outbox = 1, State = 2, Health = 3, Reply = 4, Subscribe = 5, Disconnect = 6, Copy = 7 };
void* pack(Ctx kind, std::int64_t value = 0) {
  return reinterpret_cast<void*>((static_cast<std::intptr_t>(value) << 3) | static_cast<std::intptr_t>(kind));
}
Ctx kind_of(void* ctx) { return static_cast<Ctx>(reinterpret_cast<std::intptr_t>(ctx) & 7); }
std::int64_t value_of(void* ctx) { return static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(ctx) >> 3); }

std::string reason_text(int reason) {
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

std::string paho_rc_text(int rc) {
  switch (rc) {
    case -1: return "TCP/TLS connect failure";
    case -3: return "disconnected";
    case -4: return "maximum in-flight messages reached";
    case -6: return "bad UTF-8 string";
    case -8: return "bad structure";
    case -9: return "bad QoS";
    case -11: return "operation incomplete (the client was closed first)";
    case -12: return "no more messages can be buffered";
    case -14: return "bad protocol in URI";
    case 1: return "unacceptable protocol version";
    case 2: return "client identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
    default: return "Paho code " + std::to_string(rc);
  }
}

// Paho clients set aside for good (renew_client says why). Reachable from here until the
// process ends, deliberately never destroyed; a mutex because tests run several publishers.
struct ParkedClients {
  std::mutex mu;
  std::vector<std::unique_ptr<mqtt::async_client>> clients;
};
ParkedClients& parked_clients() {
  static auto* parked = new ParkedClients;  // never freed: destroying a parked client is the bug
  return *parked;
}

class MqttPublisher;

// Receives Paho's action results on Paho's threads and posts them to the io_context.
class Listener final : public mqtt::iaction_listener {
 public:
  Listener(asio::io_context& io, std::weak_ptr<MqttPublisher> owner) : io_(io), owner_(std::move(owner)) {}
  void on_success(const mqtt::token& tok) override;
  void on_failure(const mqtt::token& tok) override;

 private:
  asio::io_context& io_;
  std::weak_ptr<MqttPublisher> owner_;
  // PUBACKs of outbox rows are coalesced: one post to the io_context carries every ack that
  // arrived meanwhile (fewer thread wake-ups per message when draining a backlog).
  std::mutex acks_mu_;
  std::vector<std::int64_t> acks_;
};

class MqttPublisher final : public std::enable_shared_from_this<MqttPublisher> {
 public:
  MqttPublisher(asio::io_context& io, StoreExecutor& store, const Identity& who, const MqttConfig& config,
                std::vector<std::string> audits, std::shared_ptr<spdlog::logger> log)
      : io_(io),
        store_(store),
        who_(who),
        config_(config),
        audits_(std::move(audits)),
        log_(std::move(log)),
        reconnect_timer_(io),
        flush_timer_(io),
        retry_timer_(io),
        birth_timer_(io),
        rng_(std::random_device{}()) {
    client_id_ = config_.client_id.empty() ? "campus-" + who_.county + "-" + who_.school : config_.client_id;
    if (config_.brokers.empty()) config_.brokers.push_back({config_.host, config_.port});  // built by hand, not read
    state_topic_ = topic(who_, "state");
    cmd_topic_ = topic(who_, "cmd");
    all_cmd_topic_ = "campus/v1/" + who_.county + "/all/cmd";
    health_topic_ = topic(who_, "health");
    const char* nd = std::getenv("CAMPUS_MQTT_NODELAY");  // measurement knob: "0" disables
    nodelay_ = !(nd && std::string(nd) == "0");
  }

  ~MqttPublisher() {
    if (client_) {
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
  }

  void init() { listener_ = std::make_unique<Listener>(io_, weak_from_this()); }

  const MqttBroker& broker() const { return config_.brokers[broker_]; }
  std::string broker_address() const { return broker().host + ":" + std::to_string(broker().port); }
  bool speaks_311(std::size_t broker) const { return v311_brokers_.count(broker) > 0; }
  std::string broker_list() const {
    std::string out;
    for (const auto& b : config_.brokers) out += (out.empty() ? "" : ", ") + b.host + ":" + std::to_string(b.port);
    return out;
  }

  // ---- Publisher API (io thread) ----
  void start() {
    if (config_.insecure)
      log_->warn("mqtt: insecure = true: connecting to {} over PLAIN TCP without TLS; anyone on the path can read "
                 "and forge this school's messages. Set insecure = false with ca_file for production.",
                 broker_list());
    log_->info("mqtt: client id {} -> {} ({}), window {}", client_id_, broker_list(), config_.insecure ? "plain" : "TLS",
               config_.inflight_window);
    started_ = true;
    connect();
  }

  void outbox_changed() {
    exhausted_ = false;
    pump();
  }

  void publish_health(const Json& body) {
    if (!connected_) return;
    publish_ephemeral(health_topic_, envelope(who_, "health", std::chrono::system_clock::now(), body).dump(), true, {},
                      Ctx::Health);
  }

  void publish_reply(const std::string& to, const std::optional<std::string>& correlation, const Json& env) {
    if (to.rfind(subtree(who_), 0) != 0) {
      log_->warn("mqtt: reply to {} refused: outside this school's subtree {}", to, subtree(who_));
      return;
    }
    // On MQTT 3.1.1 the body's "correlation" (CommandHandler::finish) is the only one.
    mqtt::properties props;
    if (correlation && !client_v311_) props.add({mqtt::property::CORRELATION_DATA, mqtt::binary(*correlation)});
    if (!connected_) {
      log_->info("mqtt: reply to {} dropped: not connected", to);
      return;
    }
    publish_ephemeral(to, env.dump(), false, props, Ctx::Reply);
  }

  void on_request(std::function<void(IncomingRequest)> handler) { request_handler_ = std::move(handler); }

  void publish_copy(const std::string& t, const std::string& payload, std::function<void(bool)> done) {
    const std::int64_t id = ++copy_id_;
    copies_[id] = std::move(done);
    if (!connected_ || stopping_ || t.rfind(subtree(who_), 0) != 0 ||
        !publish_ephemeral(t, payload, false, {}, Ctx::Copy, id))
      finish_copy(id, false);
  }

  void stop(Millis timeout, std::function<void()> done) {
    stopping_ = true;
    stop_done_ = std::move(done);
    reconnect_timer_.cancel();
    retry_timer_.cancel();
    cancel_birth();
    flush_acks();
    auto deadline = std::make_shared<asio::steady_timer>(io_, timeout);
    stop_deadline_ = deadline;
    deadline->async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto s = self.lock()) {
        s->log_->warn("mqtt: stop timed out; disconnecting without confirmation");
        s->finish_stop();
      }
    });
    if (!connected_) {
      finish_stop();
      return;
    }
    // The offline state counts every report handed to the store before the stop: its last_seq
    // is read after the store's queued work (a commit still running); a store that does not
    // answer within half the stop's time (stuck on its disk) gets the last seq known.
    auto self = weak_from_this();
    store_.run([](Store& store) { return store.last_seq(); }, [self](std::int64_t last_seq) {
      if (auto s = self.lock()) s->publish_offline(last_seq);
    });
    const Millis half = timeout / 2;
    auto wait = std::make_shared<asio::steady_timer>(io_, half);
    offline_wait_ = wait;
    wait->async_wait([self, wait, half](const boost::system::error_code& ec) {
      auto s = self.lock();
      if (ec || !s || s->offline_sent_) return;
      s->log_->warn("mqtt: the store did not answer within {}; the offline state carries the last seq known",
                    format_duration(half));
      s->publish_offline(s->store_.snapshot().outbox.last_seq);
    });
  }

  // online:false from the agent itself; the disconnect follows its PUBACK (or the deadline).
  void publish_offline(std::int64_t last_seq) {
    if (offline_sent_ || !connected_) return;
    offline_sent_ = true;
    if (auto w = offline_wait_.lock()) w->cancel();
    Json body = {{"online", false}, {"session", session_}, {"last_seq", last_seq}, {"reason", "stopped"}};
    if (!publish_ephemeral(state_topic_, envelope(who_, "state", std::chrono::system_clock::now(), body).dump(), true,
                           {}, Ctx::State, /*stop_marker=*/1))
      finish_stop();
  }

  PublisherStats stats() const { return stats_; }

  // ---- results from Paho (io thread) ----
  void on_action(Ctx kind, std::int64_t value, bool ok, int rc, int reason, std::optional<int> receive_max) {
    const bool publish = kind == Ctx::Outbox || kind == Ctx::State || kind == Ctx::Health || kind == Ctx::Reply ||
                         kind == Ctx::Copy;
    if (publish && !ok && rc == MQTTASYNC_FAILURE) note_failed_write();
    switch (kind) {
      case Ctx::Connect: return ok ? on_connected(value, receive_max) : on_connect_failed(value, rc, reason);
      case Ctx::Outbox: return ok ? on_delivered_batch({value}) : on_delivery_failed(value, rc, reason);
      case Ctx::State:
      case Ctx::Health:
      case Ctx::Reply:
      case Ctx::Copy:
        if (ephemeral_inflight_ > 0) --ephemeral_inflight_;
        pump_later();
        break;
      default:
        break;
    }
    switch (kind) {
      case Ctx::State:
        if (value == 1 && stopping_) finish_stop();  // our online:false went through (or not)
        if (!ok) log_->warn("mqtt: state message not delivered: {}", describe(rc, reason));
        return;
      case Ctx::Health:
      case Ctx::Reply:
        if (!ok) log_->warn("mqtt: {} not delivered: {}", kind == Ctx::Health ? "health" : "reply", describe(rc, reason));
        return;
      case Ctx::Subscribe:
        if (!ok) log_->error("mqtt: subscribe failed ({}): commands from the county will not arrive", describe(rc, reason));
        return;
      default:
        return;
      case Ctx::Copy:
        return finish_copy(value, ok);
    }
  }

 private:
  static std::string describe(int rc, int reason) {
    if (reason >= 0x80) return reason_text(reason);
    if (rc >= 0x80) return reason_text(rc);  // Paho C puts a CONNACK reason code in the return code
    return paho_rc_text(rc);
  }

  void finish_copy(std::int64_t id, bool ok) {
    auto it = copies_.find(id);
    if (it == copies_.end()) return;
    auto done = std::move(it->second);
    copies_.erase(it);
    if (done) asio::post(io_, [done = std::move(done), ok] { done(ok); });
  }

  // Copies in flight when the connection ends will never be acknowledged in this session.
  void fail_copies() {
    std::vector<std::int64_t> ids;
    for (const auto& [id, done] : copies_) ids.push_back(id);
    for (auto id : ids) finish_copy(id, false);
  }

  // ---- connection ----
  // Each attempt raises the stored session counter first (a write with fsync: on the store's
  // thread), then connects with a will that carries that session and the last seq.
  void connect() {
    if (stopping_ || connect_pending_) return;
    connect_pending_ = true;
    store_.run([](Store& store) { return std::pair(store.next_session(), store.last_seq()); },
               [self = weak_from_this()](std::pair<std::int64_t, std::int64_t> got) {
                 if (auto s = self.lock()) {
                   s->connect_pending_ = false;
                   s->connect_as(got.first, got.second);
                 }
               });
  }

  void connect_as(std::int64_t session, std::int64_t last_seq) {
    if (stopping_) return;
    ++stats_.connect_attempts;
    attempt_session_ = session;
    Json will_body = {{"online", false}, {"session", attempt_session_}, {"last_seq", last_seq}, {"reason", "will"}};
    std::string will_payload = envelope(who_, "state", std::chrono::system_clock::now(), will_body).dump();

    auto keep_alive = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(config_.keep_alive).count());
    // A session that cannot survive its first seconds, kCleanStartAfter times in a row, is
    // given up for a clean one: a broker that accepts the connection and closes it within
    // moments, again and again, is choking on what the resumed session replays (our queued
    // wills), which a clean start drops (docs/reliability.md, "Incidents behind the
    // workarounds"). Nothing of ours is lost (every unacknowledged row is sent again from the
    // store); county requests queued for the old session are, and the county's tools retry on
    // timeout.
    const bool clean_start = short_lived_ >= kCleanStartAfter;
    if (clean_start)
      log_->warn("mqtt: the last {} connections were closed by the broker within {} s of connecting: "
                 "starting a clean session (unacknowledged messages are resent from the store)",
                 short_lived_, kShortLived.count());
    const bool v311 = speaks_311(broker_);
    auto builder = mqtt::connect_options_builder();
    // The version before clean_start/clean_session (docs/dependencies.md). MQTT 3.1.1 has no
    // Session Expiry: clean_session false keeps the session as long as the broker keeps any.
    if (v311)
      builder.mqtt_version(MQTTVERSION_3_1_1).clean_session(clean_start);
    else
      builder.mqtt_version(MQTTVERSION_5).clean_start(clean_start);
    builder.keep_alive_interval(std::chrono::seconds(keep_alive))
        .connect_timeout(std::chrono::seconds(std::max<std::int64_t>(
            1, std::chrono::duration_cast<std::chrono::seconds>(config_.connect_timeout).count())))
        .automatic_reconnect(false)
        .will(mqtt::will_options(state_topic_, will_payload, 1, true));
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
    if (!v311) {
      // Properties given to the builder are lost in Paho C++ 1.2.0: set them on the result.
      auto expiry = std::chrono::duration_cast<std::chrono::seconds>(config_.session_expiry).count();
      opts.set_properties(mqtt::properties{
          {mqtt::property::SESSION_EXPIRY_INTERVAL, static_cast<int32_t>(static_cast<uint32_t>(std::clamp<std::int64_t>(expiry, 0, 0xFFFFFFFF)))}});
    }
    // Paho C refuses to connect a client made for one MQTT version with the other's options.
    if (!client_ || client_had_connection_ || client_broker_ != broker_ || client_v311_ != v311) renew_client();
    try {
      client_->connect(opts, pack(Ctx::Connect, attempt_session_), *listener_);
    } catch (const mqtt::exception& e) {
      on_connect_failed(attempt_session_, e.get_return_code(), e.get_reason_code());
    }
  }

  // A fresh Paho client after every connection, so that nothing of the last connection's
  // in-flight state survives into the next. On a resumed session Paho C resends every publish
  // the last connection left unacknowledged, right after the CONNACK and before anything of
  // ours: in Paho C 1.3.12 those may be freed memory (below), reused by then for a later
  // message, so the county could get a copy of a later seq in place of an earlier one. The
  // broker session (Clean Start 0, commands queued while away) belongs to the
  // client id, not to Paho's object, so it survives; what the last connection left
  // unacknowledged is resent from the store, in seq order, as new publishes (the outbox is the
  // only buffer: docs/dependencies.md). A client whose connects only failed has nothing in flight
  // and is used again.
  //
  // The freed memory: when a publish's write fails (the socket died mid-send), Paho C fails
  // the publish command with MQTTASYNC_FAILURE and frees its topic and payload, which the
  // copy in its in-flight list still points to (upstream eclipse-paho/paho.mqtt.c #1621,
  // #1592). Used again, such a client resends that freed memory; destroyed, it frees it a
  // second time. So a client that saw such a failure is set aside, never reused and never
  // destroyed: a deliberate, counted leak of one client and its in-flight list per such
  // failure, which is rare (docs/reliability.md has the figures).
  void renew_client() {
    const std::string uri = (config_.insecure ? "tcp://" : "ssl://") + broker_address();
    client_broker_ = broker_;
    client_v311_ = speaks_311(broker_);
    mqtt::create_options create(client_v311_ ? MQTTVERSION_3_1_1 : MQTTVERSION_5);
    create.set_send_while_disconnected(false);
    create.set_delete_oldest_messages(false);
    create.set_restore_messages(false);
    // Paho's default is 100 queued messages even while connected (-12 past it): our window
    // bounds what we queue, plus the replies, health and birth around it.
    create.set_max_buffered_messages(std::max(1000, config_.inflight_window * 4));
    keep_openssl_until_exit();
    // The new client exists before the old one is destroyed: Paho C stops (and later restarts)
    // its send and receive threads whenever its last client goes.
    auto old = std::move(client_);
    const bool old_tainted = client_tainted_;
    client_ = std::make_unique<mqtt::async_client>(uri, client_id_, create);
    client_had_connection_ = false;
    client_tainted_ = false;
    // The lost handler carries the client it belongs to (not the attempt: a client is used for
    // every attempt until it has had a connection): a late one from an older client is ignored.
    auto self = weak_from_this();
    const std::uint64_t generation = ++client_generation_;
    client_->set_connection_lost_handler([this, self, generation](const std::string& cause) {
      asio::post(io_, [self, generation, cause] {
        if (auto s = self.lock(); s && generation == s->client_generation_) s->on_connection_lost(cause);
      });
    });
    // A DISCONNECT from the broker ends the connection without the connection-lost callback
    // (Paho C 1.3.12 marks the client disconnected before it would call it): this is where the
    // agent learns of it, with the broker's reason (MQTT 5).
    client_->set_disconnected_handler([&io = io_, self, generation](const mqtt::properties& props, mqtt::ReasonCode rc) {
      std::string detail;
      try {
        if (props.contains(mqtt::property::REASON_STRING))
          detail = mqtt::get<std::string>(props, mqtt::property::REASON_STRING);
      } catch (const std::exception&) {
      }
      asio::post(io, [self, generation, reason = static_cast<int>(rc), detail] {
        if (auto s = self.lock(); s && generation == s->client_generation_) s->on_server_disconnect(reason, detail);
      });
    });
    client_->set_message_callback([this, self](mqtt::const_message_ptr msg) {
      asio::post(io_, [self, msg] {
        if (auto s = self.lock()) s->on_message(msg);
      });
    });
    if (!old) return;
    // Only a client whose connection is over gets here (lost, or Paho said disconnected). Its
    // outstanding publishes fail into on_delivery_failed while connected_ is false: nothing is
    // retried from them, the next connection resends.
    try {
      old->disable_callbacks();
    } catch (const std::exception&) {
    }
    if (old_tainted) {
      park(std::move(old));
      log_->warn("mqtt: the last connection's client is set aside, not reused or destroyed: Paho freed a publish "
                 "it still holds (upstream eclipse-paho/paho.mqtt.c #1621); {} client(s) set aside so far",
                 stats_.clients_set_aside);
    }
    old.reset();
  }

  void note_failed_write() {
    if (client_tainted_) return;
    client_tainted_ = true;
    log_->info("mqtt: a publish failed while being written; this client will be set aside after its connection");
  }

  void park(std::unique_ptr<mqtt::async_client> client) {
    ++stats_.clients_set_aside;
    auto& parked = parked_clients();
    std::lock_guard lock(parked.mu);
    parked.clients.push_back(std::move(client));
  }

  void on_connected(std::int64_t session, std::optional<int> receive_max) {
    if (stopping_) return;
    if (session != attempt_session_) return;
    connected_ = true;
    client_had_connection_ = true;
    stats_.connected = true;
    if (ever_connected_) ++stats_.reconnects;
    ever_connected_ = true;
    session_ = session;
    stats_.session = session;
    connected_at_ = std::chrono::steady_clock::now();
    backoff_step_ = 0;
    last_failure_.clear();
    window_ = std::max(1, config_.inflight_window);
    if (receive_max && *receive_max > 0 && *receive_max < window_) {
      log_->info("mqtt: broker Receive Maximum {} < inflight_window {}: using {}", *receive_max, window_, *receive_max);
      window_ = *receive_max;
    }
    if (nodelay_) {
      int n = set_nodelay_on_sockets_to(broker().host, broker().port);
      if (n == 0) log_->debug("mqtt: could not find the broker socket to set TCP_NODELAY");
    }
    stats_.protocol = speaks_311(broker_) ? "3.1.1" : "5";
    log_->info("mqtt: connected to {} with MQTT {} (session {}, window {})", broker_address(), stats_.protocol, session_,
               window_);
    // Resubscribe on every connect: the broker session may have expired.
    try {
      for (const auto& t : {cmd_topic_, all_cmd_topic_, state_topic_})
        client_->subscribe(t, 1, pack(Ctx::Subscribe), *listener_);
    } catch (const mqtt::exception& e) {
      log_->warn("mqtt: subscribe failed: {}", e.what());
    }
    publish_birth();
    // Everything not acknowledged is sent again, from the lowest seq.
    reset_drain();
    pump();
  }

  void on_connect_failed(std::int64_t session, int rc, int reason) {
    if (stopping_ || session != attempt_session_) return;
    std::string what = describe(rc, reason);
    const int code = reason >= 0x80 ? reason : rc;
    // The broker does not speak MQTT 5: CONNACK 0x84 (Unsupported Protocol Version), or return
    // code 1 from a 3.1.1-only broker, which answers a CONNECT it cannot read in its own form.
    if (!speaks_311(broker_) && (code == kUnsupportedProtocolVersion || rc == kUnacceptableProtocolV311)) {
      v311_brokers_.insert(broker_);
      log_->warn("mqtt: {} refused MQTT 5 ({}): connecting with MQTT 3.1.1 from now on until the agent restarts; "
                 "requests then carry their reply topic and correlation in the payload (docs/protocol.md)",
                 broker_address(), what);
      return schedule_reconnect(/*next_broker=*/true);
    }
    if (code == 0x86 || code == 0x87 || code == 4 || code == 5)
      what += config_.username.empty()
                  ? " (the broker refused this client: check that cert_file is a certificate the county issued)"
                  : " (the broker refused user '" + config_.username + "': check mqtt.username and password_file)";
    const std::string failure = broker_address() + ": " + what;
    if (failure != last_failure_) {
      log_->warn("mqtt: cannot connect to {}", failure);
      last_failure_ = failure;
    } else {
      log_->info("mqtt: connect attempt {} failed: {}", stats_.connect_attempts, failure);
    }
    if (!config_.insecure && rc == -1) diagnose_tls_async();
    if (config_.brokers.size() > 1) {
      // The next broker of the list at once; the backoff grows only when every one has failed.
      broker_ = (broker_ + 1) % config_.brokers.size();
      log_->info("mqtt: trying {} next", broker_address());
      if (broker_ != 0) return schedule_reconnect(/*next_broker=*/true);
    }
    schedule_reconnect();
  }

  // The broker ended the connection with a DISCONNECT (reason: an MQTT 5 reason code).
  void on_server_disconnect(int reason, const std::string& detail) {
    if (!connected_) return;
    std::string said = detail.substr(0, 200);  // the broker's Reason String, shown on one line
    std::replace_if(said.begin(), said.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }, ' ');
    if (!said.empty()) said = " (\"" + said + "\")";
    if (reason != kSessionTakenOver) {
      log_->warn("mqtt: the broker closed the connection: {} (0x{:02X}){}", reason_text(reason), reason, said);
      return on_connection_lost(reason_text(reason));
    }
    ++stats_.takeovers;
    stats_.last_takeover = std::chrono::system_clock::now();
    log_->error("mqtt: the broker closed the connection: session taken over (0x{:02X}){}: another client connected with "
                "this agent's client id '{}'. Either a second copy of this agent runs (a cloned or restored server: "
                "stop it), or someone holds a certificate of this county and uses our client id: the county's broker "
                "log names its certificate (\"as {} (... u'CN')\"). Takeover {} since start; the next connect waits "
                "up to mqtt.reconnect_max ({}), never less than half of it.",
                reason, said, client_id_, client_id_, stats_.takeovers, format_duration(config_.reconnect_max));
    on_connection_lost("session taken over", /*taken_over=*/true);
  }

  // taken_over: another client took this session (on_server_disconnect); the next attempt
  // waits reconnect_max, so that the agent never fights the other client in a tight loop.
  void on_connection_lost(const std::string& cause, bool taken_over = false) {
    if (!connected_) return;
    connected_ = false;
    stats_.connected = false;
    flush_acks();
    inflight_.clear();
    pending_.clear();
    ephemeral_inflight_ = 0;
    cancel_birth();  // the next connection publishes its own
    fail_copies();
    log_->warn("mqtt: connection to {} lost{}{}; {} messages unsent", broker_address(),
               cause.empty() ? "" : ": ", cause, store_.snapshot().outbox.unsent);
    if (stopping_) {
      finish_stop();
      return;
    }
    if (taken_over) {
      backoff_step_ = kLongestBackoffStep;  // not a session the broker fails: short_lived_ stays
    } else if (std::chrono::steady_clock::now() - connected_at_ < kShortLived) {
      ++short_lived_;
      backoff_step_ = std::max(backoff_step_, short_lived_);  // such a connection is no success to reset the backoff
    } else {
      short_lived_ = 0;
    }
    schedule_reconnect();
  }

  // next_broker: the attempt goes to another broker of the list, which has not failed in this
  // round: it waits only reconnect_min (jittered), and the backoff does not grow.
  void schedule_reconnect(bool next_broker = false) {
    if (stopping_) return;
    // Exponential backoff with jitter in [delay/2, delay], bounded by reconnect_max.
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    auto wait = next_broker ? backoff_delay(config_.reconnect_min, config_.reconnect_max, 0, uniform(rng_))
                            : backoff_delay(config_.reconnect_min, config_.reconnect_max, backoff_step_++, uniform(rng_));
    log_->debug("mqtt: next connect attempt in {} ms", wait.count());
    reconnect_timer_.expires_after(wait);
    reconnect_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto s = self.lock()) s->connect();
    });
  }

  void diagnose_tls_async() {
    if (diagnosing_) return;
    diagnosing_ = true;
    TlsProbe probe{broker().host, broker().port, config_.ca_file, config_.cert_file, config_.key_file,
                   config_.verify_hostname, std::chrono::milliseconds(5000)};
    std::thread([probe, self = weak_from_this(), &io = io_] {
      std::string why = diagnose_tls(probe);
      asio::post(io, [self, why] {
        auto s = self.lock();
        if (!s) return;
        s->diagnosing_ = false;
        if (why.empty()) return;
        if (why != s->last_tls_diagnosis_) s->log_->error("mqtt: {}", why);
        s->last_tls_diagnosis_ = why;
      });
    }).detach();
  }

  void publish_birth() {
    Json body = {{"online", true},
                 {"session", session_},
                 {"last_seq", store_.snapshot().outbox.last_seq},
                 {"version", std::string("campus-agent/") + kAgentVersion},
                 {"audits", audits_},
                 {"store", store_.identity()}};  // a new store id: seq restarted (docs/store.md "Identity")
    publish_ephemeral(state_topic_, envelope(who_, "state", std::chrono::system_clock::now(), body).dump(), true, {},
                      Ctx::State);
  }

  bool publish_ephemeral(const std::string& t, const std::string& payload, bool retain, const mqtt::properties& props,
                         Ctx kind, std::int64_t value = 0) {
    try {
      client_->publish(mqtt::message::create(t, payload.data(), payload.size(), 1, retain, props), pack(kind, value),
                       *listener_);
      ++ephemeral_inflight_;
      return true;
    } catch (const mqtt::exception& e) {
      log_->warn("mqtt: publish to {} failed: {}", t, describe(e.get_return_code(), e.get_reason_code()));
      lost_without_callback(e);
      return false;
    }
  }

  // Paho C can drop a connection without calling the connection-lost handler, or call it
  // before our connect-success handler has run (then on_connection_lost() saw connected_ false
  // and returned). Either way every publish then fails with MQTTASYNC_DISCONNECTED while we
  // still think we are connected, and nothing would ever reconnect (the outbox would stay
  // stuck, "deferred: disconnected" every 100 ms). Such a failure is treated as the lost
  // connection it is.
  void lost_without_callback(const mqtt::exception& e) {
    if (!connected_ || e.get_return_code() != MQTTASYNC_DISCONNECTED) return;
    asio::post(io_, [self = weak_from_this()] {
      auto s = self.lock();
      if (!s || !s->connected_) return;
      s->log_->warn("mqtt: Paho reports the connection closed without telling us; reconnecting");
      s->on_connection_lost("closed without a connection-lost callback");
    });
  }

  void on_message(mqtt::const_message_ptr msg) {
    const std::string& t = msg->get_topic();
    if (t == state_topic_) return on_state_seen(msg->to_string());
    if (t != cmd_topic_ && t != all_cmd_topic_) return;
    IncomingRequest req{t, msg->to_string(), std::nullopt, std::nullopt};
    const auto& props = msg->get_properties();
    if (props.contains(mqtt::property::RESPONSE_TOPIC))
      req.response_topic = mqtt::get<std::string>(props, mqtt::property::RESPONSE_TOPIC);
    if (props.contains(mqtt::property::CORRELATION_DATA))
      req.correlation_data = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
    if (request_handler_)
      request_handler_(std::move(req));
    else
      log_->info("mqtt: request on {} ignored: no command handler", t);
  }

  // A will from an older session delivered after we reconnected would leave the county
  // believing we are offline: answer it with a fresh birth. One birth for a burst: a resumed
  // session can hold a queued will for every connection the broker lost, and a birth each
  // would be a burst of its own, so the birth follows kBirthCoalesce after the first stale
  // state, for all seen until then.
  void on_state_seen(const std::string& payload) {
    if (!connected_ || stopping_) return;
    Json env = Json::parse(payload, nullptr, false);
    if (env.is_discarded() || !env.contains("body") || !env["body"].is_object()) return;
    const Json& body = env["body"];
    if (body.value("online", true)) return;
    auto seen = body.value("session", std::int64_t{0});
    if (seen > session_) return;  // not ours to contradict
    log_->info("mqtt: stale offline state (session {}) seen while connected in session {}", seen, session_);
    ++stale_seen_;
    if (birth_scheduled_) return;
    birth_scheduled_ = true;
    birth_timer_.expires_after(kBirthCoalesce);
    birth_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
      auto s = self.lock();
      if (ec || !s || !s->birth_scheduled_) return;
      s->birth_scheduled_ = false;
      if (!s->connected_ || s->stopping_) return;
      s->log_->info("mqtt: re-publishing birth after {} stale offline state(s)", s->stale_seen_);
      s->stale_seen_ = 0;
      s->publish_birth();
    });
  }

  void cancel_birth() {
    birth_scheduled_ = false;
    stale_seen_ = 0;
    birth_timer_.cancel();
  }

  // ---- drain ----
  void reset_drain() {
    inflight_.clear();
    pending_.clear();
    cursor_ = 0;
    ++drain_gen_;
    fetching_ = false;
    exhausted_ = false;
  }

  static constexpr int kFetch = 2048;  // rows per outbox read
  static constexpr std::size_t kLowWater = 512;

  // Reads the next rows after cursor_ on the store thread; pump() continues when they arrive.
  void fetch_more() {
    if (fetching_ || exhausted_ || pending_.size() >= kLowWater) return;
    fetching_ = true;
    store_.post([&io = io_, after = cursor_, gen = drain_gen_, self = weak_from_this()](Store& store) {
      auto rows = std::make_shared<std::vector<OutboxMessage>>(store.unsent(after, kFetch));
      asio::post(io, [self, rows, gen] {
        auto s = self.lock();
        if (!s || gen != s->drain_gen_) return;
        s->fetching_ = false;
        if (rows->size() < static_cast<std::size_t>(kFetch)) s->exhausted_ = true;
        if (!rows->empty()) {
          s->cursor_ = rows->back().seq;
          for (auto& m : *rows) s->pending_.push_back(std::move(m));
        }
        s->pump();
      });
    });
  }

  void pump() {
    if (!connected_ || stopping_ || pumping_) return;
    pumping_ = true;
    // Paho C stalls for a second when more publishes are outstanding than the broker's Receive
    // Maximum: the outbox keeps kReserve slots free for birth, health and replies, and counts
    // those that are in flight.
    const int limit = window_ > 2 * kReserve ? window_ - kReserve : std::max(1, window_ / 2);
    while (static_cast<int>(inflight_.size()) + ephemeral_inflight_ < limit) {
      fetch_more();
      if (pending_.empty()) break;
      OutboxMessage& m = pending_.front();
      try {
        client_->publish(mqtt::message::create(m.topic, m.payload.data(), m.payload.size(), m.qos, m.retain),
                         pack(Ctx::Outbox, m.seq), *listener_);
      } catch (const mqtt::exception& e) {
        // Disconnected or Paho's queue full: the row stays unsent; connection loss or a short
        // retry brings it back.
        log_->debug("mqtt: publish of seq {} deferred: {}", m.seq, describe(e.get_return_code(), e.get_reason_code()));
        lost_without_callback(e);
        if (connected_) schedule_retry(Millis(100));
        break;
      }
      inflight_.emplace(m.seq, m.topic);
      pending_.pop_front();
    }
    fetch_more();
    pumping_ = false;
  }

  void pump_later() {
    asio::post(io_, [self = weak_from_this()] {
      if (auto s = self.lock()) s->pump();
    });
  }

 public:
  void on_delivered_batch(const std::vector<std::int64_t>& seqs) {
    for (auto seq : seqs) {
      inflight_.erase(seq);
      acked_.push_back(seq);
    }
    stats_.published += static_cast<std::int64_t>(seqs.size());
    stats_.last_publish = std::chrono::system_clock::now();
    // One transaction (and with synchronous=FULL one fsync) per batch, off the per-message path.
    if (acked_.size() >= 4096)
      flush_acks();
    else if (!flush_scheduled_) {
      flush_scheduled_ = true;
      flush_timer_.expires_after(Millis(100));
      flush_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto s = self.lock()) s->flush_acks();
      });
    }
    pump();
  }

 private:
  void flush_acks() {
    flush_scheduled_ = false;
    if (acked_.empty()) return;
    store_.post([seqs = std::move(acked_), at = std::chrono::system_clock::now()](Store& store) {
      store.mark_sent(seqs, at);
    });
    acked_.clear();
  }

  void on_delivery_failed(std::int64_t seq, int rc, int reason) {
    auto it = inflight_.find(seq);
    std::string t = it != inflight_.end() ? it->second : std::string();
    if (it != inflight_.end()) inflight_.erase(it);
    if (reason >= 0x80) {
      ++stats_.refused;
      store_.post([seq, why = "broker refused: " + reason_text(reason)](Store& store) { store.mark_attempt(seq, why); });
      if (refused_topics_.insert(t).second) {
        if (reason == 0x87) {
          std::string user = !config_.username.empty() ? config_.username
                             : !config_.cert_file.empty() ? certificate_cn(config_.cert_file)
                                                          : std::string();
          std::string who = user.empty() ? "this agent's user" : "user '" + user + "'";
          std::string mismatch = !user.empty() && user != who_.school
                                     ? " The broker knows this agent as '" + user + "' but agent.school is '" +
                                           who_.school + "': give the school a certificate whose CN is its code."
                                     : "";
          log_->error("mqtt: broker refused seq {} on {}: not authorized (0x87).{} Otherwise fix the broker ACL: {} "
                      "needs the block scripts/make-certs writes for school '{}' (`topic write {}report/+` and the "
                      "rest); the county reloads the broker after make-certs. Refused messages stay in the outbox and "
                      "are retried after a reconnect or every {}.",
                      seq, t, mismatch, who, who_.school, subtree(who_), format_duration(config_.reconnect_max));
        } else {
          log_->error("mqtt: broker refused seq {} on {}: {} ({:#x}); it stays in the outbox and is retried later", seq, t,
                      reason_text(reason), reason);
        }
      }
      schedule_retry(config_.reconnect_max);
    } else if (connected_) {
      // Not a refusal (e.g. a timeout): resend from the store after a pause, never in a loop.
      log_->debug("mqtt: seq {} not acknowledged: {}", seq, paho_rc_text(rc));
      schedule_retry(std::max(config_.reconnect_min, Millis(1000)));
    }
    pump();
  }

  // Rewinds the drain to the lowest unsent seq once the window is idle (refused or failed rows).
  void schedule_retry(Millis after) {
    if (retry_scheduled_) return;
    retry_scheduled_ = true;
    retry_timer_.expires_after(after);
    retry_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      auto s = self.lock();
      if (!s) return;
      s->retry_scheduled_ = false;
      if (!s->connected_) return;
      if (!s->inflight_.empty()) return s->schedule_retry(Millis(100));
      s->flush_acks();
      s->reset_drain();
      s->pump();
    });
  }

  void finish_stop() {
    if (stop_finished_) return;
    stop_finished_ = true;
    if (auto d = stop_deadline_.lock()) d->cancel();
    flush_timer_.cancel();
    flush_acks();
    fail_copies();
    auto done = std::move(stop_done_);
    if (connected_) {
      connected_ = false;
      stats_.connected = false;
      try {
        client_->disconnect(0, pack(Ctx::Disconnect), *listener_);  // reason 0: the will is not sent
      } catch (const mqtt::exception&) {
      }
    }
    log_->info("mqtt: stopped ({} published this run)", stats_.published);
    // done() after the last mark_sent is written (FIFO on the store thread).
    if (done) store_.after_queued(std::move(done));
  }

  asio::io_context& io_;
  // Outbox reads and mark_sent run on the store's thread (FIFO), so the io_context and the
  // PUBACK path never wait for SQLite or its fsync. Work posted there may outlive this object:
  // it takes the Store it is given, never `this`, and comes back through a weak_ptr.
  StoreExecutor& store_;
  Identity who_;
  MqttConfig config_;
  std::vector<std::string> audits_;
  std::shared_ptr<spdlog::logger> log_;
  std::string client_id_, state_topic_, cmd_topic_, all_cmd_topic_, health_topic_;
  bool nodelay_ = true;

  std::unique_ptr<Listener> listener_;  // declared before client_: outlives it
  std::unique_ptr<mqtt::async_client> client_;
  bool client_had_connection_ = false;  // renew_client before its next connect
  std::size_t broker_ = 0;               // the broker of config_.brokers the next attempt goes to
  std::size_t client_broker_ = 0;        // the broker client_ was made for
  bool client_v311_ = false;             // client_ was made for MQTT 3.1.1
  std::set<std::size_t> v311_brokers_;   // brokers that refused MQTT 5 (for the life of the process)
  bool client_tainted_ = false;         // a publish failed mid-write: set aside, never destroyed
  std::uint64_t client_generation_ = 0;  // which client's callbacks are current

  asio::steady_timer reconnect_timer_, flush_timer_, retry_timer_, birth_timer_;
  static constexpr auto kBirthCoalesce = std::chrono::milliseconds(200);
  bool birth_scheduled_ = false;
  int stale_seen_ = 0;
  std::mt19937_64 rng_;
  std::function<void(IncomingRequest)> request_handler_;
  std::map<std::int64_t, std::function<void(bool)>> copies_;  // resend copies awaiting PUBACK
  std::int64_t copy_id_ = 0;
  std::function<void()> stop_done_;
  std::weak_ptr<asio::steady_timer> stop_deadline_;
  std::weak_ptr<asio::steady_timer> offline_wait_;  // stop(): how long the store may take for last_seq
  bool offline_sent_ = false;

  PublisherStats stats_;
  bool started_ = false, connected_ = false, ever_connected_ = false, stopping_ = false, stop_finished_ = false;
  bool pumping_ = false, flush_scheduled_ = false, retry_scheduled_ = false, diagnosing_ = false;
  int backoff_step_ = 0;
  // Connections in a row that the broker closed within kShortLived of accepting them.
  static constexpr auto kShortLived = std::chrono::seconds(2);
  static constexpr int kCleanStartAfter = 3;
  // MQTT 5 DISCONNECT reason: another client connected with our client id.
  static constexpr int kSessionTakenOver = 0x8E;
  // A broker that does not speak MQTT 5: CONNACK reason 0x84, or 3.1.1 CONNACK return code 1.
  static constexpr int kUnsupportedProtocolVersion = 0x84;
  static constexpr int kUnacceptableProtocolV311 = 1;
  // A backoff step whose wait is reconnect_max (the delay doubles per step and is capped there).
  static constexpr int kLongestBackoffStep = 30;
  int short_lived_ = 0;
  std::chrono::steady_clock::time_point connected_at_{};
  int window_ = 20;
  static constexpr int kReserve = 2;
  int ephemeral_inflight_ = 0;
  std::int64_t attempt_session_ = 0, session_ = 0, cursor_ = 0;
  std::string last_failure_, last_tls_diagnosis_;
  std::deque<OutboxMessage> pending_;
  bool fetching_ = false, exhausted_ = false;
  bool connect_pending_ = false;  // the session for the next attempt is being raised
  std::uint64_t drain_gen_ = 0;
  std::map<std::int64_t, std::string> inflight_;  // seq -> topic
  std::vector<std::int64_t> acked_;
  std::set<std::string> refused_topics_;
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
      s->on_delivered_batch(batch);
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
    if (auto s = o.lock()) s->on_action(kind_of(ctx), value_of(ctx), true, 0, 0, receive_max);
  });
}

void Listener::on_failure(const mqtt::token& tok) {
  void* ctx = tok.get_user_context();
  int rc = tok.get_return_code();
  int reason = static_cast<int>(tok.get_reason_code());
  asio::post(io_, [o = owner_, ctx, rc, reason] {
    if (auto s = o.lock()) s->on_action(kind_of(ctx), value_of(ctx), false, rc, reason, std::nullopt);
  });
}

// The interface object the daemon owns; the implementation is shared so that callbacks still
// queued on the io_context find it gone (weak_ptr) instead of dangling.
class PublisherHandle final : public Publisher {
 public:
  explicit PublisherHandle(std::shared_ptr<MqttPublisher> impl) : impl_(std::move(impl)) {}
  void start() override { impl_->start(); }
  void outbox_changed() override { impl_->outbox_changed(); }
  void publish_health(const Json& body) override { impl_->publish_health(body); }
  void publish_reply(const std::string& t, const std::optional<std::string>& c, const Json& e) override {
    impl_->publish_reply(t, c, e);
  }
  void on_request(std::function<void(IncomingRequest)> h) override { impl_->on_request(std::move(h)); }
  void publish_copy(const std::string& t, const std::string& p, std::function<void(bool)> d) override {
    impl_->publish_copy(t, p, std::move(d));
  }
  void stop(Millis timeout, std::function<void()> done) override { impl_->stop(timeout, std::move(done)); }
  PublisherStats stats() const override { return impl_->stats(); }

 private:
  std::shared_ptr<MqttPublisher> impl_;
};

}  // namespace

std::unique_ptr<Publisher> make_publisher(asio::io_context& io, StoreExecutor& store, const Identity& who,
                                          const MqttConfig& config, std::vector<std::string> audits,
                                          std::shared_ptr<spdlog::logger> log) {
  auto impl = std::make_shared<MqttPublisher>(io, store, who, config, std::move(audits), std::move(log));
  impl->init();
  return std::make_unique<PublisherHandle>(std::move(impl));
}

}  // namespace campus
