// The publisher: the outbox drained to the county broker in seq order, birth and will,
// health, replies and resend copies, the reconnects and the stop. It is made of parts:
//   mqtt_client.hpp / paho_client.cpp   the MQTT client (the only file with Paho in it);
//   outbox_window                      which rows are read ahead, in flight, next (pure);
//   reconnect_policy                   when and where to connect next (pure, time passed in);
//   presence                           birth, will, offline, stale states (pure).
// Every piece of state lives on the io_context thread, and every store access runs on the
// store's thread. A row is marked sent only when its PUBACK arrived.
#include "core/publisher.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/mqtt_client.hpp"
#include "core/mqtt_tls.hpp"
#include "core/outbox_window.hpp"
#include "core/presence.hpp"
#include "core/reconnect_policy.hpp"

namespace campus {
namespace {

class MqttPublisher final : public std::enable_shared_from_this<MqttPublisher> {
 public:
  MqttPublisher(asio::io_context& io, StoreExecutor& store, const Identity& who, const MqttConfig& config,
                std::vector<std::string> audits, std::shared_ptr<spdlog::logger> log)
      : io_(io),
        store_(store),
        who_(who),
        config_(with_brokers(config)),
        audits_(std::move(audits)),
        log_(std::move(log)),
        policy_(config_.reconnect_min, config_.reconnect_max, config_.brokers.size()),
        reconnect_timer_(io),
        flush_timer_(io),
        retry_timer_(io),
        birth_timer_(io),
        rng_(std::random_device{}()) {
    client_id_ = config_.client_id.empty() ? "campus-" + who_.county + "-" + who_.school : config_.client_id;
    state_topic_ = topic(who_, "state");
    cmd_topic_ = topic(who_, "cmd");
    all_cmd_topic_ = "campus/v1/" + who_.county + "/all/cmd";
    health_topic_ = topic(who_, "health");
    const char* nd = std::getenv("CAMPUS_MQTT_NODELAY");  // measurement knob: "0" disables
    nodelay_ = !(nd && std::string(nd) == "0");
  }

  // The client's events come back through a weak_ptr: one queued on the io_context after the
  // publisher is gone finds nothing.
  void init() {
    auto self = weak_from_this();
    MqttEvents events;
    events.connected = [self](std::int64_t attempt, std::optional<int> receive_max) {
      if (auto s = self.lock()) s->on_connected(attempt, receive_max);
    };
    events.connect_failed = [self](std::int64_t attempt, MqttError error) {
      if (auto s = self.lock()) s->on_connect_failed(attempt, error);
    };
    events.lost = [self](std::string cause) {
      if (auto s = self.lock()) s->on_connection_lost(cause);
    };
    events.broker_disconnected = [self](int reason, std::string detail) {
      if (auto s = self.lock()) s->on_broker_disconnect(reason, detail);
    };
    events.outbox_acked = [self](std::vector<std::int64_t> seqs) {
      if (auto s = self.lock()) s->on_delivered(seqs);
    };
    events.published = [self](MqttToken token, std::int64_t value, std::optional<MqttError> error) {
      if (auto s = self.lock()) s->on_published(token, value, error);
    };
    events.subscribe_failed = [self](MqttError error) {
      if (auto s = self.lock())
        s->log_->error("mqtt: subscribe failed ({}): commands from the county will not arrive", error.text());
    };
    events.message = [self](MqttIncoming in) {
      if (auto s = self.lock()) s->on_message(std::move(in));
    };
    client_ = make_paho_client(io_, config_, client_id_, std::move(events), log_);
  }

  const MqttBroker& broker() const { return config_.brokers[policy_.broker()]; }
  std::string broker_address() const { return broker().host + ":" + std::to_string(broker().port); }
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
    connect();
  }

  void outbox_changed() {
    window_.more_committed();
    pump();
  }

  void publish_health(const Json& body) {
    if (!connected_) return;
    publish_ephemeral(MqttToken::Health, health_topic_,
                      envelope(who_, "health", std::chrono::system_clock::now(), body).dump(), true);
  }

  void publish_reply(const std::string& to, const std::optional<std::string>& correlation, const Json& env) {
    if (to.rfind(subtree(who_), 0) != 0) {
      log_->warn("mqtt: reply to {} refused: outside this school's subtree {}", to, subtree(who_));
      return;
    }
    if (!connected_) {
      log_->info("mqtt: reply to {} dropped: not connected", to);
      return;
    }
    // On MQTT 3.1.1 the body's "correlation" (CommandHandler::finish) is the only one.
    publish_ephemeral(MqttToken::Reply, to, env.dump(), false, 0, correlation);
  }

  void on_request(std::function<void(IncomingRequest)> handler) { request_handler_ = std::move(handler); }

  void publish_copy(const std::string& t, const std::string& payload, std::function<void(bool)> done) {
    const std::int64_t id = ++copy_id_;
    copies_[id] = std::move(done);
    if (!connected_ || stopping_ || t.rfind(subtree(who_), 0) != 0 ||
        !publish_ephemeral(MqttToken::Copy, t, payload, false, id))
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

  PublisherStats stats() const {
    PublisherStats out = stats_;
    out.clients_set_aside = client_->clients_set_aside();
    return out;
  }

 private:
  static MqttConfig with_brokers(MqttConfig config) {
    if (config.brokers.empty()) config.brokers.push_back({config.host, config.port});  // built by hand, not read
    return config;
  }

  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

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
    if (policy_.clean_start())
      log_->warn("mqtt: the last {} connections were closed by the broker within {} s of connecting: "
                 "starting a clean session (unacknowledged messages are resent from the store)",
                 policy_.short_lived(), ReconnectPolicy::kShortLived.count());
    MqttConnect how;
    how.attempt = session;
    how.broker = policy_.broker();
    how.v311 = policy_.speaks_v311(how.broker);
    how.clean_start = policy_.clean_start();
    how.will_topic = state_topic_;
    how.will_payload =
        envelope(who_, "state", std::chrono::system_clock::now(), offline_body(session, last_seq, "will")).dump();
    client_->connect(how);
  }

  void on_connected(std::int64_t session, std::optional<int> receive_max) {
    if (stopping_ || session != attempt_session_) return;
    connected_ = true;
    stats_.connected = true;
    if (ever_connected_) ++stats_.reconnects;
    ever_connected_ = true;
    session_ = session;
    stats_.session = session;
    policy_.connected(std::chrono::steady_clock::now());
    last_failure_.clear();
    // Everything not acknowledged is sent again, from the lowest seq.
    const int window = window_.open(config_.inflight_window, receive_max);
    if (window < config_.inflight_window)
      log_->info("mqtt: broker Receive Maximum {} < inflight_window {}: using {}", window, config_.inflight_window,
                 window);
    if (nodelay_) {
      int n = set_nodelay_on_sockets_to(broker().host, broker().port);
      if (n == 0) log_->debug("mqtt: could not find the broker socket to set TCP_NODELAY");
    }
    stats_.protocol = client_->speaks_v311() ? "3.1.1" : "5";
    log_->info("mqtt: connected to {} with MQTT {} (session {}, window {})", broker_address(), stats_.protocol, session_,
               window);
    // Resubscribe on every connect: the broker session may have expired.
    client_->subscribe({cmd_topic_, all_cmd_topic_, state_topic_});
    publish_birth();
    pump();
  }

  void on_connect_failed(std::int64_t session, const MqttError& error) {
    if (stopping_ || session != attempt_session_) return;
    std::string what = error.text();
    if (!policy_.speaks_v311(policy_.broker()) && error.v5_refused()) {
      const auto wait = policy_.refused_v5(uniform());
      log_->warn("mqtt: {} refused MQTT 5 ({}): connecting with MQTT 3.1.1 from now on until the agent restarts; "
                 "requests then carry their reply topic and correlation in the payload (docs/protocol.md)",
                 broker_address(), what);
      return reconnect_after(wait);
    }
    if (error.credentials_refused())
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
    if (!config_.insecure && error.transport_failed()) diagnose_tls_async();
    const auto wait = policy_.failed(uniform());
    if (config_.brokers.size() > 1) log_->info("mqtt: trying {} next", broker_address());
    reconnect_after(wait);
  }

  // The broker ended the connection with a DISCONNECT (reason: an MQTT 5 reason code).
  void on_broker_disconnect(int reason, const std::string& detail) {
    if (!connected_) return;
    std::string said = detail.substr(0, 200);  // the broker's Reason String, shown on one line
    std::replace_if(said.begin(), said.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }, ' ');
    if (!said.empty()) said = " (\"" + said + "\")";
    if (reason != kSessionTakenOver) {
      log_->warn("mqtt: the broker closed the connection: {} (0x{:02X}){}", mqtt_reason_text(reason), reason, said);
      return on_connection_lost(mqtt_reason_text(reason));
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

  void on_connection_lost(const std::string& cause, bool taken_over = false) {
    if (!connected_) return;
    connected_ = false;
    stats_.connected = false;
    flush_acks();
    window_.close();
    cancel_birth();  // the next connection publishes its own
    fail_copies();
    log_->warn("mqtt: connection to {} lost{}{}; {} messages unsent", broker_address(), cause.empty() ? "" : ": ",
               cause, store_.snapshot().outbox.unsent);
    if (stopping_) {
      finish_stop();
      return;
    }
    reconnect_after(policy_.lost(std::chrono::steady_clock::now(), taken_over, uniform()));
  }

  void reconnect_after(Millis wait) {
    if (stopping_) return;
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

  // ---- presence ----
  void publish_birth() {
    Json body = birth_body(session_, store_.snapshot().outbox.last_seq, audits_, Json(store_.identity()));
    publish_ephemeral(MqttToken::State, state_topic_,
                      envelope(who_, "state", std::chrono::system_clock::now(), body).dump(), true);
  }

  // online:false from the agent itself; the disconnect follows its PUBACK (or the deadline).
  void publish_offline(std::int64_t last_seq) {
    if (offline_sent_ || !connected_) return;
    offline_sent_ = true;
    if (auto w = offline_wait_.lock()) w->cancel();
    Json body = offline_body(session_, last_seq, "stopped");
    if (!publish_ephemeral(MqttToken::State, state_topic_,
                           envelope(who_, "state", std::chrono::system_clock::now(), body).dump(), true,
                           kStopMarker))
      finish_stop();
  }

  // A stale offline state of ours gets one birth, kBirthCoalesce after the first of a burst.
  void on_state_seen(const std::string& payload) {
    if (!connected_ || stopping_) return;
    auto stale = stale_.seen(payload, session_);
    if (!stale) return;
    log_->info("mqtt: stale offline state (session {}) seen while connected in session {}", stale->session, session_);
    if (!stale->first) return;
    birth_timer_.expires_after(kBirthCoalesce);
    birth_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
      auto s = self.lock();
      if (ec || !s) return;
      const int answered = s->stale_.answer();
      if (answered == 0 || !s->connected_ || s->stopping_) return;
      s->log_->info("mqtt: re-publishing birth after {} stale offline state(s)", answered);
      s->publish_birth();
    });
  }

  void cancel_birth() {
    stale_.clear();
    birth_timer_.cancel();
  }

  // ---- messages ----
  bool publish_ephemeral(MqttToken token, const std::string& t, const std::string& payload, bool retain,
                         std::int64_t value = 0, const std::optional<std::string>& correlation = std::nullopt) {
    if (auto error = client_->publish(token, value, t, payload, 1, retain, correlation)) {
      log_->warn("mqtt: publish to {} failed: {}", t, error->text());
      lost_without_callback(*error);
      return false;
    }
    window_.ephemeral_sent();
    return true;
  }

  // Paho C can drop a connection without calling the connection-lost handler, or call it
  // before our connect-success handler has run (then on_connection_lost() saw connected_ false
  // and returned). Either way every publish then fails with "disconnected" while we still think
  // we are connected, and nothing would ever reconnect. Such a failure is treated as the lost
  // connection it is.
  void lost_without_callback(const MqttError& error) {
    if (!connected_ || !error.disconnected()) return;
    asio::post(io_, [self = weak_from_this()] {
      auto s = self.lock();
      if (!s || !s->connected_) return;
      s->log_->warn("mqtt: Paho reports the connection closed without telling us; reconnecting");
      s->on_connection_lost("closed without a connection-lost callback");
    });
  }

  void on_message(MqttIncoming in) {
    if (in.topic == state_topic_) return on_state_seen(in.payload);
    if (in.topic != cmd_topic_ && in.topic != all_cmd_topic_) return;
    IncomingRequest req{std::move(in.topic), std::move(in.payload), std::move(in.response_topic),
                        std::move(in.correlation_data)};
    if (request_handler_)
      request_handler_(std::move(req));
    else
      log_->info("mqtt: request on {} ignored: no command handler", req.topic);
  }

  void on_published(MqttToken token, std::int64_t value, const std::optional<MqttError>& error) {
    if (token == MqttToken::Outbox) return error ? on_delivery_failed(value, *error) : on_delivered({value});
    window_.ephemeral_done();
    pump_later();
    switch (token) {
      case MqttToken::State:
        if (value == kStopMarker && stopping_) finish_stop();  // our online:false went through (or not)
        if (error) log_->warn("mqtt: state message not delivered: {}", error->text());
        return;
      case MqttToken::Health:
      case MqttToken::Reply:
        if (error)
          log_->warn("mqtt: {} not delivered: {}", token == MqttToken::Health ? "health" : "reply", error->text());
        return;
      case MqttToken::Copy:
        return finish_copy(value, !error);
      case MqttToken::Outbox:
        return;
    }
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

  // ---- drain ----
  // Reads the next rows on the store thread when the window wants them; pump() continues when
  // they arrive.
  void fetch_more() {
    auto fetch = window_.fetch_due();
    if (!fetch) return;
    store_.post([&io = io_, fetch = *fetch, self = weak_from_this()](Store& store) {
      auto rows = std::make_shared<std::vector<OutboxMessage>>(store.unsent(fetch.after, fetch.count));
      asio::post(io, [self, rows, fetch] {
        auto s = self.lock();
        if (s && s->window_.fetched(fetch, std::move(*rows))) s->pump();
      });
    });
  }

  void pump() {
    if (!connected_ || stopping_ || pumping_) return;
    pumping_ = true;
    while (const OutboxMessage* m = window_.next()) {
      if (auto error = client_->publish(MqttToken::Outbox, m->seq, m->topic, m->payload, m->qos, m->retain)) {
        // Disconnected or the client's queue full: the row stays unsent; connection loss or a
        // short retry brings it back.
        log_->debug("mqtt: publish of seq {} deferred: {}", m->seq, error->text());
        lost_without_callback(*error);
        if (connected_) schedule_retry(Millis(100));
        break;
      }
      window_.sent();
    }
    fetch_more();
    pumping_ = false;
  }

  void pump_later() {
    asio::post(io_, [self = weak_from_this()] {
      if (auto s = self.lock()) s->pump();
    });
  }

  void on_delivered(const std::vector<std::int64_t>& seqs) {
    for (auto seq : seqs) {
      window_.acked(seq);
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

  void flush_acks() {
    flush_scheduled_ = false;
    if (acked_.empty()) return;
    store_.post([seqs = std::move(acked_), at = std::chrono::system_clock::now()](Store& store) {
      store.mark_sent(seqs, at);
    });
    acked_.clear();
  }

  void on_delivery_failed(std::int64_t seq, const MqttError& error) {
    const std::string t = window_.failed(seq);
    if (error.refused_by_broker()) {
      ++stats_.refused;
      store_.post([seq, why = "broker refused: " + mqtt_reason_text(error.reason)](Store& store) {
        store.mark_attempt(seq, why);
      });
      if (refused_topics_.insert(t).second) log_refusal(seq, t, error.reason);
      schedule_retry(config_.reconnect_max);
    } else if (connected_) {
      // Not a refusal (e.g. a timeout): resend from the store after a pause, never in a loop.
      log_->debug("mqtt: seq {} not acknowledged: {}", seq, error.text());
      schedule_retry(std::max(config_.reconnect_min, Millis(1000)));
    }
    pump();
  }

  // Once per topic: what the refusal means and how the school or the county fixes it.
  void log_refusal(std::int64_t seq, const std::string& t, int reason) {
    if (reason != 0x87) {
      log_->error("mqtt: broker refused seq {} on {}: {} ({:#x}); it stays in the outbox and is retried later", seq, t,
                  mqtt_reason_text(reason), reason);
      return;
    }
    std::string user = !config_.username.empty()   ? config_.username
                       : !config_.cert_file.empty() ? certificate_cn(config_.cert_file)
                                                    : std::string();
    std::string who = user.empty() ? "this agent's user" : "user '" + user + "'";
    std::string mismatch = !user.empty() && user != who_.school
                               ? " The broker knows this agent as '" + user + "' but agent.school is '" + who_.school +
                                     "': give the school a certificate whose CN is its code."
                               : "";
    log_->error("mqtt: broker refused seq {} on {}: not authorized (0x87).{} Otherwise fix the broker ACL: {} "
                "needs the block scripts/make-certs writes for school '{}' (`topic write {}report/+` and the "
                "rest); the county reloads the broker after make-certs. Refused messages stay in the outbox and "
                "are retried after a reconnect or every {}.",
                seq, t, mismatch, who, who_.school, subtree(who_), format_duration(config_.reconnect_max));
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
      if (!s->window_.idle()) return s->schedule_retry(Millis(100));
      s->flush_acks();
      s->window_.rewind();
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
      client_->disconnect();
    }
    log_->info("mqtt: stopped ({} published this run)", stats_.published);
    // done() after the last mark_sent is written (FIFO on the store thread).
    if (done) store_.after_queued(std::move(done));
  }

  static constexpr auto kBirthCoalesce = std::chrono::milliseconds(200);
  static constexpr std::int64_t kStopMarker = 1;  // the value of the clean stop's state publish
  // MQTT 5 DISCONNECT reason: another client connected with our client id.
  static constexpr int kSessionTakenOver = 0x8E;

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
  std::shared_ptr<MqttClient> client_;

  OutboxWindow window_;
  ReconnectPolicy policy_;
  StaleStates stale_;
  asio::steady_timer reconnect_timer_, flush_timer_, retry_timer_, birth_timer_;
  std::mt19937_64 rng_;

  std::function<void(IncomingRequest)> request_handler_;
  std::map<std::int64_t, std::function<void(bool)>> copies_;  // resend copies awaiting PUBACK
  std::int64_t copy_id_ = 0;
  std::function<void()> stop_done_;
  std::weak_ptr<asio::steady_timer> stop_deadline_;
  std::weak_ptr<asio::steady_timer> offline_wait_;  // stop(): how long the store may take for last_seq
  bool offline_sent_ = false;

  PublisherStats stats_;
  bool connected_ = false, ever_connected_ = false, stopping_ = false, stop_finished_ = false;
  bool pumping_ = false, flush_scheduled_ = false, retry_scheduled_ = false, diagnosing_ = false;
  bool connect_pending_ = false;  // the session for the next attempt is being raised
  std::int64_t attempt_session_ = 0, session_ = 0;
  std::string last_failure_, last_tls_diagnosis_;
  std::vector<std::int64_t> acked_;  // PUBACKed seqs not yet marked sent
  std::set<std::string> refused_topics_;
};

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
