// Varbind lists -> ports, entity mappings and optical power (see varbinds.hpp).
#include "varbinds.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace campus::fiber {
namespace {

const Oid kIfEntry = parse_oid("1.3.6.1.2.1.2.2.1");
const Oid kIfXEntry = parse_oid("1.3.6.1.2.1.31.1.1.1");
const Oid kIfIndexColumn = parse_oid("1.3.6.1.2.1.2.2.1.1");

Oid append(Oid base, std::initializer_list<oid> tail) {
  base.insert(base.end(), tail);
  return base;
}

bool has_prefix(const oid* name, std::size_t len, const Oid& prefix) {
  return len > prefix.size() && std::equal(prefix.begin(), prefix.end(), name);
}

// net-snmp sets val.integer for these types; a value of the wrong size is not a number.
std::optional<long> as_long(const netsnmp_variable_list* v) {
  switch (v->type) {
    case ASN_INTEGER: case ASN_GAUGE: case ASN_TIMETICKS: case ASN_COUNTER:
      if (!v->val.integer || v->val_len != sizeof(long)) return std::nullopt;
      return *v->val.integer;
    default: return std::nullopt;
  }
}

std::string as_string(const netsnmp_variable_list* v) {
  if (v->type != ASN_OCTET_STR || !v->val.string) return {};
  return std::string(reinterpret_cast<const char*>(v->val.string), v->val_len);
}

bool is_exception(const netsnmp_variable_list* v) {
  return v->type == SNMP_NOSUCHOBJECT || v->type == SNMP_NOSUCHINSTANCE || v->type == SNMP_ENDOFMIBVIEW;
}

// ifIndex and entPhysicalIndex are 1..2147483647 (IF-MIB InterfaceIndex, ENTITY-MIB
// PhysicalIndex); an arc outside that range is not an interface of ours.
std::optional<int> index_arc(oid arc) {
  if (arc < 1 || arc > static_cast<oid>(INT_MAX)) return std::nullopt;
  return static_cast<int>(arc);
}

}  // namespace

Oid parse_oid(const std::string& s) {
  Oid out;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = s.find('.', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(std::strtoul(s.substr(i, j - i).c_str(), nullptr, 10));
    i = j + 1;
  }
  return out;
}

const Oid kSysUpTimeColumn = parse_oid("1.3.6.1.2.1.1.3");
const Oid kEntAliasMappingIdentifier = parse_oid("1.3.6.1.2.1.47.1.3.2.1.2");

std::vector<WalkColumn> interface_columns() {
  std::vector<WalkColumn> columns = {
      {append(kIfEntry, {7}), {}, IfField::Admin},       {append(kIfEntry, {8}), {}, IfField::Oper},
      {append(kIfEntry, {9}), {}, IfField::LastChange},  {append(kIfXEntry, {1}), {}, IfField::Name},
      {append(kIfXEntry, {15}), {}, IfField::HighSpeed}, {append(kIfXEntry, {18}), {}, IfField::Alias}};
  for (auto& c : columns) c.cur = c.base;
  return columns;
}

void apply_walk(const netsnmp_variable_list* v, bool with_uptime, const std::vector<std::size_t>& in_request,
                std::vector<WalkColumn>& columns, SwitchStatus& status) {
  if (with_uptime && v) {
    if (auto t = as_long(v); t && v->type == ASN_TIMETICKS && has_prefix(v->name, v->name_length, kSysUpTimeColumn))
      status.sys_uptime = static_cast<unsigned long>(*t);
    v = v->next_variable;
  }
  if (in_request.empty()) return;
  std::vector<bool> ended(in_request.size(), false);
  for (std::size_t i = 0; v; v = v->next_variable, ++i) {
    std::size_t slot = i % in_request.size();
    if (ended[slot]) continue;
    WalkColumn& c = columns.at(in_request[slot]);
    bool progressed = snmp_oid_compare(v->name, v->name_length, c.cur.data(), c.cur.size()) > 0;
    auto if_index = v->name_length == c.base.size() + 1 ? index_arc(v->name[c.base.size()]) : std::nullopt;
    if (is_exception(v) || !progressed || !if_index || !has_prefix(v->name, v->name_length, c.base)) {
      ended[slot] = true;
      c.done = true;
      continue;
    }
    c.cur.assign(v->name, v->name + v->name_length);
    PortStatus& p = status.ports[*if_index];
    p.if_index = *if_index;
    switch (c.field) {
      case IfField::Admin: p.admin = as_long(v); break;
      case IfField::Oper: p.oper = as_long(v); break;
      case IfField::LastChange: if (auto x = as_long(v)) p.last_change = static_cast<unsigned long>(*x); break;
      case IfField::Name: p.name = as_string(v); break;
      case IfField::HighSpeed: if (auto x = as_long(v)) p.high_speed = static_cast<unsigned long>(*x); break;
      case IfField::Alias: p.alias = as_string(v); break;
    }
  }
}

bool apply_alias(const netsnmp_variable_list* vars, Oid& cursor, std::map<int, long>& ent_of_if) {
  bool more = vars != nullptr;
  for (auto* v = vars; v; v = v->next_variable) {
    // Index: entPhysicalIndex.entLogicalIndexOrZero; value: OID of ifIndex.<n>.
    if (is_exception(v) || !has_prefix(v->name, v->name_length, kEntAliasMappingIdentifier) ||
        snmp_oid_compare(v->name, v->name_length, cursor.data(), cursor.size()) <= 0) {
      more = false;
      break;
    }
    cursor.assign(v->name, v->name + v->name_length);
    if (v->type != ASN_OBJECT_ID || !v->val.objid) continue;
    std::size_t n = v->val_len / sizeof(oid);
    const oid* val = v->val.objid;
    if (n != kIfIndexColumn.size() + 1 || !std::equal(kIfIndexColumn.begin(), kIfIndexColumn.end(), val)) continue;
    auto if_index = index_arc(val[n - 1]);
    auto entity = index_arc(v->name[kEntAliasMappingIdentifier.size()]);
    if (if_index && entity) ent_of_if.emplace(*if_index, *entity);
  }
  return more;
}

namespace {

// One power value (a varbind of `column`) -> dBm, or the note saying why there is none.
std::optional<double> power_of(const netsnmp_variable_list* value, std::optional<long> precision,
                               const VendorProfile& profile, const char* direction, std::string& note) {
  std::optional<long> raw = value && !is_exception(value) ? as_long(value) : std::nullopt;
  if (!raw) {
    note = std::string("the switch has no optical ") + direction + " power reading for this port (no transceiver, or copper)";
    return std::nullopt;
  }
  if (profile.absent_values.count(*raw)) {
    note = "the switch reports " + std::to_string(*raw) + " for the " + direction +
           " power, its \"no reading\" value (no transceiver, or the module gives no reading)";
    return std::nullopt;
  }
  auto dbm = profile.to_dbm(*raw, precision);
  if (!dbm || !std::isfinite(*dbm)) {
    note = std::string("the switch reports no optical ") + direction + " power for this port";
    return std::nullopt;
  }
  return dbm;
}

// The module's alarm thresholds of one direction, or the note saying why they are not usable.
std::optional<PowerWindow> window_of(const netsnmp_variable_list* low, const netsnmp_variable_list* high,
                                     std::optional<long> precision, const VendorProfile& profile,
                                     const char* direction, std::string& note) {
  std::string low_note, high_note;
  auto lo = power_of(low, precision, profile, direction, low_note);
  auto hi = power_of(high, precision, profile, direction, high_note);
  if (!lo || !hi) {
    std::optional<long> raw_lo = low && !is_exception(low) ? as_long(low) : std::nullopt;
    std::optional<long> raw_hi = high && !is_exception(high) ? as_long(high) : std::nullopt;
    auto shown = [](std::optional<long> r) { return r ? std::to_string(*r) : std::string("none"); };
    note = std::string("the module reports no usable ") + direction + " alarm thresholds (low " + shown(raw_lo) +
           ", high " + shown(raw_hi) + ")";
    return std::nullopt;
  }
  if (*lo >= *hi) {
    char b[96];
    std::snprintf(b, sizeof b, " alarm thresholds are not a window (low %.2f dBm, high %.2f dBm)", *lo, *hi);
    note = std::string("the module's ") + direction + b;
    return std::nullopt;
  }
  return PowerWindow{*lo, *hi};
}

}  // namespace

void apply_optics(long errstat, const netsnmp_variable_list* v, const std::vector<int>& batch,
                  const VendorProfile& profile, std::map<int, PortStatus>& ports) {
  const std::vector<ReadingColumn> columns = profile.reading_columns();
  const bool with_precision = !profile.precision_oid.empty();
  if (errstat != SNMP_ERR_NOERROR) {
    for (int idx : batch)
      ports[idx].no_optics(std::string("switch refused the optical power request: ") +
                               snmp_errstring(static_cast<int>(errstat)),
                           profile);
    return;
  }
  for (int idx : batch) {
    PortStatus& p = ports[idx];
    // This port's varbinds, by what they read, in request order (missing when the answer ran out).
    std::map<Reading, const netsnmp_variable_list*> got;
    for (const auto& c : columns) {
      got[c.what] = v;
      v = v ? v->next_variable : nullptr;
    }
    const netsnmp_variable_list* precision = nullptr;
    if (with_precision) {
      precision = v;
      v = v ? v->next_variable : nullptr;
    }
    std::optional<long> prec;
    if (precision && !is_exception(precision)) prec = as_long(precision);
    // ENTITY-SENSOR-MIB EntitySensorPrecision is -8..9; anything else is not a reading.
    if (prec && (*prec < -8 || *prec > 9)) {
      p.no_optics("the switch reports an impossible sensor precision (" + std::to_string(*prec) + ") for this port",
                  profile);
      continue;
    }
    if (auto it = got.find(Reading::Dom); it != got.end() && it->second && !is_exception(it->second)) {
      if (auto dom = as_long(it->second); dom && *dom == 2) {  // TruthValue false
        p.no_optics("the transceiver has no digital diagnostics (DOM): its optical power is not known", profile);
        continue;
      }
    }
    auto at = [&](Reading r) { auto it = got.find(r); return it == got.end() ? nullptr : it->second; };
    if (!profile.rx_power_oid.empty()) p.rx_dbm = power_of(at(Reading::RxPower), prec, profile, "receive", p.rx_note);
    if (!profile.tx_power_oid.empty()) p.tx_dbm = power_of(at(Reading::TxPower), prec, profile, "transmit", p.tx_note);
    if (!profile.rx_low_alarm_oid.empty())
      p.rx_alarm = window_of(at(Reading::RxLowAlarm), at(Reading::RxHighAlarm), prec, profile, "receive", p.rx_alarm_note);
    if (!profile.tx_low_alarm_oid.empty())
      p.tx_alarm = window_of(at(Reading::TxLowAlarm), at(Reading::TxHighAlarm), prec, profile, "transmit", p.tx_alarm_note);
  }
}

}  // namespace campus::fiber
