#include <gtest/gtest.h>

#include "core/envelope.hpp"

using namespace campus;
using namespace std::chrono;

namespace {
const Identity kSchool{"zhenkang", "nansan-central-primary", "+08:00"};
SystemTime utc(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return SystemTime(sys_days(year(y) / mo / d) + hours(h) + minutes(mi) + seconds(s));
}
}  // namespace

TEST(Envelope, WritesRfc3339InTheSchoolsOffset) {
  EXPECT_EQ(rfc3339(utc(2026, 11, 28, 13, 0, 0), "+08:00"), "2026-11-28T21:00:00+08:00");
  EXPECT_EQ(rfc3339(utc(2026, 11, 28, 20, 30, 5), "+08:00"), "2026-11-29T04:30:05+08:00");
  EXPECT_EQ(rfc3339(utc(2026, 1, 1, 2, 0, 0), "-05:30"), "2025-12-31T20:30:00-05:30");
  EXPECT_EQ(rfc3339(utc(2026, 1, 1, 2, 0, 0), "Z"), "2026-01-01T02:00:00+00:00");
  EXPECT_EQ(rfc3339(utc(2026, 1, 1, 2, 0, 0) + milliseconds(999), "+00:00"), "2026-01-01T02:00:00+00:00");
}

TEST(Envelope, ParsesWhatItWritesAndOtherOffsets) {
  auto t = utc(2026, 11, 28, 13, 0, 0);
  EXPECT_EQ(parse_rfc3339(rfc3339(t, "+08:00")), t);
  EXPECT_EQ(parse_rfc3339("2026-11-28T13:00:00Z"), t);
  EXPECT_EQ(parse_rfc3339("2026-11-28T08:00:00-05:00"), t);
  EXPECT_EQ(parse_rfc3339("2026-11-28T13:00:00.250Z"), t + milliseconds(250));
  for (const char* bad : {"", "2026-11-28", "2026-11-28T13:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                          "2026-11-28T25:00:00Z", "2026-11-28T13:00:00+8:00", "2026-11-28T13:00:00Zjunk",
                          "2026-11-28T13:00:00.", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"})
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
}

TEST(Envelope, ParsesUtcOffsets) {
  EXPECT_EQ(parse_utc_offset("+08:00"), 8 * 3600);
  EXPECT_EQ(parse_utc_offset("-05:30"), -(5 * 3600 + 30 * 60));
  EXPECT_EQ(parse_utc_offset("Z"), 0);
  for (const char* bad : {"", "08:00", "+8:00", "+08:60", "+24:00", "+08-00", "+0800"})
    EXPECT_FALSE(parse_utc_offset(bad).has_value()) << bad;
}

TEST(Envelope, BuildsTopicsInsideTheSchoolsSubtree) {
  EXPECT_EQ(subtree(kSchool), "campus/v1/zhenkang/nansan-central-primary/");
  EXPECT_EQ(topic(kSchool, "report/fiber"), "campus/v1/zhenkang/nansan-central-primary/report/fiber");
  EXPECT_EQ(topic(kSchool, "state"), "campus/v1/zhenkang/nansan-central-primary/state");
}

TEST(Envelope, CarriesProtocolFieldsForStoredKinds) {
  Json e = envelope(kSchool, "report", utc(2026, 11, 28, 13, 0, 0), Json{{"x", 1}}, 1234, "fiber");
  EXPECT_EQ(e["v"], 1);
  EXPECT_EQ(e["kind"], "report");
  EXPECT_EQ(e["county"], "zhenkang");
  EXPECT_EQ(e["school"], "nansan-central-primary");
  EXPECT_EQ(e["seq"], 1234);
  EXPECT_EQ(e["id"], "nansan-central-primary:1234");
  EXPECT_EQ(e["ts"], "2026-11-28T21:00:00+08:00");
  EXPECT_EQ(e["agent"], std::string("campus-agent/") + kAgentVersion);
  EXPECT_EQ(e["audit"], "fiber");
  EXPECT_EQ(e["body"], (Json{{"x", 1}}));
}

TEST(Envelope, OmitsSeqIdAndAuditForEphemeralKinds) {
  Json e = envelope(kSchool, "health", utc(2026, 11, 28, 13, 0, 0), Json::object());
  EXPECT_EQ(e["kind"], "health");
  EXPECT_FALSE(e.contains("seq"));
  EXPECT_FALSE(e.contains("id"));
  EXPECT_FALSE(e.contains("audit"));
  EXPECT_TRUE(e["body"].is_object());
}
