// One fiber coverage audit run: read the registers, poll every switch and probe every room
// endpoint concurrently, classify each room and total per room type.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "campus/plugin.hpp"
#include "campus/probe.hpp"
#include "classify.hpp"
#include "room_register.hpp"
#include "switch_poller.hpp"
#include "vendor_profile.hpp"

namespace campus::fiber {

struct FiberSettings {
  std::filesystem::path rooms_file;
  std::filesystem::path switches_file;
  std::vector<std::filesystem::path> profile_dirs;  // later directories override earlier ones
  std::string default_profile = "generic";
  std::optional<std::string> community;             // default v2c community (from a secret file)
  Thresholds limits;
  Millis snmp_timeout{1000};
  int snmp_retries = 1;
  int snmp_max_repetitions = 10;
  Millis endpoint_timeout{2000};
  int max_parallel_probes = 256;
  // Reads a secret file (community, v3 keys named in the switch list) with the core's checks.
  std::function<Result<std::string>(const std::filesystem::path&)> read_secret;
};

// The built-in profile directory: the installed one, or the source tree's in a build tree.
std::filesystem::path builtin_profile_dir();

// [audits.fiber] of agent.toml (every key is in README "Options"); bad values are the
// reader's errors. profile_dirs: the built-in directory, then `profiles_dir` when given.
FiberSettings read_fiber_settings(TableReader& r);

// What the probes found, by room and switch, ready to classify.
struct Observations {
  std::vector<SwitchStatus> switches;             // same order as Registers::switches
  std::map<std::string, ProbeResult> endpoints;   // by room id
};

// Classifies every room and builds the report (summary per room type, findings, errors).
// `profiles` (by name) give the switches' default power windows.
AuditReport build_report(const Registers& registers, const Observations& seen, const Thresholds& limits,
                         const std::map<std::string, VendorProfile>& profiles = {});

class FiberRun : public std::enable_shared_from_this<FiberRun> {
 public:
  FiberRun(asio::io_context& io, FiberSettings settings, SteadyTime deadline,
           std::shared_ptr<spdlog::logger> log, std::function<void(AuditReport)> done);
  void start();
  void cancel();

 private:
  void probe_next();
  void maybe_finish();
  asio::io_context& io_;
  FiberSettings settings_;
  SteadyTime deadline_;
  SteadyTime soft_deadline_;  // a little before deadline_: probes end, the report is still made
  std::shared_ptr<spdlog::logger> log_;
  std::function<void(AuditReport)> done_;
  Registers registers_;
  std::map<std::string, VendorProfile> profiles_;
  Errors extra_errors_;
  Observations seen_;
  std::shared_ptr<SwitchPoller> poller_;
  bool switches_done_ = false;
  std::vector<const Room*> probe_queue_;
  std::size_t probes_started_ = 0, probes_done_ = 0;
  bool cancelled_ = false, finished_ = false;
  SteadyTime started_;
};

}  // namespace campus::fiber
