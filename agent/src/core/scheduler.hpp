// Runs each audit on its interval (with jitter) on one io_context. An audit never overlaps
// itself: a tick that finds it still running is skipped and counted. Every run is bounded by
// its deadline: a plugin that has not answered by then is reported as timed out and cancelled,
// never waited on forever; its slot is freed and its late answer, if any, is discarded.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "campus/asio.hpp"
#include "campus/plugin.hpp"
#include "core/config.hpp"
#include "core/plugin_host.hpp"

namespace campus {

struct AuditRun {
  std::string audit;
  enum class Status { Ok, TimedOut, Failed } status = Status::Ok;
  SystemTime started;
  Millis duration{0};
  std::optional<AuditReport> report;  // set when Ok
  std::string error;                  // set otherwise
};

struct AuditStats {
  std::int64_t runs = 0, ok = 0, timed_out = 0, failed = 0, skipped = 0;
  Millis last_duration{0};
  std::optional<SystemTime> last_run;
  std::string last_error;
  bool running = false;
};

class Scheduler {
 public:
  // Builds the context of one run and hands it to `ready` on the io_context, later or at once:
  // the records (when the plugin reads them), open cases and previous summary come from the
  // store's thread. An Error (the store could not be read) fails the run with that error.
  using ContextReady = std::function<void(Result<AuditContext>)>;
  using ContextFactory =
      std::function<void(const std::string& audit, SteadyTime deadline, bool reads_records, ContextReady ready)>;
  // Receives every finished run (ok, timed out or failed), on the io_context.
  using RunSink = std::function<void(AuditRun)>;
  using WallClock = std::function<SystemTime()>;

  Scheduler(asio::io_context& io, ContextFactory context, RunSink sink, WallClock clock = nullptr,
            std::uint64_t seed = std::random_device{}());
  ~Scheduler();

  // Replaces the audits (start and reload). Runs in progress finish under their old plugin;
  // an audit keeps its running state, so a reload never makes it overlap itself.
  void set_audits(std::vector<ConfiguredAudit> audits);
  // Starts the timers: each audit's first run after first_delay + up to min(jitter, first_delay).
  void start();
  // Cancels timers and in-flight runs; pending `run_now` callbacks get a Failed run.
  void stop();

  // Runs `audit` now, or joins the run in progress; `done` gets that run. Unknown audit:
  // done(Failed) with the error. Never runs an audit concurrently with itself.
  void run_now(const std::string& audit, std::function<void(const AuditRun&)> done);

  std::map<std::string, AuditStats> stats() const;
  std::vector<std::string> audit_names() const;

  // The delay before the run after `tick` (exposed for the jitter-bounds test):
  // interval + uniform[0, jitter].
  Millis next_delay(const AuditSchedule& s);

 private:
  struct Job;
  void schedule(const std::shared_ptr<Job>& job, Millis delay);
  void begin(const std::shared_ptr<Job>& job);
  // Asks for the run's context (with the plugin's records or not), then starts the plugin.
  void prepare(const std::shared_ptr<Job>& job, std::uint64_t run_id, SteadyTime deadline, bool with_records);
  void start_plugin(const std::shared_ptr<Job>& job, std::uint64_t run_id, AuditContext ctx);
  void finish(const std::shared_ptr<Job>& job, std::uint64_t run_id, AuditRun run);

  asio::io_context& io_;
  ContextFactory context_;
  RunSink sink_;
  WallClock clock_;
  std::mt19937_64 rng_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace campus
