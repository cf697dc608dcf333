// What a switch may answer, after net-snmp's BER decoding (not fuzzed here: that is
// net-snmp's code): varbind lists of any length, type, OID and value, fed to our conversion
// (plugins/fiber/src/varbinds.hpp) in each of its three phases.
//
// Input: byte 0 picks the phase and the vendor profile's knobs; then varbinds, each
//   [type selector] [OID selector] [arc count n] [n arcs, 4 bytes each] [value length] [value]
// where the OID selector starts the name from a column we ask for (so the fuzzer reaches the
// in-subtree paths) or from nothing.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "varbinds.hpp"

using namespace campus::fiber;

namespace {

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  bool empty() const { return n == 0; }
  std::uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | byte();
    return v;
  }
};

const u_char kTypes[] = {ASN_INTEGER, ASN_GAUGE, ASN_TIMETICKS, ASN_COUNTER, ASN_OCTET_STR, ASN_OBJECT_ID,
                         ASN_NULL, ASN_COUNTER64, SNMP_NOSUCHOBJECT, SNMP_NOSUCHINSTANCE, SNMP_ENDOFMIBVIEW, ASN_IPADDRESS};

// Adds one varbind built from the input; false when the input is used up.
bool add_varbind(Reader& in, const std::vector<Oid>& bases, netsnmp_variable_list** list) {
  if (in.empty()) return false;
  u_char type = kTypes[in.byte() % sizeof kTypes];
  std::uint8_t sel = in.byte();
  Oid name = sel < bases.size() ? bases[sel] : Oid{};
  std::size_t arcs = in.byte() % 8;
  for (std::size_t i = 0; i < arcs; ++i) name.push_back(in.u32());
  if (name.empty()) name = {0, 0};  // net-snmp never hands out an empty name
  std::size_t len = in.byte();
  std::vector<std::uint8_t> value;
  for (std::size_t i = 0; i < len && !in.empty(); ++i) value.push_back(in.byte());
  netsnmp_variable_list* v = nullptr;
  switch (type) {
    case ASN_INTEGER: case ASN_GAUGE: case ASN_TIMETICKS: case ASN_COUNTER: {
      long x = 0;
      if (!value.empty()) std::memcpy(&x, value.data(), std::min(value.size(), sizeof x));
      v = snmp_varlist_add_variable(list, name.data(), name.size(), type, &x, sizeof x);
      break;
    }
    case ASN_OBJECT_ID: {
      // Often an ifIndex.<n> value, as entAliasMappingIdentifier holds.
      Oid val = value.size() % 2 ? parse_oid("1.3.6.1.2.1.2.2.1.1") : Oid{};
      for (std::size_t i = 0; i + 4 <= value.size(); i += 4)
        val.push_back((oid(value[i]) << 24) | (oid(value[i + 1]) << 16) | (oid(value[i + 2]) << 8) | value[i + 3]);
      v = snmp_varlist_add_variable(list, name.data(), name.size(), type, val.empty() ? nullptr : val.data(),
                                    val.size() * sizeof(oid));
      break;
    }
    default:
      v = snmp_varlist_add_variable(list, name.data(), name.size(), type, value.empty() ? nullptr : value.data(),
                                    value.size());
  }
  return v != nullptr || !in.empty();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  Reader in{data, size};
  const std::uint8_t mode = in.byte();
  const int phase = mode % 3;
  std::vector<WalkColumn> columns = interface_columns();
  std::vector<Oid> bases = {kSysUpTimeColumn, kEntAliasMappingIdentifier};
  for (const auto& c : columns) bases.push_back(c.base);

  netsnmp_variable_list* vars = nullptr;
  while (add_varbind(in, bases, &vars)) {
  }

  SwitchStatus status;
  if (phase == 0) {
    // Some columns already finished or advanced, as in a later GETBULK of the walk.
    std::vector<std::size_t> in_request;
    for (std::size_t i = 0; i < columns.size(); ++i)
      if (!(mode & (8u << (i % 5)))) in_request.push_back(i);
    apply_walk(vars, mode & 4, in_request, columns, status);
    for (const auto& [idx, p] : status.ports)
      if (idx < 1 || p.if_index != idx) __builtin_trap();
  } else if (phase == 1) {
    Oid cursor = kEntAliasMappingIdentifier;
    std::map<int, long> ent_of_if;
    for (int round = 0; round < 2 && apply_alias(vars, cursor, ent_of_if); ++round) {
    }
    for (const auto& [ifx, ent] : ent_of_if)
      if (ifx < 1 || ent < 1) __builtin_trap();
  } else {
    VendorProfile profile;
    profile.rx_power_oid = "1.3.6.1.4.1.25506.2.70.1.1.1.12";
    // Ruijie-shaped: transmit power, both directions' alarm thresholds and the DOM flag too.
    if (mode & 128) {
      profile.tx_power_oid = "1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1.81";
      profile.rx_low_alarm_oid = "1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1.93";
      profile.rx_high_alarm_oid = "1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1.94";
      profile.tx_low_alarm_oid = "1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1.97";
      profile.tx_high_alarm_oid = "1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1.98";
      profile.dom_oid = "1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1.15";
    }
    profile.unit = static_cast<VendorProfile::Unit>((mode >> 2) % 3);
    if (mode & 16) profile.precision_oid = "1.3.6.1.2.1.99.1.1.1.3";
    profile.scale = (mode & 32) ? 0.01 : 1.0;
    profile.absent_values = {-2147483648L, 0};
    std::vector<int> batch = {1, 2, 3, 2147483647};
    long errstat = (mode & 64) ? static_cast<long>(mode) - 200 : 0;
    apply_optics(errstat, vars, batch, profile, status.ports);
    for (const auto& [idx, p] : status.ports) {
      if (p.rx_dbm ? !std::isfinite(*p.rx_dbm) : p.rx_note.empty()) __builtin_trap();
      if (!profile.tx_power_oid.empty() && (p.tx_dbm ? !std::isfinite(*p.tx_dbm) : p.tx_note.empty())) __builtin_trap();
      for (const auto* w : {&p.rx_alarm, &p.tx_alarm})
        if (*w && !((*w)->min_dbm < (*w)->max_dbm)) __builtin_trap();
    }
  }
  snmp_free_varbind(vars);
  return 0;
}
