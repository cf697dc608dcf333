// The recording-classroom register: good rows, and each bad row named by file:line.
#include <gtest/gtest.h>

#include "classroom_register.hpp"

using namespace campus;
using namespace campus::recording;

namespace {
SecretReader fake_secrets() {
  return [](const std::filesystem::path& p) -> Result<std::string> {
    if (p.filename() == "r101.cred") return std::string("admin:pa:ss");
    if (p.filename() == "bad.cred") return std::string("no-colon");
    return Error{p.string(), "cannot open the file", {}};
  };
}

std::vector<RecordingClassroom> parse(const std::string& csv, Errors& errors) {
  auto table = parse_csv(csv, "rec.csv", {"id", "streams"});
  return parse_register(table, "/etc/campus", fake_secrets(), errors);
}
}  // namespace

TEST(Register, ReadsClassroomsWithStreamsCredentialsAndOverrides) {
  Errors errors;
  auto cs = parse(
      "id,name,recorder_url,onvif_url,streams,credentials,min_cameras\n"
      "R101,101 录播教室,http://127.0.0.1:8080/status,http://127.0.0.1:8080/onvif/device_service,"
      "\"teacher=rtsp://127.0.0.1:8554/t; students=rtsp://127.0.0.1:8554/s\",r101.cred,3\n",
      errors);
  ASSERT_TRUE(errors.empty()) << errors[0].message();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].name, "101 录播教室");
  ASSERT_EQ(cs[0].streams.size(), 2u);
  EXPECT_EQ(cs[0].streams[1].role, "students");
  EXPECT_EQ(cs[0].streams[1].url, "rtsp://127.0.0.1:8554/s");
  ASSERT_TRUE(cs[0].credentials);
  EXPECT_EQ(cs[0].credentials->username, "admin");
  EXPECT_EQ(cs[0].credentials->password, "pa:ss");
  ASSERT_TRUE(cs[0].camera_credentials);  // defaults to the recorder's
  EXPECT_EQ(cs[0].min_cameras, 3);
}

TEST(Register, ReportsEachBadRowWithFileLineAndColumnAndKeepsItsClassroomAsInvalid) {
  Errors errors;
  auto cs = parse(
      "id,recorder_url,streams,credentials,min_cameras\n"
      "OK1,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t,,\n"
      "B1,http://127.0.0.1/s,teacher=http://127.0.0.1/t,,\n"
      "B2,,teacher=rtsp://127.0.0.1/t,,\n"
      "B3,http://127.0.0.1/s,teacher=rtsp://u:p@127.0.0.1/t,,\n"
      "B4,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t;teacher=rtsp://127.0.0.1/u,,\n"
      "B5,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t,missing.cred,\n"
      "B6,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t,bad.cred,\n"
      "B7,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t,,two\n"
      "OK2,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t,,\n"
      "B9,ftp://127.0.0.1/s,rtsp://127.0.0.1/t,,\n"
      ",http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t,,\n"
      "OK2,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t,,\n",
      errors);
  std::vector<std::string> m;
  for (auto& e : errors) m.push_back(e.where + ": " + e.what);
  ASSERT_EQ(m.size(), 11u);
  EXPECT_EQ(m[0], "rec.csv:3 column streams: stream teacher: \"http://127.0.0.1/t\" must start with rtsp://");
  EXPECT_EQ(m[1], "rec.csv:4 column recorder_url: classroom B2 has neither recorder_url nor onvif_url");
  EXPECT_EQ(m[2], "rec.csv:5 column streams: stream teacher: credentials inside the URL are not allowed");
  EXPECT_EQ(m[3], "rec.csv:6 column streams: stream role \"teacher\" appears twice");
  EXPECT_TRUE(m[4].starts_with("rec.csv:7 column credentials: /etc/campus/missing.cred: cannot open")) << m[4];
  EXPECT_EQ(m[5], "rec.csv:8 column credentials: credentials file /etc/campus/bad.cred must hold one line username:password");
  EXPECT_EQ(m[6], "rec.csv:9 column min_cameras: expected a whole number 0..64, got \"two\"");
  EXPECT_EQ(m[7], "rec.csv:11 column recorder_url: \"ftp://127.0.0.1/s\" must start with http:// or https://");
  EXPECT_EQ(m[8], "rec.csv:11 column streams: stream \"rtsp://127.0.0.1/t\" has no role: expected role=rtsp://...");
  EXPECT_EQ(m[9], "rec.csv:12 column id: classroom id is empty");
  EXPECT_EQ(m[10], "rec.csv:13 column id: classroom id \"OK2\" appears twice (also at rec.csv:10)");
  for (const auto& e : errors) EXPECT_FALSE(e.fix.empty()) << e.message();

  // Every classroom with an id stays, the bad ones marked invalid with their errors (where,
  // what and fix) as the reason; the row without an id cannot be named.
  std::vector<std::string> ids;
  for (const auto& c : cs) ids.push_back(c.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"OK1", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "OK2", "B9"}));
  EXPECT_TRUE(cs[0].invalid.empty());
  for (std::size_t i = 1; i < 8; ++i) EXPECT_TRUE(cs[i].invalid.starts_with("bad register row rec.csv:")) << cs[i].invalid;
  EXPECT_EQ(cs[1].invalid, "bad register row " + errors[0].message());
  EXPECT_EQ(cs[9].invalid, "bad register row " + errors[7].message() + "; " + errors[8].message());
  EXPECT_EQ(cs[8].invalid, "bad register row " + errors[10].message()) << "a duplicated id is not trusted";
  EXPECT_NE(cs[5].invalid.find("(fix: "), std::string::npos) << cs[5].invalid;
}

TEST(Register, UnreadableCsvRowWithAReadableIdIsKeptAsInvalid) {
  Errors errors;
  auto cs = parse(
      "id,name,recorder_url,streams\n"
      "R1,ok,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t\n"
      "R2,\xff,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t\n"
      "R3,a,b,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t\n"
      "R1,\xfe,http://127.0.0.1/s,teacher=rtsp://127.0.0.1/t\n",
      errors);
  ASSERT_EQ(errors.size(), 3u);
  ASSERT_EQ(cs.size(), 3u);
  EXPECT_EQ(cs[0].id, "R1");
  EXPECT_EQ(cs[0].invalid, "bad register row " + errors[2].message()) << "the unreadable row also claims R1";
  EXPECT_EQ(cs[1].id, "R2");
  EXPECT_EQ(cs[1].where, "rec.csv:3");
  EXPECT_EQ(cs[1].invalid,
            "bad register row rec.csv:3 column name: not valid UTF-8 text (fix: save the file as \"CSV UTF-8\" in the "
            "spreadsheet program)");
  EXPECT_EQ(cs[2].id, "R3");
  EXPECT_NE(cs[2].invalid.find("rec.csv:4: the row has 5 cells but the header has 4"), std::string::npos) << cs[2].invalid;
}

TEST(Register, MissingRequiredColumnIsOneError) {
  Errors errors;
  auto cs = parse("id,name\nR1,x\n", errors);
  EXPECT_TRUE(cs.empty());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message().find("streams"), std::string::npos) << errors[0].message();
}

TEST(Register, StreamListSyntax) {
  std::string err;
  EXPECT_EQ(parse_streams("a=rtsp://h/1;;b=rtsp://h/2;", err).size(), 2u);
  EXPECT_TRUE(err.empty());
  parse_streams("", err);
  EXPECT_EQ(err, "no streams: expected role=rtsp://... separated by ';'");
  err.clear();
  parse_streams("rtsp://h/1", err);
  EXPECT_EQ(err, "stream \"rtsp://h/1\" has no role: expected role=rtsp://...");
  err.clear();
  parse_streams("tea cher=rtsp://h/1", err);
  EXPECT_EQ(err, "stream role \"tea cher\" must be letters, digits, '-' or '_'");
}

TEST(Register, RefusesRtspUrlWithEmptyPort) {
  std::string err;
  parse_streams("t=rtsp://127.0.0.1:/x", err);
  EXPECT_EQ(err, "stream t: \"rtsp://127.0.0.1:/x\" is not rtsp://host[:port]/path");
}

TEST(Register, RecorderApiSelectsHikvisionOrDahuaPerRecorder) {
  Errors errors;
  auto cs = parse(
      "id,recorder_url,streams,recorder_api\n"
      "H1,http://10.0.1.10,teacher=rtsp://10.0.1.11/t,hikvision\n"
      "D1,http://10.0.2.10:8080/,teacher=rtsp://10.0.2.11/t,Dahua\n"
      "J1,http://10.0.3.10/api/status,teacher=rtsp://10.0.3.11/t,\n"
      "X1,http://10.0.4.10,teacher=rtsp://10.0.4.11/t,uniview\n"
      "N1,,teacher=rtsp://10.0.5.11/t,hikvision\n",
      errors);
  ASSERT_EQ(cs.size(), 5u);
  EXPECT_EQ(cs[0].recorder_api, RecorderApi::Hikvision);
  EXPECT_TRUE(cs[0].invalid.empty()) << cs[0].invalid;
  EXPECT_EQ(cs[1].recorder_api, RecorderApi::Dahua);
  EXPECT_EQ(cs[2].recorder_api, RecorderApi::Json);
  EXPECT_NE(cs[3].invalid.find("rec.csv:5 column recorder_api: unknown recorder_api \"uniview\" (fix: json (a JSON "
                               "status page), hikvision (ISAPI) or dahua (CGI)"),
            std::string::npos)
      << cs[3].invalid;
  EXPECT_NE(cs[4].invalid.find("rec.csv:6 column recorder_url: recorder_api hikvision needs the recorder's address"),
            std::string::npos)
      << cs[4].invalid;
  EXPECT_EQ(errors.size(), 2u);
}
