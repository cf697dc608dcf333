// The daemon and its one-shot modes. One io_context (main thread) runs the scheduler, the
// plugins' probes, the publisher and the command handler; every SQLite call runs on the store's
// own thread (StoreExecutor) so no fsync or large commit ever stalls the loop; Paho's threads
// only post to the io_context.
#include "core/agent.hpp"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "campus/http.hpp"
#include "core/commands.hpp"
#include "core/envelope.hpp"
#include "core/health.hpp"
#include "core/logging.hpp"
#include "core/plugin_host.hpp"
#include "core/publisher.hpp"
#include "core/scheduler.hpp"
#include "core/store.hpp"
#include "core/store_executor.hpp"
#include "core/systemd_notify.hpp"

namespace campus {
namespace {

class NoRecords : public RecordReader {
 public:
  void scan(const std::string&, const std::function<void(const std::string&, const Json&)>&) const override {}
  std::optional<Json> get(const std::string&, const std::string&) const override { return std::nullopt; }
};

Identity identity_of(const AgentConfig& c) { return Identity{c.county, c.school, c.timezone_offset}; }

const char* status_name(AuditRun::Status s) {
  switch (s) {
    case AuditRun::Status::Ok: return "ok";
    case AuditRun::Status::TimedOut: return "timed_out";
    default: return "failed";
  }
}

std::string scalar_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v.get<double>());
    return buf;
  }
  return v.dump();
}

// Flattens the summary's scalars into "a.b=1" pairs for the human table.
void flatten(const Json& j, const std::string& prefix, std::vector<std::string>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string k = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object()) flatten(*it, k, out);
    else if (!it->is_array()) out.push_back(k + "=" + scalar_text(*it));
  }
}

void print_run(const AuditRun& run, bool json) {
  if (json) {
    Json j;
    j["audit"] = run.audit;
    j["status"] = status_name(run.status);
    j["duration_ms"] = run.duration.count();
    if (run.report) {
      const auto& r = *run.report;
      j["summary"] = r.summary;
      j["findings"] = Json::array();
      for (const auto& f : r.findings)
        j["findings"].push_back({{"subject", f.subject}, {"state", f.state}, {"reason", f.reason}, {"details", f.details}});
      j["errors"] = Json::array();
      for (const auto& e : r.input_errors) j["errors"].push_back({{"where", e.where}, {"what", e.what}, {"fix", e.fix}});
      j["case_actions"] = r.case_actions.size();
    } else {
      j["error"] = run.error;
    }
    std::cout << j.dump() << std::endl;
    return;
  }
  std::cout << "== " << run.audit << ": " << status_name(run.status) << " in " << format_duration(run.duration) << "\n";
  if (!run.report) {
    std::cout << "   " << run.error << "\n\n";
    return;
  }
  std::vector<std::string> pairs;
  flatten(run.report->summary, "", pairs);
  std::string line = "  ";
  for (const auto& p : pairs) {
    if (line.size() + p.size() > 100) {
      std::cout << line << "\n";
      line = "  ";
    }
    line += " " + p;
  }
  if (line.size() > 2) std::cout << line << "\n";
  const auto& fs = run.report->findings;
  if (!fs.empty()) {
    std::size_t w = 8;
    for (const auto& f : fs) w = std::max(w, f.subject.size());
    std::printf("   %-*s  %-12s  %s\n", static_cast<int>(w), "SUBJECT", "STATE", "REASON");
    std::size_t shown = 0;
    for (const auto& f : fs) {
      if (++shown > 200) {
        std::cout << "   ... " << fs.size() - 200 << " more (use --json for all)\n";
        break;
      }
      std::printf("   %-*s  %-12s  %s\n", static_cast<int>(w), f.subject.c_str(), f.state.c_str(), f.reason.c_str());
    }
  }
  for (const auto& e : run.report->input_errors) std::cout << "   input error: " << e.message() << "\n";
  std::cout << std::endl;
}

// Everything one run of the agent (any mode) is made of.
class Runtime {
 public:
  Runtime(const AgentConfig& config, const AgentOptions& options)
      : config_(config), options_(options), who_(identity_of(config)), start_(std::chrono::steady_clock::now()) {
    log_ = spdlog::default_logger();
    http_ = make_http_client(io_);
  }

  // The users of the store's thread go first; then the thread runs what they left queued.
  ~Runtime() {
    scheduler_.reset();
    commands_.reset();
    publisher_.reset();
    store_exec_.reset();
  }

  // ---- the three modes ----

  // Every enabled audit once, the reports printed; nothing committed or sent.
  int dry_run() {
    dry_run_ = true;
    if (!configure_plugins()) return 1;
    // Read-only look at the store, if one exists, so audits see their records and cases.
    open_store(true);
    int failures = 0;
    run_all_once(
        [&](const AuditRun& run) {
          if (run.status != AuditRun::Status::Ok) ++failures;
          print_run(run, options_.json);
        },
        [&] { io_.stop(); });
    io_.run();
    return failures == 0 ? 0 : 1;
  }

  // Every enabled audit once, committed; delivered while the broker takes it within the
  // connect timeout + 10 s.
  int once() {
    if (!configure_plugins() || !open_store(false)) return 1;
    if (options_.on_ready) options_.on_ready();
    start_publisher();
    int failures = 0;
    bool audits_done = false;
    SteadyTime drain_deadline;
    std::function<void()> wait_drained;
    auto check_drained = [&](std::int64_t unsent) {
      if (!publisher_ || unsent == 0 || std::chrono::steady_clock::now() > drain_deadline) {
        if (publisher_ && unsent > 0) log_->warn("{} message(s) are still in the outbox; the daemon will deliver them", unsent);
        if (publisher_)
          publisher_->stop(Millis(5000), [&] { io_.stop(); });
        else
          io_.stop();
        return;
      }
      poll_timer_.expires_after(Millis(50));
      poll_timer_.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) wait_drained();
      });
    };
    wait_drained = [&] { store_exec_->run([](Store& store) { return store.stats().unsent; }, check_drained); };
    auto maybe_finish = [&] {
      if (!audits_done || commits_in_flight_ > 0) return;
      drain_deadline = std::chrono::steady_clock::now() + config_.mqtt.connect_timeout + Millis(10000);
      wait_drained();
    };
    on_commit_done_ = maybe_finish;
    run_all_once([&](const AuditRun& run) { if (run.status != AuditRun::Status::Ok) ++failures; },
                 [&] {
                   audits_done = true;
                   asio::post(io_, maybe_finish);
                 });
    io_.run();
    const bool delivering = publisher_ != nullptr;
    commands_.reset();
    publisher_.reset();
    store_exec_.reset();  // what the publisher left queued (the last acknowledgements) is written
    if (failed_commits_ > 0 || failures > 0) return 1;
    return store_->stats().unsent > 0 && delivering ? 2 : 0;
  }

  // The daemon, until SIGTERM or SIGINT; SIGHUP reloads.
  int daemon() {
    if (!configure_plugins() || !open_store(false)) return 1;
    log_->info("campus-agent {} for {}/{}: {} audit(s), data in {}", kAgentVersion, config_.county, config_.school,
               scheduler_->audit_names().size(), config_.data_dir.string());
    if (options_.on_ready) options_.on_ready();
    start_publisher();
    scheduler_->start();
    systemd::ready(status_line());
    watchdog_tick();
    health_tick();
    prune_tick();
    signals_.emplace(io_, SIGTERM, SIGINT, SIGHUP);
    wait_signal();
    io_.run();
    log_->info("stopped");
    return 0;
  }

 private:
  // ---- the daemon's timers and signals ----

  // Watchdog pings come from the io_context itself, so a stuck loop stops them.
  void watchdog_tick() {
    auto period = systemd::watchdog_period();
    if (!period) return;
    systemd::watchdog();
    watchdog_timer_.expires_after(*period);
    watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) watchdog_tick();
    });
  }

  void health_tick() {
    health_timer_.expires_after(config_.mqtt.health_interval);
    health_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (publisher_) publisher_->publish_health(health());
      systemd::status(status_line());
      health_tick();
    });
  }

  void prune_tick() {
    prune_timer_.expires_after(std::chrono::hours(1));
    prune_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      store_exec_->post([log = log_, keep = config_.buffer.keep_sent](Store& store) {
        auto n = store.prune(std::chrono::system_clock::now());
        if (n > 0) log->info("store: pruned {} delivered message(s) older than {}", n, format_duration(keep));
      });
      prune_tick();
    });
  }

  void wait_signal() {
    signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reload();
        wait_signal();
        return;
      }
      log_->info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      stop();
    });
  }

  // SIGHUP: the config file again. A config with any error is rejected whole and the running
  // one stays; identity, data_dir and [mqtt] take effect only at the next restart.
  void reload() {
    log_->info("SIGHUP: reloading {}", config_.file.string());
    systemd::reloading();
    auto loaded = load_config(config_.file);
    Errors errors = loaded.errors;
    std::vector<ConfiguredAudit> audits;
    if (errors.empty()) audits = host_.configure(loaded.config, plugin_env(), errors);
    if (!errors.empty()) {
      for (const auto& e : errors) log_->error("reload rejected: {}", e.message());
      log_->error("reload rejected: {} error(s); the previous configuration keeps running", errors.size());
      systemd::ready(status_line());
      return;
    }
    const auto& n = loaded.config;
    if (n.county != config_.county || n.school != config_.school || n.data_dir != config_.data_dir ||
        n.mqtt.brokers != config_.mqtt.brokers)
      log_->warn("reload: identity, data_dir and [mqtt] changes take effect at the next restart");
    set_log_level(options_.log_level_override.empty() ? n.log_level : options_.log_level_override);
    scheduler_->set_audits(std::move(audits));
    auto keep = config_;
    config_ = n;
    config_.county = keep.county;
    config_.school = keep.school;
    config_.data_dir = keep.data_dir;
    config_.mqtt = keep.mqtt;
    log_->info("reload applied: {} audit(s)", scheduler_->audit_names().size());
    systemd::ready(status_line());
  }

  // SIGTERM/SIGINT: no new runs, the timers off; the reports already handed to the store
  // thread are committed first (the offline state's last_seq must count them, and a commit
  // still queued there would otherwise land after it), at most 10 s; then the publisher's
  // clean stop.
  void stop() {
    if (stopping_) return;
    stopping_ = true;
    systemd::stopping();
    scheduler_->stop();
    watchdog_timer_.cancel();
    health_timer_.cancel();
    prune_timer_.cancel();
    signals_->cancel();
    if (commits_in_flight_ == 0) return finish_stop();
    log_->info("waiting for {} report(s) being stored", commits_in_flight_);
    on_commit_done_ = [this] {
      if (commits_in_flight_ == 0) finish_stop();
    };
    // A store stuck on a dead disk must not hold the stop forever (systemd would kill us).
    commits_timer_.expires_after(std::chrono::seconds(10));
    commits_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      log_->warn("stopping with {} report(s) still being stored", commits_in_flight_);
      finish_stop();
    });
  }

  void finish_stop() {
    if (stop_finished_) return;
    stop_finished_ = true;
    commits_timer_.cancel();
    if (publisher_)
      publisher_->stop(Millis(5000), [this] { io_.stop(); });
    else
      io_.stop();
  }

  // ---- the parts ----

  // Loads and configures the plugins. False (errors logged) when any audit cannot run.
  bool configure_plugins() {
    Errors errors;
    auto audits = host_.configure(config_, plugin_env(), errors);
    for (const auto& e : errors) log_->error("config: {}", e.message());
    if (!errors.empty()) return false;
    scheduler_ = std::make_unique<Scheduler>(
        io_,
        [this](const std::string& audit, SteadyTime deadline, bool reads_records, Scheduler::ContextReady ready) {
          context(audit, deadline, reads_records, std::move(ready));
        },
        [this](AuditRun run) { on_run(std::move(run)); });
    scheduler_->set_audits(std::move(audits));
    return true;
  }

  bool open_store(bool read_only) {
    std::error_code ec;
    auto file = config_.data_dir / "agent.db";
    if (!read_only) {
      std::filesystem::create_directories(config_.data_dir, ec);
      if (ec) {
        log_->error("cannot create the data directory {}: {} (fix: create it, owned by the agent's user, mode 0700)",
                    config_.data_dir.string(), ec.message());
        return false;
      }
    } else if (!std::filesystem::exists(file, ec)) {
      return true;  // dry run on a fresh box: no records, no cases yet
    }
    StoreOptions opts;
    opts.max_size = config_.buffer.max_size;
    opts.keep_sent = config_.buffer.keep_sent;
    opts.read_only = read_only;
    std::string recovered;
    auto s = read_only ? Store::open(file, opts)
                       : Store::open_or_recover(file, opts, std::chrono::system_clock::now(), &recovered);
    if (!s) {
      log_->error("store: {}", s.error().message());
      return false;
    }
    if (!recovered.empty()) log_->error("store: {}", recovered);
    store_ = std::move(s.value());
    if (!read_only) store_exec_ = std::make_unique<StoreExecutor>(*store_, io_);
    return true;
  }

  void start_publisher() {
    if (!config_.mqtt.enabled || !store_exec_) return;
    publisher_ = make_publisher(io_, *store_exec_, who_, config_.mqtt, scheduler_->audit_names(), log_);
    commands_ = std::make_shared<CommandHandler>(
        CommandServices{io_, who_, *store_, *scheduler_, *publisher_,
                        [this](std::function<void()> work) {
                          store_exec_->post([work = std::move(work)](Store&) { work(); });
                        },
                        [this] { return health(); }, [this] { return redacted_summary(config_); }},
        log_);
    publisher_->on_request([weak = std::weak_ptr<CommandHandler>(commands_)](IncomingRequest r) {
      if (auto c = weak.lock()) c->handle(std::move(r));
    });
    publisher_->start();
  }

  // The run sink: commit ok runs (on the store thread), log the others.
  void on_run(AuditRun run) {
    if (run.status != AuditRun::Status::Ok) {
      log_->warn("audit {}: {} after {}: {}", run.audit, status_name(run.status), format_duration(run.duration), run.error);
      return;
    }
    for (const auto& e : run.report->input_errors) log_->warn("audit {}: {}", run.audit, e.message());
    if (!store_exec_ || dry_run_) return;
    ++commits_in_flight_;
    auto report = std::make_shared<AuditReport>(std::move(*run.report));
    store_exec_->run(
        [who = who_, report, audit = run.audit, ts = run.started](Store& store) {
          return store.commit(who, audit, ts, *report);
        },
        [this, report, audit = run.audit, ts = run.started, duration = run.duration](Result<CommitOutcome> outcome) {
          --commits_in_flight_;
          if (!outcome.ok()) {
            ++failed_commits_;
            log_->error("audit {}: the report was NOT stored: {}", audit, outcome.error().message());
          } else {
            log_->info("audit {}: report seq {} stored with {} event(s) in {}", audit, outcome->report_seq,
                       outcome->event_seqs.size(), format_duration(duration));
            if (report->after_commit) report->after_commit();
            if (publisher_) publisher_->outbox_changed();
          }
          if (commands_) commands_->on_committed(audit, ts, outcome);
          if (on_commit_done_) on_commit_done_();
          // Once this handler (and the report it holds) is gone: give the run's freed memory
          // back to the system; glibc keeps freed pages inside the heap otherwise, and the
          // daemon's RSS stays at the largest audit's high-water mark (docs/performance.md).
          asio::post(io_, [] { malloc_trim(0); });
        });
  }

  // What a run starts from, read from the store: the audit's open cases, its last summary and
  // (when the plugin reads them) its records: the daemon's copy, or --dry-run's live reader.
  struct RunInputs {
    std::vector<CaseView> open_cases;
    std::optional<Json> previous_summary;
    std::shared_ptr<const RecordReader> copy;  // copy_records(), read on the store's thread
    const RecordReader* records = nullptr;     // what the plugin reads: copy, the live reader, or none
  };

  static Result<RunInputs> read_run_inputs(Store& store, const std::string& audit, bool reads_records) {
    RunInputs in;
    CaseFilter f;
    f.audit = audit;
    f.state = "open";
    auto cases = store.cases(f);
    if (!cases) return cases.error();
    in.open_cases = std::move(cases.value());
    auto summary = store.latest_summary(audit);
    if (!summary) return summary.error();
    in.previous_summary = std::move(summary.value());
    if (reads_records) {
      auto copy = store.copy_records(audit);
      if (!copy) return copy.error();
      in.copy = std::move(copy.value());
      in.records = in.copy.get();
    }
    return in;
  }

  // The daemon reads the run's inputs on the store's thread; --dry-run (no store thread, the
  // store read-only or absent) reads them here.
  void context(const std::string& audit, SteadyTime deadline, bool reads_records, Scheduler::ContextReady ready) {
    auto build = [this, audit, deadline, ready = std::move(ready)](Result<RunInputs> in) {
      if (!in) return ready(in.error());
      // Each audit its own view of the one HTTP client: a plugin cancelled at its deadline
      // cancels its own transfers, not the other audits' (HttpClient::cancel_all).
      auto& http = http_views_[audit];
      if (!http) http = make_http_view(*http_, io_);
      // The copy is kept until the audit's next run (an audit never overlaps itself).
      run_records_[audit] = std::move(in->copy);
      ready(AuditContext{io_, deadline, std::chrono::system_clock::now(), log_->clone(audit), *http,
                         in->records ? *in->records : static_cast<const RecordReader&>(no_records_),
                         std::move(in->open_cases), std::move(in->previous_summary)});
    };
    if (store_exec_) {
      store_exec_->run([audit, reads_records](Store& store) { return read_run_inputs(store, audit, reads_records); },
                       std::move(build));
    } else if (store_) {
      auto in = read_run_inputs(*store_, audit, false);
      if (in && reads_records) in->records = &store_->records(audit);
      build(std::move(in));
    } else {
      build(RunInputs{});
    }
  }

  // One line for `systemctl status`: connected or not, and the outbox backlog.
  std::string status_line() const {
    std::string s = publisher_ ? (publisher_->stats().connected ? "connected" : "not connected")
                               : (config_.mqtt.enabled ? "starting" : "delivery off");
    if (store_exec_) s += ", backlog " + std::to_string(store_exec_->snapshot().outbox.unsent);
    if (scheduler_) s += ", " + std::to_string(scheduler_->audit_names().size()) + " audit(s)";
    return s;
  }

  PluginEnv plugin_env() const { return PluginEnv{config_.county, config_.school, config_.timezone_offset, log_}; }

  Json health() const {
    HealthInputs in;
    if (store_exec_) in.outbox = store_exec_->snapshot().outbox;
    if (publisher_) in.publisher = publisher_->stats();
    if (scheduler_) {
      for (const auto& [name, st] : scheduler_->stats()) {
        AuditHealth a;
        a.last_run = st.last_run;
        a.last_duration = st.last_duration;
        a.last_ok = st.last_error.empty();
        a.last_error = st.last_error;
        a.runs = st.runs;
        a.errors = st.failed + st.timed_out;
        a.timed_out = st.timed_out;
        a.skipped = st.skipped;
        a.running = st.running;
        in.audits[name] = a;
      }
    }
    in.started = start_;
    in.now = std::chrono::system_clock::now();
    in.timezone_offset = who_.timezone_offset;
    Json h = health_body(in);
    h["failed_commits"] = failed_commits_;
    // Which store, and whether it was started fresh over a broken or deleted one (never silent).
    if (store_exec_) h["store"] = store_exec_->identity();
    return h;
  }

  // Runs every audit once through the scheduler; `each` gets every finished run.
  void run_all_once(std::function<void(const AuditRun&)> each, std::function<void()> all_done) {
    auto names = scheduler_->audit_names();
    auto left = std::make_shared<std::size_t>(names.size());
    if (names.empty()) {
      log_->warn("no audit is enabled in {}", config_.file.string());
      asio::post(io_, all_done);
      return;
    }
    for (const auto& n : names) {
      scheduler_->run_now(n, [each, all_done, left](const AuditRun& run) {
        each(run);
        if (--*left == 0) all_done();
      });
    }
  }

  asio::io_context io_;
  // Every mode ends with an explicit io_.stop(): without this guard io_.run() would return
  // while a commit is still on the store thread, and its completion would never run.
  asio::executor_work_guard<asio::io_context::executor_type> io_work_{io_.get_executor()};
  asio::steady_timer watchdog_timer_{io_}, health_timer_{io_}, prune_timer_{io_}, commits_timer_{io_}, poll_timer_{io_};
  // The daemon's only: --once and --dry-run keep the default actions (Ctrl-C ends them).
  std::optional<asio::signal_set> signals_;
  AgentConfig config_;
  AgentOptions options_;
  Identity who_;
  SteadyTime start_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<HttpClient> http_;
  std::map<std::string, std::unique_ptr<HttpClient>> http_views_;  // per audit; destroyed before http_
  PluginHost host_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StoreExecutor> store_exec_;  // the daemon's and --once's only caller of store_
  std::map<std::string, std::shared_ptr<const RecordReader>> run_records_;  // per audit, its last run's copy
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Publisher> publisher_;
  std::shared_ptr<CommandHandler> commands_;  // county requests (after the publisher: destroyed first)
  NoRecords no_records_;
  bool dry_run_ = false;
  int commits_in_flight_ = 0;
  std::int64_t failed_commits_ = 0;
  std::function<void()> on_commit_done_;
  bool stopping_ = false, stop_finished_ = false;
};

}  // namespace

int run_dry_run(const AgentConfig& config, const AgentOptions& options) { return Runtime(config, options).dry_run(); }

int run_once(const AgentConfig& config, const AgentOptions& options) { return Runtime(config, options).once(); }

int run_daemon(const AgentConfig& config, const AgentOptions& options) { return Runtime(config, options).daemon(); }

}  // namespace campus
