// Judging one room from what its switch port and endpoint showed: covered, degraded, down,
// not_planned or unknown, always with the reason a school can act on.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "campus/probe.hpp"
#include "campus/units.hpp"
#include "room_register.hpp"
#include "switch_poller.hpp"

namespace campus::fiber {

enum class RoomState { Covered, Degraded, Down, NotPlanned, Unknown };
const char* to_string(RoomState s);

// The audit's own limits. The optical windows are the last resort: a transceiver's own alarm
// thresholds (when the switch reports them) come first, the vendor profile's window next.
struct Thresholds {
  long min_speed_mbps = 1000;
  double rx_min_dbm = -20.0;
  double rx_max_dbm = -1.0;
  double rx_margin_db = 3.0;   // within this of a limit: degraded
  double tx_min_dbm = -12.0;
  double tx_max_dbm = 3.0;
  double tx_margin_db = 1.0;
  Millis flap_window{std::chrono::minutes(15)};
};

// What the audit learned about the room's link. Pointers are null when not asked.
struct RoomEvidence {
  const Switch* sw = nullptr;              // the register's switch (null: none or unknown)
  const SwitchStatus* switch_status = nullptr;
  std::optional<ProbeResult> endpoint;     // set when the room has an endpoint and it was probed
  const VendorProfile* profile = nullptr;  // the switch's profile (its default power windows)
};

struct Verdict {
  RoomState state = RoomState::Unknown;
  std::string reason;
  nlohmann::json details = nlohmann::json::object();
};

Verdict classify(const Room& room, const RoomEvidence& evidence, const Thresholds& limits);

// "up", "down", "lowerLayerDown", ... for ifOperStatus / ifAdminStatus values.
std::string oper_status_name(long v);

}  // namespace campus::fiber
