// Room classification rules (plugins/fiber/README.md, "Room states"). Pure: no I/O, unit-tested on its own.
#include "classify.hpp"

#include <cmath>
#include <cstdio>

namespace campus::fiber {
namespace {

// Severity when the switch and the endpoint disagree: the worse one wins.
int rank(RoomState s) {
  switch (s) {
    case RoomState::Covered: return 0;
    case RoomState::Degraded: return 1;
    case RoomState::Unknown: return 2;
    case RoomState::Down: return 3;
    case RoomState::NotPlanned: return 4;
  }
  return 0;
}

std::string dbm(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f dBm", v);
  return buf;
}

double round1(double v) { return std::round(v * 10.0) / 10.0; }

struct Part {
  RoomState state = RoomState::Covered;
  std::vector<std::string> reasons;
  void worsen(RoomState s, std::string why) {
    if (rank(s) > rank(state)) state = s;
    if (s != RoomState::Covered) reasons.push_back(std::move(why));
  }
};

// The window one direction's power is judged against, and where it came from.
struct Window {
  PowerWindow limits;
  double margin_db = 0;
  std::string from;     // "module" | "profile" | "audit": the finding's *_limits_from
  std::string source;   // the same for the reason: "the module's own alarm thresholds", ...
};

// The first known of: the module's own alarm thresholds, the profile's window, the audit's.
Window power_window(const std::optional<PowerWindow>& module, const VendorProfile* profile, const std::string& dir,
                    const Thresholds& lim) {
  const bool rx = dir == "rx";
  const double margin = rx ? lim.rx_margin_db : lim.tx_margin_db;
  if (module) return {*module, margin, "module", "the module's own alarm thresholds"};
  const std::optional<PowerWindow> own = profile ? (rx ? profile->rx_window : profile->tx_window) : std::nullopt;
  if (own) return {*own, margin, "profile", "profile " + profile->name + "'s " + dir + "_min_dbm/" + dir + "_max_dbm"};
  PowerWindow audit = rx ? PowerWindow{lim.rx_min_dbm, lim.rx_max_dbm} : PowerWindow{lim.tx_min_dbm, lim.tx_max_dbm};
  return {audit, margin, "audit", "the audit's " + dir + "_min_dbm/" + dir + "_max_dbm"};
}

// Optical power of one direction ("rx" or "tx") against its window: outside, or within the
// margin of a limit, is degraded (the link is up, so it still carries traffic).
void judge_power(const Window& w, const std::optional<double>& value, const std::string& dir, Part& part,
                 nlohmann::json& d) {
  if (!value) return;
  d[dir + "_limits_dbm"] = {round1(w.limits.min_dbm), round1(w.limits.max_dbm)};
  d[dir + "_limits_from"] = w.from;
  const char* what = dir == "rx" ? "optical power" : "transmit power";
  double v = *value;
  std::string range = "[" + dbm(w.limits.min_dbm) + ", " + dbm(w.limits.max_dbm) + "] (" + w.source + ")";
  char margin[16];
  std::snprintf(margin, sizeof margin, "%g", w.margin_db);
  if (v < w.limits.min_dbm || v > w.limits.max_dbm)
    part.worsen(RoomState::Degraded, std::string(what) + " out of range: " + dir + " " + dbm(v) + " outside " + range);
  else if (v < w.limits.min_dbm + w.margin_db || v > w.limits.max_dbm - w.margin_db)
    part.worsen(RoomState::Degraded, std::string(what) + " near a limit: " + dir + " " + dbm(v) + " within " + margin +
                                         " dB of " + range);
}

void judge_port(const Room& room, const RoomEvidence& ev, const Thresholds& lim, Part& part, nlohmann::json& d) {
  const std::string sw_name = "switch " + room.switch_id;
  d["switch"] = room.switch_id;
  d["port"] = room.port ? room.port->text() : "";
  if (!ev.sw) return part.worsen(RoomState::Unknown, sw_name + " is not in the switch list");
  if (!ev.sw->invalid.empty()) return part.worsen(RoomState::Unknown, sw_name + " has a bad entry: " + ev.sw->invalid);
  const SwitchStatus* st = ev.switch_status;
  if (!st) return part.worsen(RoomState::Unknown, sw_name + " was not polled");
  if (!st->answered) return part.worsen(RoomState::Unknown, sw_name + " could not be asked: " + st->error);
  auto idx = room.port ? resolve_port(*room.port, st->ports) : std::nullopt;
  if (!idx) return part.worsen(RoomState::Unknown, "port " + d["port"].get<std::string>() + " not found on " + sw_name);
  const PortStatus& p = st->ports.at(*idx);
  d["if_index"] = *idx;
  if (p.name) d["if_name"] = *p.name;
  if (p.alias && !p.alias->empty()) d["if_alias"] = *p.alias;
  if (p.admin) d["admin"] = oper_status_name(*p.admin);
  if (p.oper) d["oper"] = oper_status_name(*p.oper);
  if (p.high_speed) d["speed_mbps"] = *p.high_speed;
  if (p.rx_dbm) d["rx_dbm"] = round1(*p.rx_dbm);
  if (!p.rx_note.empty()) d["rx_note"] = p.rx_note;
  if (p.tx_dbm) d["tx_dbm"] = round1(*p.tx_dbm);
  if (!p.tx_note.empty()) d["tx_note"] = p.tx_note;
  // Why the module's own thresholds were not used, when the profile asked for them.
  if (!p.rx_alarm_note.empty()) d["rx_limits_note"] = p.rx_alarm_note;
  if (!p.tx_alarm_note.empty()) d["tx_limits_note"] = p.tx_alarm_note;

  if (!p.admin || !p.oper)
    return part.worsen(RoomState::Unknown, sw_name + " returned no admin/oper status for port " + d["port"].get<std::string>());
  if (*p.admin != 1)
    return part.worsen(RoomState::Down, "port " + d["port"].get<std::string>() + " on " + sw_name +
                                            " is administratively " + oper_status_name(*p.admin));
  if (*p.oper != 1)
    return part.worsen(RoomState::Down, "link down: port " + d["port"].get<std::string>() + " on " + sw_name +
                                            " is " + oper_status_name(*p.oper));
  if (p.high_speed && static_cast<long>(*p.high_speed) < lim.min_speed_mbps)
    part.worsen(RoomState::Degraded, "speed " + std::to_string(*p.high_speed) + " Mbit/s below minimum " +
                                         std::to_string(lim.min_speed_mbps) + " Mbit/s");
  if (!p.high_speed) part.worsen(RoomState::Degraded, "speed unknown (switch has no ifHighSpeed for the port)");
  judge_power(power_window(p.rx_alarm, ev.profile, "rx", lim), p.rx_dbm, "rx", part, d);
  judge_power(power_window(p.tx_alarm, ev.profile, "tx", lim), p.tx_dbm, "tx", part, d);
  if (p.last_change && *p.last_change > 0 && st->sys_uptime && *st->sys_uptime >= *p.last_change) {
    auto ago = Millis(static_cast<long long>(*st->sys_uptime - *p.last_change) * 10);
    d["last_change_s"] = ago.count() / 1000;
    if (ago < lim.flap_window)
      part.worsen(RoomState::Degraded, "flapping: link changed state " + format_duration(std::chrono::duration_cast<std::chrono::seconds>(ago)) +
                                           " ago (window " + format_duration(lim.flap_window) + ")");
  }
}

void judge_endpoint(const Room& room, const RoomEvidence& ev, Part& part, nlohmann::json& d) {
  d["endpoint"] = room.endpoint->text;
  if (!ev.endpoint) return part.worsen(RoomState::Unknown, "endpoint " + room.endpoint->text + " was not probed");
  d["endpoint_reachable"] = ev.endpoint->reachable;
  if (ev.endpoint->reachable) {
    d["rtt_ms"] = ev.endpoint->rtt.count();
    return;
  }
  // The agent itself may not send ICMP (probe.hpp documents this reason): nothing is known.
  if (ev.endpoint->reason.rfind("ICMP not permitted", 0) == 0)
    return part.worsen(RoomState::Unknown, "endpoint " + room.endpoint->text + " could not be probed: " + ev.endpoint->reason);
  part.worsen(RoomState::Down, "endpoint " + room.endpoint->text + " unreachable: " + ev.endpoint->reason);
}

}  // namespace

const char* to_string(RoomState s) {
  switch (s) {
    case RoomState::Covered: return "covered";
    case RoomState::Degraded: return "degraded";
    case RoomState::Down: return "down";
    case RoomState::NotPlanned: return "not_planned";
    case RoomState::Unknown: return "unknown";
  }
  return "?";
}

std::string oper_status_name(long v) {
  static const char* names[] = {"", "up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown"};
  if (v >= 1 && v <= 7) return names[v];
  return "status " + std::to_string(v);
}

Verdict classify(const Room& room, const RoomEvidence& ev, const Thresholds& lim) {
  Verdict v;
  auto& d = v.details;
  d["name"] = room.name;
  d["type"] = room.type ? to_string(*room.type) : "";
  if (!room.building.empty()) d["building"] = room.building;
  if (!room.floor.empty()) d["floor"] = room.floor;
  if (!room.invalid.empty()) {
    v.state = RoomState::Unknown;
    v.reason = room.invalid;
    return v;
  }
  if (!room.planned()) {
    v.state = RoomState::NotPlanned;
    v.reason = "no fiber link in the register (no switch port, no endpoint): a planning gap";
    return v;
  }
  Part part;
  if (!room.switch_id.empty()) judge_port(room, ev, lim, part, d);
  if (room.endpoint) judge_endpoint(room, ev, part, d);
  v.state = part.state;
  for (const auto& r : part.reasons) v.reason += (v.reason.empty() ? "" : "; ") + r;
  return v;
}

}  // namespace campus::fiber
