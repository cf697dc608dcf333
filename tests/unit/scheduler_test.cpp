// The scheduler: no overlap, deadlines, jitter bounds, on-demand runs.
#include <gtest/gtest.h>

#include <atomic>

#include "core/scheduler.hpp"
#include "test_util.hpp"

using namespace campus;
using namespace std::chrono_literals;

namespace {

class NoRecords : public RecordReader {
 public:
  void scan(const std::string&, const std::function<void(const std::string&, const Json&)>&) const override {}
  std::optional<Json> get(const std::string&, const std::string&) const override { return std::nullopt; }
};

// An audit that answers after `delay` (or never), counting how many runs overlap.
class SlowAudit : public AuditPlugin {
 public:
  explicit SlowAudit(asio::io_context& io, Millis delay, bool never = false) : io_(io), delay_(delay), never_(never) {}
  void configure(TableReader& r, const PluginEnv&) override { r.finish(); }
  void audit(AuditContext ctx, std::function<void(AuditReport)> done) override {
    ++started;
    max_concurrent = std::max(max_concurrent, ++concurrent);
    deadlines.push_back(ctx.deadline);
    if (never_) return;
    auto t = std::make_shared<asio::steady_timer>(io_, delay_);
    t->async_wait([this, t, done](const boost::system::error_code&) {
      --concurrent;
      AuditReport r;
      r.summary["n"] = started;
      done(std::move(r));
    });
  }
  void cancel() override { ++cancelled; }

  int started = 0, concurrent = 0, max_concurrent = 0, cancelled = 0;
  std::vector<SteadyTime> deadlines;

 private:
  asio::io_context& io_;
  Millis delay_;
  bool never_;
};

struct Fixture {
  asio::io_context io;
  NoRecords records;
  std::unique_ptr<HttpClient> http = make_http_client(io);
  std::vector<AuditRun> runs;
  Scheduler scheduler{io,
                      [this](const std::string&, SteadyTime deadline, bool, Scheduler::ContextReady ready) {
                        ready(AuditContext{io, deadline, {}, spdlog::default_logger(), *http, records, {}, std::nullopt});
                      },
                      [this](AuditRun r) { runs.push_back(std::move(r)); }, nullptr, 42};

  void add(std::shared_ptr<AuditPlugin> p, Millis interval, Millis jitter, Millis timeout, Millis first = 0ms) {
    AuditSchedule s;
    s.name = "slow";
    s.interval = interval;
    s.jitter = jitter;
    s.timeout = timeout;
    s.first_delay = first;
    scheduler.set_audits({ConfiguredAudit{s, std::move(p), "1"}});
  }
  void run_for(Millis d) {
    io.restart();
    io.run_for(d);
  }
};

}  // namespace

TEST(Scheduler, NeverOverlapsItselfAndCountsSkippedTicks) {
  Fixture f;
  auto p = std::make_shared<SlowAudit>(f.io, 250ms);
  f.add(p, 50ms, 0ms, 5s);
  f.scheduler.start();
  f.run_for(900ms);
  f.scheduler.stop();
  EXPECT_EQ(p->max_concurrent, 1);
  EXPECT_GE(p->started, 2);
  EXPECT_GT(f.scheduler.stats()["slow"].skipped, 3);
}

TEST(Scheduler, ReportsAPluginThatPassesItsDeadlineAsTimedOutAndCancelsIt) {
  Fixture f;
  auto p = std::make_shared<SlowAudit>(f.io, 0ms, /*never=*/true);
  f.add(p, 1h, 0ms, 150ms);
  auto t0 = std::chrono::steady_clock::now();
  std::optional<AuditRun> got;
  f.scheduler.run_now("slow", [&](const AuditRun& r) { got = r; });
  f.run_for(1s);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status, AuditRun::Status::TimedOut);
  EXPECT_NE(got->error.find("timeout of 150ms"), std::string::npos) << got->error;
  EXPECT_EQ(p->cancelled, 1);
  ASSERT_EQ(p->deadlines.size(), 1u);
  EXPECT_LE(p->deadlines[0] - t0, 200ms);
  EXPECT_EQ(f.scheduler.stats()["slow"].timed_out, 1);
  // The slot is free again: a hung plugin does not block its audit forever.
  f.scheduler.run_now("slow", [&](const AuditRun& r) { got = r; });
  f.run_for(400ms);
  EXPECT_EQ(p->started, 2);
}

TEST(Scheduler, LateAnswerAfterTheDeadlineIsDiscarded) {
  Fixture f;
  auto p = std::make_shared<SlowAudit>(f.io, 300ms);
  f.add(p, 1h, 0ms, 100ms);
  f.scheduler.run_now("slow", [](const AuditRun&) {});
  f.run_for(600ms);
  ASSERT_EQ(f.runs.size(), 1u);
  EXPECT_EQ(f.runs[0].status, AuditRun::Status::TimedOut);
}

// A run whose answer is still queued when the agent stops is not handed on to be stored: the
// offline state the agent publishes next must count every report of the process (CI once saw a
// report stored after it).
TEST(Scheduler, AnAnswerArrivingAfterStopIsNotHandedOn) {
  Fixture f;
  auto p = std::make_shared<SlowAudit>(f.io, 0ms);
  f.add(p, 1h, 0ms, 5s);
  std::optional<AuditRun> waiter;
  f.scheduler.run_now("slow", [&](const AuditRun& r) { waiter = r; });
  ASSERT_EQ(p->started, 1);
  f.scheduler.stop();  // the plugin's answer comes on the io_context afterwards
  f.run_for(200ms);
  EXPECT_TRUE(f.runs.empty()) << "a report reached the sink after stop()";
  ASSERT_TRUE(waiter.has_value());
  EXPECT_EQ(waiter->error, "the agent is stopping");
}

TEST(Scheduler, JitterStaysWithinItsBounds) {
  Fixture f;
  AuditSchedule s;
  s.interval = 10s;
  s.jitter = 2s;
  std::set<std::int64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    auto d = f.scheduler.next_delay(s);
    ASSERT_GE(d, 10s);
    ASSERT_LE(d, 12s);
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 100u);  // actually jittered
}

TEST(Scheduler, FirstRunComesShortlyAfterStart) {
  Fixture f;
  auto p = std::make_shared<SlowAudit>(f.io, 0ms);
  f.add(p, 1h, 10s, 5s, 50ms);
  f.scheduler.start();
  f.run_for(250ms);  // first_delay + at most min(jitter, first_delay) = 100ms
  EXPECT_EQ(p->started, 1);
  ASSERT_EQ(f.runs.size(), 1u);
  EXPECT_EQ(f.runs[0].status, AuditRun::Status::Ok);
}

TEST(Scheduler, RunNowJoinsTheRunInProgress) {
  Fixture f;
  auto p = std::make_shared<SlowAudit>(f.io, 100ms);
  f.add(p, 1h, 0ms, 5s);
  int answers = 0;
  f.scheduler.run_now("slow", [&](const AuditRun& r) { answers += r.status == AuditRun::Status::Ok; });
  f.scheduler.run_now("slow", [&](const AuditRun& r) { answers += r.status == AuditRun::Status::Ok; });
  f.run_for(400ms);
  EXPECT_EQ(p->started, 1);
  EXPECT_EQ(answers, 2);
}

TEST(Scheduler, RunNowOfAnUnknownAuditFails) {
  Fixture f;
  std::optional<AuditRun> got;
  f.scheduler.run_now("nope", [&](const AuditRun& r) { got = r; });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status, AuditRun::Status::Failed);
  EXPECT_NE(got->error.find("no enabled audit named \"nope\""), std::string::npos);
}

// The run's context comes from the store's thread (later, through `ready`). A store that cannot
// be read fails the run with its error; a plugin that starts wanting its records while the
// context is prepared (a reload changed its settings) gets a context with them.
class RecordsAudit : public SlowAudit {
 public:
  using SlowAudit::SlowAudit;
  bool reads_records() const override { return wants; }
  bool wants = false;
};

TEST(Scheduler, TheContextComesLaterWithTheRecordsThePluginAsksForOrTheStoresError) {
  asio::io_context io;
  NoRecords records;
  auto http = make_http_client(io);
  std::vector<bool> asked;  // with_records of each request for a context
  bool store_fails = false;
  std::shared_ptr<RecordsAudit> plugin;
  std::vector<AuditRun> runs;
  Scheduler scheduler(
      io,
      [&](const std::string&, SteadyTime deadline, bool with_records, Scheduler::ContextReady ready) {
        asked.push_back(with_records);
        if (plugin) plugin->wants = true;  // a reload lands while the store reads
        asio::post(io, [&, deadline, ready] {
          if (store_fails) return ready(Error{"agent.db", "reading the cases: database disk image is malformed", ""});
          ready(AuditContext{io, deadline, {}, spdlog::default_logger(), *http, records, {}, std::nullopt});
        });
      },
      [&](AuditRun r) { runs.push_back(std::move(r)); }, nullptr, 1);
  plugin = std::make_shared<RecordsAudit>(io, 0ms);
  AuditSchedule s;
  s.name = "rec";
  s.interval = 1h;
  s.timeout = 5s;
  scheduler.set_audits({ConfiguredAudit{s, plugin, "1"}});
  scheduler.run_now("rec", [](const AuditRun&) {});
  ASSERT_TRUE(test::run_until(io, [&] { return runs.size() == 1; }));
  EXPECT_EQ(asked, (std::vector<bool>{false, true}));
  EXPECT_EQ(plugin->started, 1);
  EXPECT_EQ(runs[0].status, AuditRun::Status::Ok);

  store_fails = true;
  scheduler.run_now("rec", [](const AuditRun&) {});
  ASSERT_TRUE(test::run_until(io, [&] { return runs.size() == 2; }));
  EXPECT_EQ(runs[1].status, AuditRun::Status::Failed);
  EXPECT_NE(runs[1].error.find("the store could not be read for the run: agent.db: reading the cases"),
            std::string::npos) << runs[1].error;
  EXPECT_EQ(plugin->started, 1);  // the plugin never ran on a store it could not read
}

// Clock jumps (docs/reliability.md "Clock jumps"): the wall clock (system time) only stamps a
// run (ctx.now, AuditRun::started, the report's ts); intervals and deadlines are steady time.
// Correct means: after the system clock is set back or forward an hour, the next run still
// comes one interval after the previous one (no hour-long stall, no burst of catch-up runs),
// and each run is stamped with the clock as it was set at that moment.
TEST(Scheduler, WallClockJumpsNeitherStallNorBurstTheSchedule) {
  asio::io_context io;
  NoRecords records;
  auto http = make_http_client(io);
  const SystemTime wall0 = SystemTime(std::chrono::sys_days(std::chrono::year(2026) / 11 / 29)) + 1h;
  const SteadyTime steady0 = std::chrono::steady_clock::now();
  std::chrono::system_clock::duration jump{0};  // what the test did to the system clock so far
  auto wall = [&] {
    return wall0 + std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::steady_clock::now() - steady0) +
           jump;
  };
  std::vector<SteadyTime> begun;  // steady time at each run's start
  std::vector<AuditRun> runs;
  Scheduler scheduler(
      io,
      [&](const std::string&, SteadyTime deadline, bool, Scheduler::ContextReady ready) {
        begun.push_back(std::chrono::steady_clock::now());
        ready(AuditContext{io, deadline, {}, spdlog::default_logger(), *http, records, {}, std::nullopt});
      },
      [&](AuditRun r) { runs.push_back(std::move(r)); }, wall, 7);
  AuditSchedule s;
  s.name = "clock";
  s.interval = 40ms;
  s.jitter = 0ms;
  s.timeout = 5s;
  s.first_delay = 0ms;
  scheduler.set_audits({ConfiguredAudit{s, std::make_shared<SlowAudit>(io, 0ms), "1"}});
  scheduler.start();
  // Runs the loop until `n` runs finished; bounded, so an hour-long stall fails the test.
  auto until_runs = [&](std::size_t n) {
    auto limit = std::chrono::steady_clock::now() + 10s;
    while (runs.size() < n && std::chrono::steady_clock::now() < limit) {
      io.restart();
      io.run_for(5ms);
    }
    ASSERT_GE(runs.size(), n) << "the schedule stalled";
  };
  until_runs(3);
  jump -= 1h;  // set back an hour
  until_runs(6);
  jump += 2h;  // then an hour ahead of the true time
  until_runs(9);
  scheduler.stop();

  ASSERT_GE(begun.size(), 9u);
  for (std::size_t i = 1; i < 9; ++i)
    EXPECT_GE(begun[i] - begun[i - 1], 35ms) << "runs " << i - 1 << " and " << i << " came in a burst";
  // The stamps follow the clock as set: back an hour at run 3, ahead at run 6.
  auto between = [&](std::size_t i) { return runs[i].started - runs[i - 1].started; };
  EXPECT_LT(between(3), -59min);
  EXPECT_GT(between(6), 119min);
  for (std::size_t i : {1u, 2u, 4u, 5u, 7u, 8u}) {
    EXPECT_GE(between(i), 35ms) << i;
    EXPECT_LT(between(i), 5s) << i;
  }
}
