// Vendor profiles are data: the shipped ones load, conversions are right, bad files are named,
// and a county's own profile (profiles_dir) is loaded and used for the switches that name it.
#include <gtest/gtest.h>

#include "fiber_audit.hpp"
#include "test_util.hpp"
#include "varbinds.hpp"
#include "vendor_profile.hpp"

using namespace campus::fiber;

TEST(VendorProfile, ShippedProfilesLoad) {
  auto set = load_profiles({CAMPUS_FIBER_PROFILES_SOURCE});
  ASSERT_TRUE(set.errors.empty()) << set.errors[0].message();
  for (const char* n : {"generic", "h3c", "huawei", "cisco"}) EXPECT_TRUE(set.profiles.count(n)) << n;
  EXPECT_EQ(set.profiles["h3c"].rx_power_oid, "1.3.6.1.4.1.25506.2.70.1.1.1.12");
  EXPECT_EQ(set.profiles["huawei"].index, VendorProfile::Index::EntAliasMapping);
}

TEST(VendorProfile, ConvertsUnits) {
  VendorProfile p;
  p.scale = 0.01;
  EXPECT_DOUBLE_EQ(*p.to_dbm(-523, std::nullopt), -5.23);
  p.absent_values = {2147483647};
  EXPECT_FALSE(p.to_dbm(2147483647, std::nullopt));
  p.unit = VendorProfile::Unit::Microwatt;
  p.scale = 1;
  EXPECT_NEAR(*p.to_dbm(100, std::nullopt), -10.0, 1e-9);  // 100 uW = -10 dBm
  p.unit = VendorProfile::Unit::Dbm;
  EXPECT_NEAR(*p.to_dbm(-52, 1), -5.2, 1e-9);  // ENTITY-SENSOR precision 1
}

TEST(VendorProfile, BadFilesAreNamed) {
  EXPECT_FALSE(parse_profile("rx_power_oid = \"hh3cTransceiverCurRXPower\"\n", "x", "x.toml").ok());
  auto r = parse_profile("rx_power_oid = \"1.3.6.1\"\nunit = \"W\"\n", "x", "x.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().where, "x.toml:2 key unit");
  EXPECT_FALSE(parse_profile("colour = 1\n", "x", "x.toml").ok());
}

TEST(VendorProfile, ACountyAddsAModelWithoutCodeThroughProfilesDir) {
  campus::test::TempDir dir;
  // A model the agent does not ship, in microwatts (tenths of uW), and a county fix of h3c.
  dir.write("county-profiles/acme.toml",
            "description = \"ACME FS-2400, county profile\"\n"
            "rx_power_oid = \"1.3.6.1.4.1.99999.1.2.3\"\n"
            "unit = \"uW\"\n"
            "scale = 0.1\n"
            "absent_values = [0]\n");
  dir.write("county-profiles/h3c.toml", "rx_power_oid = \"1.3.6.1.4.1.25506.9.9\"\nscale = 0.01\n");
  dir.write("rooms.csv", "id,name,type,switch,port\nC1,一班,classroom,sw-acme,12\n");
  dir.write("switches.csv", "id,address,profile\nsw-acme,10.20.0.2,acme\n");
  dir.write("agent.toml",
            "[audits.fiber]\nrooms = \"rooms.csv\"\nswitches = \"switches.csv\"\nprofiles_dir = \"county-profiles\"\n");

  // [audits.fiber] profiles_dir, read as the plugin reads it.
  campus::Errors errors;
  toml::table table = toml::parse_file((dir.path() / "agent.toml").string());
  campus::TableReader reader(*table["audits"]["fiber"].as_table(), "audits.fiber", dir.path() / "agent.toml", errors);
  FiberSettings s = read_fiber_settings(reader);
  reader.finish();
  ASSERT_TRUE(errors.empty()) << errors[0].message();
  ASSERT_EQ(s.profile_dirs.size(), 2u);
  EXPECT_EQ(s.profile_dirs[1], dir.path() / "county-profiles");

  // Loaded beside the shipped profiles; a file with a shipped name replaces it.
  ProfileSet set = load_profiles(s.profile_dirs);
  ASSERT_TRUE(set.errors.empty()) << set.errors[0].message();
  ASSERT_TRUE(set.profiles.count("acme"));
  EXPECT_TRUE(set.profiles.count("huawei"));
  EXPECT_EQ(set.profiles["h3c"].rx_power_oid, "1.3.6.1.4.1.25506.9.9");

  // The switch list may name it, and the switch's optical power answers are converted through
  // it: a raw 1000 at its OID (100.0 uW in its unit and scale) becomes -10 dBm.
  auto rooms = campus::read_csv_file(s.rooms_file, kRoomColumns);
  auto switches = campus::read_csv_file(s.switches_file, kSwitchColumns);
  ASSERT_TRUE(rooms.ok() && switches.ok());
  Registers regs = parse_registers(*rooms, *switches, set.names(), s.default_profile, dir.path());
  ASSERT_TRUE(regs.errors.empty()) << regs.errors[0].message();
  ASSERT_EQ(regs.switches.size(), 1u);
  ASSERT_TRUE(regs.switches[0].invalid.empty()) << regs.switches[0].invalid;
  const VendorProfile& used = set.profiles.at(regs.switches[0].profile);
  EXPECT_EQ(used.name, "acme");
  netsnmp_variable_list* vars = nullptr;
  Oid o = parse_oid("1.3.6.1.4.1.99999.1.2.3.12");
  long raw = 1000;
  snmp_varlist_add_variable(&vars, o.data(), o.size(), ASN_INTEGER, &raw, sizeof raw);
  std::map<int, PortStatus> ports;
  apply_optics(SNMP_ERR_NOERROR, vars, {12}, used, ports);
  snmp_free_varbind(vars);
  ASSERT_TRUE(ports[12].rx_dbm) << ports[12].rx_note;
  EXPECT_NEAR(*ports[12].rx_dbm, -10.0, 1e-9);
}
