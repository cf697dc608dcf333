// The MQTT publisher against a real Mosquitto on 127.0.0.1 and the real SQLite store:
// ordering, outages, refusals, birth/will, TLS failures. (End-to-end tests with the daemon
// binary: tests/integration/test_mqtt*.py.)
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include "core/health.hpp"
#include "core/publisher.hpp"
#include "core/store.hpp"
#include "core/store_executor.hpp"

using namespace campus;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const Identity kWho{"zhenkang", "nansan", "+08:00"};

int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

bool port_open(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A child process with its output in a file, killed (process group) when destroyed.
class Child {
 public:
  Child(std::vector<std::string> argv, const fs::path& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() { stop(); }
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(-pid_, sig);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

std::vector<std::string> drop_root() {
  if (::geteuid() == 0) return {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"};
  return {};
}

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/campus-pubtest-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::permissions(dir_, fs::perms(0755));
    port_ = free_port();
    auto store = Store::open(dir_ / "agent.db", StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(store.value());
    log_ = std::make_shared<spdlog::logger>("mqtt", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text_));
    log_->set_level(spdlog::level::debug);
    config_.host = "127.0.0.1";
    config_.port = static_cast<std::uint16_t>(port_);
    config_.insecure = true;
    config_.keep_alive = 5s;
    config_.reconnect_min = 100ms;
    config_.reconnect_max = 1000ms;
  }
  void TearDown() override {
    publisher_.reset();
    store_thread_.reset();
    subscribers_.clear();
    broker_.reset();
    if (!std::getenv("CAMPUS_KEEP_TMP")) fs::remove_all(dir_);
  }

  void start_broker(const std::string& conf_body, bool listener = true) {
    fs::path conf = dir_ / "mosquitto.conf";
    std::ofstream(conf) << (listener ? "listener " + std::to_string(port_) + " 127.0.0.1\nallow_anonymous true\n" : "")
                        << "persistence false\nlog_dest stdout\nlog_type all\n"
                        << conf_body;
    fs::permissions(conf, fs::perms(0644));
    auto argv = drop_root();
    for (std::string a : {std::string("mosquitto"), std::string("-c"), conf.string()}) argv.push_back(a);
    broker_ = std::make_unique<Child>(argv, dir_ / "mosquitto.log");
    for (int i = 0; i < 200 && !port_open(port_); ++i) std::this_thread::sleep_for(25ms);
    ASSERT_TRUE(port_open(port_)) << slurp(dir_ / "mosquitto.log");
  }

  // mosquitto_sub recording "retained<TAB>topic<TAB>payload" lines.
  void subscribe(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {"mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", std::to_string(port_),
                                     "-q", "1", "-t", "campus/v1/#", "-F", "%r\t%t\t%p"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    subscribers_.push_back(std::make_unique<Child>(argv, dir_ / (name + ".out")));
    std::this_thread::sleep_for(300ms);
  }

  void wait_for_lines(const std::string& name, std::size_t n) {
    for (int i = 0; i < 100 && received(name).size() < n; ++i) std::this_thread::sleep_for(50ms);
  }

  struct Received {
    bool retained;
    std::string topic;
    Json env;
  };
  std::vector<Received> received(const std::string& name) {
    std::vector<Received> out;
    std::istringstream in(slurp(dir_ / (name + ".out")));
    for (std::string line; std::getline(in, line);) {
      auto a = line.find('\t'), b = line.find('\t', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      Json env = Json::parse(line.substr(b + 1), nullptr, false);
      if (env.is_discarded()) continue;
      out.push_back({line[0] == '1', line.substr(a + 1, b - a - 1), env});
    }
    return out;
  }

  // Publishes a health message built from the live store and publisher stats (with `audits`),
  // then reads it back as a late county subscriber would: the last .../health message seen.
  std::optional<Received> health_as_the_county_sees_it(std::map<std::string, AuditHealth> audits,
                                                       std::size_t lines) {
    HealthInputs in{store_->stats(), publisher_->stats(), std::move(audits), std::chrono::steady_clock::now() - 5s,
                    std::chrono::system_clock::now(), "+08:00"};
    publisher_->publish_health(health_body(in));
    run_until([] { return false; }, 300ms);
    subscribe("county");
    wait_for_lines("county", lines);
    std::optional<Received> health;
    for (auto& m : received("county"))
      if (m.topic.ends_with("/health")) health = std::move(m);
    return health;
  }

  // Each commit is one report plus one event (the room's state flips every time; the first
  // report has no event): n commits are 2n-1 messages.
  void commit(int n) {
    for (int i = 0; i < n; ++i) {
      AuditReport r;
      r.summary = {{"rooms", 1}, {"i", i}};
      r.findings.push_back({"room-1", (flip_++ % 2) ? "down" : "covered", "", Json::object()});
      auto out = store_->commit(kWho, "fiber", std::chrono::system_clock::now(), r);
      ASSERT_TRUE(out.ok()) << out.error().message();
    }
  }

  void make_publisher() {
    if (!store_thread_) store_thread_ = std::make_unique<StoreExecutor>(*store_, io_);
    publisher_ = campus::make_publisher(io_, *store_thread_, kWho, config_, {"fiber"}, log_);
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();
      io_.run_for(20ms);
      if (pred()) return true;
    }
    return pred();
  }

  void stop_publisher() {
    bool done = false;
    publisher_->stop(3s, [&] { done = true; });
    ASSERT_TRUE(run_until([&] { return done; }, 5s));
  }

  // Per topic: seqs strictly follow each other apart from exact re-sends; all of 1..last seen.
  void expect_complete_and_ordered(const std::vector<Received>& msgs, std::int64_t last) {
    std::map<std::string, std::int64_t> last_per_topic;
    std::map<std::int64_t, std::string> ids;
    for (const auto& m : msgs) {
      if (!m.env.contains("seq")) continue;
      auto seq = m.env["seq"].get<std::int64_t>();
      auto id = m.env["id"].get<std::string>();
      const bool seen = ids.count(seq) > 0;
      if (ids.count(seq)) {
        EXPECT_EQ(ids[seq], id) << "seq " << seq << " with two ids";
      }
      ids[seq] = id;
      auto& prev = last_per_topic[m.topic];
      // a re-send after reconnect may restart lower; everything else goes up
      if (seq <= prev) {
        EXPECT_TRUE(seen) << m.topic << " went back to unseen seq " << seq;
      }
      prev = seq;
    }
    for (std::int64_t s = 1; s <= last; ++s) EXPECT_TRUE(ids.count(s)) << "seq " << s << " missing";
  }

  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StoreExecutor> store_thread_;  // the publisher's store work (the test reads the store directly)
  std::ostringstream log_text_;
  std::shared_ptr<spdlog::logger> log_;
  MqttConfig config_;
  asio::io_context io_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<Child> broker_;
  std::vector<std::unique_ptr<Child>> subscribers_;
  int flip_ = 0;
};

TEST_F(PublisherTest, DeliversTheBacklogInSeqOrderAndMarksItSent) {
  start_broker("");
  subscribe("county");
  commit(300);  // 600 messages
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 30s)) << log_text_.str();
  commit(50);  // live ones after the backlog
  publisher_->outbox_changed();
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 30s)) << log_text_.str();
  std::this_thread::sleep_for(300ms);
  auto msgs = received("county");
  expect_complete_and_ordered(msgs, 699);
  int reports = 0, events = 0;
  for (const auto& m : msgs) {
    if (m.topic == "campus/v1/zhenkang/nansan/report/fiber") ++reports;
    if (m.topic == "campus/v1/zhenkang/nansan/event/fiber") ++events;
  }
  EXPECT_EQ(reports, 350);
  EXPECT_EQ(events, 349);
  auto st = publisher_->stats();
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.published, 699);
  EXPECT_EQ(st.reconnects, 0);
  stop_publisher();
}

TEST_F(PublisherTest, BirthIsRetainedAndCleanStopPublishesOffline) {
  start_broker("");
  commit(3);
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return publisher_->stats().connected && store_->stats().unsent == 0; }, 10s));
  // insecure = true (these tests' broker speaks plain TCP) is warned about at every start.
  EXPECT_NE(log_text_.str().find("over PLAIN TCP without TLS"), std::string::npos) << log_text_.str();
  // A late subscriber sees the retained birth and the retained report.
  subscribe("late");
  wait_for_lines("late", 2);
  auto msgs = received("late");
  bool birth = false, report = false;
  for (const auto& m : msgs) {
    if (m.topic.ends_with("/state")) {
      birth = m.retained && m.env["body"]["online"] == true && m.env["body"]["last_seq"] == 5 &&
              m.env["body"]["session"] == publisher_->stats().session && m.env["kind"] == "state";
    }
    if (m.topic.ends_with("/report/fiber")) report = m.retained && m.env["seq"] == 4;
  }
  EXPECT_TRUE(birth) << slurp(dir_ / "late.out");
  EXPECT_TRUE(report) << slurp(dir_ / "late.out");
  stop_publisher();
  std::this_thread::sleep_for(300ms);
  subscribe("after");
  wait_for_lines("after", 2);
  msgs = received("after");
  bool offline = false;
  for (const auto& m : msgs)
    if (m.topic.ends_with("/state"))
      offline = m.retained && m.env["body"]["online"] == false && m.env["body"]["reason"] == "stopped";
  EXPECT_TRUE(offline) << slurp(dir_ / "after.out");
}

TEST_F(PublisherTest, NothingIsLostWhileTheBrokerIsDown) {
  start_broker("");
  subscribe("county1", {"-c", "-i", "county"});
  commit(50);
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 20s));
  broker_->stop();
  commit(100);
  publisher_->outbox_changed();
  run_until([] { return false; }, 1500ms);  // reconnect attempts during the outage
  auto attempts_before = publisher_->stats().connect_attempts;
  EXPECT_GT(store_->stats().unsent, 0);
  subscribers_.clear();
  start_broker("");
  subscribe("county2");
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 20s)) << log_text_.str();
  std::this_thread::sleep_for(300ms);
  auto msgs = received("county1");
  auto more = received("county2");
  msgs.insert(msgs.end(), more.begin(), more.end());
  expect_complete_and_ordered(msgs, 299);
  auto st = publisher_->stats();
  EXPECT_EQ(st.reconnects, 1);
  EXPECT_LE(attempts_before, 8) << "reconnect storm";
  stop_publisher();
}

TEST_F(PublisherTest, ReconnectsBackOffWithoutAStorm) {
  // No broker at all for 4 s: min 100 ms, max 1 s -> about 0.1+0.2+0.4+0.8+1+1... with jitter.
  make_publisher();
  publisher_->start();
  run_until([] { return false; }, 4000ms);
  auto attempts = publisher_->stats().connect_attempts;
  EXPECT_GE(attempts, 3);
  EXPECT_LE(attempts, 12) << log_text_.str();
  EXPECT_FALSE(publisher_->stats().connected);
}

TEST_F(PublisherTest, RefusedPublishIsRecordedAndLoggedOnceWithTheFix) {
  fs::path acl = dir_ / "acl";
  std::ofstream(acl) << "topic readwrite campus/v1/zhenkang/nansan/state\ntopic write campus/v1/zhenkang/nansan/event/#\n"
                         "topic readwrite campus/v1/zhenkang/nansan/health\n";
  fs::permissions(acl, fs::perms(0644));
  start_broker("acl_file " + acl.string() + "\n");
  commit(10);
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return publisher_->stats().refused >= 10; }, 10s)) << log_text_.str();
  run_until([] { return false; }, 1500ms);
  auto st = publisher_->stats();
  EXPECT_LE(st.refused, 20) << "retried in a loop";
  EXPECT_EQ(store_->stats().unsent, 10);  // the reports, refused, stay (events went through)
  std::string log = log_text_.str();
  auto first = log.find("not authorized (0x87)");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("not authorized (0x87)", first + 1), std::string::npos) << "logged more than once per topic";
  EXPECT_NE(log.find("needs the block scripts/make-certs writes for school 'nansan' (`topic write "
                     "campus/v1/zhenkang/nansan/report/+`"),
            std::string::npos);

  // Health with a backlog the broker refuses: the county sees the depth, the age of the oldest
  // unsent row and the refusals (what it needs to call the school about its certificate).
  run_until([] { return false; }, 1100ms);  // the oldest unsent row is now over a second old
  auto health = health_as_the_county_sees_it({}, 2);
  ASSERT_TRUE(health.has_value()) << slurp(dir_ / "county.out");
  const auto& b = health->env["body"];
  EXPECT_EQ(b["outbox"]["depth"], 10) << b.dump();
  EXPECT_GE(b["outbox"]["oldest_unsent_age_s"].get<double>(), 1.0) << b.dump();
  EXPECT_GE(b["mqtt"]["refused"].get<int>(), 10) << b.dump();
  EXPECT_EQ(b["mqtt"]["published"], 9) << b.dump();  // the events (the first report has none)
  stop_publisher();
}

TEST_F(PublisherTest, StaleWillFromAnOlderSessionTriggersAFreshBirth) {
  start_broker("");
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return publisher_->stats().connected; }, 10s));
  run_until([] { return false; }, 300ms);
  auto session = publisher_->stats().session;
  Json will = envelope(kWho, "state", std::chrono::system_clock::now(),
                       {{"online", false}, {"session", session - 1}, {"last_seq", 0}, {"reason", "will"}});
  Child pub({"mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", std::to_string(port_), "-q", "1", "-r", "-t",
             "campus/v1/zhenkang/nansan/state", "-m", will.dump()},
            dir_ / "pub.log");
  run_until([] { return false; }, 1000ms);
  subscribe("county");
  wait_for_lines("county", 1);
  auto msgs = received("county");
  bool online = false;
  for (const auto& m : msgs)
    if (m.topic.ends_with("/state")) online = m.env["body"]["online"] == true && m.env["body"]["session"] == session;
  EXPECT_TRUE(online) << slurp(dir_ / "county.out");
  EXPECT_NE(log_text_.str().find("stale offline state"), std::string::npos);
  stop_publisher();
}

TEST_F(PublisherTest, ABurstOfStaleWillsGetsOneBirthNotOneEach) {
  start_broker("");
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return publisher_->stats().connected; }, 10s));
  run_until([] { return false; }, 300ms);
  const auto session = publisher_->stats().session;
  subscribe("county");
  // Ten wills of older sessions in one burst (one mosquitto_pub, one line each), as a resumed
  // session delivers the wills queued for it.
  std::string lines;
  for (int k = 1; k <= 10; ++k)
    lines += envelope(kWho, "state", std::chrono::system_clock::now(),
                      {{"online", false}, {"session", session - k}, {"last_seq", 0}, {"reason", "will"}})
                 .dump() +
             "\n";
  std::ofstream(dir_ / "wills.txt") << lines;
  Child pub({"sh", "-c",
             "mosquitto_pub -V mqttv5 -h 127.0.0.1 -p " + std::to_string(port_) +
                 " -q 1 -t campus/v1/zhenkang/nansan/state -l < " + (dir_ / "wills.txt").string()},
            dir_ / "pub.log");
  auto births = [&] {
    int n = 0;
    for (const auto& m : received("county"))
      if (m.topic.ends_with("/state") && !m.retained && m.env["body"]["online"] == true) ++n;
    return n;
  };
  run_until([&] { return births() >= 1; }, 10s);
  run_until([] { return false; }, 1000ms);  // any further birth would have followed by now
  EXPECT_EQ(births(), 1) << slurp(dir_ / "county.out");
  // And the county ends with this session online: the birth came after the last stale will.
  std::vector<Json> states;
  for (const auto& m : received("county"))
    if (m.topic.ends_with("/state")) states.push_back(m.env["body"]);
  ASSERT_EQ(states.size(), 12u) << slurp(dir_ / "county.out");  // retained birth, 10 wills, 1 birth
  EXPECT_EQ(states.back()["online"], true);
  EXPECT_EQ(states.back()["session"], session);
  EXPECT_NE(log_text_.str().find("re-publishing birth after 10 stale offline state(s)"), std::string::npos)
      << log_text_.str();
  stop_publisher();
}

TEST_F(PublisherTest, HealthIsRetainedAndMatchesTheOutbox) {
  start_broker("");
  commit(5);
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 10s));
  auto health =
      health_as_the_county_sees_it({{"fiber", AuditHealth{std::chrono::system_clock::now(), 1234ms, true, "", 1, 0}}}, 3);
  bool ok = false;
  if (health) {
    const auto& b = health->env["body"];
    ok = health->retained && b["outbox"]["depth"] == 0 && b["outbox"]["last_seq"] == 9 &&
         b["mqtt"]["published"] == 9 && b["uptime_s"].get<int>() >= 5 && b["rss_bytes"].get<std::uint64_t>() > 0 &&
         b["audits"]["fiber"]["duration_ms"] == 1234;
  }
  EXPECT_TRUE(ok) << slurp(dir_ / "county.out");
  stop_publisher();
}

TEST_F(PublisherTest, ForwardsRequestsWithResponseTopicAndRepliesWithCorrelation) {
  start_broker("");
  make_publisher();
  std::vector<IncomingRequest> got;
  publisher_->on_request([&](IncomingRequest r) {
    got.push_back(r);
    publisher_->publish_reply(*r.response_topic, r.correlation_data,
                              envelope(kWho, "reply", std::chrono::system_clock::now(), {{"ok", true}}));
  });
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return publisher_->stats().connected; }, 10s));
  run_until([] { return false; }, 300ms);
  // mosquitto_rr: request/response with Response Topic + Correlation Data, waits for the reply.
  Child rr({"mosquitto_rr", "-h", "127.0.0.1", "-p", std::to_string(port_), "-t", "campus/v1/zhenkang/all/cmd", "-e",
            "campus/v1/zhenkang/nansan/reply/test", "-m", R"({"cmd":"ping"})", "-W", "5"},
           dir_ / "rr.out");
  ASSERT_TRUE(run_until([&] { return !got.empty(); }, 5s));
  run_until([] { return false; }, 500ms);
  EXPECT_EQ(got[0].topic, "campus/v1/zhenkang/all/cmd");
  EXPECT_EQ(got[0].payload, R"({"cmd":"ping"})");
  EXPECT_NE(slurp(dir_ / "rr.out").find("\"ok\":true"), std::string::npos) << slurp(dir_ / "rr.out");
  stop_publisher();
}

// The session (clean start false, session expiry set on the finished connect options: the Paho
// 1.2.0 trap of docs/dependencies.md) outlives a connection: a county request sent while the agent is
// away waits at the broker and arrives when it comes back. Re-subscribing alone would lose it.
TEST_F(PublisherTest, RequestSentWhileTheAgentWasAwayArrivesWhenItReturns) {
  start_broker("");
  std::vector<IncomingRequest> got;
  auto keep = [&](IncomingRequest r) { got.push_back(std::move(r)); };
  make_publisher();
  publisher_->on_request(keep);
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return publisher_->stats().connected; }, 10s));
  run_until([] { return false; }, 300ms);  // subscribed
  stop_publisher();
  publisher_.reset();
  Child pub({"mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", std::to_string(port_), "-q", "1", "-t",
             "campus/v1/zhenkang/nansan/cmd", "-m", R"({"cmd":"ping","while":"away"})"},
            dir_ / "pub.log");
  run_until([] { return false; }, 700ms);
  EXPECT_TRUE(got.empty());
  make_publisher();
  publisher_->on_request(keep);
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return !got.empty(); }, 10s)) << log_text_.str();
  EXPECT_EQ(got[0].topic, "campus/v1/zhenkang/nansan/cmd");
  EXPECT_EQ(got[0].payload, R"({"cmd":"ping","while":"away"})");
  stop_publisher();
}

// ---- TLS (certificates from scripts/make-certs) ----
class PublisherTlsTest : public PublisherTest {
 protected:
  void SetUp() override {
    PublisherTest::SetUp();
    certs_ = dir_ / "certs";
    std::string cmd = std::string(CAMPUS_SOURCE_DIR) + "/scripts/make-certs " + certs_.string() +
                      " --county zhenkang --expired-broker --other-ca --wrong-host nansan other 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    config_.insecure = false;
    config_.ca_file = certs_ / "ca.crt";
    config_.cert_file = certs_ / "nansan.crt";
    config_.key_file = certs_ / "nansan.key";
  }
  void start_tls_broker(const std::string& cert, bool require_cert = true) {
    std::string acl = (certs_ / "acl").string();  // written by make-certs from config/county-broker/acl
    start_broker("listener " + std::to_string(port_) + " 127.0.0.1\nallow_anonymous false\ncafile " +
                     (certs_ / "ca.crt").string() + "\ncertfile " + (certs_ / (cert + ".crt")).string() + "\nkeyfile " +
                     (certs_ / (cert + ".key")).string() + "\ntls_version tlsv1.2\nrequire_certificate " +
                     (require_cert ? "true" : "false") + "\nuse_identity_as_username true\nacl_file " + acl + "\n",
                 /*listener=*/false);
  }
  void expect_refused(const std::string& log_words) {
    make_publisher();
    publisher_->start();
    EXPECT_TRUE(run_until([&] { return log_text_.str().find(log_words) != std::string::npos; }, 8s))
        << log_text_.str();
    EXPECT_FALSE(publisher_->stats().connected);
    EXPECT_EQ(store_->stats().unsent, 1);
  }
  fs::path certs_;
};

TEST_F(PublisherTlsTest, MutualTlsWithTheShippedAclDelivers) {
  start_tls_broker("broker");
  commit(20);
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 15s)) << log_text_.str();
  EXPECT_EQ(publisher_->stats().refused, 0);
  stop_publisher();
}

TEST_F(PublisherTlsTest, WrongCaIsRefusedWithAClearLogLine) {
  start_tls_broker("broker");
  commit(1);
  config_.ca_file = certs_ / "other-ca.crt";
  expect_refused("server certificate rejected");
}

TEST_F(PublisherTlsTest, WrongHostIsRefusedWithAClearLogLine) {
  start_tls_broker("broker-wronghost");
  commit(1);
  expect_refused("is not issued for '127.0.0.1'");
}

TEST_F(PublisherTlsTest, ExpiredBrokerCertificateIsRefusedWithAClearLogLine) {
  start_tls_broker("broker-expired");
  commit(1);
  expect_refused("certificate has expired");
}

TEST_F(PublisherTlsTest, MissingClientCertificateIsRefusedWithAClearLogLine) {
  start_tls_broker("broker");
  commit(1);
  config_.cert_file.clear();
  config_.key_file.clear();
  expect_refused("requires a client certificate");
}

}  // namespace

namespace {

// Username + password instead of a client certificate (Mosquitto password_file).
class PublisherPasswordTest : public PublisherTest {
 protected:
  void start_password_broker() {
    fs::path pw = dir_ / "passwd";
    std::string cmd = "mosquitto_passwd -b -c " + pw.string() + " nansan s3cret >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    fs::permissions(pw, fs::perms(0644));
    start_broker("listener " + std::to_string(port_) + " 127.0.0.1\nallow_anonymous false\npassword_file " +
                     pw.string() + "\n",
                 /*listener=*/false);
  }
};

TEST_F(PublisherPasswordTest, LogsInWithUserNameAndPassword) {
  start_password_broker();
  commit(3);
  config_.username = "nansan";
  config_.password = "s3cret";
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 10s)) << log_text_.str();
  EXPECT_EQ(log_text_.str().find("s3cret"), std::string::npos) << "the password was logged";
  stop_publisher();
}

TEST_F(PublisherPasswordTest, WrongPasswordIsRefusedWithAClearLogLine) {
  start_password_broker();
  commit(1);
  config_.username = "nansan";
  config_.password = "wrong";
  make_publisher();
  publisher_->start();
  EXPECT_TRUE(run_until([&] { return log_text_.str().find("refused user 'nansan'") != std::string::npos &&
                                     log_text_.str().find("not authorized") != std::string::npos; },
                        8s))
      << log_text_.str();
  EXPECT_FALSE(publisher_->stats().connected);
  EXPECT_EQ(log_text_.str().find("wrong"), std::string::npos) << "the password was logged";
}

}  // namespace

namespace {

TEST_F(PublisherTest, ClampsTheWindowToTheBrokersReceiveMaximum) {
  // Paho C stalls a second per batch beyond the broker's Receive Maximum (20 by default).
  start_broker("");
  config_.inflight_window = 100;
  commit(500);
  make_publisher();
  publisher_->start();
  ASSERT_TRUE(run_until([&] { return store_->stats().unsent == 0; }, 20s)) << log_text_.str();
  EXPECT_NE(log_text_.str().find("Receive Maximum 20"), std::string::npos) << log_text_.str().substr(0, 2000);
  stop_publisher();
}

}  // namespace
