// Audit scheduling: interval + jitter, no overlap, deadlines, on-demand runs.
#include "core/scheduler.hpp"

namespace campus {

struct Scheduler::Job {
  explicit Job(asio::io_context& io) : tick(io), deadline(io) {}
  ConfiguredAudit audit;
  asio::steady_timer tick;
  asio::steady_timer deadline;
  AuditStats stats;
  std::uint64_t run_id = 0;      // increases per run; a late `done` with an old id is discarded
  bool waiting_for_plugin = false;  // the plugin has not called done yet (even after a timeout)
  std::shared_ptr<AuditPlugin> running_plugin;
  std::vector<std::function<void(const AuditRun&)>> waiters;
  SteadyTime run_started;
  SystemTime run_started_wall;
  bool removed = false;
};

Scheduler::Scheduler(asio::io_context& io, ContextFactory context, RunSink sink, WallClock clock, std::uint64_t seed)
    : io_(io), context_(std::move(context)), sink_(std::move(sink)), clock_(std::move(clock)), rng_(seed) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::set_audits(std::vector<ConfiguredAudit> audits) {
  std::map<std::string, std::shared_ptr<Job>> next;
  for (auto& a : audits) {
    auto it = jobs_.find(a.schedule.name);
    std::shared_ptr<Job> job;
    if (it != jobs_.end()) {
      job = it->second;
      bool interval_changed = job->audit.schedule.interval != a.schedule.interval;
      job->audit = std::move(a);
      if (started_ && interval_changed) schedule(job, next_delay(job->audit.schedule));
    } else {
      job = std::make_shared<Job>(io_);
      job->audit = std::move(a);
      if (started_) {
        const auto& s = job->audit.schedule;
        schedule(job, s.first_delay);
      }
    }
    next[job->audit.schedule.name] = job;
  }
  for (auto& [name, job] : jobs_) {
    if (!next.count(name)) {
      job->removed = true;
      job->tick.cancel();
    }
  }
  jobs_ = std::move(next);
}

Millis Scheduler::next_delay(const AuditSchedule& s) {
  std::uniform_int_distribution<std::int64_t> d(0, s.jitter.count());
  return s.interval + Millis(d(rng_));
}

void Scheduler::start() {
  started_ = true;
  for (auto& [name, job] : jobs_) {
    const auto& s = job->audit.schedule;
    std::uniform_int_distribution<std::int64_t> d(0, std::min(s.jitter, s.first_delay).count());
    schedule(job, s.first_delay + Millis(d(rng_)));
  }
}

void Scheduler::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& [name, job] : jobs_) {
    job->tick.cancel();
    job->deadline.cancel();
    if (job->waiting_for_plugin && job->running_plugin) job->running_plugin->cancel();
    auto waiters = std::move(job->waiters);
    job->waiters.clear();
    AuditRun run;
    run.audit = name;
    run.status = AuditRun::Status::Failed;
    run.error = "the agent is stopping";
    for (auto& w : waiters) w(run);
  }
}

void Scheduler::schedule(const std::shared_ptr<Job>& job, Millis delay) {
  job->tick.expires_after(delay);
  std::weak_ptr<Job> weak = job;
  job->tick.async_wait([this, weak](const boost::system::error_code& ec) {
    auto job = weak.lock();
    if (ec || !job || job->removed || stopped_) return;
    // Fixed rate: the next tick is planned now, so a slow run makes later ticks find it busy.
    schedule(job, next_delay(job->audit.schedule));
    if (job->waiting_for_plugin) {
      ++job->stats.skipped;
      if (job->audit.plugin)
        spdlog::warn("audit {}: still running at its next tick; this run is skipped ({} skipped so far)",
                     job->audit.schedule.name, job->stats.skipped);
      return;
    }
    begin(job);
  });
}

void Scheduler::run_now(const std::string& audit, std::function<void(const AuditRun&)> done) {
  auto it = jobs_.find(audit);
  if (it == jobs_.end() || stopped_) {
    AuditRun run;
    run.audit = audit;
    run.status = AuditRun::Status::Failed;
    run.error = stopped_ ? "the agent is stopping" : "no enabled audit named \"" + audit + "\"";
    done(run);
    return;
  }
  auto job = it->second;
  job->waiters.push_back(std::move(done));
  if (!job->waiting_for_plugin) begin(job);
}

void Scheduler::begin(const std::shared_ptr<Job>& job) {
  const auto& s = job->audit.schedule;
  std::uint64_t id = ++job->run_id;
  job->waiting_for_plugin = true;
  job->stats.running = true;
  job->running_plugin = job->audit.plugin;
  job->run_started = std::chrono::steady_clock::now();
  job->run_started_wall = clock_();
  SteadyTime deadline = job->run_started + s.timeout;

  job->deadline.expires_at(deadline);
  std::weak_ptr<Job> weak = job;
  job->deadline.async_wait([this, weak, id](const boost::system::error_code& ec) {
    auto job = weak.lock();
    if (ec || !job || job->run_id != id || !job->stats.running) return;
    AuditRun run;
    run.audit = job->audit.schedule.name;
    run.status = AuditRun::Status::TimedOut;
    run.error = "no report within its timeout of " + format_duration(job->audit.schedule.timeout);
    // Cancel, then free the slot: a plugin that never answers must not block its audit
    // forever. Its late answer (if any) carries an old run id and is discarded.
    if (job->running_plugin) job->running_plugin->cancel();
    job->waiting_for_plugin = false;
    job->running_plugin.reset();
    finish(job, id, std::move(run));
  });

  prepare(job, id, deadline, job->running_plugin->reads_records());
}

void Scheduler::prepare(const std::shared_ptr<Job>& job, std::uint64_t id, SteadyTime deadline, bool with_records) {
  std::weak_ptr<Job> weak = job;
  auto ready = [this, weak, id, deadline, with_records](Result<AuditContext> ctx) {
    auto job = weak.lock();
    // Timed out or stopped while the store prepared the context: that run is over.
    if (!job || job->run_id != id || !job->stats.running || stopped_) return;
    // A reload while the store prepared it can make the plugin want its records after all.
    if (ctx && !with_records && job->running_plugin->reads_records()) return prepare(job, id, deadline, true);
    if (!ctx) {
      job->waiting_for_plugin = false;
      job->running_plugin.reset();
      AuditRun run;
      run.audit = job->audit.schedule.name;
      run.status = AuditRun::Status::Failed;
      run.error = "the store could not be read for the run: " + ctx.error().message();
      finish(job, id, std::move(run));
      return;
    }
    start_plugin(job, id, std::move(ctx.value()));
  };
  context_(job->audit.schedule.name, deadline, with_records, std::move(ready));
}

void Scheduler::start_plugin(const std::shared_ptr<Job>& job, std::uint64_t id, AuditContext ctx) {
  const auto& s = job->audit.schedule;
  std::weak_ptr<Job> weak = job;
  ctx.now = job->run_started_wall;
  auto plugin = job->running_plugin;
  try {
    plugin->audit(std::move(ctx), [this, weak, id, plugin](AuditReport report) {
      // Always hop through post: a plugin may call done synchronously inside audit().
      asio::post(io_, [this, weak, id, report = std::move(report)]() mutable {
        auto job = weak.lock();
        if (!job) return;
        if (stopped_) {
          // The answer came after stop() (it was queued, or the plugin ignored the cancel):
          // nothing is stored once the agent stops, so the offline state it sends counts every
          // report of this process.
          spdlog::info("audit {}: finished while the agent stops; the report is not stored (the next start audits "
                       "again)", job->audit.schedule.name);
          return;
        }
        if (job->run_id != id || !job->stats.running) {
          spdlog::warn("audit {}: the plugin answered after its deadline; the late report is discarded",
                       job->audit.schedule.name);
          return;
        }
        job->waiting_for_plugin = false;
        job->running_plugin.reset();
        AuditRun run;
        run.audit = job->audit.schedule.name;
        run.status = AuditRun::Status::Ok;
        run.report = std::move(report);
        finish(job, id, std::move(run));
      });
    });
  } catch (const std::exception& e) {
    job->waiting_for_plugin = false;
    job->running_plugin.reset();
    AuditRun run;
    run.audit = s.name;
    run.status = AuditRun::Status::Failed;
    run.error = std::string("the plugin threw: ") + e.what();
    finish(job, id, std::move(run));
  }
}

void Scheduler::finish(const std::shared_ptr<Job>& job, std::uint64_t run_id, AuditRun run) {
  if (job->run_id != run_id || !job->stats.running) return;
  job->stats.running = false;
  job->deadline.cancel();
  run.started = job->run_started_wall;
  run.duration = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - job->run_started);
  auto& st = job->stats;
  ++st.runs;
  st.last_duration = run.duration;
  st.last_run = run.started;
  switch (run.status) {
    case AuditRun::Status::Ok: ++st.ok; st.last_error.clear(); break;
    case AuditRun::Status::TimedOut: ++st.timed_out; st.last_error = run.error; break;
    case AuditRun::Status::Failed: ++st.failed; st.last_error = run.error; break;
  }
  auto waiters = std::move(job->waiters);
  job->waiters.clear();
  for (auto& w : waiters) w(run);
  if (sink_) sink_(std::move(run));
}

std::map<std::string, AuditStats> Scheduler::stats() const {
  std::map<std::string, AuditStats> out;
  for (const auto& [name, job] : jobs_) out[name] = job->stats;
  return out;
}

std::vector<std::string> Scheduler::audit_names() const {
  std::vector<std::string> out;
  for (const auto& [name, job] : jobs_) out.push_back(name);
  return out;
}

}  // namespace campus
