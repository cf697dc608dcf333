// Vendor profiles are data: the shipped ones load, conversions are right, bad files are named.
#include <gtest/gtest.h>

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
