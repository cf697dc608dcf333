// Polling every switch of a school at once with net-snmp, on one worker thread that owns all
// sessions (single-session API, one poll() loop), so the io_context never blocks and a dead
// switch costs one timeout x (retries + 1) in parallel with the others, not in sequence.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "campus/asio.hpp"
#include "campus/units.hpp"
#include "room_register.hpp"
#include "vendor_profile.hpp"

namespace campus::fiber {

// One interface as the switch reported it; a field is nullopt when the switch did not return it.
struct PortStatus {
  int if_index = 0;
  std::optional<std::string> name;        // ifName
  std::optional<std::string> alias;       // ifAlias
  std::optional<long> admin;              // ifAdminStatus: 1 up, 2 down, 3 testing
  std::optional<long> oper;               // ifOperStatus: 1 up, 2 down, ... 7 lowerLayerDown
  std::optional<unsigned long> last_change;  // ifLastChange, TimeTicks (1/100 s)
  std::optional<unsigned long> high_speed;   // ifHighSpeed, Mbit/s
  std::optional<double> rx_dbm;           // optical receive power, when the profile knows it
  std::string rx_note;                    // why rx_dbm is missing, when it was asked for
  std::optional<double> tx_dbm;           // optical transmit power, likewise
  std::string tx_note;
  // The transceiver's own alarm thresholds, when the profile knows where they are and the
  // module reports them; *_alarm_note says why not when they were asked for.
  std::optional<PowerWindow> rx_alarm, tx_alarm;
  std::string rx_alarm_note, tx_alarm_note;
  // No optical reading for this port, for the reason given (both directions the profile reads).
  void no_optics(const std::string& why, const VendorProfile& profile) {
    if (!profile.rx_power_oid.empty()) rx_note = why;
    if (!profile.tx_power_oid.empty()) tx_note = why;
  }
};

struct SwitchStatus {
  std::string id;
  bool answered = false;   // at least the interface walk succeeded
  std::string error;       // why not: "no answer from 10.0.0.2:161 after 2 tries of 1s ..."
  std::optional<unsigned long> sys_uptime;  // TimeTicks
  std::map<int, PortStatus> ports;          // by ifIndex
  Millis elapsed{0};
  int requests = 0;
};

struct SnmpTarget {
  std::string id;
  std::string host;
  std::uint16_t port = 161;
  std::string version = "2c";
  std::string community;  // v2c
  std::string user, auth_protocol, auth_key, priv_protocol, priv_key;  // v3
  VendorProfile profile;
  std::vector<PortRef> wanted;  // the register's ports on this switch (for optical power)
};

struct PollOptions {
  Millis timeout{1000};  // per request try
  int retries = 1;
  int bulk_rows = 10;  // GETBULK max-repetitions (net-snmp #defines that name)
  int max_varbinds = 40;     // per GET
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// The ifIndex a register port names on this switch, or nullopt when it is not there.
std::optional<int> resolve_port(const PortRef& ref, const std::map<int, PortStatus>& ports);

// REQUIRES: io outlives the poller. start() once; `done` runs on io with one status per target
// (same order). cancel() ends the poll early; `done` still runs (remaining switches carry
// error "cancelled").
class SwitchPoller : public std::enable_shared_from_this<SwitchPoller> {
 public:
  explicit SwitchPoller(asio::io_context& io) : io_(io) {}
  ~SwitchPoller();
  void start(std::vector<SnmpTarget> targets, PollOptions options,
             std::function<void(std::vector<SwitchStatus>)> done);
  void cancel() { cancelled_ = true; }

 private:
  void run(std::vector<SnmpTarget> targets, PollOptions options,
           std::function<void(std::vector<SwitchStatus>)> done);
  asio::io_context& io_;
  // Keeps io.run() from returning while the worker still has a result to post.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread worker_;
  std::atomic<bool> cancelled_{false};
};

// Initialises net-snmp once per process: no MIB files, no config files, numeric OIDs only.
void init_netsnmp();

}  // namespace campus::fiber
