// The scanner accepts exactly what nlohmann::json::parse accepts and finds the members where
// they are.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "json_skim.hpp"

using campus::county::skim_json;

TEST(JsonSkim, AcceptsWhatNlohmannAcceptsAndRefusesWhatItRefuses) {
  const std::string docs[] = {
      R"({})", R"([])", R"({"a":1})", R"( {"a" : [1, 2.5e-3, -0, true, false, null, "x"] } )", R"("just a string")",
      R"(12)", R"({"k":"\u00e9\ud83d\ude00\n\t\"\\\/"})", "{\"名\":\"南伞中心小学\"}", "\xEF\xBB\xBF{}",
      // refused:
      "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul",
      "\"\\x\"", "\"\\u12\"", "\"\\udc00\"", "\"\\ud800\"", "\"\\ud800\\u0041\"", "\"a\x01\"", "\"\xff\"",
      "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "{} {}", "[1] x", "\"unclosed", "{\"a\":[1,{\"b\":}]}",
      "\xEF\xBB{}", "1e400", "[-1e309]", "99.9992e39999999999", "1e-400", "123456789012345678901234567890",
      "1" + std::string(400, '0')};
  for (const std::string& d : docs) {
    bool ours = skim_json(d).ok, theirs = nlohmann::json::accept(d);
    EXPECT_EQ(ours, theirs) << "document: " << d << " (" << skim_json(d).error << ")";
  }
}

TEST(JsonSkim, FindsTheTopLevelMembersAndTheBodysMembers) {
  std::string doc = R"({"v":1,"kind":"report","body":{"summary":{"rooms":3},"findings":[{"a":{"b":[]}}]},"seq":12})";
  auto s = skim_json(doc);
  ASSERT_TRUE(s.ok) << s.error;
  ASSERT_TRUE(s.object);
  ASSERT_EQ(s.members.size(), 4u);
  EXPECT_EQ(s.find("kind")->value, "\"report\"");
  EXPECT_EQ(s.find("seq")->value, "12");
  EXPECT_EQ(s.find_nested("summary")->value, R"({"rooms":3})");
  EXPECT_EQ(s.find_nested("findings")->value, R"([{"a":{"b":[]}}])");
  EXPECT_EQ(s.find("body")->value.front(), '{');
  const auto* seq = s.find("seq");
  EXPECT_EQ(doc.substr(seq->begin, seq->end - seq->begin), "\"seq\":12");
  EXPECT_EQ(s.find("nothing"), nullptr);
  EXPECT_EQ(skim_json(R"({"k\u0069nd":"x"})").find("kind")->value, "\"x\"");  // keys are decoded
  EXPECT_EQ(skim_json(R"({"a":1,"a":2})").find("a")->value, "2");             // the last one, as nlohmann
}

TEST(JsonSkim, ANulByteAfterTheDocumentIsRefusedWhereNlohmannStopsReading) {
  const std::string doc("\":{a\"\0\0x", 8);  // found by fuzz_json_skim
  EXPECT_TRUE(nlohmann::json::accept(doc));
  EXPECT_FALSE(skim_json(doc).ok);
}

TEST(JsonSkim, ErrorsSayWhere) {
  auto s = skim_json(R"({"a":[1,2,}])");
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("at byte 10"), std::string::npos) << s.error;
  EXPECT_TRUE(s.members.empty());
}
