// Recorder status JSON through configurable paths.
#include <gtest/gtest.h>

#include "recorder_status.hpp"

using namespace campus::recording;

TEST(JsonPath, DottedIndexedAndPointer) {
  Json j = Json::parse(R"({"a":{"b":[{"c":1},{"c":2}]},"x.y":3})");
  EXPECT_EQ(*json_at(j, "a.b[1].c"), 2);
  EXPECT_EQ(*json_at(j, "/a/b/0/c"), 1);
  EXPECT_EQ(*json_at(j, "/x.y"), 3);
  EXPECT_EQ(json_at(j, "a.b[5].c"), nullptr);
  EXPECT_EQ(json_at(j, "a.z"), nullptr);
  EXPECT_EQ(json_at(j, "a.b.c"), nullptr);
}

TEST(JsonPath, ChecksSyntax) {
  EXPECT_EQ(json_path_check("a.b[0]"), "");
  EXPECT_EQ(json_path_check("a..b"), "empty key in JSON path \"a..b\"");
  EXPECT_EQ(json_path_check("a[x]"), "index \"x\" in JSON path \"a[x]\" is not a number");
  EXPECT_EQ(json_path_check("a["), "unclosed or empty [ ] in JSON path \"a[\"");
  EXPECT_EQ(json_path_check("a."), "JSON path \"a.\" ends with '.'");
  EXPECT_EQ(json_path_check(""), "empty JSON path");
  EXPECT_NE(json_path_check("/a~2"), "");
}

TEST(RecorderStatus, DefaultPaths) {
  auto s = parse_recorder_status(200, R"({"recording":true,"storage":{"free_percent":42.5}})", {});
  EXPECT_TRUE(s.answered);
  EXPECT_EQ(s.recording, true);
  EXPECT_DOUBLE_EQ(*s.free_percent, 42.5);
}

TEST(RecorderStatus, VendorPathsStringsAndBytes) {
  RecorderPaths p;
  p.recording = "device.channels[0].state";
  p.recording_values = {"REC"};
  p.free_percent = "/disk/freePct";
  p.free_bytes = "disk.free";
  p.total_bytes = "disk.total";
  auto s = parse_recorder_status(200, R"({"device":{"channels":[{"state":"rec"}]},"disk":{"free":"250","total":1000}})", p);
  EXPECT_EQ(s.recording, true);
  EXPECT_DOUBLE_EQ(*s.free_percent, 25.0);
  auto idle = parse_recorder_status(200, R"({"device":{"channels":[{"state":"idle"}]},"disk":{"freePct":"12%"}})", p);
  EXPECT_EQ(idle.recording, false);
  EXPECT_DOUBLE_EQ(*idle.free_percent, 12.0);
}

TEST(RecorderStatus, Http500NotJsonAndMissingFields) {
  auto e500 = parse_recorder_status(500, "oops", {});
  EXPECT_FALSE(e500.answered);
  EXPECT_EQ(e500.error, "status URL answered HTTP 500");
  auto html = parse_recorder_status(200, "<html>login</html>", {});
  EXPECT_FALSE(html.answered);
  EXPECT_EQ(html.error, "status reply is not JSON (starts with \"<html>login</html>\")");
  auto missing = parse_recorder_status(200, R"({"uptime":5})", {});
  EXPECT_TRUE(missing.answered);
  EXPECT_FALSE(missing.recording);
  EXPECT_EQ(missing.recording_error, "field recording missing in the recorder status");
  EXPECT_EQ(missing.storage_error,
            "field storage.free_percent (or storage.free_bytes and storage.total_bytes) missing in the recorder status");
  auto weird = parse_recorder_status(200, R"({"recording":[1],"storage":{"free_percent":140}})", {});
  EXPECT_EQ(weird.recording_error, "field recording is array, expected a boolean or string");
  EXPECT_FALSE(weird.free_percent);
}
