// Vendor profiles: where a switch model keeps each transceiver's optical receive and transmit
// power and its own alarm thresholds, as data (one TOML file per profile) so a county can add a
// model without code. See "Vendor profiles" in README.md.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "campus/error.hpp"

namespace campus::fiber {

// An optical power window in dBm, min < max.
struct PowerWindow {
  double min_dbm = 0;
  double max_dbm = 0;
};

// What a profile can read for one port. Every column has the same index, unit and scale.
enum class Reading { RxPower, TxPower, RxLowAlarm, RxHighAlarm, TxLowAlarm, TxHighAlarm, Dom };

struct ReadingColumn {
  Reading what;
  std::string oid;  // numeric column OID; the instance is appended
};

struct VendorProfile {
  std::string name;         // file stem: "h3c"
  std::string description;
  // Empty: the model has no readable optical power; rooms are judged on link state only.
  std::string rx_power_oid;  // numeric column OID; the instance is appended
  std::string tx_power_oid;
  // The transceiver's own alarm thresholds, read per port (empty: the model does not report them).
  std::string rx_low_alarm_oid, rx_high_alarm_oid, tx_low_alarm_oid, tx_high_alarm_oid;
  // A TruthValue column: false (2) means the module has no digital diagnostics (DOM).
  std::string dom_oid;
  // Used when the module's own thresholds are not known; unset: the audit's global window.
  std::optional<PowerWindow> rx_window, tx_window;
  enum class Index { IfIndex, EntAliasMapping } index = Index::IfIndex;
  enum class Unit { Dbm, Milliwatt, Microwatt } unit = Unit::Dbm;
  double scale = 1.0;        // value in `unit` = raw * scale
  std::string precision_oid;  // ENTITY-SENSOR: value * 10^-precision (then scale/unit)
  std::set<long> absent_values;  // raw values meaning "no transceiver / no reading"

  // Raw reading -> dBm; nullopt when the value means "no reading" or power is zero.
  std::optional<double> to_dbm(long raw, std::optional<long> precision) const;
  // The columns to GET for each port, in request order (precision_oid, when set, follows them).
  std::vector<ReadingColumn> reading_columns() const;
  bool reads_optics() const { return !rx_power_oid.empty() || !tx_power_oid.empty(); }
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
