// Transceiver optics beyond receive power: transmit power, the module's own alarm thresholds,
// the DOM flag and vendor "no reading" values (Ruijie, ZTE), and which window a finding used.
#include <gtest/gtest.h>

#include "classify.hpp"
#include "varbinds.hpp"
#include "vendor_profile.hpp"

namespace campus::fiber {
namespace {

const std::string kRuijie = "1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1.";
const std::string kZte = "1.3.6.1.4.1.3902.1082.30.40.2.4.1.";

VendorProfile shipped(const std::string& name) {
  auto set = load_profiles({CAMPUS_FIBER_PROFILES_SOURCE});
  EXPECT_TRUE(set.errors.empty()) << set.errors[0].message();
  return set.profiles.at(name);
}

struct Vars {
  netsnmp_variable_list* list = nullptr;
  ~Vars() { snmp_free_varbind(list); }
  Vars& num(const std::string& name, long value) {
    Oid o = parse_oid(name);
    snmp_varlist_add_variable(&list, o.data(), o.size(), ASN_INTEGER, &value, sizeof value);
    return *this;
  }
  Vars& none(const std::string& name) {
    Oid o = parse_oid(name);
    snmp_varlist_add_variable(&list, o.data(), o.size(), SNMP_NOSUCHINSTANCE, nullptr, 0);
    return *this;
  }
  // One Ruijie port, in the order the profile asks: rx, tx, rx low/high, tx low/high, DOM.
  Vars& ruijie(int i, long rx, long tx, long rx_lo, long rx_hi, long tx_lo, long tx_hi, long dom) {
    auto c = [&](int column) { return kRuijie + std::to_string(column) + "." + std::to_string(i); };
    return num(c(76), rx).num(c(81), tx).num(c(93), rx_lo).num(c(94), rx_hi).num(c(97), tx_lo).num(c(98), tx_hi)
        .num(c(15), dom);
  }
};

TEST(Optics, ShippedRuijieAndZteProfilesCiteTheirMibColumns) {
  VendorProfile r = shipped("ruijie");
  EXPECT_EQ(r.rx_power_oid, kRuijie + "76");
  EXPECT_EQ(r.tx_power_oid, kRuijie + "81");
  EXPECT_EQ(r.rx_low_alarm_oid, kRuijie + "93");
  EXPECT_EQ(r.tx_high_alarm_oid, kRuijie + "98");
  EXPECT_EQ(r.dom_oid, kRuijie + "15");
  EXPECT_EQ(r.absent_values, (std::set<long>{-10000}));
  ASSERT_TRUE(r.rx_window);
  EXPECT_EQ(r.rx_window->min_dbm, -19.0);
  EXPECT_EQ(r.reading_columns().size(), 7u);
  VendorProfile z = shipped("zte");
  EXPECT_EQ(z.rx_power_oid, kZte + "2");
  EXPECT_EQ(z.tx_power_oid, kZte + "3");
  EXPECT_DOUBLE_EQ(*z.to_dbm(-5234, std::nullopt), -5.234);  // 0.001 dBm
  EXPECT_TRUE(z.rx_low_alarm_oid.empty()) << "ZTE keeps thresholds in named profiles, not per port";
  EXPECT_TRUE(z.absent_values.empty()) << "the ZTE MIB documents no sentinel";
}

TEST(Optics, ProfileKeysComeInPairsAndWindowsMustBeWindows) {
  auto half = parse_profile("rx_power_oid = \"1.3.6.1\"\nrx_low_alarm_oid = \"1.3.6.2\"\n", "x", "x.toml");
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.error().where, "x.toml:2 key rx_low_alarm_oid");
  EXPECT_NE(half.error().what.find("given without rx_high_alarm_oid"), std::string::npos);
  auto one_limit = parse_profile("tx_min_dbm = -11.0\n", "x", "x.toml");
  ASSERT_FALSE(one_limit.ok());
  EXPECT_NE(one_limit.error().what.find("given without tx_max_dbm"), std::string::npos);
  auto upside_down = parse_profile("rx_min_dbm = -3.0\nrx_max_dbm = -19.0\n", "x", "x.toml");
  ASSERT_FALSE(upside_down.ok());
  EXPECT_EQ(upside_down.error().where, "x.toml:2 key rx_max_dbm");
  EXPECT_FALSE(parse_profile("tx_power_oid = \"ruijieFiberTXpower\"\n", "x", "x.toml").ok());
  auto tx_only = parse_profile("tx_power_oid = \"1.3.6.1\"\n", "x", "x.toml");
  ASSERT_TRUE(tx_only.ok());
  EXPECT_TRUE(tx_only->reads_optics());
}

TEST(Optics, RuijieModulesWithReadingsWithoutDomAndWithTheNoReadingValue) {
  VendorProfile prof = shipped("ruijie");
  Vars v;
  v.ruijie(1, -523, -412, -1800, 0, -1000, -100, 1)                    // a healthy module
      .ruijie(2, -10000, -10000, -10000, -10000, -10000, -10000, 2)    // no DOM
      .ruijie(3, -10000, -450, -10000, -10000, -900, -300, 1)          // no rx reading, no rx thresholds
      .ruijie(4, -700, -500, -100, -1800, -1000, -100, 1);             // thresholds upside down
  std::map<int, PortStatus> ports;
  apply_optics(SNMP_ERR_NOERROR, v.list, {1, 2, 3, 4}, prof, ports);
  ASSERT_TRUE(ports[1].rx_dbm && ports[1].tx_dbm);
  EXPECT_DOUBLE_EQ(*ports[1].rx_dbm, -5.23);
  EXPECT_DOUBLE_EQ(*ports[1].tx_dbm, -4.12);
  ASSERT_TRUE(ports[1].rx_alarm && ports[1].tx_alarm);
  EXPECT_DOUBLE_EQ(ports[1].rx_alarm->min_dbm, -18.0);
  EXPECT_DOUBLE_EQ(ports[1].tx_alarm->max_dbm, -1.0);

  EXPECT_FALSE(ports[2].rx_dbm || ports[2].tx_dbm);
  EXPECT_EQ(ports[2].rx_note, "the transceiver has no digital diagnostics (DOM): its optical power is not known");
  EXPECT_EQ(ports[2].tx_note, ports[2].rx_note);

  EXPECT_FALSE(ports[3].rx_dbm);
  EXPECT_EQ(ports[3].rx_note,
            "the switch reports -10000 for the receive power, its \"no reading\" value (no transceiver, or the module "
            "gives no reading)");
  EXPECT_DOUBLE_EQ(*ports[3].tx_dbm, -4.5);
  EXPECT_FALSE(ports[3].rx_alarm);
  EXPECT_EQ(ports[3].rx_alarm_note, "the module reports no usable receive alarm thresholds (low -10000, high -10000)");
  ASSERT_TRUE(ports[3].tx_alarm);

  EXPECT_FALSE(ports[4].rx_alarm);
  EXPECT_EQ(ports[4].rx_alarm_note,
            "the module's receive alarm thresholds are not a window (low -1.00 dBm, high -18.00 dBm)");
}

TEST(Optics, ZtePortWithoutARowAndAnAnswerThatRunsOut) {
  VendorProfile prof = shipped("zte");
  Vars v;
  v.num(kZte + "2.5", -6120).num(kZte + "3.5", -5010).none(kZte + "2.6").none(kZte + "3.6").num(kZte + "2.7", -30000);
  std::map<int, PortStatus> ports;
  apply_optics(SNMP_ERR_NOERROR, v.list, {5, 6, 7}, prof, ports);
  EXPECT_DOUBLE_EQ(*ports[5].rx_dbm, -6.12);
  EXPECT_DOUBLE_EQ(*ports[5].tx_dbm, -5.01);
  EXPECT_EQ(ports[6].rx_note, "the switch has no optical receive power reading for this port (no transceiver, or copper)");
  EXPECT_EQ(ports[6].tx_note, "the switch has no optical transmit power reading for this port (no transceiver, or copper)");
  EXPECT_DOUBLE_EQ(*ports[7].rx_dbm, -30.0);
  EXPECT_FALSE(ports[7].tx_dbm);  // the answer ended before port 7's tx varbind
  EXPECT_FALSE(ports[7].tx_note.empty());
  EXPECT_TRUE(ports[5].rx_alarm_note.empty()) << "ZTE thresholds are not asked for, so there is nothing to explain";
}

struct Judged : ::testing::Test {
  Switch sw{"sw", "10.0.0.2", 161, "ruijie", {}, "", "switches.csv:2"};
  SwitchStatus st;
  Room room;
  Thresholds lim;
  VendorProfile prof = shipped("ruijie");
  void SetUp() override {
    st.answered = true;
    room.id = "C1";
    room.type = RoomType::Classroom;
    room.switch_id = "sw";
    room.port = PortRef{1, ""};
    PortStatus& p = st.ports[1];
    p.if_index = 1;
    p.admin = p.oper = 1;
    p.high_speed = 1000;
    p.rx_dbm = -8.0;
    p.tx_dbm = -5.0;
  }
  Verdict judge(const VendorProfile* profile) {
    RoomEvidence ev{&sw, &st, std::nullopt, profile};
    return classify(room, ev, lim);
  }
};

TEST_F(Judged, TheModulesThresholdsComeFirstThenTheProfileThenTheAudit) {
  st.ports[1].rx_dbm = -17.5;  // inside the audit's [-20, -1], below the module's -16
  st.ports[1].rx_alarm = PowerWindow{-16.0, 0.0};
  auto v = judge(&prof);
  EXPECT_EQ(v.state, RoomState::Degraded);
  EXPECT_EQ(v.details["rx_limits_from"], "module");
  EXPECT_EQ(v.details["rx_limits_dbm"], nlohmann::json({-16.0, 0.0}));
  EXPECT_NE(v.reason.find("optical power out of range: rx -17.5 dBm outside [-16.0 dBm, 0.0 dBm] (the module's own "
                          "alarm thresholds)"),
            std::string::npos)
      << v.reason;

  st.ports[1].rx_alarm.reset();
  st.ports[1].rx_alarm_note = "the module reports no usable receive alarm thresholds (low -10000, high -10000)";
  v = judge(&prof);  // the profile's 1000BASE-LX window: -17.5 is within 3 dB of -19
  EXPECT_EQ(v.details["rx_limits_from"], "profile");
  EXPECT_EQ(v.details["rx_limits_note"], st.ports[1].rx_alarm_note);
  EXPECT_NE(v.reason.find("near a limit: rx -17.5 dBm within 3 dB of [-19.0 dBm, -3.0 dBm] (profile ruijie's "
                          "rx_min_dbm/rx_max_dbm)"),
            std::string::npos)
      << v.reason;

  v = judge(nullptr);  // no profile window: the audit's
  EXPECT_EQ(v.details["rx_limits_from"], "audit");
  EXPECT_NE(v.reason.find("(the audit's rx_min_dbm/rx_max_dbm)"), std::string::npos) << v.reason;
}

TEST_F(Judged, TransmitPowerIsJudgedToo) {
  auto v = judge(&prof);
  EXPECT_EQ(v.state, RoomState::Covered) << v.reason;
  EXPECT_EQ(v.details["tx_dbm"], -5.0);
  EXPECT_EQ(v.details["tx_limits_from"], "profile");
  st.ports[1].tx_dbm = -13.2;  // a tired laser
  v = judge(&prof);
  EXPECT_EQ(v.state, RoomState::Degraded);
  EXPECT_EQ(v.reason, "transmit power out of range: tx -13.2 dBm outside [-11.0 dBm, -3.0 dBm] (profile ruijie's "
                      "tx_min_dbm/tx_max_dbm)");
  st.ports[1].tx_alarm = PowerWindow{-14.0, -1.0};
  v = judge(&prof);
  EXPECT_EQ(v.details["tx_limits_from"], "module");
  EXPECT_EQ(v.reason, "transmit power near a limit: tx -13.2 dBm within 1 dB of [-14.0 dBm, -1.0 dBm] (the module's own "
                      "alarm thresholds)");
}

TEST_F(Judged, APortWithoutAReadingSaysWhyAndIsNotJudgedOnPower) {
  st.ports[1].rx_dbm.reset();
  st.ports[1].tx_dbm.reset();
  st.ports[1].rx_note = st.ports[1].tx_note = "the transceiver has no digital diagnostics (DOM): its optical power is not known";
  auto v = judge(&prof);
  EXPECT_EQ(v.state, RoomState::Covered);
  EXPECT_EQ(v.details["rx_note"], st.ports[1].rx_note);
  EXPECT_FALSE(v.details.contains("rx_limits_from"));
}

}  // namespace
}  // namespace campus::fiber
