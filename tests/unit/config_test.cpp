// agent.toml validation: every bad input names the file, the key and what was expected.
#include <gtest/gtest.h>

#include <regex>

#include "core/config.hpp"
#include "core/plugin_host.hpp"
#include "test_util.hpp"

using namespace campus;
using campus::test::TempDir;

namespace {

const char* kGood = R"(
[agent]
county = "zhenkang"
school = "nansan-central-primary"
timezone = "+08:00"
data_dir = "data"

[buffer]
max_size = "64MiB"
keep_sent = "30d"

[mqtt]
host = "127.0.0.1"
port = 1883
insecure = true
keep_alive = "20s"
)";

struct Loaded {
  ConfigLoad load;
  std::string all;  // every message, for assertions
};

Loaded load(const TempDir& dir, const std::string& text) {
  auto file = dir.write("agent.toml", text);
  Loaded l{load_config(file), {}};
  for (const auto& e : l.load.errors) l.all += e.message() + "\n";
  return l;
}

// Replaces the first occurrence of `from` in the good config with `to`.
std::string good_with(const std::string& from, const std::string& to) {
  std::string s = kGood;
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

void expect_error(const Loaded& l, const std::string& key, const std::string& problem) {
  EXPECT_FALSE(l.load.errors.empty()) << "expected an error for " << key;
  EXPECT_NE(l.all.find("key " + key), std::string::npos) << "message does not name " << key << ":\n" << l.all;
  EXPECT_NE(l.all.find(problem), std::string::npos) << "message does not say '" << problem << "':\n" << l.all;
  EXPECT_NE(l.all.find("agent.toml"), std::string::npos) << "message does not name the file:\n" << l.all;
}

}  // namespace

TEST(Config, GoodFileLoadsWithDefaultsAndRelativePaths) {
  TempDir dir;
  auto l = load(dir, kGood);
  ASSERT_TRUE(l.load.errors.empty()) << l.all;
  const auto& c = l.load.config;
  EXPECT_EQ(c.county, "zhenkang");
  EXPECT_EQ(c.mqtt.client_id, "campus-zhenkang-nansan-central-primary");
  EXPECT_EQ(c.mqtt.keep_alive, Millis(20'000));
  EXPECT_EQ(c.buffer.max_size, 64ull << 20);
  EXPECT_EQ(c.data_dir, dir.path() / "data");
  EXPECT_EQ(c.mqtt.health_interval, Millis(60'000));
}

TEST(Config, UnknownKeyIsNamedWithItsLine) {
  TempDir dir;
  auto l = load(dir, good_with("timezone = \"+08:00\"", "timezone = \"+08:00\"\ncolour = \"blue\""));
  expect_error(l, "agent.colour", "unknown key");
  EXPECT_NE(l.all.find("agent.toml:6:10 key agent.colour"), std::string::npos) << l.all;
}

TEST(Config, UnknownTableIsNamed) {
  TempDir dir;
  expect_error(load(dir, std::string(kGood) + "\n[mqt]\nhost = \"x\"\n"), "mqt", "unknown key");
}

TEST(Config, WrongTypeSaysWhatWasExpected) {
  TempDir dir;
  expect_error(load(dir, good_with("port = 1883", "port = \"1883\"")), "mqtt.port", "expected an integer");
}

TEST(Config, PortOutOfRange) {
  TempDir dir;
  expect_error(load(dir, good_with("port = 1883", "port = 70000")), "mqtt.port", "from 1 to 65535");
}

TEST(Config, HostAndPortAreTheOnlyBroker) {
  TempDir dir;
  auto l = load(dir, kGood);
  ASSERT_TRUE(l.load.errors.empty()) << l.all;
  ASSERT_EQ(l.load.config.mqtt.brokers.size(), 1u);
  EXPECT_EQ(l.load.config.mqtt.brokers[0], (MqttBroker{"127.0.0.1", 1883}));
}

TEST(Config, BrokersAreTriedInOrderAndTakeThePortAsTheirDefault) {
  TempDir dir;
  auto l = load(dir, good_with("host = \"127.0.0.1\"", "brokers = [\"mqtt1.county.example\", \"10.1.2.3:8884\", \"[::1]:8885\"]"));
  ASSERT_TRUE(l.load.errors.empty()) << l.all;
  const auto& b = l.load.config.mqtt.brokers;
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], (MqttBroker{"mqtt1.county.example", 1883}));
  EXPECT_EQ(b[1], (MqttBroker{"10.1.2.3", 8884}));
  EXPECT_EQ(b[2], (MqttBroker{"::1", 8885}));
  EXPECT_EQ(l.load.config.mqtt.host, "mqtt1.county.example");
}

TEST(Config, EveryBadBrokerEntryIsNamedAndHostWithBrokersIsRefused) {
  TempDir dir;
  auto l = load(dir, good_with("host = \"127.0.0.1\"", "brokers = [\"a:0\", \":8883\", \"::1:8883\", \"[::1\", \"ok:8883\"]"));
  expect_error(l, "mqtt.brokers", "entry \"a:0\": the port is not 1-65535");
  EXPECT_NE(l.all.find("entry \":8883\": no host"), std::string::npos) << l.all;
  EXPECT_NE(l.all.find("entry \"::1:8883\": an IPv6 address must be written in brackets"), std::string::npos) << l.all;
  EXPECT_NE(l.all.find("entry \"[::1\": an IPv6 address without its closing ']'"), std::string::npos) << l.all;
  expect_error(load(dir, good_with("port = 1883", "port = 1883\nbrokers = [\"b:1883\"]")), "mqtt.brokers",
               "is set together with host");
  expect_error(load(dir, good_with("host = \"127.0.0.1\"", "brokers = []")), "mqtt.brokers", "is empty");
}

TEST(Config, BadDuration) {
  TempDir dir;
  expect_error(load(dir, good_with("keep_alive = \"20s\"", "keep_alive = \"soon\"")), "mqtt.keep_alive",
               "expected a duration");
}

TEST(Config, DurationWithoutUnit) {
  TempDir dir;
  expect_error(load(dir, good_with("keep_sent = \"30d\"", "keep_sent = \"30\"")), "buffer.keep_sent", "unit is missing");
}

TEST(Config, DurationAsNumberIsAWrongType) {
  TempDir dir;
  expect_error(load(dir, good_with("keep_alive = \"20s\"", "keep_alive = 20")), "mqtt.keep_alive",
               "expected a duration string");
}

TEST(Config, BadSize) {
  TempDir dir;
  expect_error(load(dir, good_with("max_size = \"64MiB\"", "max_size = \"lots\"")), "buffer.max_size", "expected a size");
}

TEST(Config, MissingCountyIsRequired) {
  TempDir dir;
  expect_error(load(dir, good_with("county = \"zhenkang\"\n", "")), "agent", "county is required");
}

TEST(Config, SchoolCodeMustBeATopicLevel) {
  TempDir dir;
  expect_error(load(dir, good_with("nansan-central-primary", "Nansan Primary/1")), "agent.school",
               "school code \"Nansan Primary/1\" contains 'N': use only lowercase a-z, 0-9 and -");
}

// codes.hpp: "all" would make this agent answer as the county-wide request topic, the county's
// own code would name the county; the check is code_problem (tests/unit/codes_test.cpp).
TEST(Config, SchoolCodeMustNotBeReserved) {
  TempDir dir;
  expect_error(load(dir, good_with("nansan-central-primary", "all")), "agent.school",
               "school code \"all\" is reserved (campus/v1/zhenkang/all/cmd is the request to every school)");
  expect_error(load(dir, good_with("nansan-central-primary", "zhenkang")), "agent.school",
               "school code \"zhenkang\" is the county's own code");
  expect_error(load(dir, good_with("nansan-central-primary", "county")), "agent.school", "is reserved");
}

TEST(Config, BadCountyCodeIsReportedOnceWithTheSchoolsOwnProblem) {
  TempDir dir;
  auto l = load(dir, good_with("county = \"zhenkang\"", "county = \"Zhen kang\""));
  expect_error(l, "agent.county", "county code \"Zhen kang\" contains 'Z'");
  EXPECT_EQ(l.load.errors.size(), 1u) << l.all;
}

TEST(Config, BadTimezone) {
  TempDir dir;
  expect_error(load(dir, good_with("\"+08:00\"", "\"UTC+8\"")), "agent.timezone", "UTC offset like \"+08:00\"");
}

TEST(Config, LogLevelMustBeOneOfTheLevels) {
  TempDir dir;
  expect_error(load(dir, good_with("timezone = \"+08:00\"", "timezone = \"+08:00\"\nlog_level = \"loud\"")),
               "agent.log_level", "expected one of");
}

TEST(Config, SecretFileReadableByOthersIsRefusedWithTheChmod) {
  TempDir dir;
  auto pw = dir.write("mqtt.pw", "hunter2\n", 0644);
  auto l = load(dir, good_with("insecure = true", "insecure = true\nusername = \"s\"\npassword_file = \"mqtt.pw\""));
  expect_error(l, "mqtt.password_file", "readable by group or others");
  EXPECT_NE(l.all.find("chmod 600 " + pw.string()), std::string::npos) << l.all;
  EXPECT_EQ(l.all.find("hunter2"), std::string::npos) << "the secret leaked into the message";
}

TEST(Config, SecretFileMissing) {
  TempDir dir;
  expect_error(load(dir, good_with("insecure = true", "insecure = true\npassword_file = \"nope.pw\"")),
               "mqtt.password_file", "does not exist");
}

TEST(Config, SecretFileWithModeSixHundredIsRead) {
  TempDir dir;
  dir.write("mqtt.pw", "hunter2\n", 0600);
  auto l = load(dir, good_with("insecure = true", "insecure = true\npassword_file = \"mqtt.pw\""));
  ASSERT_TRUE(l.load.errors.empty()) << l.all;
  EXPECT_EQ(l.load.config.mqtt.password.value(), "hunter2");
  EXPECT_EQ(redacted_summary(l.load.config).find("hunter2"), std::string::npos);
}

TEST(Config, TlsNeedsACaFile) {
  TempDir dir;
  expect_error(load(dir, good_with("insecure = true", "insecure = false")), "mqtt", "ca_file is required");
}

TEST(Config, CaFileMustExist) {
  TempDir dir;
  expect_error(load(dir, good_with("insecure = true", "insecure = false\nca_file = \"missing-ca.crt\"")),
               "mqtt.ca_file", "does not exist");
}

TEST(Config, ReconnectMaxBelowMin) {
  TempDir dir;
  expect_error(load(dir, good_with("keep_alive = \"20s\"", "reconnect_min = \"10s\"\nreconnect_max = \"1s\"")),
               "mqtt.reconnect_max", "must not be shorter than reconnect_min");
}

TEST(Config, JitterLongerThanInterval) {
  TempDir dir;
  expect_error(load(dir, std::string(kGood) + "[audits.fiber]\ninterval = \"1m\"\njitter = \"5m\"\n"),
               "audits.fiber.jitter", "must not be longer than interval");
}

TEST(Config, AuditIntervalTooShort) {
  TempDir dir;
  expect_error(load(dir, std::string(kGood) + "[audits.fiber]\ninterval = \"10ms\"\n"), "audits.fiber.interval",
               "expected a duration from 1s");
}

TEST(Config, TomlSyntaxErrorGivesLineAndColumn) {
  TempDir dir;
  auto l = load(dir, "[agent]\ncounty = \"zhenkang\nschool = \"x\"\n");
  ASSERT_FALSE(l.load.errors.empty());
  EXPECT_NE(l.all.find("agent.toml:2:"), std::string::npos) << l.all;
  EXPECT_NE(l.all.find("not valid TOML"), std::string::npos) << l.all;
}

TEST(Config, MissingFileSaysHowToFixIt) {
  auto l = load_config("/nonexistent/agent.toml");
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_NE(l.errors[0].message().find("/nonexistent/agent.toml"), std::string::npos);
  EXPECT_NE(l.errors[0].message().find("--config"), std::string::npos) << l.errors[0].message();
}

TEST(Config, EveryErrorOfAFileIsReportedAtOnce) {
  TempDir dir;
  auto l = load(dir, good_with("port = 1883", "port = \"x\"\nconnect_timeout = \"never\"\nbogus = 1"));
  EXPECT_GE(l.load.errors.size(), 3u) << l.all;
}

TEST(Config, ShippedDefaultConfigIsValid) {
  auto l = load_config(std::filesystem::path(CAMPUS_SOURCE_DIR) / "config" / "agent.toml");
  std::string all;
  for (const auto& e : l.errors) all += e.message() + "\n";
  EXPECT_TRUE(l.errors.empty()) << all;
}

// Plugin keys are validated by the plugin through the same reader.
TEST(Config, PluginSectionUnknownKeyIsNamed) {
  TempDir dir;
  auto l = load(dir, std::string(kGood) + "[audits.t]\nplugin = \"testaudit\"\ndelay = \"1s\"\nbogus = true\n");
  ASSERT_TRUE(l.load.errors.empty()) << l.all;
  l.load.config.plugin_dir = CAMPUS_PLUGIN_BUILD_DIR;
  PluginHost host;
  Errors errors;
  auto audits = host.configure(l.load.config, {}, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message().find("key audits.t.bogus"), std::string::npos) << errors[0].message();
  EXPECT_NE(errors[0].message().find("unknown key"), std::string::npos);
  // The plugin's error carries the line, even though the config was copied on the way.
  AgentConfig copy = l.load.config;
  Errors again;
  PluginHost().configure(copy, {}, again);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(std::regex_search(again[0].message(), std::regex(R"(agent\.toml:\d+:\d+ key audits\.t\.bogus)")))
      << again[0].message();
  EXPECT_TRUE(audits.empty());
}

TEST(Config, PluginSectionBadValueIsNamed) {
  TempDir dir;
  auto l = load(dir, std::string(kGood) + "[audits.t]\nplugin = \"testaudit\"\ndelay = \"later\"\n");
  l.load.config.plugin_dir = CAMPUS_PLUGIN_BUILD_DIR;
  PluginHost host;
  Errors errors;
  host.configure(l.load.config, {}, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message().find("key audits.t.delay"), std::string::npos) << errors[0].message();
}
