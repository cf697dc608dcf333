// Varbind conversion on its own (varbinds.hpp): the walk, the entity map and optical power,
// including the answers a broken or hostile switch may give (fuzz_varbind runs the same code).
#include <gtest/gtest.h>

#include "varbinds.hpp"

namespace campus::fiber {
namespace {

struct Vars {
  netsnmp_variable_list* list = nullptr;
  ~Vars() { snmp_free_varbind(list); }
  Vars& num(const std::string& name, u_char type, long value) {
    Oid o = parse_oid(name);
    snmp_varlist_add_variable(&list, o.data(), o.size(), type, &value, sizeof value);
    return *this;
  }
  Vars& str(const std::string& name, const std::string& value) {
    Oid o = parse_oid(name);
    snmp_varlist_add_variable(&list, o.data(), o.size(), ASN_OCTET_STR, value.data(), value.size());
    return *this;
  }
  Vars& objid(const std::string& name, const std::string& value) {
    Oid o = parse_oid(name), v = parse_oid(value);
    snmp_varlist_add_variable(&list, o.data(), o.size(), ASN_OBJECT_ID, v.data(), v.size() * sizeof(oid));
    return *this;
  }
  Vars& none(const std::string& name, u_char type) {
    Oid o = parse_oid(name);
    snmp_varlist_add_variable(&list, o.data(), o.size(), type, nullptr, 0);
    return *this;
  }
};

const std::string kAdmin = "1.3.6.1.2.1.2.2.1.7.", kOper = "1.3.6.1.2.1.2.2.1.8.", kName = "1.3.6.1.2.1.31.1.1.1.1.";

TEST(Varbinds, WalkFillsPortsAndEndsColumnsThatLeaveTheirSubtree) {
  auto columns = interface_columns();
  std::vector<std::size_t> asked = {0, 1, 3};  // admin, oper, name
  Vars v;
  v.num("1.3.6.1.2.1.1.3.0", ASN_TIMETICKS, 4242)
      .num(kAdmin + "1", ASN_INTEGER, 1).num(kOper + "1", ASN_INTEGER, 1).str(kName + "1", "Gi1/0/1")
      .num(kAdmin + "2", ASN_INTEGER, 2).num(kOper + "2", ASN_INTEGER, 2).str(kName + "2", "Gi1/0/2")
      // admin goes on into ifOperStatus (end of its column); oper hits endOfMibView.
      .num(kOper + "1", ASN_INTEGER, 1).none(kOper + "3", SNMP_ENDOFMIBVIEW).str(kName + "3", "Gi1/0/3");
  SwitchStatus st;
  apply_walk(v.list, true, asked, columns, st);
  EXPECT_EQ(st.sys_uptime, 4242u);
  ASSERT_EQ(st.ports.size(), 3u);
  EXPECT_EQ(st.ports[1].admin, 1);
  EXPECT_EQ(st.ports[2].oper, 2);
  EXPECT_EQ(st.ports[3].name, "Gi1/0/3");
  EXPECT_FALSE(st.ports[3].admin);
  EXPECT_TRUE(columns[0].done);
  EXPECT_TRUE(columns[1].done);
  EXPECT_FALSE(columns[3].done);
  EXPECT_EQ(columns[3].cur, parse_oid(kName + "3"));
}

TEST(Varbinds, WalkRefusesIndexesThatAreNotInterfacesAndValuesOfTheWrongType) {
  auto columns = interface_columns();
  Vars v;
  v.str(kAdmin + "1", "up")  // a string where an INTEGER belongs: no value, the row still exists
      .num(kAdmin + "4294967296", ASN_INTEGER, 1);  // ifIndex beyond 2^31-1 ends the column
  SwitchStatus st;
  apply_walk(v.list, false, {0}, columns, st);
  ASSERT_EQ(st.ports.size(), 1u);
  EXPECT_FALSE(st.ports[1].admin);
  EXPECT_TRUE(columns[0].done);
  auto fresh = interface_columns();
  Vars zero;
  zero.num(kAdmin + "0", ASN_INTEGER, 1);
  SwitchStatus st0;
  apply_walk(zero.list, false, {0}, fresh, st0);
  EXPECT_TRUE(st0.ports.empty());
  EXPECT_TRUE(fresh[0].done);
  // Nothing asked: nothing read (no division by zero rows).
  apply_walk(zero.list, false, {}, fresh, st0);
}

TEST(Varbinds, AliasMapsInterfacesToEntitiesAndStopsAtTheEndOfTheTable) {
  Oid cursor = kEntAliasMappingIdentifier;
  std::map<int, long> ent;
  Vars v;
  v.objid("1.3.6.1.2.1.47.1.3.2.1.2.1001.0", "1.3.6.1.2.1.2.2.1.1.7")
      .objid("1.3.6.1.2.1.47.1.3.2.1.2.1002.0", "1.3.6.1.2.1.2.2.1.1.0")  // ifIndex 0: not a port
      .str("1.3.6.1.2.1.47.1.3.2.1.2.1003.0", "x");
  EXPECT_TRUE(apply_alias(v.list, cursor, ent));
  EXPECT_EQ(ent, (std::map<int, long>{{7, 1001}}));
  EXPECT_EQ(cursor, parse_oid("1.3.6.1.2.1.47.1.3.2.1.2.1003.0"));
  Vars back;  // a switch that goes backwards: the table has ended
  back.objid("1.3.6.1.2.1.47.1.3.2.1.2.1001.0", "1.3.6.1.2.1.2.2.1.1.8");
  EXPECT_FALSE(apply_alias(back.list, cursor, ent));
  EXPECT_EQ(ent.size(), 1u);
}

TEST(Varbinds, OpticalPowerThroughTheProfileAndImpossiblePrecisions) {
  VendorProfile prof;
  prof.rx_power_oid = "1.3.6.1.2.1.99.1.1.1.4";
  prof.precision_oid = "1.3.6.1.2.1.99.1.1.1.3";
  prof.unit = VendorProfile::Unit::Dbm;
  Vars v;
  v.num("1.3.6.1.2.1.99.1.1.1.4.1001", ASN_INTEGER, -523).num("1.3.6.1.2.1.99.1.1.1.3.1001", ASN_INTEGER, 2)
      .num("1.3.6.1.2.1.99.1.1.1.4.1002", ASN_INTEGER, -523).num("1.3.6.1.2.1.99.1.1.1.3.1002", ASN_INTEGER, -400)
      .none("1.3.6.1.2.1.99.1.1.1.4.1003", SNMP_NOSUCHINSTANCE).none("1.3.6.1.2.1.99.1.1.1.3.1003", SNMP_NOSUCHINSTANCE);
  std::map<int, PortStatus> ports;
  apply_optics(SNMP_ERR_NOERROR, v.list, {1, 2, 3, 4}, prof, ports);
  ASSERT_TRUE(ports[1].rx_dbm);
  EXPECT_DOUBLE_EQ(*ports[1].rx_dbm, -5.23);
  EXPECT_FALSE(ports[2].rx_dbm);
  EXPECT_EQ(ports[2].rx_note, "the switch reports an impossible sensor precision (-400) for this port");
  EXPECT_FALSE(ports[3].rx_dbm);
  EXPECT_FALSE(ports[4].rx_dbm);  // the answer ran out of varbinds
  EXPECT_FALSE(ports[4].rx_note.empty());
  std::map<int, PortStatus> refused;
  apply_optics(SNMP_ERR_GENERR, nullptr, {1}, prof, refused);
  EXPECT_EQ(refused[1].rx_note, "switch refused the optical power request: (genError) A general failure occured");
}

}  // namespace
}  // namespace campus::fiber
