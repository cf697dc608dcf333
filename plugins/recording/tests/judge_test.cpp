// The compliance rule for one classroom and the totals.
#include <gtest/gtest.h>

#include "audit_run.hpp"

using namespace campus;
using namespace campus::recording;

namespace {
RecordingClassroom room() {
  RecordingClassroom c;
  c.id = "R101";
  c.name = "101";
  c.recorder_url = "http://127.0.0.1/status";
  c.onvif_url = "http://127.0.0.1/onvif/device_service";
  c.streams = {{"teacher", "rtsp://127.0.0.1/t"}, {"students", "rtsp://127.0.0.1/s"}, {"board", "rtsp://127.0.0.1/b"}};
  return c;
}

StreamResult video() {
  StreamResult r;
  r.outcome = StreamResult::Outcome::Video;
  r.video_tracks = 1;
  r.video_codecs = {"H264"};
  return r;
}

ClassroomObservation healthy() {
  ClassroomObservation o;
  o.streams = {video(), video(), video()};
  RecorderStatus st;
  st.answered = true;
  st.recording = true;
  st.free_percent = 40;
  o.recorder = st;
  OnvifResult v;
  v.reachable = true;
  v.clock_drift_s = 0.4;
  o.onvif = v;
  return o;
}
}  // namespace

TEST(Judge, CompliantWhenEveryCheckPasses) {
  auto f = judge_classroom(room(), healthy(), {});
  EXPECT_EQ(f.state, "compliant");
  EXPECT_EQ(f.reason, "");
  EXPECT_EQ(f.details["compliant"], true);
  EXPECT_EQ(f.details["live_cameras"], 3);
  EXPECT_TRUE(f.details["failed_checks"].empty());
}

TEST(Judge, LowStorageAndClockDriftAreFailedChecks) {
  auto o = healthy();
  o.recorder->free_percent = 9.5;
  o.onvif->clock_drift_s = -42.0;
  auto f = judge_classroom(room(), o, {});
  EXPECT_EQ(f.state, "noncompliant");
  EXPECT_EQ(f.details["failed_checks"], Json({"storage", "clock"}));
  EXPECT_EQ(f.reason, "storage free 9.5% is below 15.0%; clock drift -42.0s exceeds 5s");
}

TEST(Judge, DeadStreamFailsItsCheckButCamerasStillEnough) {
  auto o = healthy();
  o.streams[2].outcome = StreamResult::Outcome::Failed;
  o.streams[2].error = "connect: connection refused";
  auto f = judge_classroom(room(), o, {});
  EXPECT_EQ(f.state, "noncompliant");
  EXPECT_EQ(f.details["failed_checks"], Json({"stream:board"}));
  EXPECT_EQ(f.details["checks"]["cameras"]["status"], "pass");
  EXPECT_EQ(f.reason, "board camera: connect: connection refused");
}

TEST(Judge, TooFewLiveCameras) {
  auto o = healthy();
  o.streams[0].outcome = StreamResult::Outcome::NoVideo;
  o.streams[0].error = "SDP has no video track (m=video)";
  o.streams[1].outcome = StreamResult::Outcome::Failed;
  o.streams[1].error = "DESCRIBE: no answer within 5s";
  auto f = judge_classroom(room(), o, {});
  EXPECT_EQ(f.state, "noncompliant");
  EXPECT_EQ(f.details["checks"]["cameras"]["reason"], "1 of 3 cameras live, the standard requires 2");
}

TEST(Judge, AuthProblemsAndMissingFieldsAreUnknownNotHealthy) {
  auto o = healthy();
  o.streams[2].outcome = StreamResult::Outcome::AuthFailed;
  o.streams[2].error = "DESCRIBE: credentials rejected (401 after Digest authentication)";
  o.recorder->free_percent.reset();
  o.recorder->storage_error = "field storage.free_percent missing in the recorder status";
  auto f = judge_classroom(room(), o, {});
  EXPECT_EQ(f.state, "unknown");
  EXPECT_EQ(f.details["unknown_checks"], Json({"stream:board", "storage"}));
  EXPECT_NE(f.reason.find("credentials rejected"), std::string::npos);
}

TEST(Judge, RecorderDownIsNoncompliant) {
  auto o = healthy();
  o.recorder = RecorderStatus{};
  o.recorder->error = "status URL answered HTTP 500";
  auto f = judge_classroom(room(), o, {});
  EXPECT_EQ(f.state, "noncompliant");
  EXPECT_EQ(f.details["failed_checks"], Json({"recorder"}));
  EXPECT_EQ(f.details["unknown_checks"], Json({"recording", "storage"}));
}

TEST(Judge, NotRecordingFails) {
  auto o = healthy();
  o.recorder->recording = false;
  auto f = judge_classroom(room(), o, {});
  EXPECT_EQ(f.state, "noncompliant");
  EXPECT_EQ(f.reason, "recorder reports it is not recording");
}

TEST(Judge, RegisterMinCamerasOverridesDefault) {
  auto c = room();
  c.min_cameras = 3;
  auto o = healthy();
  o.streams[2].outcome = StreamResult::Outcome::NoVideo;
  o.streams[2].error = "x";
  auto f = judge_classroom(c, o, {});
  EXPECT_EQ(f.details["failed_checks"], Json({"stream:board", "cameras"}));
}

TEST(Summary, TotalsAndRatio) {
  std::vector<Finding> fs(4);
  fs[0].state = fs[1].state = "compliant";
  fs[2].state = "noncompliant";
  fs[3].state = "unknown";
  auto s = summarize(fs, 2);
  EXPECT_EQ(s["classrooms"], 4);
  EXPECT_EQ(s["compliant"], 2);
  EXPECT_EQ(s["noncompliant"], 1);
  EXPECT_EQ(s["unknown"], 1);
  EXPECT_EQ(s["register_errors"], 2);
  EXPECT_DOUBLE_EQ(s["compliant_ratio"].get<double>(), 0.5);
  EXPECT_TRUE(summarize({}, 0)["compliant_ratio"].is_null());
}

TEST(Judge, BadRegisterRowIsUnknownWithTheErrorAsReason) {
  auto c = room();
  c.where = "classrooms.csv:23";
  c.invalid = "bad register row classrooms.csv:23 column recorder_url: \"ftp://x/\" must start with http:// or https://"
              " (fix: write the recorder's JSON status URL)";
  auto f = judge_classroom(c, {}, {});
  EXPECT_EQ(f.state, "unknown");
  EXPECT_EQ(f.reason, c.invalid);
  EXPECT_EQ(f.details["unknown_checks"], Json({"register"}));
  EXPECT_EQ(f.details["register_row"], "classrooms.csv:23");
  EXPECT_EQ(f.details["compliant"], false);
  EXPECT_EQ(summarize({f}, 1)["unknown"], 1);
}

TEST(Judge, OnvifRefusingTheRegisterCredentialsIsUnknownNamingTheFile) {
  auto c = room();
  c.credentials_file = "/etc/campus-agent/r101.cred";
  auto o = healthy();
  o.onvif->info_unauthorized = true;
  o.onvif->info_error = "GetDeviceInformation: SOAP fault ter:NotAuthorized: Sender not Authorized";
  auto f = judge_classroom(c, o, {});
  EXPECT_EQ(f.state, "unknown");
  EXPECT_EQ(f.details["unknown_checks"], Json({"onvif_credentials"}));
  EXPECT_NE(f.reason.find("refused the credentials in /etc/campus-agent/r101.cred (GetDeviceInformation: SOAP fault "
                          "ter:NotAuthorized"),
            std::string::npos)
      << f.reason;
  EXPECT_NE(f.reason.find("write the device's ONVIF user and password into /etc/campus-agent/r101.cred"), std::string::npos)
      << f.reason;
  // Another GetDeviceInformation problem (not about credentials) does not change the state.
  o.onvif->info_unauthorized = false;
  o.onvif->info_error = "GetDeviceInformation: reply is not a GetDeviceInformationResponse";
  EXPECT_EQ(judge_classroom(c, o, {}).state, "compliant");
}
