// Hikvision ISAPI and Dahua CGI replies as the recorders send them (tests/data/hikvision,
// tests/data/dahua), what the audit makes of them (disks, channels, clock, locks), and how the
// compliance rule reads a vendor recorder's status.
#include <gtest/gtest.h>

#include "audit_run.hpp"
#include "dahua_cgi.hpp"
#include "hikvision_isapi.hpp"
#include "test_data.hpp"

using namespace campus;
using namespace campus::recording;

namespace {

std::string data(const std::string& name) {
  std::string bytes = test::data(name);
  EXPECT_FALSE(bytes.empty()) << name;
  return bytes;
}

constexpr double kMay1At10Utc = 1714557600;  // 2024-05-01T10:00:00Z

}  // namespace

TEST(Hikvision, DeviceInfoStorageTimeAndChannels) {
  auto id = hikvision::parse_device_info(data("hikvision/deviceInfo.xml"));
  ASSERT_TRUE(id.ok()) << id.error().what;
  EXPECT_EQ(id->model, "DS-7608NI-K2");
  EXPECT_EQ(id->serial, "DS-7608NI-K20820211231CCRRJ12345678WCVU");
  EXPECT_EQ(id->firmware, "V4.30.085 build 220318");

  auto disks = hikvision::parse_storage(data("hikvision/storage.xml"));
  ASSERT_TRUE(disks.ok()) << disks.error().what;
  ASSERT_EQ(disks->size(), 2u);
  EXPECT_TRUE((*disks)[0].healthy);
  EXPECT_DOUBLE_EQ(*(*disks)[0].capacity_bytes, 3815447.0 * 1048576);  // ISAPI counts MB
  EXPECT_FALSE((*disks)[1].healthy);
  EXPECT_EQ((*disks)[1].status, "error");

  auto t = hikvision::parse_time(data("hikvision/time.xml"), 0);
  ASSERT_TRUE(t.ok()) << t.error().what;
  EXPECT_DOUBLE_EQ(*t, kMay1At10Utc) << "18:00 at +08:00 is 10:00 UTC";
  auto zulu = hikvision::parse_time("<Time><localTime>2024-05-01T10:00:00Z</localTime></Time>", 480);
  EXPECT_DOUBLE_EQ(*zulu, kMay1At10Utc);
  auto bare = hikvision::parse_time("<Time><localTime>2024-05-01T18:00:00</localTime></Time>", 480);
  EXPECT_DOUBLE_EQ(*bare, kMay1At10Utc) << "no offset: read at the audit's recorder_utc_offset";

  auto ch = hikvision::parse_working_status(data("hikvision/workingstatus.xml"));
  ASSERT_TRUE(ch.ok()) << ch.error().what;
  ASSERT_EQ(ch->size(), 3u);
  EXPECT_TRUE((*ch)[0].recording);
  EXPECT_FALSE((*ch)[1].recording);
  EXPECT_EQ((*ch)[2].online, false);
}

TEST(Hikvision, LocksErrorsAndRepliesThatAreNotIsapi) {
  EXPECT_EQ(hikvision::account_lock(data("hikvision/userCheck-locked.xml")), "locked, unlocks in 210 s");
  EXPECT_FALSE(hikvision::account_lock("<userCheck><lockStatus>unlock</lockStatus></userCheck>"));
  EXPECT_FALSE(hikvision::account_lock("<html>401</html>"));
  EXPECT_EQ(hikvision::response_status(data("hikvision/responseStatus-403.xml")), "Invalid Operation (lowPrivilege)");
  auto html = hikvision::parse_storage("<html><body>login</body></html>");
  ASSERT_FALSE(html.ok());
  EXPECT_NE(html.error().what.find("reply is not ISAPI <storage> XML (no <storage> element"), std::string::npos);
  auto cut = hikvision::parse_device_info("<DeviceInfo><model>DS");
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().what.find("malformed XML"), std::string::npos) << cut.error().what;
  auto feb30 = hikvision::parse_time("<Time><localTime>2024-02-30T10:00:00+08:00</localTime></Time>", 480);
  ASSERT_FALSE(feb30.ok());
  EXPECT_NE(feb30.error().what.find("is not a real date and time"), std::string::npos);
}

TEST(Dahua, SystemInfoStorageTimeAndRecordMode) {
  auto id = dahua::parse_system_info(data("dahua/systemInfo.txt"));
  ASSERT_TRUE(id.ok()) << id.error().what;
  EXPECT_EQ(id->model, "DHI-NVR4208-8P-4KS2");
  EXPECT_EQ(id->serial, "5J01A8FPAZ12345");

  auto disks = dahua::parse_storage(data("dahua/storage.txt"));
  ASSERT_TRUE(disks.ok()) << disks.error().what;
  ASSERT_EQ(disks->size(), 2u);
  EXPECT_EQ((*disks)[0].id, "/dev/sda");
  EXPECT_TRUE((*disks)[0].healthy);
  EXPECT_NEAR(*(*disks)[0].free_bytes, 4000443056128.0 - 3800420903321.0, 1);
  EXPECT_FALSE((*disks)[1].healthy);
  EXPECT_EQ((*disks)[1].status, "Error, partition error");

  auto t = dahua::parse_time(data("dahua/time.txt"), 480);
  ASSERT_TRUE(t.ok()) << t.error().what;
  EXPECT_DOUBLE_EQ(*t, kMay1At10Utc);
  EXPECT_FALSE(dahua::parse_time("result=2024-05-01T18:00:00\r\n", 480).ok());

  auto ch = dahua::parse_record_mode(data("dahua/recordMode.txt"));
  ASSERT_TRUE(ch.ok()) << ch.error().what;
  ASSERT_EQ(ch->size(), 4u);
  EXPECT_EQ((*ch)[0].state, "automatic");
  EXPECT_EQ((*ch)[1].state, "manual");
  EXPECT_EQ((*ch)[2].number, 3);
  EXPECT_FALSE((*ch)[2].recording);
  EXPECT_EQ((*ch)[2].state, "stopped");
}

TEST(Dahua, ErrorsAndLocks) {
  EXPECT_EQ(dahua::error_body(data("dahua/badRequest.txt")), "Bad Request!");
  EXPECT_EQ(dahua::account_lock(data("dahua/locked.txt")), "User Locked! Please try again after 30 minutes.");
  EXPECT_FALSE(dahua::account_lock(data("dahua/badRequest.txt")));
  auto e = dahua::parse_storage(data("dahua/badRequest.txt"));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().what, "the recorder answered Error: Bad Request!");
  auto none = dahua::parse_storage("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(dahua::parse_record_mode("<html>").ok());
}

// Partitions of 1e308 bytes would sum to infinity and make the free percentage NaN (neither
// below nor above the minimum): a byte count above 1e18 is not one. And a disk with nothing
// used is 100% free, not 100.00000000000001% (found by fuzz_dahua).
TEST(Dahua, AbsurdByteCountsAreNotSizesAndAnEmptyDiskIsAtMostAllFree) {
  auto disks = dahua::parse_storage(
      "list.info[0].Detail[0].TotalBytes=1e308\r\nlist.info[0].Detail[1].TotalBytes=1e308\r\n"
      "list.info[0].Detail[0].UsedBytes=0\r\nlist.info[0].State=Success\r\n");
  ASSERT_TRUE(disks.ok());
  ASSERT_EQ(disks->size(), 1u);
  EXPECT_FALSE((*disks)[0].capacity_bytes);
  RecorderStatus st;
  apply_disks(*disks, st);
  EXPECT_FALSE(st.free_percent);
  EXPECT_EQ(st.storage_error, "the recorder reports no capacity for its disks");
  RecorderStatus empty_disk;
  apply_disks(*dahua::parse_storage("list.info[0].Detail[0].TotalBytes=400044304999999\r\nlist.info[0].State=Success\r\n"),
              empty_disk);
  ASSERT_TRUE(empty_disk.free_percent);
  EXPECT_LE(*empty_disk.free_percent, 100.0);
}

TEST(VendorStatus, DisksAndChannelsBecomeTheChecksInputs) {
  RecorderStatus st;
  apply_disks(*hikvision::parse_storage(data("hikvision/storage.xml")), st);
  ASSERT_TRUE(st.free_percent);
  EXPECT_NEAR(*st.free_percent, 50.0, 0.01) << "over the healthy disk only";
  EXPECT_EQ(st.storage_faults, std::vector<std::string>{"disk 2 reports status \"error\""});
  apply_channels(*hikvision::parse_working_status(data("hikvision/workingstatus.xml")), st);
  EXPECT_EQ(st.recording, false);
  EXPECT_EQ(st.recording_reason, "channel 2 is not recording") << "channel 3 is offline: the cameras check's business";

  RecorderStatus d;
  apply_channels(*dahua::parse_record_mode(data("dahua/recordMode.txt")), d);
  EXPECT_EQ(d.recording_reason, "channel 3 is not recording");
  RecorderStatus empty;
  apply_disks({}, empty);
  EXPECT_EQ(empty.storage_faults, std::vector<std::string>{"the recorder reports no disk to record on"});
  RecorderStatus all_off;
  apply_channels({{1, false, false, "not recording"}, {2, false, false, "not recording"}}, all_off);
  EXPECT_EQ(all_off.recording, false);
  EXPECT_EQ(all_off.recording_reason, "no channel of the recorder is online (1 and 2 offline)");
}

TEST(VendorStatus, TheJudgeFailsAnHddInErrorAndReadsTheRecordersClock) {
  RecordingClassroom c;
  c.id = "R1";
  c.recorder_url = "http://10.0.1.10";
  c.recorder_api = RecorderApi::Hikvision;
  c.credentials_file = "/etc/campus-agent/r1.cred";
  c.streams = {{"teacher", "rtsp://10.0.1.11/t"}, {"students", "rtsp://10.0.1.12/s"}};
  ClassroomObservation o;
  StreamResult v;
  v.outcome = StreamResult::Outcome::Video;
  o.streams = {v, v};
  RecorderStatus st;
  st.api = "hikvision";
  st.answered = true;
  st.recording = true;
  apply_disks(*hikvision::parse_storage(data("hikvision/storage.xml")), st);
  st.clock_drift_s = 7.5;
  o.recorder = st;
  RecordingSettings s;
  Finding f = judge_classroom(c, o, s);
  EXPECT_EQ(f.state, "noncompliant");
  EXPECT_EQ(f.details["checks"]["storage"]["reason"], "disk 2 reports status \"error\"");
  EXPECT_EQ(f.details["checks"]["clock"]["reason"], "clock drift 7.5s exceeds 5s") << "no ONVIF: the ISAPI clock";
  EXPECT_EQ(f.details["recorder"]["api"], "hikvision");
  EXPECT_EQ(f.details["recorder"]["disks"].size(), 2u);

  // A locked account: the recorder answered, nothing is known, the fix is named.
  RecorderStatus locked;
  locked.api = "hikvision";
  locked.credentials_error = "http://10.0.1.10/ISAPI/System/deviceInfo: the recorder has locked the account \"admin\" "
                             "(locked, unlocks in 210 s)";
  o.recorder = locked;
  f = judge_classroom(c, o, s);
  EXPECT_EQ(f.state, "unknown");
  EXPECT_EQ(f.details["checks"]["recorder"]["status"], "pass");
  EXPECT_EQ(f.details["checks"]["storage"]["status"], "unknown");
  EXPECT_NE(f.details["checks"]["recorder_credentials"]["reason"].get<std::string>().find(
                "write the recorder's user and password into /etc/campus-agent/r1.cred as username:password, then wait "
                "until the recorder unlocks the account"),
            std::string::npos)
      << f.details;
}
