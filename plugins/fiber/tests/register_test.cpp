// Room register and switch list parsing: good rows, and every kind of bad row named precisely.
#include <gtest/gtest.h>

#include "room_register.hpp"

using namespace campus;
using namespace campus::fiber;

namespace {

const std::set<std::string> kProfiles = {"generic", "h3c", "huawei"};

const char* kSwitches =
    "id,address,profile,community_file\n"
    "sw-a,10.20.0.2,h3c,\n"
    "sw-b,10.20.0.3:1161,huawei,sw-b.community\n"
    "sw-bad,not-an-ip,h3c,\n"
    "sw-c,10.20.0.4,juniper,\n";

Registers parse(const std::string& rooms, const std::string& switches = kSwitches) {
  return parse_registers(parse_csv(rooms, "rooms.csv", kRoomColumns), parse_csv(switches, "switches.csv", kSwitchColumns),
                         kProfiles, "generic", "/etc/campus-agent");
}

const Room* room(const Registers& r, const std::string& id) {
  for (const auto& x : r.rooms)
    if (x.id == id) return &x;
  return nullptr;
}

bool has_error(const Registers& r, const std::string& where, const std::string& what) {
  for (const auto& e : r.errors)
    if (e.where == where && e.what.find(what) != std::string::npos) return true;
  return false;
}

std::string all_errors(const Registers& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.message() + "\n";
  return s;
}

}  // namespace

TEST(RoomRegister, ReadsGoodRowsWithChineseNamesPortsAndEndpoints) {
  auto r = parse(
      "id,name,type,building,floor,switch,port,endpoint\n"
      "C101,一年级一班,classroom,教学楼A,1,sw-a,12,\n"
      "F201,录播教室,function_room,教学楼A,2,sw-b,GigabitEthernet0/0/3,tcp:10.20.1.5:80\n"
      "O301,校长办公室,office,行政楼,3,,,10.20.2.7\n"
      "O302,档案室,office,行政楼,3,,,\n");
  for (const auto& e : r.errors) EXPECT_NE(e.where.rfind("rooms.csv", 0), 0u) << e.message();
  ASSERT_EQ(r.rooms.size(), 4u);
  const Room* c = room(r, "C101");
  EXPECT_EQ(c->name, "一年级一班");
  EXPECT_EQ(*c->type, RoomType::Classroom);
  EXPECT_EQ(c->switch_id, "sw-a");
  EXPECT_EQ(*c->port->if_index, 12);
  const Room* f = room(r, "F201");
  EXPECT_EQ(f->port->if_name, "GigabitEthernet0/0/3");
  EXPECT_EQ(f->endpoint->kind, Endpoint::Kind::Tcp);
  EXPECT_EQ(f->endpoint->port, 80);
  const Room* o = room(r, "O301");
  EXPECT_EQ(o->endpoint->kind, Endpoint::Kind::Icmp);
  EXPECT_EQ(o->endpoint->host, "10.20.2.7");
  EXPECT_FALSE(room(r, "O302")->planned());
  ASSERT_EQ(r.switches.size(), 4u);
  EXPECT_EQ(r.switches[1].port, 1161);
  EXPECT_EQ(*r.switches[1].credentials.community_file, "/etc/campus-agent/sw-b.community");
}

TEST(RoomRegister, BadRowsAreNamedByLineAndColumnAndTheRoomIsStillReported) {
  auto r = parse(
      "id,name,type,switch,port,endpoint\n"
      "C101,一班,classroom,sw-a,1,\n"
      "C102,二班,lab,sw-a,2,\n"
      "C101,重复,classroom,sw-a,3,\n"
      "C103,三班,classroom,sw-zz,4,\n"
      "C104,四班,classroom,sw-a,,\n"
      "C105,五班,classroom,,,10.1.1\n"
      "C106,六班,classroom,,,tcp:10.1.1.1\n"
      ",无名,classroom,sw-a,5,\n"
      "C107,七班,classroom,sw-bad,7,\n");
  EXPECT_TRUE(has_error(r, "rooms.csv:3 column type", "unknown room type \"lab\"")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:4 column id", "duplicate room id \"C101\"")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:5 column switch", "unknown switch \"sw-zz\"")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:6 column port", "port is empty")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:7 column endpoint", "not an IP address")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:8 column endpoint", "has no port")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:9 column id", "empty room id")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "switches.csv:4 column address", "not an IP address")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "switches.csv:5 column profile", "unknown vendor profile \"juniper\"")) << all_errors(r);

  EXPECT_FALSE(room(r, "C102")->invalid.empty());
  EXPECT_FALSE(room(r, "C101")->invalid.empty()) << "a duplicated id is not trusted";
  EXPECT_FALSE(room(r, "C103")->invalid.empty());
  EXPECT_FALSE(room(r, "C105")->invalid.empty());
  EXPECT_TRUE(room(r, "C107")->invalid.empty()) << "the room row is fine; its switch is what is bad";
  EXPECT_FALSE(r.switches[2].invalid.empty());
  EXPECT_EQ(r.rooms.size(), 7u);
}

TEST(RoomRegister, UnreadableRowsAreErrorsAndTheirRoomsAreStillReportedUnknown) {
  // Bad UTF-8 in a name and an unquoted comma (one cell too many): the CSV reader cannot use
  // these rows, but their ids are readable, so the rooms stay in the report as unknown.
  std::string text =
      "id,name,type,switch,port\n"
      "C1,ok,classroom,sw-a,1\n"
      "C2,\xff\xfe,classroom,sw-a,2\n"
      "C3,ok,office,sw-a,3\n"
      "C4,Lab, chem,function_room,sw-a,4\n"
      "\xff,bad id,classroom,sw-a,5\n";
  auto r = parse(text);
  EXPECT_TRUE(has_error(r, "rooms.csv:3 column name", "not valid UTF-8")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:5", "the row has 6 cells but the header has 5")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "rooms.csv:6 column id", "not valid UTF-8")) << all_errors(r);
  ASSERT_EQ(r.rooms.size(), 4u) << "C1, C3 and the unreadable C2 and C4; the row without a readable id cannot be named";
  EXPECT_TRUE(room(r, "C1")->invalid.empty());
  ASSERT_NE(room(r, "C2"), nullptr);
  EXPECT_EQ(room(r, "C2")->invalid,
            "bad register row rooms.csv:3 column name: not valid UTF-8 text "
            "(fix: save the file as \"CSV UTF-8\" in the spreadsheet program)");
  EXPECT_EQ(room(r, "C2")->where, "rooms.csv:3");
  ASSERT_NE(room(r, "C4"), nullptr);
  EXPECT_NE(room(r, "C4")->invalid.find("rooms.csv:5: the row has 6 cells"), std::string::npos) << room(r, "C4")->invalid;
}

TEST(RoomRegister, UnreadableRowWithTheIdOfAGoodRowMakesThatRoomUnknown) {
  auto r = parse("id,name,type,switch,port\nC1,ok,classroom,sw-a,1\nC1,\xff,classroom,sw-a,2\n");
  ASSERT_EQ(r.rooms.size(), 1u);
  EXPECT_NE(r.rooms[0].invalid.find("rooms.csv:3 column name: not valid UTF-8"), std::string::npos) << r.rooms[0].invalid;
}

TEST(RoomRegister, UnreadableSwitchRowMakesItsRoomsUnknownWithTheReason) {
  auto r = parse("id,name,type,switch,port\nC1,ok,classroom,sw-x,1\n",
                 "id,address,profile\nsw-x,10.20.0.9,h3c,extra\n");
  EXPECT_FALSE(has_error(r, "rooms.csv:2 column switch", "unknown switch")) << all_errors(r);
  ASSERT_EQ(r.switches.size(), 1u);
  EXPECT_EQ(r.switches[0].id, "sw-x");
  EXPECT_NE(r.switches[0].invalid.find("switches.csv:2: the row has 4 cells but the header has 3"), std::string::npos)
      << r.switches[0].invalid;
}

TEST(RoomRegister, MissingRequiredColumnIsOneError) {
  auto r = parse("id,name,switch\nC1,x,sw-a\n");
  EXPECT_TRUE(r.rooms.empty());
  EXPECT_FALSE(r.errors.empty());
}

TEST(RoomRegister, SnmpV3SwitchNeedsUserAndKeys) {
  auto r = parse("id,name,type\n",
                 "id,address,snmp_version,user,auth_protocol,auth_key_file,priv_protocol,priv_key_file\n"
                 "v3-ok,10.0.0.1,3,campus,SHA,auth.key,AES,priv.key\n"
                 "v3-nouser,10.0.0.2,3,,SHA,auth.key,,\n"
                 "v3-nokey,10.0.0.3,3,campus,SHA,,,\n"
                 "v9,10.0.0.4,9,,,,,\n");
  EXPECT_TRUE(r.switches[0].invalid.empty()) << r.switches[0].invalid;
  EXPECT_TRUE(has_error(r, "switches.csv:3 column user", "needs a user")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "switches.csv:4 column auth_key_file", "auth_key_file is empty")) << all_errors(r);
  EXPECT_TRUE(has_error(r, "switches.csv:5 column snmp_version", "unsupported")) << all_errors(r);
}

TEST(Endpoint, ParsesForms) {
  EXPECT_EQ(parse_endpoint("10.0.0.1")->kind, Endpoint::Kind::Icmp);
  EXPECT_EQ(parse_endpoint("10.0.0.1:443")->port, 443);
  EXPECT_EQ(parse_endpoint("[fd00::1]:80")->host, "fd00::1");
  EXPECT_EQ(parse_endpoint("icmp:10.0.0.1")->kind, Endpoint::Kind::Icmp);
  EXPECT_FALSE(parse_endpoint("10.0.0.1:0").ok());
  EXPECT_FALSE(parse_endpoint("icmp:10.0.0.1:80").ok());
  EXPECT_FALSE(parse_endpoint("printer.local:80").ok());
}
