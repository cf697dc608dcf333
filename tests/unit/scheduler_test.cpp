// The scheduler: no overlap, deadlines, jitter bounds, on-demand runs.
#include <gtest/gtest.h>

#include <atomic>

#include "core/scheduler.hpp"

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
                      [this](const std::string&, SteadyTime deadline) {
                        return AuditContext{io, deadline, {}, spdlog::default_logger(), *http, records, {}, std::nullopt};
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
