// Loading vendor profiles from TOML files.
#include "vendor_profile.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

namespace campus::fiber {
namespace {

bool numeric_oid(const std::string& s) {
  // Digits separated by single dots, at least two arcs: "1.3.6.1.4.1".
  std::size_t arcs = 0, digits = 0;
  for (char c : s) {
    if (c == '.') { if (digits == 0) return false; ++arcs; digits = 0; }
    else if (c >= '0' && c <= '9') ++digits;
    else return false;
  }
  return digits > 0 && arcs >= 1;
}

std::string strip_dot(std::string s) {
  if (!s.empty() && s.front() == '.') s.erase(0, 1);
  return s;
}

}  // namespace

std::optional<double> VendorProfile::to_dbm(long raw, std::optional<long> precision) const {
  if (absent_values.count(raw)) return std::nullopt;
  double v = static_cast<double>(raw);
  if (precision) v *= std::pow(10.0, -static_cast<double>(*precision));
  v *= scale;
  switch (unit) {
    case Unit::Dbm: return v;
    case Unit::Milliwatt: if (v <= 0) return std::nullopt; return 10.0 * std::log10(v);
    case Unit::Microwatt: if (v <= 0) return std::nullopt; return 10.0 * std::log10(v / 1000.0);
  }
  return std::nullopt;
}

std::vector<ReadingColumn> VendorProfile::reading_columns() const {
  std::vector<ReadingColumn> out;
  for (auto [what, oid] : {std::pair<Reading, const std::string*>{Reading::RxPower, &rx_power_oid},
                           {Reading::TxPower, &tx_power_oid},
                           {Reading::RxLowAlarm, &rx_low_alarm_oid},
                           {Reading::RxHighAlarm, &rx_high_alarm_oid},
                           {Reading::TxLowAlarm, &tx_low_alarm_oid},
                           {Reading::TxHighAlarm, &tx_high_alarm_oid},
                           {Reading::Dom, &dom_oid}})
    if (!oid->empty()) out.push_back({what, *oid});
  return out;
}

std::set<std::string> ProfileSet::names() const {
  std::set<std::string> n;
  for (const auto& [k, v] : profiles) n.insert(k);
  return n;
}

Result<VendorProfile> parse_profile(const std::string& text, const std::string& name, const std::string& file) {
  toml::table t;
  try {
    t = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    return Error{file + ":" + std::to_string(e.source().begin.line), std::string(e.description()), ""};
  }
  VendorProfile p;
  p.name = name;
  auto where = [&](const std::string& key) {
    if (auto* n = t.get(key)) return file + ":" + std::to_string(n->source().begin.line) + " key " + key;
    return file + " key " + key;
  };
  static const std::vector<std::string> known = {
      "description",       "rx_power_oid",      "tx_power_oid",      "rx_low_alarm_oid", "rx_high_alarm_oid",
      "tx_low_alarm_oid",  "tx_high_alarm_oid", "dom_oid",           "rx_min_dbm",       "rx_max_dbm",
      "tx_min_dbm",        "tx_max_dbm",        "index",             "unit",             "scale",
      "precision_oid",     "absent_values"};
  for (auto&& [k, v] : t) {
    if (std::find(known.begin(), known.end(), std::string(k.str())) == known.end()) {
      std::string list;
      for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
      return Error{where(std::string(k.str())), "unknown key", "known keys: " + list};
    }
  }
  p.description = t["description"].value_or(std::string{});
  auto oid_key = [&](const char* key, std::string& into) -> std::optional<Error> {
    into = strip_dot(t[key].value_or(std::string{}));
    if (!into.empty() && !numeric_oid(into))
      return Error{where(key), "not a numeric OID: \"" + into + "\"",
                   "write digits and dots, e.g. 1.3.6.1.4.1.25506.2.70.1.1.1.12"};
    return std::nullopt;
  };
  for (auto [key, into] : {std::pair<const char*, std::string*>{"rx_power_oid", &p.rx_power_oid},
                           {"tx_power_oid", &p.tx_power_oid},
                           {"rx_low_alarm_oid", &p.rx_low_alarm_oid},
                           {"rx_high_alarm_oid", &p.rx_high_alarm_oid},
                           {"tx_low_alarm_oid", &p.tx_low_alarm_oid},
                           {"tx_high_alarm_oid", &p.tx_high_alarm_oid},
                           {"dom_oid", &p.dom_oid},
                           {"precision_oid", &p.precision_oid}})
    if (auto e = oid_key(key, *into)) return *e;
  // Thresholds come in pairs: one without the other could not be judged against.
  for (auto [low, high] : {std::pair<const char*, const char*>{"rx_low_alarm_oid", "rx_high_alarm_oid"},
                           {"tx_low_alarm_oid", "tx_high_alarm_oid"}})
    if (t[low].is_value() != t[high].is_value())
      return Error{where(t[low].is_value() ? low : high), std::string("given without ") + (t[low].is_value() ? high : low),
                   "give both alarm thresholds of a direction, or neither"};
  auto window = [&](const char* min_key, const char* max_key, std::optional<PowerWindow>& into) -> std::optional<Error> {
    auto* lo = t.get(min_key);
    auto* hi = t.get(max_key);
    if (!lo && !hi) return std::nullopt;
    if (!lo || !hi)
      return Error{where(lo ? min_key : max_key), std::string("given without ") + (lo ? max_key : min_key),
                   "give both limits of the window, or neither (the audit's own window is used then)"};
    auto l = lo->value<double>(), h = hi->value<double>();
    if (!l || !h) return Error{where(l ? max_key : min_key), "expected a number of dBm", "e.g. -19.0"};
    if (*l >= *h) return Error{where(max_key), std::string("must be above ") + min_key, ""};
    into = PowerWindow{*l, *h};
    return std::nullopt;
  };
  if (auto e = window("rx_min_dbm", "rx_max_dbm", p.rx_window)) return *e;
  if (auto e = window("tx_min_dbm", "tx_max_dbm", p.tx_window)) return *e;
  std::string index = t["index"].value_or(std::string("ifIndex"));
  if (index == "ifIndex") p.index = VendorProfile::Index::IfIndex;
  else if (index == "entAliasMapping") p.index = VendorProfile::Index::EntAliasMapping;
  else return Error{where("index"), "unknown index \"" + index + "\"", "ifIndex or entAliasMapping"};
  std::string unit = t["unit"].value_or(std::string("dBm"));
  if (unit == "dBm") p.unit = VendorProfile::Unit::Dbm;
  else if (unit == "mW") p.unit = VendorProfile::Unit::Milliwatt;
  else if (unit == "uW") p.unit = VendorProfile::Unit::Microwatt;
  else return Error{where("unit"), "unknown unit \"" + unit + "\"", "dBm, mW or uW"};
  if (auto* s = t.get("scale")) {
    if (auto d = s->value<double>()) p.scale = *d;
    else return Error{where("scale"), "expected a number", "e.g. 0.01"};
  }
  if (auto* a = t.get("absent_values")) {
    auto* arr = a->as_array();
    if (!arr) return Error{where("absent_values"), "expected an array of integers", ""};
    for (auto& v : *arr) {
      auto i = v.value<long>();
      if (!i) return Error{where("absent_values"), "expected an array of integers", ""};
      p.absent_values.insert(*i);
    }
  }
  return p;
}

ProfileSet load_profiles(const std::vector<std::filesystem::path>& dirs) {
  ProfileSet set;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      set.errors.push_back({dir.string(), "vendor profile directory does not exist", ""});
      continue;
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".toml") continue;
      std::ifstream in(entry.path());
      std::stringstream ss;
      ss << in.rdbuf();
      auto p = parse_profile(ss.str(), entry.path().stem().string(), entry.path().string());
      if (!p) set.errors.push_back(p.error());
      else set.profiles[p->name] = *p;
    }
  }
  return set;
}

}  // namespace campus::fiber
