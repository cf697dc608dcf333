#include <gtest/gtest.h>

#include "campus/csv.hpp"
#include "campus/units.hpp"

using namespace campus;
using namespace std::chrono_literals;

TEST(Units, ParsesDurations) {
  EXPECT_EQ(parse_duration("90s").value(), Millis(90'000));
  EXPECT_EQ(parse_duration("15m").value(), Millis(900'000));
  EXPECT_EQ(parse_duration("1h30m").value(), Millis(5'400'000));
  EXPECT_EQ(parse_duration("500ms").value(), Millis(500));
  EXPECT_EQ(parse_duration("1.5s").value(), Millis(1500));
  EXPECT_EQ(parse_duration("30d").value(), Millis(30LL * 86'400'000));
}

TEST(Units, RejectsBadDurationsSayingWhatIsExpected) {
  for (const char* bad : {"", "abc", "10", "-5s", "5 parsecs", "1h30", "s"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().what.find("expected a duration"), std::string::npos) << bad;
  }
  EXPECT_NE(parse_duration("10").error().what.find("unit is missing"), std::string::npos);
  EXPECT_NE(parse_duration("5x").error().what.find("unknown unit \"x\""), std::string::npos);
}

TEST(Units, FormatsDurationsShortestExact) {
  EXPECT_EQ(format_duration(Millis(5'400'000)), "1h30m");
  EXPECT_EQ(format_duration(Millis(250)), "250ms");
  EXPECT_EQ(format_duration(Millis(0)), "0s");
}

TEST(Units, ParsesSizes) {
  EXPECT_EQ(parse_size("256MiB").value(), 256ull << 20);
  EXPECT_EQ(parse_size("10MB").value(), 10'000'000ull);
  EXPECT_EQ(parse_size("4096").value(), 4096ull);
  EXPECT_EQ(parse_size("1GiB").value(), 1ull << 30);
  EXPECT_FALSE(parse_size("lots").ok());
  EXPECT_FALSE(parse_size("5 TB").ok());
  EXPECT_EQ(format_size(256ull << 20), "256MiB");
}

TEST(Csv, ReadsQuotedCellsChineseNamesAndLineNumbers) {
  auto t = parse_csv("\xEF\xBB\xBFid,name,type\r\nR101,\"一年级(1)班\",classroom\r\nR102,\"Lab, \"\"chem\"\"\",function_room\n", "rooms.csv", {"id", "type"});
  ASSERT_TRUE(t.errors.empty()) << t.errors[0].message();
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0].get("name"), "一年级(1)班");
  EXPECT_EQ(t.rows[1].get("name"), "Lab, \"chem\"");
  EXPECT_EQ(t.rows[1].line, 3u);
  EXPECT_EQ(t.rows[1].where("type"), "rooms.csv:3 column type");
}

TEST(Csv, BadRowIsReportedAndTheRestIsRead) {
  auto t = parse_csv("id,name\nA,ok\nB,bad\xff\xfe\nC,\"unclosed\n", "r.csv");
  ASSERT_EQ(t.rows.size(), 1u);
  ASSERT_EQ(t.errors.size(), 2u);
  EXPECT_EQ(t.errors[0].where, "r.csv:3 column name");
  EXPECT_NE(t.errors[0].what.find("UTF-8"), std::string::npos);
  EXPECT_EQ(t.errors[1].where, "r.csv:4");
}

TEST(Csv, MissingRequiredColumnNamesIt) {
  auto t = parse_csv("id,name\nA,b\n", "r.csv", {"id", "type"});
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_NE(t.errors[0].what.find("no column \"type\""), std::string::npos);
  EXPECT_TRUE(t.rows.empty());
}

TEST(Csv, DetectsAndConvertsGbk) {
  std::string gbk = "id,name\nS1,\xd5\xc5\xc8\xfd\n";  // 张三 in GBK
  EXPECT_EQ(detect_encoding(gbk), CsvEncoding::Gb18030);
  auto utf8 = gb18030_to_utf8(gbk);
  ASSERT_TRUE(utf8.ok());
  EXPECT_EQ(utf8.value(), "id,name\nS1,张三\n");
  EXPECT_EQ(detect_encoding("id,name\nS1,张三\n"), CsvEncoding::Utf8);
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));  // overlong '/'
}

// Names with characters GBK lacks: 㐀 (U+3400, CJK Extension A) and 𠀀 (U+20000, Extension B)
// are four-byte sequences in GB18030; a GBK-only check refused the whole file.
TEST(Csv, DetectsAndConvertsGb18030FourByteSequences) {
  std::string bytes = "id,name\nS1,\xc1\xf5\x81\x39\xee\x39\nS2,\x95\x32\x82\x36\n";  // 刘㐀, 𠀀
  EXPECT_EQ(detect_encoding(bytes), CsvEncoding::Gb18030);
  auto utf8 = gb18030_to_utf8(bytes);
  ASSERT_TRUE(utf8.ok()) << utf8.error().message();
  EXPECT_EQ(utf8.value(), "id,name\nS1,刘㐀\nS2,𠀀\n");
  // A four-byte sequence cut short, or with a second byte out of range, is neither encoding.
  EXPECT_FALSE(detect_encoding(std::string("id\n\x82\x35\x87")).has_value());
  EXPECT_FALSE(detect_encoding(std::string("id\n\x82\x35\x20\x38")).has_value());
  EXPECT_FALSE(detect_encoding(std::string("id\n\x82\x35\x87\x40")).has_value());
}
