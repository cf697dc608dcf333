// Loading vendor profiles from TOML files.
#include "vendor_profile.hpp"

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
  for (auto&& [k, v] : t) {
    static const std::set<std::string> known = {"description", "rx_power_oid", "index", "unit", "scale",
                                                "precision_oid", "absent_values"};
    if (!known.count(std::string(k.str())))
      return Error{where(std::string(k.str())), "unknown key", "known keys: description, rx_power_oid, index, unit, scale, precision_oid, absent_values"};
  }
  p.description = t["description"].value_or(std::string{});
  p.rx_power_oid = strip_dot(t["rx_power_oid"].value_or(std::string{}));
  if (!p.rx_power_oid.empty() && !numeric_oid(p.rx_power_oid))
    return Error{where("rx_power_oid"), "not a numeric OID: \"" + p.rx_power_oid + "\"", "write digits and dots, e.g. 1.3.6.1.4.1.25506.2.70.1.1.1.12"};
  p.precision_oid = strip_dot(t["precision_oid"].value_or(std::string{}));
  if (!p.precision_oid.empty() && !numeric_oid(p.precision_oid))
    return Error{where("precision_oid"), "not a numeric OID: \"" + p.precision_oid + "\"", ""};
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
