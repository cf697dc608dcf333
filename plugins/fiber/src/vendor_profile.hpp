// Vendor profiles: where a switch model keeps its optical receive power, as data (one TOML
// file per profile) so a county can add a model without code. See profiles/README in README.md.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "campus/error.hpp"

namespace campus::fiber {

struct VendorProfile {
  std::string name;         // file stem: "h3c"
  std::string description;
  // Empty: the model has no readable optical power; rooms are judged on link state only.
  std::string rx_power_oid;  // numeric column OID; the instance is appended
  enum class Index { IfIndex, EntAliasMapping } index = Index::IfIndex;
  enum class Unit { Dbm, Milliwatt, Microwatt } unit = Unit::Dbm;
  double scale = 1.0;        // value in `unit` = raw * scale
  std::string precision_oid;  // ENTITY-SENSOR: value * 10^-precision (then scale/unit)
  std::set<long> absent_values;  // raw values meaning "no transceiver / no reading"

  // Raw reading -> dBm; nullopt when the value means "no reading" or power is zero.
  std::optional<double> to_dbm(long raw, std::optional<long> precision) const;
};

// Reads every *.toml in `dir` (and the profiles of `extra` directories, which override by name).
struct ProfileSet {
  std::map<std::string, VendorProfile> profiles;
  Errors errors;
  std::set<std::string> names() const;
};
ProfileSet load_profiles(const std::vector<std::filesystem::path>& dirs);
Result<VendorProfile> parse_profile(const std::string& text, const std::string& name, const std::string& file);

}  // namespace campus::fiber
