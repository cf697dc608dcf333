// Room classification: each state and reason from port status, optical power and endpoints.
#include <gtest/gtest.h>

#include "classify.hpp"
#include "fiber_audit.hpp"

using namespace campus;
using namespace campus::fiber;

namespace {

struct Fixture : ::testing::Test {
  Switch sw{"sw-a", "10.0.0.2", 161, "h3c", {}, "", "switches.csv:2"};
  SwitchStatus st;
  Room room;
  Thresholds lim;

  void SetUp() override {
    st.id = "sw-a";
    st.answered = true;
    st.sys_uptime = 100 * 60 * 60 * 24;  // a day
    room.id = "C101";
    room.name = "一年级一班";
    room.type = RoomType::Classroom;
    room.switch_id = "sw-a";
    room.port = PortRef{12, ""};
    port(12) = up_port(12);
  }
  static PortStatus up_port(int idx) {
    PortStatus p;
    p.if_index = idx;
    p.name = "GE1/0/" + std::to_string(idx);
    p.admin = 1;
    p.oper = 1;
    p.high_speed = 1000;
    p.last_change = 0;
    p.rx_dbm = -8.0;
    return p;
  }
  PortStatus& port(int idx) { return st.ports[idx]; }
  Verdict judge(std::optional<ProbeResult> endpoint = std::nullopt) {
    RoomEvidence ev{&sw, &st, endpoint};
    return classify(room, ev, lim);
  }
};

}  // namespace

TEST_F(Fixture, UpFastInRangeIsCovered) {
  auto v = judge();
  EXPECT_EQ(v.state, RoomState::Covered);
  EXPECT_EQ(v.reason, "");
  EXPECT_EQ(v.details["speed_mbps"], 1000);
  EXPECT_EQ(v.details["rx_dbm"], -8.0);
  EXPECT_EQ(v.details["if_name"], "GE1/0/12");
}

TEST_F(Fixture, OperDownIsDown) {
  port(12).oper = 2;
  auto v = judge();
  EXPECT_EQ(v.state, RoomState::Down);
  EXPECT_NE(v.reason.find("link down"), std::string::npos) << v.reason;
  port(12).oper = 7;
  EXPECT_NE(judge().reason.find("lowerLayerDown"), std::string::npos);
}

TEST_F(Fixture, AdminDownIsDownWithItsReason) {
  port(12).admin = 2;
  port(12).oper = 2;
  auto v = judge();
  EXPECT_EQ(v.state, RoomState::Down);
  EXPECT_NE(v.reason.find("administratively down"), std::string::npos) << v.reason;
}

TEST_F(Fixture, SlowLinkIsDegraded) {
  port(12).high_speed = 100;
  auto v = judge();
  EXPECT_EQ(v.state, RoomState::Degraded);
  EXPECT_NE(v.reason.find("speed 100 Mbit/s below minimum 1000"), std::string::npos) << v.reason;
}

TEST_F(Fixture, OpticalPowerNearLimitOrOutOfRangeIsDegraded) {
  port(12).rx_dbm = -18.5;
  auto near = judge();
  EXPECT_EQ(near.state, RoomState::Degraded);
  EXPECT_NE(near.reason.find("near a limit"), std::string::npos) << near.reason;
  port(12).rx_dbm = -25.0;
  auto out = judge();
  EXPECT_EQ(out.state, RoomState::Degraded);
  EXPECT_NE(out.reason.find("out of range: rx -25.0 dBm"), std::string::npos) << out.reason;
  port(12).rx_dbm = -3.0;
  EXPECT_EQ(judge().state, RoomState::Degraded) << "too hot is near the upper limit";
  port(12).rx_dbm.reset();
  EXPECT_EQ(judge().state, RoomState::Covered) << "no reading: judged on link state alone";
}

TEST_F(Fixture, RecentLinkChangeIsFlapping) {
  port(12).last_change = *st.sys_uptime - 100 * 60 * 3;  // 3 minutes ago
  auto v = judge();
  EXPECT_EQ(v.state, RoomState::Degraded);
  EXPECT_NE(v.reason.find("flapping"), std::string::npos) << v.reason;
  port(12).last_change = *st.sys_uptime - 100 * 60 * 60;  // an hour ago
  EXPECT_EQ(judge().state, RoomState::Covered);
}

TEST_F(Fixture, SwitchThatDidNotAnswerIsUnknownNeverCovered) {
  st.answered = false;
  st.error = "no answer from 10.0.0.2:161 after 2 tries of 1s";
  auto v = judge();
  EXPECT_EQ(v.state, RoomState::Unknown);
  EXPECT_NE(v.reason.find("could not be asked: no answer"), std::string::npos) << v.reason;
}

TEST_F(Fixture, MissingPortOrMissingStatusIsUnknown) {
  room.port = PortRef{99, ""};
  EXPECT_EQ(judge().state, RoomState::Unknown);
  EXPECT_NE(judge().reason.find("port 99 not found"), std::string::npos);
  room.port = PortRef{12, ""};
  port(12).oper.reset();  // noSuchInstance for ifOperStatus
  EXPECT_EQ(judge().state, RoomState::Unknown);
}

TEST_F(Fixture, PortByIfNameResolves) {
  room.port = PortRef{std::nullopt, "GE1/0/12"};
  EXPECT_EQ(judge().state, RoomState::Covered);
  room.port = PortRef{std::nullopt, "ge1/0/12"};
  EXPECT_EQ(judge().state, RoomState::Covered) << "case differences from spreadsheets are accepted";
}

TEST_F(Fixture, UnreachableEndpointIsDownAndWorstWins) {
  room.endpoint = parse_endpoint("tcp:10.0.1.5:80").value();
  ProbeResult refused{false, "connection refused", Millis(1)};
  auto v = judge(refused);
  EXPECT_EQ(v.state, RoomState::Down);
  EXPECT_NE(v.reason.find("endpoint tcp:10.0.1.5:80 unreachable: connection refused"), std::string::npos);
  ProbeResult ok{true, "", Millis(1)};
  EXPECT_EQ(judge(ok).state, RoomState::Covered);
  port(12).high_speed = 100;
  EXPECT_EQ(judge(ok).state, RoomState::Degraded);
}

TEST_F(Fixture, IcmpNotPermittedIsUnknownNotDown) {
  room.switch_id.clear();
  room.port.reset();
  room.endpoint = parse_endpoint("icmp:10.0.1.5").value();
  ProbeResult refused{false, "ICMP not permitted: unprivileged ICMP socket: Permission denied", Millis(0)};
  auto v = judge(refused);
  EXPECT_EQ(v.state, RoomState::Unknown);
  EXPECT_NE(v.reason.find("could not be probed"), std::string::npos) << v.reason;
}

TEST_F(Fixture, RoomWithoutLinkIsNotPlannedAndBadRowIsUnknown) {
  room.switch_id.clear();
  room.port.reset();
  auto v = judge();
  EXPECT_EQ(v.state, RoomState::NotPlanned);
  EXPECT_NE(v.reason.find("no fiber link in the register"), std::string::npos);
  room.invalid = "bad register row rooms.csv:3 column type: unknown room type \"lab\"";
  EXPECT_EQ(judge().state, RoomState::Unknown);
  EXPECT_EQ(judge().reason, room.invalid);
}

TEST(FiberReport, SummarisesPerRoomTypeAndListsRoomsNotCovered) {
  auto regs = parse_registers(
      parse_csv("id,name,type,switch,port\n"
                "C1,a,classroom,sw,1\nC2,b,classroom,sw,2\nC3,c,classroom,,\n"
                "F1,d,function_room,sw,3\nO1,e,office,sw,77\n",
                "rooms.csv", kRoomColumns),
      parse_csv("id,address\nsw,10.0.0.2\n", "switches.csv", kSwitchColumns), {"generic"}, "generic", "/tmp");
  ASSERT_TRUE(regs.errors.empty());
  Observations seen;
  SwitchStatus st;
  st.id = "sw";
  st.answered = true;
  st.sys_uptime = 1'000'000;
  for (int i = 1; i <= 3; ++i) {
    PortStatus& p = st.ports[i];
    p.if_index = i;
    p.admin = 1;
    p.oper = i == 2 ? 2 : 1;
    p.high_speed = 1000;
  }
  seen.switches.push_back(st);
  auto report = build_report(regs, seen, Thresholds{});
  const auto& s = report.summary;
  EXPECT_EQ(s["classroom"]["rooms"], 3);
  EXPECT_EQ(s["classroom"]["covered"], 1);
  EXPECT_EQ(s["classroom"]["down"], 1);
  EXPECT_EQ(s["classroom"]["not_planned"], 1);
  EXPECT_NEAR(s["classroom"]["coverage"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_EQ(s["function_room"]["covered"], 1);
  EXPECT_EQ(s["office"]["unknown"], 1);
  EXPECT_EQ(s["overall"]["rooms"], 5);
  EXPECT_EQ(s["overall"]["covered"], 2);
  EXPECT_EQ(s["not_covered"].size(), 3u);
  ASSERT_EQ(report.findings.size(), 5u);
  ASSERT_EQ(report.input_errors.size(), 1u) << "port 77 not on the switch is a register error";
  EXPECT_EQ(report.input_errors[0].where, "rooms.csv:6 column port");
}
