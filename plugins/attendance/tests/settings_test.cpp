// [audits.attendance] validation: defaults, every key, and errors that name the key.
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace campus::attendance {
namespace {
using namespace testing;

struct Parsed {
  std::optional<AttendanceSettings> settings;
  Errors errors;
};

Parsed parse(const TempDir& dir, const std::string& body) {
  auto file = dir.write("agent.toml", "[audits.attendance]\n" + body);
  Parsed p;
  static toml::table table;  // outlives the reader
  table = toml::parse_file(file.string());
  TableReader reader(*table["audits"]["attendance"].as_table(), "audits.attendance", file, p.errors);
  p.settings = read_settings(reader, PluginEnv{"zhenkang", "s1", "+08:00", nullptr});
  reader.finish();
  return p;
}

std::string all(const Errors& es) {
  std::string s;
  for (const auto& e : es) s += e.message() + "\n";
  return s;
}

TEST(Settings, DefaultsWithCalendarAndSpool) {
  TempDir dir;
  dir.write("calendar.csv", kCalendarCsv);
  std::filesystem::create_directories(dir.path / "spool");
  auto p = parse(dir, "calendar = \"calendar.csv\"\nspool_dir = \"spool\"\n");
  ASSERT_TRUE(p.errors.empty()) << all(p.errors);
  ASSERT_TRUE(p.settings);
  EXPECT_EQ(p.settings->rule.threshold_days, 3);
  EXPECT_FALSE(p.settings->rule.leave_breaks_run);
  EXPECT_EQ(p.settings->contact_within, 1);
  EXPECT_FALSE(p.settings->publish_names);
  EXPECT_EQ(*p.settings->spool_dir, dir.path / "spool");
  EXPECT_FALSE(p.settings->http);
  EXPECT_FALSE(p.settings->status_words);  // the shipped words
  EXPECT_FALSE(p.settings->pseudonymize_students);
  EXPECT_EQ(p.settings->pseudonym_key_file, "/var/lib/campus-agent/student-pseudonym.key");
  EXPECT_EQ(p.settings->xlsx_sheet, "");
}

TEST(Settings, StatusWordsPseudonymsAndTheSheet) {
  TempDir dir;
  dir.write("calendar.csv", kCalendarCsv);
  std::filesystem::create_directories(dir.path / "spool");
  auto p = parse(dir, "calendar = \"calendar.csv\"\nspool_dir = \"spool\"\nxlsx_sheet = \"考勤\"\n"
                      "pseudonymize_students = true\npseudonym_key_file = \"keys/student.key\"\n"
                      "[audits.attendance.status_words]\n\"病休\" = \"leave\"\n\"病假\" = \"excused_leave\"\n"
                      "Field_Trip = \"excused_leave\"\n");
  ASSERT_TRUE(p.errors.empty()) << all(p.errors);
  EXPECT_EQ(p.settings->xlsx_sheet, "考勤");
  EXPECT_TRUE(p.settings->pseudonymize_students);
  EXPECT_EQ(p.settings->pseudonym_key_file, dir.path / "keys/student.key");  // need not exist yet
  ASSERT_TRUE(p.settings->status_words);
  StatusMeaning m;
  ASSERT_TRUE(p.settings->status_words->lookup("病休", m));
  EXPECT_EQ(m, StatusMeaning::Leave);
  ASSERT_TRUE(p.settings->status_words->lookup("病假", m));
  EXPECT_EQ(m, StatusMeaning::ExcusedLeave);
  ASSERT_TRUE(p.settings->status_words->lookup("field trip", m));
  ASSERT_TRUE(p.settings->status_words->lookup("出勤", m));  // the shipped words stay
  EXPECT_EQ(m, StatusMeaning::Attended);
}

TEST(Settings, AStatusWordWithAMeaningThatIsNoneOfTheFiveNamesItsKey) {
  TempDir dir;
  dir.write("calendar.csv", kCalendarCsv);
  std::filesystem::create_directories(dir.path / "spool");
  auto p = parse(dir, "calendar = \"calendar.csv\"\nspool_dir = \"spool\"\n"
                      "[audits.attendance.status_words]\n\"病休\" = \"sick\"\n\"早退\" = 3\n");
  std::string text = all(p.errors);
  EXPECT_NE(text.find("key audits.attendance.status_words.病休: expected \"attended\""), std::string::npos) << text;
  EXPECT_NE(text.find("key audits.attendance.status_words.早退"), std::string::npos) << text;
  EXPECT_FALSE(p.settings);
}

TEST(Settings, HttpTableAndFieldNames) {
  TempDir dir;
  dir.write("calendar.csv", kCalendarCsv);
  auto token = dir.write("token", "abc\n");
  std::filesystem::permissions(token, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto p = parse(dir, "calendar = \"calendar.csv\"\nthreshold_days = 4\nleave_breaks_run = true\n"
                      "[audits.attendance.csv_fields]\nstudent_id = \"学号\"\n"
                      "[audits.attendance.http]\nurl = \"http://127.0.0.1:8080/a?from={from}&to={to}&page={page}\"\n"
                      "token_file = \"token\"\ntimeout = \"3s\"\nlookback_days = 7\n");
  ASSERT_TRUE(p.errors.empty()) << all(p.errors);
  EXPECT_EQ(p.settings->rule.threshold_days, 4);
  EXPECT_TRUE(p.settings->rule.leave_breaks_run);
  EXPECT_EQ(p.settings->csv_fields.student_id, "学号");
  ASSERT_TRUE(p.settings->http);
  EXPECT_EQ(*p.settings->http->token, "abc");
  EXPECT_EQ(p.settings->http->timeout, Millis(3000));
  EXPECT_EQ(p.settings->http->lookback_days, 7);
}

TEST(Settings, ErrorsNameTheKey) {
  TempDir dir;
  dir.write("calendar.csv", kCalendarCsv);
  auto p = parse(dir, "calendar = \"calendar.csv\"\nthreshold_days = 0\nbogus = 1\n"
                      "[audits.attendance.http]\nurl = \"ftp://x\"\nwhatever = 2\n");
  std::string text = all(p.errors);
  EXPECT_NE(text.find("key audits.attendance.threshold_days"), std::string::npos) << text;
  EXPECT_NE(text.find("key audits.attendance.bogus: unknown key"), std::string::npos) << text;
  EXPECT_NE(text.find("key audits.attendance.http.url"), std::string::npos) << text;
  EXPECT_NE(text.find("key audits.attendance.http.whatever"), std::string::npos) << text;
  EXPECT_FALSE(p.settings);
}

TEST(Settings, CalendarIsRequiredAndChecked) {
  TempDir dir;
  std::filesystem::create_directories(dir.path / "spool");
  auto p = parse(dir, "spool_dir = \"spool\"\n");
  EXPECT_NE(all(p.errors).find("key audits.attendance.calendar: is required"), std::string::npos) << all(p.errors);
  dir.write("calendar.csv", "kind,start,end,name\nterm,2026-09-01,2026-02-30,X\n");
  p = parse(dir, "calendar = \"calendar.csv\"\nspool_dir = \"spool\"\n");
  EXPECT_NE(all(p.errors).find("calendar.csv:2 column end"), std::string::npos) << all(p.errors);
  EXPECT_FALSE(p.settings);
}

TEST(Settings, NeedsASource) {
  TempDir dir;
  dir.write("calendar.csv", kCalendarCsv);
  auto p = parse(dir, "calendar = \"calendar.csv\"\n");
  EXPECT_NE(all(p.errors).find("nothing to import"), std::string::npos) << all(p.errors);
}

}  // namespace
}  // namespace campus::attendance
