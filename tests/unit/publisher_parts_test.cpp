// The publisher's pure parts without a broker or a store: the outbox window, the reconnect
// policy (with a fake clock), the presence messages and stale states, and how an MQTT error
// is read. (The publisher with a real Mosquitto: publisher_test.cpp.)
#include <gtest/gtest.h>

#include "core/mqtt_client.hpp"
#include "core/outbox_window.hpp"
#include "core/presence.hpp"
#include "core/reconnect_policy.hpp"

using namespace campus;
using namespace std::chrono_literals;

namespace {

std::vector<OutboxMessage> rows(std::int64_t from, std::int64_t to) {
  std::vector<OutboxMessage> out;
  for (auto seq = from; seq <= to; ++seq) {
    OutboxMessage m;
    m.seq = seq;
    m.topic = "campus/v1/zhenkang/nansan/report/fiber";
    m.payload = "{\"seq\":" + std::to_string(seq) + "}";
    out.push_back(m);
  }
  return out;
}

// Publishes what the window offers, as the publisher's pump does; returns the seqs sent.
std::vector<std::int64_t> drain(OutboxWindow& w) {
  std::vector<std::int64_t> sent;
  while (const OutboxMessage* m = w.next()) {
    sent.push_back(m->seq);
    w.sent();
  }
  return sent;
}

}  // namespace

TEST(OutboxWindow, SendsInSeqOrderUpToTheWindowLessTheReserve) {
  OutboxWindow w;
  EXPECT_EQ(w.open(20, std::nullopt), 20);
  EXPECT_EQ(w.limit(), 20 - OutboxWindow::kReserve);
  auto fetch = w.fetch_due();
  ASSERT_TRUE(fetch);
  EXPECT_EQ(fetch->after, 0);
  EXPECT_FALSE(w.fetch_due()) << "one read at a time";
  ASSERT_TRUE(w.fetched(*fetch, rows(1, 100)));
  auto sent = drain(w);
  ASSERT_EQ(sent.size(), 18u);
  for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sent[i], static_cast<std::int64_t>(i + 1));
  EXPECT_EQ(w.in_flight(), 18u);
  // An ack frees a slot for the next seq, never an earlier or a skipped one.
  EXPECT_TRUE(w.acked(1));
  EXPECT_EQ(drain(w), std::vector<std::int64_t>{19});
  EXPECT_FALSE(w.acked(1)) << "a second ack of the same seq is not in flight";
}

TEST(OutboxWindow, BirthHealthAndRepliesTakeSlotsToo) {
  OutboxWindow w;
  w.open(6, std::nullopt);
  ASSERT_EQ(w.limit(), 4);
  auto fetch = w.fetch_due();
  ASSERT_TRUE(w.fetched(*fetch, rows(1, 10)));
  w.ephemeral_sent();  // the birth
  EXPECT_EQ(drain(w).size(), 3u);
  w.ephemeral_done();
  EXPECT_EQ(drain(w).size(), 1u);
  w.ephemeral_done();  // more done than sent is not a slot more
  EXPECT_TRUE(drain(w).empty());
}

TEST(OutboxWindow, TheBrokersReceiveMaximumClampsTheWindowAndSmallWindowsStillSend) {
  OutboxWindow w;
  EXPECT_EQ(w.open(100, 10), 10);
  EXPECT_EQ(w.open(5, 10), 5) << "a larger Receive Maximum does not widen the configured window";
  EXPECT_EQ(w.open(0, std::nullopt), 1);
  EXPECT_EQ(w.limit(), 1) << "a window of one still sends";
  EXPECT_EQ(w.open(3, 0), 3) << "Receive Maximum 0 is not a value a broker may send: ignored";
  EXPECT_EQ(w.limit(), 1);
}

TEST(OutboxWindow, ReadsAheadBelowTheLowWaterMarkAndStopsAtTheEndUntilMoreIsCommitted) {
  OutboxWindow w;
  w.open(20, std::nullopt);
  auto first = w.fetch_due();
  ASSERT_TRUE(first);
  ASSERT_TRUE(w.fetched(*first, rows(1, OutboxWindow::kFetch)));
  EXPECT_FALSE(w.fetch_due()) << "enough read ahead";
  // Sending below the low-water mark asks for the rows after the last one read.
  while (w.read_ahead() >= OutboxWindow::kLowWater) {
    drain(w);
    for (std::int64_t seq = 1; seq <= OutboxWindow::kFetch; ++seq) w.acked(seq);
  }
  auto second = w.fetch_due();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->after, OutboxWindow::kFetch);
  ASSERT_TRUE(w.fetched(*second, rows(OutboxWindow::kFetch + 1, OutboxWindow::kFetch + 5)));
  EXPECT_FALSE(w.fetch_due()) << "a short read is the end of the outbox";
  w.more_committed();
  auto third = w.fetch_due();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->after, OutboxWindow::kFetch + 5);
}

TEST(OutboxWindow, ARewindStartsAgainAtTheLowestUnsentAndDropsAReadFromBefore) {
  OutboxWindow w;
  w.open(20, std::nullopt);
  auto before = w.fetch_due();
  ASSERT_TRUE(before);
  w.rewind();  // e.g. a refused row: everything unsent is read again
  auto after = w.fetch_due();
  ASSERT_TRUE(after) << "the rewind ended the running read";
  EXPECT_EQ(after->after, 0);
  EXPECT_FALSE(w.fetched(*before, rows(1, 5))) << "rows of the read from before the rewind are dropped";
  EXPECT_EQ(w.read_ahead(), 0u);
  EXPECT_TRUE(w.fetched(*after, rows(1, 5)));
  EXPECT_EQ(drain(w), (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
}

TEST(OutboxWindow, ALostConnectionForgetsWhatWasInFlightAndTheNextOneResendsIt) {
  OutboxWindow w;
  w.open(10, std::nullopt);
  auto fetch = w.fetch_due();
  ASSERT_TRUE(w.fetched(*fetch, rows(1, 30)));
  w.ephemeral_sent();
  EXPECT_EQ(drain(w).size(), 7u);
  EXPECT_EQ(w.failed(3), "campus/v1/zhenkang/nansan/report/fiber");
  EXPECT_EQ(w.failed(3), "") << "not in flight any more";
  w.close();
  EXPECT_TRUE(w.idle());
  EXPECT_EQ(w.read_ahead(), 0u);
  EXPECT_TRUE(drain(w).empty());
  w.open(10, std::nullopt);
  auto again = w.fetch_due();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->after, 0) << "the next connection starts at the lowest unsent seq";
  ASSERT_TRUE(w.fetched(*again, rows(1, 30)));
  EXPECT_EQ(drain(w).size(), 8u) << "the ephemeral slot of the last connection is free again";
}

TEST(ReconnectPolicy, BacksOffExponentiallyWithJitterUpToTheMaximumAndResetsOnAConnection) {
  ReconnectPolicy p(1000ms, 60000ms, 1);
  // uniform 1.0: the top of the jitter range [d/2, d].
  EXPECT_EQ(p.failed(1.0), 1000ms);
  EXPECT_EQ(p.failed(1.0), 2000ms);
  EXPECT_EQ(p.failed(1.0), 4000ms);
  EXPECT_EQ(p.failed(0.0), 4000ms) << "uniform 0: half of 8 s";
  for (int i = 0; i < 10; ++i) p.failed(1.0);
  EXPECT_EQ(p.failed(1.0), 60000ms);
  EXPECT_EQ(p.failed(0.0), 30000ms);
  const auto t0 = ReconnectPolicy::Clock::time_point{} + 1h;
  p.connected(t0);
  EXPECT_EQ(p.lost(t0 + 10min, false, 1.0), 1000ms) << "a connection that lasted starts the backoff again";
  EXPECT_EQ(p.failed(1.0), 2000ms);
}

TEST(ReconnectPolicy, ShortLivedConnectionsAreNoSuccessAndThreeInARowStartAClearSession) {
  ReconnectPolicy p(1000ms, 60000ms, 1);
  auto now = ReconnectPolicy::Clock::time_point{} + 1h;
  for (int i = 1; i <= ReconnectPolicy::kCleanStartAfter; ++i) {
    EXPECT_FALSE(p.clean_start());
    p.connected(now);
    // closed 500 ms after it was accepted: the wait grows with each one
    const Millis wait = p.lost(now + 500ms, false, 1.0);
    EXPECT_EQ(wait, Millis(1000 << i)) << "short-lived connection " << i;
    now += 10s;
  }
  EXPECT_TRUE(p.clean_start());
  EXPECT_EQ(p.short_lived(), ReconnectPolicy::kCleanStartAfter);
  p.connected(now);
  p.lost(now + ReconnectPolicy::kShortLived + 1ms, false, 1.0);
  EXPECT_FALSE(p.clean_start()) << "a connection that outlived kShortLived resumes sessions again";
}

TEST(ReconnectPolicy, ATakenOverSessionWaitsTheMaximumNeverLessThanHalf) {
  ReconnectPolicy p(1000ms, 60000ms, 1);
  const auto now = ReconnectPolicy::Clock::time_point{} + 1h;
  p.connected(now);
  EXPECT_EQ(p.lost(now + 100ms, true, 0.0), 30000ms);
  EXPECT_EQ(p.short_lived(), 0) << "a takeover is not a session the broker fails";
  p.connected(now);
  EXPECT_EQ(p.lost(now + 100ms, true, 1.0), 60000ms);
}

TEST(ReconnectPolicy, ABrokerListIsTriedInTurnAndTheBackoffGrowsOnlyAfterAFullRound) {
  ReconnectPolicy p(1000ms, 60000ms, 3);
  EXPECT_EQ(p.broker(), 0u);
  EXPECT_EQ(p.failed(1.0), 1000ms);
  EXPECT_EQ(p.broker(), 1u);
  EXPECT_EQ(p.failed(1.0), 1000ms);
  EXPECT_EQ(p.broker(), 2u);
  EXPECT_EQ(p.failed(1.0), 1000ms) << "the round is over: back to the first, step 0";
  EXPECT_EQ(p.broker(), 0u);
  p.failed(1.0);
  p.failed(1.0);
  EXPECT_EQ(p.failed(1.0), 2000ms) << "the second full round waits longer";
}

TEST(ReconnectPolicy, ABrokerThatRefusesMqtt5GetsMqtt311FromThenOnAndOnlyThatOne) {
  ReconnectPolicy p(1000ms, 60000ms, 2);
  EXPECT_FALSE(p.speaks_v311(0));
  EXPECT_EQ(p.refused_v5(1.0), 1000ms);
  EXPECT_TRUE(p.speaks_v311(0));
  EXPECT_EQ(p.broker(), 0u) << "the same broker again, with 3.1.1";
  p.failed(1.0);
  EXPECT_EQ(p.broker(), 1u);
  EXPECT_FALSE(p.speaks_v311(1));
}

TEST(Presence, BirthWillAndOfflineCarryTheSessionAndTheLastSeq) {
  Json birth = birth_body(7, 42, {"fiber", "attendance"}, "store-1");
  EXPECT_EQ(birth["online"], true);
  EXPECT_EQ(birth["session"], 7);
  EXPECT_EQ(birth["last_seq"], 42);
  EXPECT_EQ(birth["audits"], Json::array({"fiber", "attendance"}));
  EXPECT_EQ(birth["store"], "store-1");
  EXPECT_EQ(birth["version"], std::string("campus-agent/") + kAgentVersion);
  Json will = offline_body(7, 42, "will");
  EXPECT_EQ(will, (Json{{"online", false}, {"session", 7}, {"last_seq", 42}, {"reason", "will"}}));
  EXPECT_EQ(offline_body(8, 0, "stopped")["reason"], "stopped");
}

TEST(Presence, StaleOfflineStatesOfThisOrOlderSessionsAreAnsweredByOneBirthPerBurst) {
  const Identity who{"zhenkang", "nansan", "+08:00"};
  auto state = [&](Json body) { return envelope(who, "state", std::chrono::system_clock::now(), body).dump(); };
  StaleStates stale;
  auto first = stale.seen(state(offline_body(5, 10, "will")), 9);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->session, 5);
  EXPECT_TRUE(first->first);
  auto second = stale.seen(state(offline_body(9, 10, "will")), 9);
  ASSERT_TRUE(second) << "a will of the current session is stale too (the broker lost an older connection of it)";
  EXPECT_FALSE(second->first) << "the birth is already scheduled";
  EXPECT_TRUE(stale.pending());
  EXPECT_EQ(stale.answer(), 2);
  EXPECT_EQ(stale.answer(), 0);
  // Not stale: our own birth, a newer session's offline state, and what is not a state.
  EXPECT_FALSE(stale.seen(state(birth_body(9, 10, {}, "s")), 9));
  EXPECT_FALSE(stale.seen(state(offline_body(10, 10, "will")), 9));
  EXPECT_FALSE(stale.seen("not json", 9));
  EXPECT_FALSE(stale.seen("[1,2]", 9));
  EXPECT_FALSE(stale.seen(state(Json{{"online", "no"}, {"session", 1}}), 9));
  EXPECT_FALSE(stale.seen(state(Json{{"online", false}, {"session", "1"}}), 9));
  EXPECT_FALSE(stale.pending());
  ASSERT_TRUE(stale.seen(state(offline_body(1, 1, "will")), 9));
  stale.clear();
  EXPECT_EQ(stale.answer(), 0) << "a connection lost meanwhile: nothing to answer";
}

TEST(MqttError, ReadsTheBrokersReasonAndThePahoCodes) {
  EXPECT_TRUE((MqttError{0, 0x87}).refused_by_broker());
  EXPECT_EQ((MqttError{0, 0x87}).text(), "not authorized");
  EXPECT_TRUE((MqttError{0, 0x87}).credentials_refused());
  EXPECT_TRUE((MqttError{5, 0}).credentials_refused()) << "MQTT 3.1.1 CONNACK 5";
  EXPECT_TRUE((MqttError{0x86, 0}).credentials_refused()) << "Paho C puts a CONNACK reason in the return code";
  EXPECT_EQ((MqttError{0x86, 0}).text(), "bad user name or password");
  EXPECT_TRUE((MqttError{0, 0x84}).v5_refused());
  EXPECT_TRUE((MqttError{1, 0}).v5_refused()) << "a 3.1.1 broker's answer to a v5 CONNECT";
  EXPECT_FALSE((MqttError{0, 0x87}).v5_refused());
  EXPECT_TRUE((MqttError{-3, 0}).disconnected());
  EXPECT_EQ((MqttError{-3, 0}).text(), "disconnected");
  EXPECT_TRUE((MqttError{-1, 0}).transport_failed());
  EXPECT_EQ((MqttError{-12, 0}).text(), "no more messages can be buffered");
  EXPECT_EQ((MqttError{-99, 0}).text(), "Paho code -99");
  EXPECT_EQ(mqtt_reason_text(0x8E), "session taken over");
  EXPECT_EQ(mqtt_reason_text(0x01), "reason code 1");
}
