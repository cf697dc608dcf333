// Alerts: the rules (pure), the messages for WeCom, DingTalk and webhooks, what their answers
// mean, and the alert state and outbox on both engines (fire once, resolve once, deliveries
// claimed, leased, retried). Times are given explicitly.
#include <gtest/gtest.h>

#include "alerts.hpp"
#include "county_test_support.hpp"

using namespace campus;
using namespace campus::county;
using namespace campus::county::test;
using namespace std::chrono_literals;

namespace {

const SystemTime T0 = SystemTime(std::chrono::seconds(1'800'000'000));  // 2027-01-15T08:00:00Z

std::string utc(SystemTime t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+00:00", std::gmtime(&s));
  return buf;
}

Json school(const std::string& code, bool online, SystemTime state_at, SystemTime received, double classroom = 1.0) {
  Json cov = {{"rooms", 10}, {"covered", static_cast<int>(classroom * 10)}, {"coverage", classroom}};
  Json full = {{"rooms", 10}, {"covered", 10}, {"coverage", 1.0}};
  // As CountyDatabase::schools writes a school's row.
  return {{"school", code}, {"seen", true}, {"name", "学校" + code.substr(code.size() - 1)}, {"online", online},
          {"last_seen", utc(received)}, {"version", "0.1.0"}, {"health", nullptr}, {"backlog", 0}, {"session", 1},
          {"state_at", utc(state_at)}, {"last_received", utc(received)}, {"state_reason", online ? Json(nullptr) : Json("will")},
          {"reports", {{"fiber", {{"seq", 1}, {"ts", "2027-01-15T08:00:00+08:00"},
                                  {"summary", {{"classroom", cov}, {"function_room", full}, {"office", full},
                                               {"overall", full}}}}}}}};
}

AlertChannel channel(const std::string& name, ChannelKind kind, const std::string& url,
                     std::optional<std::string> secret = std::nullopt) {
  AlertChannel c;
  c.name = name, c.kind = kind, c.url = url, c.secret = std::move(secret);
  return c;
}

AlertCondition condition(const std::string& key, const std::string& rule, const std::string& school,
                         const std::string& subject, const std::string& summary, Millis hold = Millis(0),
                         bool one_shot = false) {
  AlertCondition c;
  c.key = key, c.rule = rule, c.school = school, c.subject = subject, c.summary = summary, c.hold = hold;
  c.one_shot = one_shot;
  return c;
}

AlertRules rules() {
  AlertRules r;
  r.offline_after = 30min;
  r.coverage_below = 0.9;
  r.recording_failing_for = 1h;
  r.language = "en";
  return r;
}

std::vector<std::string> keys(const std::vector<AlertCondition>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) out.push_back(c.key);
  return out;
}

}  // namespace

TEST(AlertRules, AnOfflineSchoolAlertsOnlyAfterOfflineAfterAndASilentOneToo) {
  AlertInputs in;
  in.schools = {school("school-a", false, T0 - 31min, T0 - 31min), school("school-b", false, T0 - 10min, T0 - 10min),
                school("school-c", true, T0 - 5h, T0 - 40min), school("school-d", true, T0 - 5h, T0 - 1min),
                {{"school", "school-e"}, {"seen", false}}};
  const auto c = alert_conditions(rules(), in, T0);
  EXPECT_EQ(keys(c), (std::vector<std::string>{"offline/school-a", "offline/school-c"}));
  EXPECT_NE(c[0].summary.find("学校a (school-a): offline for 31m"), std::string::npos) << c[0].summary;
  EXPECT_NE(c[1].summary.find("nothing received for 40m"), std::string::npos) << c[1].summary;
}

TEST(AlertRules, CoverageBelowTheThresholdPerRoomTypeAndChineseText) {
  AlertInputs in;
  in.schools = {school("school-a", true, T0, T0, 0.8), school("school-b", true, T0, T0, 0.9)};
  auto r = rules();
  r.language = "zh";
  const auto c = alert_conditions(r, in, T0);
  ASSERT_EQ(keys(c), (std::vector<std::string>{"coverage/school-a/classroom"}));
  EXPECT_EQ(c[0].summary, "学校a (school-a)：教室光纤覆盖率 80%，低于 90%");
  EXPECT_EQ(c[0].hold.count(), 0);
}

TEST(AlertRules, RecordingHoldsOverdueCasesAndLostGapsAreOneShot) {
  AlertInputs in;
  in.recording_failing = {{"school-a", Json::array({{{"subject", "R301"}, {"state", "failing"}, {"reason", "no stream"}}})}};
  in.open_cases = {{{"school", "school-a"}, {"id", "attendance-S7-1"}, {"subject", "S7"}, {"overdue", true},
                    {"details", {{"deadline", "2027-01-10"}}}},
                   {{"school", "school-a"}, {"id", "attendance-S8-1"}, {"subject", "S8"}, {"overdue", false}}};
  in.gaps = {{{"id", 4}, {"school", "school-b"}, {"from_seq", 10}, {"to_seq", 12}, {"lost", 3}, {"lost_reason", "pruned"}},
             {{"id", 5}, {"school", "school-b"}, {"from_seq", 20}, {"to_seq", 20}, {"lost", 0}}};
  auto r = rules();
  const auto c = alert_conditions(r, in, T0);
  ASSERT_EQ(keys(c), (std::vector<std::string>{"recording/school-a/R301", "case/school-a/attendance-S7-1", "gap/4"}));
  EXPECT_EQ(c[0].hold, Millis(3600000));
  EXPECT_NE(c[1].summary.find("deadline 2027-01-10"), std::string::npos);
  EXPECT_TRUE(c[2].one_shot);
  r.rules = {"gap_lost"};
  EXPECT_EQ(keys(alert_conditions(r, in, T0)), (std::vector<std::string>{"gap/4"}));
}

TEST(AlertMessages, DingTalkSignatureMatchesTheDocumentedAlgorithm) {
  // python3: quote_plus(b64encode(hmac.new(b"SECtest", b"1700000000000\nSECtest", sha256).digest()))
  EXPECT_EQ(dingtalk_sign("SECtest", 1700000000000), "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D");
}

TEST(AlertMessages, EachChannelGetsItsOwnShape) {
  AlertDelivery d;
  d.id = 7, d.alert = 3, d.transition = "firing", d.rule = "offline", d.school = "school-a";
  d.summary = "学校a：离线 31m", d.since = "2027-01-15T07:29:00+00:00", d.fired_at = d.since, d.attempts = 1;
  AlertRules r = rules();
  r.language = "zh";
  AlertChannel wecom = channel("it", ChannelKind::WeCom, "http://127.0.0.1:1/cgi-bin/webhook/send?key=k");
  auto w = delivery_request(wecom, {d}, "zhenkang", "镇康县", r, T0);
  Json body = Json::parse(w.body);
  EXPECT_EQ(body["msgtype"], "markdown");
  const std::string content = body["markdown"]["content"];
  EXPECT_NE(content.find("镇康县 校园监测告警"), std::string::npos);
  EXPECT_NE(content.find("<font color=\"warning\">告警</font> 学校a：离线 31m `#3`"), std::string::npos) << content;
  EXPECT_EQ(w.url, wecom.url);

  AlertChannel ding = channel("bureau", ChannelKind::DingTalk, "http://127.0.0.1:1/robot/send?access_token=t", std::string("SECtest"));
  d.transition = "resolved", d.resolved_at = "2027-01-15T08:00:00+00:00";
  auto g = delivery_request(ding, {d}, "zhenkang", "镇康县", r, T0);
  body = Json::parse(g.body);
  EXPECT_EQ(body["markdown"]["title"], "镇康县 校园监测告警");
  EXPECT_NE(body["markdown"]["text"].get<std::string>().find("**【恢复】** 学校a：离线 31m（恢复于 2027-01-15T08:00:00+00:00）"),
            std::string::npos);
  EXPECT_EQ(g.url, ding.url + "&timestamp=1800000000000&sign=" + dingtalk_sign("SECtest", 1800000000000));

  AlertChannel hook = channel("noc", ChannelKind::Webhook, "http://127.0.0.1:1/hook");
  auto k = delivery_request(hook, {d}, "zhenkang", "镇康县", r, T0);
  body = Json::parse(k.body);
  EXPECT_EQ(body["alerts"][0]["id"], "campus-alert-3-resolved");
  EXPECT_EQ(body["alerts"][0]["state"], "resolved");
  bool key = false;
  for (const auto& [n, v] : k.headers) key |= n == "Idempotency-Key" && v == "campus-deliveries-7";
  EXPECT_TRUE(key);
}

TEST(AlertMessages, AnswersAreJudgedWithTheRobotsErrorCodes) {
  AlertChannel wecom = channel("it", ChannelKind::WeCom, "http://127.0.0.1:1/cgi-bin/webhook/send?key=SECRETKEY");
  AlertChannel ding = channel("bureau", ChannelKind::DingTalk, "http://127.0.0.1:1/robot/send?access_token=SECRETTOKEN");
  AlertChannel hook = channel("noc", ChannelKind::Webhook, "http://127.0.0.1:1/hook");
  auto answer = [](long status, std::string body) { return Result<HttpResponse>(HttpResponse{status, std::move(body), {}, {}}); };
  EXPECT_TRUE(judge_response(wecom, answer(200, R"({"errcode":0,"errmsg":"ok"})")).delivered);
  auto rate = judge_response(wecom, answer(200, R"({"errcode":45009,"errmsg":"api freq out of limit"})"));
  EXPECT_FALSE(rate.delivered);
  EXPECT_TRUE(rate.rate_limited);
  auto bad = judge_response(wecom, answer(200, R"({"errcode":93000,"errmsg":"invalid webhook url"})"));
  EXPECT_NE(bad.error.find("check url"), std::string::npos);
  EXPECT_TRUE(judge_response(ding, answer(200, R"({"errcode":130101,"errmsg":"send too fast"})")).rate_limited);
  EXPECT_NE(judge_response(ding, answer(200, R"({"errcode":310000,"errmsg":"sign not match"})")).error.find("secret_file"),
            std::string::npos);
  EXPECT_FALSE(judge_response(ding, answer(200, "<html>proxy</html>")).delivered);
  EXPECT_TRUE(judge_response(hook, answer(204, "")).delivered);
  EXPECT_FALSE(judge_response(hook, answer(500, "oops")).delivered);
  HttpResponse limited{429, "", {{"retry-after", "7"}}, {}};
  auto l = judge_response(hook, Result<HttpResponse>(limited));
  EXPECT_TRUE(l.rate_limited);
  EXPECT_EQ(l.retry_after, Millis(7000));
  // A transport error never shows the robot's key.
  auto down = judge_response(wecom, Result<HttpResponse>(Error{"http://127.0.0.1:1/cgi-bin/webhook/send?key=SECRETKEY",
                                                               "connection refused", ""}));
  EXPECT_EQ(down.error.find("SECRETKEY"), std::string::npos) << down.error;
  EXPECT_NE(down.error.find("connection refused"), std::string::npos);
}

class AlertOutboxTest : public ::testing::TestWithParam<sql::Engine> {};

INSTANTIATE_TEST_SUITE_P(Engines, AlertOutboxTest, ::testing::Values(sql::Engine::Sqlite, sql::Engine::Postgres),
                         engine_name);

TEST_P(AlertOutboxTest, FiresOnceResolvesOnceAndEachTransitionIsDeliveredOncePerChannel) {
  TempDb t(GetParam());
  auto& db = *t.db;
  const std::vector<AlertRoute> routes = {{"it", {}}, {"bureau", {"offline"}}};
  AlertCondition off = condition("offline/school-a", "offline", "school-a", "", "school-a offline");
  AlertCondition cov = condition("coverage/school-a/classroom", "coverage", "school-a", "classroom", "coverage 80%");
  auto p = db.record_alerts({off, cov}, routes, T0);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p.value().fired, 2);
  EXPECT_EQ(p.value().queued, 3);  // it: both; bureau: offline only
  p = db.record_alerts({off, cov}, routes, T0 + 30s);
  EXPECT_EQ(p.value().fired, 0);
  EXPECT_EQ(p.value().queued, 0);

  auto claimed = db.claim_deliveries("it", 10, 20s, T0 + 31s);
  ASSERT_TRUE(claimed.ok()) << claimed.error().message();
  ASSERT_EQ(claimed.value().size(), 2u);
  EXPECT_EQ(claimed.value()[0].transition, "firing");
  EXPECT_EQ(claimed.value()[0].attempts, 1);
  // Claimed and not answered: nobody else takes them until the lease ends.
  EXPECT_TRUE(db.claim_deliveries("it", 10, 20s, T0 + 40s).value().empty());
  // The lease ended (the sender died): taken over, the second attempt.
  auto again = db.claim_deliveries("it", 10, 20s, T0 + 52s);
  ASSERT_EQ(again.value().size(), 2u);
  EXPECT_EQ(again.value()[0].attempts, 2);
  ASSERT_TRUE(db.delivery_result({again.value()[0].id}, false, "HTTP 500", T0 + 60s, T0 + 53s).ok());
  ASSERT_TRUE(db.delivery_result({again.value()[1].id}, true, "", T0, T0 + 53s).ok());
  EXPECT_TRUE(db.claim_deliveries("it", 10, 20s, T0 + 55s).value().empty());  // the failed one waits its backoff
  auto retry = db.claim_deliveries("it", 10, 20s, T0 + 61s);
  ASSERT_EQ(retry.value().size(), 1u);
  EXPECT_EQ(retry.value()[0].attempts, 3);
  ASSERT_TRUE(db.delivery_result({retry.value()[0].id}, true, "", T0, T0 + 62s).ok());

  // The school is back: offline resolves once, coverage stays.
  p = db.record_alerts({cov}, routes, T0 + 90s);
  EXPECT_EQ(p.value().resolved, 1);
  EXPECT_EQ(p.value().queued, 2);
  p = db.record_alerts({cov}, routes, T0 + 120s);
  EXPECT_EQ(p.value().resolved, 0);
  auto res = db.claim_deliveries("bureau", 10, 20s, T0 + 121s);
  ASSERT_EQ(res.value().size(), 2u);  // its firing (never sent) and its resolving, in order
  EXPECT_EQ(res.value()[1].transition, "resolved");
  EXPECT_FALSE(res.value()[1].resolved_at.empty());

  // Offline again later: a new alert, fired once more.
  p = db.record_alerts({off, cov}, routes, T0 + 600s);
  EXPECT_EQ(p.value().fired, 1);
  auto all = db.alerts("all", 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.value().size(), 3u);
  auto totals = db.alert_totals();
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals.value()["firing"], 2);
  EXPECT_EQ(totals.value()["deliveries"]["it"]["delivered"], 2);
}

TEST_P(AlertOutboxTest, AHeldConditionFiresAfterItsHoldAndAOneShotFiresOnlyOnce) {
  TempDb t(GetParam());
  auto& db = *t.db;
  AlertCondition rec = condition("recording/school-a/R301", "recording", "school-a", "R301", "R301 failing", Millis(3600000));
  AlertCondition gap = condition("gap/4", "gap_lost", "school-b", "10..12", "3 lost", Millis(0), true);
  auto p = db.record_alerts({rec, gap}, {{"it", {}}}, T0);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p.value().pending, 1);
  EXPECT_EQ(p.value().fired, 1);
  p = db.record_alerts({rec, gap}, {{"it", {}}}, T0 + 30min);
  EXPECT_EQ(p.value().fired, 0);
  p = db.record_alerts({rec, gap}, {{"it", {}}}, T0 + 61min);
  EXPECT_EQ(p.value().fired, 1);
  // A pending condition that ends before its hold never fires nor says anything.
  AlertCondition flap = rec;
  flap.key = "recording/school-a/R302";
  db.record_alerts({rec, gap, flap}, {{"it", {}}}, T0 + 62min);
  p = db.record_alerts({rec, gap}, {{"it", {}}}, T0 + 63min);
  EXPECT_EQ(p.value().resolved, 0);
  EXPECT_EQ(p.value().queued, 0);
  auto d = db.claim_deliveries("it", 10, 20s, T0 + 64min);
  ASSERT_EQ(d.value().size(), 2u);  // the lost gap once, the recording classroom once
  auto all = db.alerts("all", 100).value();
  int gaps = 0;
  for (const auto& a : all) gaps += a["key"] == "gap/4";
  EXPECT_EQ(gaps, 1);
}
