// The collector (see collector.hpp).
#include "collector.hpp"

#include <unistd.h>

#include <cmath>
#include <random>

#include "core/backoff.hpp"
#include "core/envelope.hpp"
#include "core/systemd_notify.hpp"

namespace campus::county {
namespace {

constexpr std::size_t kMaxPendingHealth = 20000;  // health is best effort: beyond this it is dropped
const Millis kPruneEvery{std::chrono::hours(6)};
const Millis kFirstPrune{std::chrono::minutes(1)};

std::string now_utc() { return rfc3339(std::chrono::system_clock::now(), "+00:00"); }

}  // namespace

Collector::Collector(asio::io_context& io, CountyConfig config, std::unique_ptr<CountyDatabase> db,
                     std::shared_ptr<spdlog::logger> log)
    : io_(io), config_(std::move(config)), db_(std::move(db)), log_(std::move(log)), db_work_(db_io_.get_executor()),
      retry_timer_(io), repair_timer_(io), status_timer_(io), prune_timer_(io), alert_timer_(io), delivery_timer_(io) {
  for (const auto& s : config_.schools) register_.insert(s.code);
}

Collector::~Collector() {
  db_work_.reset();
  if (db_thread_.joinable()) {
    db_io_.stop();
    db_thread_.join();
  }
}

IngestRules Collector::rules() const {
  IngestRules r;
  r.county = config_.county;
  r.max_payload = config_.ingest.max_payload;
  if (config_.register_file) {
    const auto* reg = &register_;
    r.registered = [reg](const std::string& school) { return reg->count(school) > 0; };
  }
  return r;
}

std::shared_ptr<mqtt::Session> Collector::make_session(bool durable) {
  const auto& m = config_.mqtt;
  mqtt::SessionOptions o;
  o.name = durable ? "ingest" : "live";
  o.host = m.host;
  o.port = m.port;
  o.tls = !m.insecure;
  o.ca_file = m.ca_file;
  o.cert_file = m.cert_file;
  o.key_file = m.key_file;
  o.verify_hostname = m.verify_hostname;
  if (!m.username.empty()) o.username = m.username;
  o.password = m.password;
  o.client_id = durable ? m.client_id : m.live_client_id;
  o.clean_start = !durable;
  o.session_expiry_s = durable ? static_cast<std::uint32_t>(m.session_expiry.count() / 1000) : 0;
  o.keep_alive_s = static_cast<std::uint16_t>(m.keep_alive.count() / 1000);
  o.receive_maximum = static_cast<std::uint16_t>(m.receive_maximum);
  o.connect_timeout = m.connect_timeout;
  o.reconnect_min = m.reconnect_min;
  o.reconnect_max = m.reconnect_max;
  const std::string root = "campus/v1/" + config_.county + "/+/";
  if (durable) {
    // state: retained ones at every connection (each school's last_seq, to find tails);
    // reports: retained ones only when the subscription is new (a resumed session has them).
    o.subscriptions = {{root + "state", 1, 0},
                       {root + "report/+", 1, 1},
                       {root + "event/+", 1, 1},
                       {root + "reply/" + config_.repair.requester, 1, 1}};
  } else {
    o.subscriptions = {{root + "health", 0, 0}};
  }
  std::weak_ptr<Collector> weak = weak_from_this();
  auto holder = std::make_shared<std::weak_ptr<mqtt::Session>>();
  mqtt::Session::Handlers h;
  h.on_message = [weak, holder](mqtt::Delivery d) {
    auto self = weak.lock();
    auto s = holder->lock();
    if (self && s) self->on_message(s, std::move(d));
  };
  h.on_connected = [weak, durable](const mqtt::ConnectionInfo& info) {
    auto self = weak.lock();
    if (!self) return;
    if (durable && !info.session_present)
      self->log_->warn("mqtt ingest: the broker had no session for {} (first start, or it expired or was lost): "
                       "what schools sent meanwhile is repaired from their stores",
                       self->config_.mqtt.client_id);
    if (durable) self->tick_repair();
  };
  h.on_disconnected = [](const std::string&) {};
  auto s = std::make_shared<mqtt::Session>(io_, std::move(o), std::move(h), log_);
  *holder = s;
  return s;
}

void Collector::start() {
  started_ = std::chrono::steady_clock::now();
  started_wall_ = std::chrono::system_clock::now();
  last_status_ = started_;
  db_->set_policy(config_.repair);
  db_->set_retention(config_.history);
  if (config_.register_file) write_register(register_rows());
  db_thread_ = std::thread([this] { db_io_.run(); });
  ingest_ = make_session(true);
  live_ = make_session(false);
  ingest_->start();
  live_->start();
  log_->info("county {}: collecting into {} (repair {}, reorder grace {})", config_.county,
             config_.database.url.empty() ? config_.database.path.string() : config_.database.url,
             config_.repair.enabled ? "on" : "OFF",
             format_duration(config_.repair.reorder_grace));
  repair_timer_.expires_after(config_.repair_tick);
  repair_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_repair();
  });
  status_timer_.expires_after(Millis(500));
  status_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_status();
  });
  // The first evaluation waits a period: the retained states of a restart arrive meanwhile.
  alert_timer_.expires_after(config_.alerts.every);
  alert_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_alerts();
  });
  if (!config_.alerts.channels.empty()) {
    http_ = make_http_client(io_);
    delivery_timer_.expires_after(Millis(200));
    delivery_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (auto s = w.lock(); s && !ec) s->tick_deliveries();
    });
  }
  prune_timer_.expires_after(kFirstPrune);
  prune_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_prune();
  });
}

void Collector::on_message(const std::shared_ptr<mqtt::Session>& from, mqtt::Delivery d) {
  if (stopping_) return;  // not acknowledged: the broker sends it again to the next collector run
  auto parsed = parse_message(rules(), d.message.topic, d.message.payload, d.message.retain,
                              d.message.properties.correlation_data);
  if (auto* q = std::get_if<Quarantined>(&parsed)) log_quarantine(*q);
  // A reply someone here waits for (request_case_update) is handed over; it is kept like every
  // other reply as well.
  if (auto* m = std::get_if<Incoming>(&parsed); m && m->kind == Kind::Reply && m->correlation)
    if (auto it = awaited_.find(*m->correlation); it != awaited_.end()) {
      auto waiting = std::move(it->second);
      awaited_.erase(it);
      waiting.timeout->cancel();
      waiting.done(m->body);
    }
  if (from == live_ && pending_.size() > kMaxPendingHealth) {
    if (health_dropped_++ == 0) log_->warn("county: the database is behind; health messages are dropped until it catches up");
    return;
  }
  const std::size_t bytes = d.message.payload.size() + d.message.topic.size();
  pending_bytes_ += bytes;
  pending_.push_back(
      Pending{std::move(parsed), bytes, from, d.generation, d.message.qos > 0 ? d.message.packet_id : std::uint16_t{0}});
  flow_control();
  commit_next();
}

// Memory stays bounded when the schools send faster than the database commits (and Mosquitto
// 2.0.11 does not hold the collector to its Receive Maximum): reading from the broker pauses
// above ingest.max_pending and resumes below half of it.
void Collector::flow_control() {
  const std::size_t limit = config_.ingest.max_pending;
  for (const auto& s : {ingest_, live_}) {
    if (!s) continue;
    if (!s->paused() && pending_bytes_ > limit) {
      s->pause();
      if (s == ingest_) log_->info("county: {} MiB waiting for the database: reading from the broker paused",
                                   pending_bytes_ >> 20);
    } else if (s->paused() && pending_bytes_ < limit / 2) {
      s->resume();
    }
  }
}

void Collector::log_quarantine(const Quarantined& q) {
  const std::string key = q.school + "/" + q.kind;
  const auto now = std::chrono::steady_clock::now();
  auto it = quarantine_logged_.find(key);
  if (it != quarantine_logged_.end() && now - it->second < config_.ingest.quarantine_log_every) return;
  quarantine_logged_[key] = now;
  log_->warn("county: quarantined a message on {}: {}: {} (kept in the quarantine table; next such line for {} {} in {})",
             q.topic, q.reason, q.detail, q.school.empty() ? "(no school)" : q.school, q.kind,
             format_duration(config_.ingest.quarantine_log_every));
}

void Collector::commit_next() {
  if (committing_ || pending_.empty() || stopped_) return;
  if (retry_timer_.expiry() > std::chrono::steady_clock::now()) return;  // waiting after a failed commit
  const std::size_t n = std::min<std::size_t>(pending_.size(), static_cast<std::size_t>(config_.database.batch_max));
  std::vector<Pending> batch(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.begin() + n));
  pending_.erase(pending_.begin(), pending_.begin() + n);
  committing_ = true;
  on_db([self = shared_from_this(), batch = std::move(batch)]() mutable {
    std::vector<Parsed> items;
    items.reserve(batch.size());
    for (auto& p : batch) items.push_back(std::move(p.parsed));
    auto result = self->db_->ingest(items, std::chrono::system_clock::now());
    std::set<std::string> schools;  // what the batch touched, for the dashboard's live pages
    if (!result.ok())
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i].parsed = std::move(items[i]);  // kept for the retry
    else
      for (const auto& item : items)
        if (const auto* m = std::get_if<Incoming>(&item)) schools.insert(m->school);
    asio::post(self->io_, [self, batch = std::move(batch), result = std::move(result),
                           schools = std::move(schools)]() mutable {
      self->committed(std::move(batch), std::move(result), schools);
    });
  });
}

void Collector::committed(std::vector<Pending> batch, Result<BatchResult> result,
                          const std::set<std::string>& schools) {
  committing_ = false;
  if (!result.ok()) {
    const std::string msg = result.error().message();
    if (msg != db_error_) log_->error("county: {}", msg);
    db_error_ = msg;
    pending_.insert(pending_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    std::uniform_real_distribution<double> u(0, 1);
    static thread_local std::mt19937_64 rng(std::random_device{}());
    retry_timer_.expires_after(backoff_delay(Millis(100), Millis(10000), retry_step_++, u(rng)));
    retry_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (auto s = w.lock(); s && !ec) s->commit_next();
    });
    if (stopping_) finish_stop();  // nothing acknowledged: the broker keeps it for the next run
    return;
  }
  if (!db_error_.empty()) log_->info("county: the database takes messages again");
  db_error_.clear();
  retry_step_ = 0;
  // Committed: now, and only now, the broker may forget them.
  for (const auto& p : batch)
    if (p.packet_id) p.session->ack(p.generation, p.packet_id);
  committed_ += static_cast<std::int64_t>(batch.size());
  ++batches_;
  for (const auto& p : batch) pending_bytes_ -= std::min(pending_bytes_, p.bytes);
  flow_control();
  const auto& r = result.value();
  for (const auto& line : r.log) log_->warn("county: {}", line);
  if (commit_hook_) commit_hook_(schools);
  // A reply frees its school's slot: plan the next requests now rather than at the next tick.
  if (r.replies > 0) asio::post(io_, [w = weak_from_this()] {
    if (auto s = w.lock()) s->plan_now();
  });
  if (r.gaps_opened > 0) log_->info("county: {} new gap(s) in what schools sent; asking after {} unless they fill",
                                   r.gaps_opened, format_duration(config_.repair.reorder_grace));
  if (stopping_ && pending_.empty()) {
    finish_stop();
    return;
  }
  commit_next();
}

void Collector::tick_repair() {
  if (stopping_) return;
  repair_timer_.expires_after(config_.repair_tick);
  repair_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_repair();
  });
  plan_now();
}

void Collector::plan_now() {
  if (stopping_ || repairing_ || !ingest_ || !ingest_->connected()) return;
  repairing_ = true;
  on_db([self = shared_from_this(), policy = config_.repair] {
    auto r = self->db_->plan_repairs(policy, std::chrono::system_clock::now());
    asio::post(self->io_, [self, r = std::move(r)]() mutable {
      self->repairing_ = false;
      if (!r.ok()) {
        self->log_->warn("county: {}", r.error().message());
        return;
      }
      self->send_requests(std::move(r.value()));
    });
  });
}

void Collector::send_requests(std::vector<ResendRequest> requests) {
  for (auto& req : requests) {
    const std::string base = "campus/v1/" + config_.county + "/" + req.school + "/";
    mqtt::Publish msg;
    msg.topic = base + "cmd";
    const std::string reply_to = base + "reply/" + config_.repair.requester;
    // Where to reply twice: as MQTT 5 properties, and in the payload for a school whose broker
    // took it only on MQTT 3.1.1 (docs/protocol.md "MQTT 3.1.1").
    msg.payload = Json{{"cmd", "resend"}, {"from_seq", req.from_seq}, {"to_seq", req.to_seq},
                       {"reply_to", reply_to}, {"correlation", req.correlation}}.dump();
    msg.properties.response_topic = reply_to;
    msg.properties.correlation_data = req.correlation;
    log_->info("repair: asking {} to resend seq {}..{} (request {})", req.school, req.from_seq, req.to_seq, req.id);
    ingest_->publish(std::move(msg), [self = shared_from_this(), id = req.id, school = req.school](bool ok,
                                                                                               const std::string& why) {
      if (ok) return;
      self->log_->warn("repair: the request to {} was not delivered to the broker: {}; asked again later", school, why);
      self->on_db([self, id, why, policy = self->config_.repair] {
        (void)self->db_->request_not_sent(id, why, policy, std::chrono::system_clock::now());
      });
    });
  }
}

void Collector::request_case_update(const std::string& school, Json args, std::function<void(const Json&)> done) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  const std::string correlation = "case-" + std::to_string(rng());
  const std::string base = "campus/v1/" + config_.county + "/" + school + "/";
  const std::string reply_to = base + "reply/" + config_.repair.requester;
  args["cmd"] = "case.update";
  args["reply_to"] = reply_to;
  args["correlation"] = correlation;
  mqtt::Publish msg;
  msg.topic = base + "cmd";
  msg.payload = args.dump();
  msg.properties.response_topic = reply_to;
  msg.properties.correlation_data = correlation;
  auto timeout = std::make_shared<asio::steady_timer>(io_, config_.repair.request_timeout);
  awaited_[correlation] = {done, timeout};
  auto fail = [w = weak_from_this(), correlation](const std::string& code, const std::string& message) {
    auto self = w.lock();
    if (!self) return;
    auto it = self->awaited_.find(correlation);
    if (it == self->awaited_.end()) return;
    auto waiting = std::move(it->second);
    self->awaited_.erase(it);
    waiting.timeout->cancel();
    waiting.done(Json{{"ok", false}, {"error", {{"code", code}, {"message", message}}}});
  };
  timeout->async_wait([fail, school](const boost::system::error_code& ec) {
    if (!ec) fail("timeout", "no answer from " + school + " in time (repair.request_timeout)");
  });
  log_->info("county: asking {} to record case step {} on {} (by {})", school, args.value("action", ""),
             args.value("case", ""), args.value("by", ""));
  ingest_->publish(std::move(msg), [fail, school](bool ok, const std::string& why) {
    if (!ok) fail("not_sent", "the request to " + school + " did not reach the broker: " + why);
  });
}

void Collector::tick_alerts() {
  if (stopping_) return;
  alert_timer_.expires_after(config_.alerts.every);
  alert_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_alerts();
  });
  if (evaluating_) return;
  evaluating_ = true;
  std::vector<std::string> codes(register_.begin(), register_.end());
  on_db([self = shared_from_this(), rules = config_.alerts, codes = std::move(codes)] {
    auto r = evaluate_alerts(*self->db_, rules, codes, std::chrono::system_clock::now());
    asio::post(self->io_, [self, r = std::move(r)] {
      self->evaluating_ = false;
      if (!r.ok()) {
        self->log_->warn("alerts: {}", r.error().message());
        return;
      }
      const AlertPass& p = r.value();
      if (p.fired || p.resolved)
        self->log_->info("alerts: {} fired, {} resolved ({} active, {} pending); {} deliveries queued", p.fired,
                         p.resolved, p.active, p.pending, p.queued);
      if (p.queued) self->tick_deliveries();
    });
  });
}

// Every channel that is idle and not backing off claims what is due for it.
void Collector::tick_deliveries() {
  if (stopping_ || !http_) return;
  delivery_timer_.expires_after(Millis(1000));
  delivery_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_deliveries();
  });
  const auto now = std::chrono::steady_clock::now();
  for (const auto& ch : config_.alerts.channels) {
    auto& st = channels_[ch.name];
    if (!st.busy && now >= st.not_before) deliver(ch);
  }
}

void Collector::deliver(const AlertChannel& channel) {
  auto& st = channels_[channel.name];
  st.busy = true;
  // The lease outlasts the request: a claim is taken over only from a collector that died.
  const Millis lease = channel.timeout * 2 + Millis(2000);
  on_db([self = shared_from_this(), channel, lease, max = config_.alerts.batch_max] {
    auto claimed = self->db_->claim_deliveries(channel.name, max, lease, std::chrono::system_clock::now());
    asio::post(self->io_, [self, channel, claimed = std::move(claimed)]() mutable {
      auto& st = self->channels_[channel.name];
      if (!claimed.ok() || claimed.value().empty() || self->stopping_) {
        st.busy = false;
        if (!claimed.ok()) self->log_->warn("alerts: {}", claimed.error().message());
        return;
      }
      auto batch = std::move(claimed.value());
      HttpRequest req = delivery_request(channel, batch, self->config_.county, self->config_.name, self->config_.alerts,
                                         std::chrono::system_clock::now());
      self->http_->fetch(std::move(req), [self, channel, batch = std::move(batch)](Result<HttpResponse> r) mutable {
        if (self->stopping_ && !r.ok()) {
          // Cancelled by stop(): the claim's lease lets the next run (or the other collector)
          // send it; at most this one message is repeated.
          self->channels_[channel.name].busy = false;
          return;
        }
        self->delivered(channel, std::move(batch), judge_response(channel, r));
      });
    });
  });
}

void Collector::delivered(const AlertChannel& channel, std::vector<AlertDelivery> batch, const DeliveryVerdict& v) {
  auto& st = channels_[channel.name];
  std::vector<std::int64_t> ids;
  for (const auto& d : batch) ids.push_back(d.id);
  Millis wait{0};
  if (v.delivered) {
    st.failures = 0;
    ++st.messages;
    st.delivered += static_cast<std::int64_t>(batch.size());
    st.last_error.clear();
    log_->info("alerts: {} alert(s) delivered to {}", batch.size(), channel.name);
  } else {
    ++st.failed;
    static thread_local std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> u(0, 1);
    wait = backoff_delay(config_.alerts.retry_min, config_.alerts.retry_max, st.failures++, u(rng));
    if (v.rate_limited) wait = std::max(wait, config_.alerts.rate_limit_wait);
    if (v.retry_after) wait = std::max(wait, std::min(*v.retry_after, config_.alerts.retry_max));
    if (v.error != st.last_error || st.failures == 1)
      log_->warn("alerts: {}; {} alert(s) kept, next attempt in {}", v.error, batch.size(), format_duration(wait));
    st.last_error = v.error;
    st.not_before = std::chrono::steady_clock::now() + wait;
  }
  on_db([self = shared_from_this(), channel, ids = std::move(ids), v, wait] {
    const auto now = std::chrono::system_clock::now();
    auto st = self->db_->delivery_result(ids, v.delivered, v.error, now + wait, now);
    asio::post(self->io_, [self, channel, st = std::move(st), ok = v.delivered] {
      self->channels_[channel.name].busy = false;
      if (!st.ok()) self->log_->warn("alerts: {}", st.error().message());
      else if (ok && !self->stopping_) self->deliver(channel);  // more may be due
    });
  });
}

Json Collector::figures() const {
  const auto now = std::chrono::steady_clock::now();
  auto session = [](const std::shared_ptr<mqtt::Session>& s) {
    return Json{{"connected", s && s->connected()}, {"client_id", s ? s->options().client_id : ""},
                {"connects", s ? s->connects() : 0}, {"last_error", s ? s->last_error() : ""}};
  };
  return Json{{"at", now_utc()},
              {"county", config_.county},
              {"version", std::string("campus-county/") + kAgentVersion},
              {"pid", ::getpid()},
              {"started", rfc3339(started_wall_, "+00:00")},
              {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(now - started_).count()},
              {"ingest", session(ingest_)},
              {"live", session(live_)},
              {"messages_per_s", std::round(rate_ * 10) / 10},
              {"committed", committed_},
              {"batches", batches_},
              {"pending", pending_.size()},
              {"pending_bytes", pending_bytes_},
              {"reading_paused", ingest_ && ingest_->paused()},
              {"health_dropped", health_dropped_},
              {"database_error", db_error_.empty() ? Json(nullptr) : Json(db_error_)},
              {"repair", config_.repair.enabled},
              // Mosquitto does not publish how much a session has queued: the backlog is visible
              // only as it arrives (pending, messages_per_s).
              {"broker_backlog", nullptr},
              {"alert_channels", channel_figures()}};
}

Json Collector::channel_figures() const {
  Json out = Json::object();
  for (const auto& ch : config_.alerts.channels) {
    auto it = channels_.find(ch.name);
    const ChannelState st = it == channels_.end() ? ChannelState{} : it->second;
    out[ch.name] = {{"kind", channel_kind_name(ch.kind)}, {"messages", st.messages}, {"delivered", st.delivered},
                    {"failed_attempts", st.failed}, {"last_error", st.last_error.empty() ? Json(nullptr) : Json(st.last_error)}};
  }
  return out;
}

void Collector::tick_status() {
  if (stopped_) return;
  status_timer_.expires_after(config_.status_every);
  status_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_status();
  });
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - last_status_).count();
  rate_ = dt > 0 ? (committed_ - committed_at_last_status_) / dt : 0;
  last_status_ = now;
  committed_at_last_status_ = committed_;
  Json st = figures();
  const auto silent_since = std::chrono::system_clock::now() - config_.silent_after;
  on_db([self = shared_from_this(), st = std::move(st), silent_since]() mutable {
    auto totals = self->db_->totals(silent_since);
    if (totals.ok()) st["database"] = totals.value();
    else st["database"] = {{"error", totals.error().message()}};
    (void)self->db_->set_status(st);
    asio::post(self->io_, [self, st = std::move(st)] {
      const Json& d = st["database"];
      if (d.contains("error") || !st["database_error"].is_null()) {
        // The figures would be stale or zeros: say what an operator must know instead.
        const std::string why = st["database_error"].is_string() ? st["database_error"].get<std::string>()
                                                                  : d["error"].get<std::string>();
        systemd::status("database unavailable, nothing acknowledged until it is back: " + why);
        return;
      }
      std::string line = std::to_string(static_cast<long long>(st["committed"].get<std::int64_t>())) + " committed, " +
                         std::to_string(d.value("gaps_open", 0)) + " open gap(s), " +
                         std::to_string(d.value("seqs_lost", 0)) + " seq(s) lost, " +
                         std::to_string(d.value("quarantined", 0)) + " quarantined, " +
                         std::to_string(d.contains("silent") ? d["silent"].size() : 0) + " silent school(s)";
      systemd::status(line);
    });
  });
}

void Collector::tick_prune() {
  prune_timer_.expires_after(kPruneEvery);
  prune_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = w.lock(); s && !ec) s->tick_prune();
  });
  on_db([self = shared_from_this(), retention = config_.history] {
    auto r = self->db_->prune(retention, std::chrono::system_clock::now());
    if (!r.ok()) self->log_->warn("county: {}", r.error().message());
    else if (r.value() > 0) self->log_->info("county: retention removed {} row(s)", r.value());
  });
}

void Collector::reload(const CountyConfig& next) {
  if (next.mqtt.host != config_.mqtt.host || next.mqtt.port != config_.mqtt.port ||
      next.mqtt.client_id != config_.mqtt.client_id || next.database.path != config_.database.path ||
      next.database.url != config_.database.url ||
      next.county != config_.county)
    log_->warn("reload: [county] code, [mqtt] and [database] changes take effect at the next restart");
  const auto mqtt = config_.mqtt;
  const auto database = config_.database;
  const auto county = config_.county;
  config_ = next;
  config_.mqtt = mqtt;
  config_.database = database;
  config_.county = county;
  register_.clear();
  for (const auto& s : config_.schools) register_.insert(s.code);
  if (!config_.alerts.channels.empty() && !http_) {
    http_ = make_http_client(io_);
    tick_deliveries();
  }
  on_db([self = shared_from_this(), policy = config_.repair, retention = config_.history] {
    self->db_->set_policy(policy);
    self->db_->set_retention(retention);
  });
  if (config_.register_file)
    on_db([self = shared_from_this(), rows = register_rows()] { self->write_register(rows); });
  log_->info("reload applied: {} school(s) in the register, repair {}", config_.schools.size(),
             config_.repair.enabled ? "on" : "off");
}

std::vector<std::pair<std::string, std::string>> Collector::register_rows() const {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& s : config_.schools) rows.emplace_back(s.code, s.name.empty() ? s.code : s.name);
  return rows;
}

// REQUIRES: on the database thread (or before it runs).
void Collector::write_register(const std::vector<std::pair<std::string, std::string>>& rows) {
  if (auto st = db_->set_register(rows); !st.ok()) log_->warn("county: {}", st.error().message());
}

void Collector::liveness(std::function<void()> ping) {
  on_db([self = shared_from_this(), ping = std::move(ping)] { asio::post(self->io_, ping); });
}

void Collector::stop(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  on_stopped_ = std::move(done);
  repair_timer_.cancel();
  prune_timer_.cancel();
  alert_timer_.cancel();
  delivery_timer_.cancel();
  if (http_) http_->cancel_all();
  log_->info("county: stopping: committing {} received message(s) first", pending_.size() + (committing_ ? 1 : 0));
  if (!committing_) {
    if (pending_.empty()) finish_stop();
    else commit_next();
  }
}

void Collector::finish_stop() {
  if (stopped_) return;
  stopped_ = true;
  retry_timer_.cancel();
  status_timer_.cancel();
  sessions_open_ = 2;
  auto closed = [self = shared_from_this()] {
    if (--self->sessions_open_ > 0) return;
    self->db_work_.reset();
    if (self->db_thread_.joinable()) self->db_thread_.join();
    self->log_->info("county: stopped ({} message(s) committed in this run)", self->committed_);
    if (auto done = std::exchange(self->on_stopped_, nullptr)) done();
  };
  ingest_->stop(closed);
  live_->stop(closed);
}

}  // namespace campus::county
