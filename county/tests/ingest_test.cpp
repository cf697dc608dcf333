// What the collector accepts from a school, and the quarantine reason for everything else.
#include <gtest/gtest.h>

#include "county_test_support.hpp"

using namespace campus::county;
using namespace campus::county::test;

namespace {

const Quarantined& rejected(const Parsed& p) {
  static Quarantined none;
  EXPECT_TRUE(std::holds_alternative<Quarantined>(p)) << "accepted: " << std::get<Incoming>(p).payload;
  return std::holds_alternative<Quarantined>(p) ? std::get<Quarantined>(p) : none;
}

std::string reason_of(const Json& env, const std::string& t = "") {
  std::string leaf = env.value("kind", std::string("report"));
  if (leaf == "report" || leaf == "event") leaf += "/" + env.value("audit", std::string("fiber"));
  return rejected(parse(t.empty() ? topic("school-a", leaf) : t, env.dump())).reason;
}

}  // namespace

TEST(Ingest, AReportIsCheckedAndItsResentFlagIsNotPartOfWhatIsCompared) {
  Json r = report("school-a", 12, "fiber", {{"rooms", 3}});
  auto p = parse(r);
  ASSERT_TRUE(std::holds_alternative<Incoming>(p));
  const auto& in = std::get<Incoming>(p);
  EXPECT_EQ(in.kind, Kind::Report);
  EXPECT_EQ(in.seq, 12);
  EXPECT_EQ(in.store_id, kStoreA);
  EXPECT_EQ(in.day, "2026-11-28");
  EXPECT_FALSE(in.resent);
  r["resent"] = true;
  auto copy = parse(r);
  ASSERT_TRUE(std::holds_alternative<Incoming>(copy));
  EXPECT_TRUE(std::get<Incoming>(copy).resent);
  EXPECT_EQ(std::get<Incoming>(copy).sha256, in.sha256);
  EXPECT_EQ(std::get<Incoming>(copy).payload.find("resent"), std::string::npos);
}

TEST(Ingest, StateHealthAndReplyCarryWhatTheLedgerNeeds) {
  auto s = parse(state("school-a", true, 4, 30, kStoreB));
  ASSERT_TRUE(std::holds_alternative<Incoming>(s));
  EXPECT_EQ(std::get<Incoming>(s).store_id, kStoreB);
  auto h = parse(health("school-a", 30, 0));
  ASSERT_TRUE(std::holds_alternative<Incoming>(h));
  EXPECT_EQ(std::get<Incoming>(h).kind, Kind::Health);
  auto r = parse(reply("school-a", {{"ok", true}, {"result", Json::object()}}), "c-1");
  ASSERT_TRUE(std::holds_alternative<Incoming>(r));
  EXPECT_EQ(std::get<Incoming>(r).requester, "collector");
  EXPECT_EQ(*std::get<Incoming>(r).correlation, "c-1");
}

TEST(Ingest, EveryBadInputHasItsReason) {
  EXPECT_EQ(rejected(parse(topic("school-a", "report/fiber"), "{\"v\":1,")).reason, "not_json");
  EXPECT_NE(rejected(parse(topic("school-a", "report/fiber"), "{\"v\":1,")).detail.find("at byte 7"), std::string::npos);
  EXPECT_EQ(rejected(parse(topic("school-a", "report/fiber"), "[1,2]")).reason, "not_an_object");
  EXPECT_EQ(rejected(parse(topic("school-a", "report/fiber"), "\xff\xfe")).reason, "not_json");

  Json r = report("school-a", 5);
  Json bad = r;
  bad["v"] = 2;
  EXPECT_EQ(reason_of(bad), "bad_envelope");
  bad = r, bad["kind"] = "telemetry";
  EXPECT_EQ(rejected(parse(topic("school-a", "report/fiber"), bad.dump())).reason, "unknown_kind");
  bad = r, bad["kind"] = "event";
  EXPECT_EQ(rejected(parse(topic("school-a", "report/fiber"), bad.dump())).reason, "topic_mismatch");
  bad = r, bad["school"] = "school-b";
  EXPECT_EQ(reason_of(bad), "topic_mismatch");
  bad = r, bad["county"] = "other";
  EXPECT_EQ(reason_of(bad), "topic_mismatch");
  EXPECT_EQ(rejected(parse(topic("school-a", "report/recording"), r.dump())).reason, "topic_mismatch");
  for (Json seq : {Json(0), Json(-3), Json(1.5), Json("7"), Json(true), Json(nullptr)}) {
    bad = r, bad["seq"] = seq;
    EXPECT_EQ(reason_of(bad), "bad_seq") << seq.dump();
  }
  bad = r, bad.erase("seq");
  EXPECT_EQ(reason_of(bad), "bad_seq");
  bad = r, bad["id"] = "school-a:6";
  EXPECT_EQ(reason_of(bad), "bad_id");
  bad = r, bad["ts"] = "yesterday";
  EXPECT_EQ(reason_of(bad), "bad_envelope");
  bad = r, bad["store_id"] = "xyz";
  EXPECT_EQ(reason_of(bad), "bad_envelope");
  bad = r, bad["body"] = {{"findings", Json::array()}};
  EXPECT_EQ(reason_of(bad), "bad_body");
  // A repeated member (found by fuzz_county_ingest: a second "resent" stayed in the stored copy).
  std::string twice = r.dump();
  twice.insert(twice.size() - 1, ",\"resent\":true,\"resent\":true");
  EXPECT_EQ(rejected(parse(topic("school-a", "report/fiber"), twice)).reason, "bad_envelope");
  EXPECT_NE(rejected(parse(topic("school-a", "report/fiber"), twice)).detail.find("\"resent\" appears more than once"),
            std::string::npos);
  twice = r.dump();
  twice.insert(twice.size() - 1, ",\"seq\":5");
  EXPECT_EQ(rejected(parse(topic("school-a", "report/fiber"), twice)).reason, "bad_envelope");
  Json e = event("school-a", 6);
  e["body"].erase("subject");
  EXPECT_EQ(reason_of(e), "bad_body");
  Json st = state("school-a", true, 1, 0);
  st["body"]["session"] = "one";
  EXPECT_EQ(reason_of(st, topic("school-a", "state")), "bad_body");
  EXPECT_EQ(rejected(parse(topic("school-a", "telemetry"), r.dump())).reason, "unknown_topic");
  EXPECT_EQ(rejected(parse("campus/v1/other/school-a/report/fiber", r.dump())).reason, "unknown_topic");
  EXPECT_EQ(rejected(parse(topic("School_A", "report/fiber"), r.dump())).reason, "unknown_topic");
}

TEST(Ingest, AnOversizedPayloadIsQuarantinedWithItsSeqSoTheLedgerCanAccountForIt) {
  IngestRules rules;
  rules.county = kCounty;
  rules.max_payload = 4096;
  Json r = report("school-a", 9, "fiber", {{"blob", std::string(5000, 'x')}});
  const Quarantined q = rejected(parse_message(rules, topic("school-a", "report/fiber"), r.dump(), false));
  EXPECT_EQ(q.reason, "too_large");
  ASSERT_TRUE(q.seq.has_value());
  EXPECT_EQ(*q.seq, 9);
  EXPECT_EQ(q.payload.size(), std::min(q.size, kQuarantineKeep));
}

TEST(Ingest, ASchoolOutsideTheRegisterIsQuarantinedWhenARegisterIsSet) {
  IngestRules rules;
  rules.county = kCounty;
  rules.registered = [](const std::string& s) { return s == "school-a"; };
  EXPECT_TRUE(std::holds_alternative<Incoming>(parse_message(rules, topic("school-a", "report/fiber"), report("school-a", 1).dump(), false)));
  const Quarantined q = rejected(parse_message(rules, topic("school-x", "report/fiber"), report("school-x", 1).dump(), false));
  EXPECT_EQ(q.reason, "unknown_school");
  EXPECT_NE(q.detail.find("register"), std::string::npos);
}

TEST(Ingest, AResentCopyOfAnAgentsMessageIsStoredAsTheOriginalBytes) {
  // The agent makes a copy by parsing its stored envelope, setting "resent" and dumping it.
  Json original = event("school-a", 7);
  const std::string bytes = original.dump();
  Json copy = Json::parse(bytes);
  copy["resent"] = true;
  auto p = parse(topic("school-a", "event/fiber"), copy.dump());
  ASSERT_TRUE(std::holds_alternative<Incoming>(p));
  EXPECT_EQ(std::get<Incoming>(p).payload, bytes);
  EXPECT_EQ(std::get<Incoming>(p).sha256, sha256_hex(bytes));
  // "resent" written last (another sender's order): the comma before it goes instead.
  Json e = event("school-a", 8);
  std::string text = e.dump();
  text.insert(text.size() - 1, ",\"resent\":true");
  auto q = parse(topic("school-a", "event/fiber"), text);
  ASSERT_TRUE(std::holds_alternative<Incoming>(q));
  EXPECT_EQ(std::get<Incoming>(q).payload, e.dump());
}

TEST(Ingest, OnlyTheTopLevelResentFlagIsDroppedAResentInsideTheBodyIsTheSchoolsData) {
  // Found by fuzz_county_ingest: its check looked for "resent" anywhere in the stored copy.
  Json original = event("school-a", 9);
  original["body"]["resent"] = {{"id", "school-a:3"}};
  const std::string bytes = original.dump();
  Json copy = Json::parse(bytes);
  copy["resent"] = true;
  auto p = parse(topic("school-a", "event/fiber"), copy.dump());
  ASSERT_TRUE(std::holds_alternative<Incoming>(p));
  EXPECT_TRUE(std::get<Incoming>(p).resent);
  EXPECT_EQ(std::get<Incoming>(p).payload, bytes);
  EXPECT_EQ(Json::parse(std::get<Incoming>(p).payload)["body"]["resent"]["id"], "school-a:3");
}
