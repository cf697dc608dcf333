// campus-county's collector: two MQTT sessions, the database on its own thread, the repair loop.
//
//   ingest session (durable: fixed client id, Clean Start 0, session expiry; QoS 1 state,
//   report/+, event/+ and our reply/{requester})  ---+
//   live session (clean; QoS 0 health)  -------------+--> parse (ingest.hpp) --> batch
//        --> database thread: ONE transaction per batch --> back on the io thread: PUBACK
//            every message of the batch, in arrival order (nothing is acknowledged before it
//            is committed; a failed commit is retried and nothing is acknowledged meanwhile)
//   repair tick --> database thread: plan_repairs --> `resend` requests on the ingest session
//   alert tick --> database thread: evaluate_alerts (alerts.hpp); delivery tick, per channel:
//       claim_deliveries --> HTTP (libcurl's thread, answer on the io thread) --> delivery_result
//
// Threads: the io_context (both sessions, timers; never waits for the disk), the database
// thread (every database call) and the HTTP client's thread (alert deliveries).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "campus/asio.hpp"
#include "campus/http.hpp"
#include "county_config.hpp"
#include "database.hpp"
#include "mqtt_session.hpp"

namespace campus::county {

class Collector : public std::enable_shared_from_this<Collector> {
 public:
  Collector(asio::io_context& io, CountyConfig config, std::unique_ptr<CountyDatabase> db,
            std::shared_ptr<spdlog::logger> log);
  ~Collector();

  void start();
  // Commits what is being committed, acknowledges it, disconnects both sessions (the durable
  // one is kept by the broker), stops the database thread; `done` on the io_context.
  void stop(std::function<void()> done);
  // A new, valid configuration (SIGHUP). [mqtt] and [database] changes wait for a restart.
  void reload(const CountyConfig& next);
  // Calls `ping` once the database thread has answered (the systemd watchdog: a stuck disk or
  // a stuck io thread both stop the pings).
  void liveness(std::function<void()> ping);
  // What the collector knows without the database: sessions, committed, messages/s, pending
  // (the status row's figures; the dashboard's /metrics). io thread.
  Json figures() const;
  // Per alert channel: messages sent, alerts delivered, failed attempts, the last error.
  Json channel_figures() const;
  // Called on the io thread after each committed batch with the schools it touched (the
  // dashboard's live updates).
  void on_commit(std::function<void(const std::set<std::string>& schools)> hook) { commit_hook_ = std::move(hook); }
  // Sends `case.update` (args: case, action, note, by) to a school on the ingest session and
  // calls `done` with the reply's body ({"ok": ...}), or with an error body of code
  // "not_sent" or "timeout" (repair.request_timeout). io thread.
  void request_case_update(const std::string& school, Json args, std::function<void(const Json& reply)> done);

 private:
  struct Pending {
    Parsed parsed;
    std::size_t bytes = 0;
    std::shared_ptr<mqtt::Session> session;
    std::uint64_t generation = 0;
    std::uint16_t packet_id = 0;  // 0: QoS 0, nothing to acknowledge
  };

  void on_message(const std::shared_ptr<mqtt::Session>& from, mqtt::Delivery d);
  void commit_next();
  void flow_control();
  void committed(std::vector<Pending> batch, Result<BatchResult> result, const std::set<std::string>& schools);
  void tick_repair();
  void plan_now();
  void send_requests(std::vector<ResendRequest> requests);
  void tick_status();
  void tick_prune();
  void log_quarantine(const Quarantined& q);
  IngestRules rules() const;
  std::shared_ptr<mqtt::Session> make_session(bool durable);
  void tick_alerts();
  void tick_deliveries();
  void deliver(const AlertChannel& channel);
  void delivered(const AlertChannel& channel, std::vector<AlertDelivery> batch, const DeliveryVerdict& verdict);
  void finish_stop();
  std::vector<std::pair<std::string, std::string>> register_rows() const;
  void write_register(const std::vector<std::pair<std::string, std::string>>& rows);
  template <class F>
  void on_db(F&& f) { asio::post(db_io_, std::forward<F>(f)); }

  asio::io_context& io_;
  CountyConfig config_;
  std::unique_ptr<CountyDatabase> db_;  // used on the database thread only
  std::shared_ptr<spdlog::logger> log_;
  asio::io_context db_io_;
  asio::executor_work_guard<asio::io_context::executor_type> db_work_;
  std::thread db_thread_;
  std::shared_ptr<mqtt::Session> ingest_, live_;
  std::vector<Pending> pending_;
  std::size_t pending_bytes_ = 0;  // payload bytes in pending_ and in the batch being committed
  bool committing_ = false, stopping_ = false, stopped_ = false;
  int retry_step_ = 0;
  std::string db_error_;
  asio::steady_timer retry_timer_, repair_timer_, status_timer_, prune_timer_, alert_timer_, delivery_timer_;
  std::unique_ptr<HttpClient> http_;  // alert deliveries
  bool evaluating_ = false;
  // Per alert channel (io thread): one message in flight at most, backoff after a failure.
  struct ChannelState {
    bool busy = false;
    int failures = 0;
    std::chrono::steady_clock::time_point not_before{};
    std::int64_t messages = 0, delivered = 0, failed = 0;  // since start: messages sent, alerts delivered, failed attempts
    std::string last_error;
  };
  std::map<std::string, ChannelState> channels_;
  std::function<void()> on_stopped_;
  int sessions_open_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> quarantine_logged_;
  std::set<std::string> register_;
  // Figures for the status (io thread).
  std::int64_t committed_ = 0, committed_at_last_status_ = 0, batches_ = 0, health_dropped_ = 0;
  std::chrono::steady_clock::time_point started_, last_status_;
  SystemTime started_wall_;
  bool repairing_ = false;
  double rate_ = 0;  // messages/s committed over the last status period
  std::function<void(const std::set<std::string>&)> commit_hook_;
  struct AwaitedReply {
    std::function<void(const Json&)> done;
    std::shared_ptr<asio::steady_timer> timeout;
  };
  std::map<std::string, AwaitedReply> awaited_;  // correlation -> who waits for the reply
};

}  // namespace campus::county
