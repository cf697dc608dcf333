// The status vocabulary: every shipped word, the school's own words from the config, and the
// error for a word nobody mapped.
#include <gtest/gtest.h>

#include "campus/csv.hpp"
#include "test_support.hpp"

namespace campus::attendance {
namespace {

Result<AttendanceRecord> row(std::string_view status, std::string_view approved = "", const RecordRules& rules = {}) {
  return make_record(RecordFields{"S1", "3-2", "3", "2026-11-02", status, approved, ""}, FieldNames{}, rules);
}

// What each shipped word does, as the README's table says (the reason for each is there).
TEST(StatusWords, EveryShippedWordAndItsDecision) {
  struct Case {
    const char* word;
    StatusMeaning meaning;
  } cases[] = {
      {"出勤", StatusMeaning::Attended}, {"到校", StatusMeaning::Attended}, {"正常", StatusMeaning::Attended},
      {"present", StatusMeaning::Attended}, {"arrived", StatusMeaning::Attended}, {"normal", StatusMeaning::Attended},
      {"P", StatusMeaning::Attended},
      {"迟到", StatusMeaning::Late}, {"late", StatusMeaning::Late}, {"L", StatusMeaning::Late},
      {"早退", StatusMeaning::Late}, {"left early", StatusMeaning::Late},
      {"旷课", StatusMeaning::Absent}, {"缺勤", StatusMeaning::Absent}, {"未到", StatusMeaning::Absent},
      {"truant", StatusMeaning::Absent}, {"absent", StatusMeaning::Absent}, {"not arrived", StatusMeaning::Absent},
      {"A", StatusMeaning::Absent},
      {"病假", StatusMeaning::Leave}, {"事假", StatusMeaning::Leave}, {"请假", StatusMeaning::Leave},
      {"sick leave", StatusMeaning::Leave}, {"personal leave", StatusMeaning::Leave}, {"leave", StatusMeaning::Leave},
      {"公假", StatusMeaning::ExcusedLeave}, {"official leave", StatusMeaning::ExcusedLeave},
  };
  const auto& v = StatusVocabulary::defaults();
  EXPECT_EQ(v.entries().size(), std::size(cases)) << "a shipped word without a test (and a README line)";
  for (const auto& c : cases) {
    StatusMeaning m;
    ASSERT_TRUE(v.lookup(c.word, m)) << c.word;
    EXPECT_EQ(meaning_name(m), std::string(meaning_name(c.meaning))) << c.word;
  }
}

TEST(StatusWords, HowEachMeaningCountsForTheRule) {
  auto kind = [](std::string_view status, std::string_view approved) {
    auto r = row(status, approved);
    EXPECT_TRUE(r.ok()) << status;
    return day_kind(r->status, r->leave_approved);
  };
  EXPECT_EQ(kind("正常", "no"), DayKind::Attended);
  EXPECT_EQ(kind("早退", "no"), DayKind::Attended);
  EXPECT_EQ(kind("未到", "no"), DayKind::Unexcused);
  EXPECT_EQ(kind("旷课", ""), DayKind::Unexcused);
  // Leave is excused only when approved...
  EXPECT_EQ(kind("病假", "no"), DayKind::Unexcused);
  EXPECT_EQ(kind("病假", "是"), DayKind::Excused);
  EXPECT_EQ(kind("事假", ""), DayKind::Unexcused);
  EXPECT_EQ(kind("事假", "yes"), DayKind::Excused);
  // ...official leave by itself, whatever the approval column says.
  EXPECT_EQ(kind("公假", "no"), DayKind::Excused);
  EXPECT_EQ(kind("Official_Leave", ""), DayKind::Excused);
}

TEST(StatusWords, CaseAndSeparatorsDoNotMatter) {
  StatusMeaning m;
  const auto& v = StatusVocabulary::defaults();
  for (const char* w : {"Sick Leave", "SICK_LEAVE", "sick-leave", "ABSENT", "Left_Early"}) EXPECT_TRUE(v.lookup(w, m)) << w;
  EXPECT_FALSE(v.lookup("sickleave", m));
  EXPECT_FALSE(v.lookup("", m));
  EXPECT_FALSE(v.lookup(std::string(65, 'a'), m));
}

TEST(StatusWords, TheSchoolsOwnWordsAddToAndReplaceTheDefaults) {
  auto words = std::make_shared<StatusVocabulary>(StatusVocabulary::defaults());
  words->set("病休", StatusMeaning::Leave);
  words->set("病假", StatusMeaning::ExcusedLeave);  // this school's system records only approved sick leave
  words->set("Field_Trip", StatusMeaning::ExcusedLeave);
  RecordRules rules;
  rules.statuses = words;
  auto sick = row("病假", "no", rules);
  ASSERT_TRUE(sick.ok());
  EXPECT_EQ(day_kind(sick->status, sick->leave_approved), DayKind::Excused);
  auto own = row("病休", "no", rules);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(day_kind(own->status, own->leave_approved), DayKind::Unexcused);
  EXPECT_TRUE(row("field trip", "", rules).ok());
  EXPECT_TRUE(row("出勤", "", rules).ok());  // the defaults stay
  EXPECT_FALSE(row("病休").ok());             // but not in another school's vocabulary
}

TEST(StatusWords, AnUnknownWordNamesTheWordAndTheKeyThatMapsIt) {
  auto r = row("病休");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().where, "status");
  EXPECT_EQ(r.error().what, "unknown status \"病休\"");
  EXPECT_EQ(r.error().fix,
            "map the word in [audits.attendance.status_words]: \"病休\" = \"attended\", \"late\", \"absent\", \"leave\" "
            "or \"excused_leave\"");
  EXPECT_EQ(row("").error().what, "the status is empty");
  // A long word is cut at a character boundary, never inside a character.
  auto long_word = row("病假病假病假病假病假病假病假病假");
  ASSERT_FALSE(long_word.ok());
  EXPECT_TRUE(campus::is_valid_utf8(long_word.error().what)) << long_word.error().what;
}

// An export with shifted columns can put a student or ID number where the status or date
// belongs: the error must not carry it into the report.
TEST(StatusWords, ACellThatLooksLikeAnIdentifierIsNeverEchoed) {
  for (const char* v : {"G530102201001011234", "110101201001011234", "20260001"}) {
    auto s = row(v);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().message().find(v), std::string::npos) << s.error().message();
    auto d = make_record(RecordFields{"S1", "3-2", "3", v, "absent", "", ""}, FieldNames{}, RecordRules{});
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().message().find(v), std::string::npos) << d.error().message();
  }
}

TEST(StatusWords, MeaningNamesRoundTrip) {
  for (const char* n : {"attended", "late", "absent", "leave", "excused_leave"}) {
    StatusMeaning m;
    ASSERT_TRUE(parse_meaning(n, m)) << n;
    EXPECT_EQ(std::string(meaning_name(m)), n);
  }
  StatusMeaning m;
  EXPECT_FALSE(parse_meaning("present", m));
}

}  // namespace
}  // namespace campus::attendance
