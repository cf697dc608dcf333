// The audit run: registers -> concurrent SNMP polls and endpoint probes -> classification.
#include "fiber_audit.hpp"

#include <algorithm>
#include <map>

namespace campus::fiber {

std::filesystem::path builtin_profile_dir() {
  std::error_code ec;
  std::filesystem::path installed = CAMPUS_FIBER_PROFILES_INSTALLED;
  if (std::filesystem::is_directory(installed, ec)) return installed;
  return CAMPUS_FIBER_PROFILES_SOURCE;
}

FiberSettings read_fiber_settings(TableReader& r) {
  FiberSettings s;
  auto rooms = r.optional_path("rooms", true);
  if (rooms) s.rooms_file = *rooms;
  else if (!r.has("rooms")) r.error("rooms", "missing: the room register (CSV)", "rooms = \"rooms.csv\"");
  auto switches = r.optional_path("switches", true);
  if (switches) s.switches_file = *switches;
  else if (!r.has("switches")) r.error("switches", "missing: the switch list (CSV)", "switches = \"switches.csv\"");
  s.community = r.secret_file("community_file", false);
  s.profile_dirs.push_back(builtin_profile_dir());
  if (auto extra = r.optional_path("profiles_dir", true)) s.profile_dirs.push_back(*extra);
  s.default_profile = r.string("default_profile", "generic");
  s.limits.min_speed_mbps = r.integer("min_speed_mbps", 1000, 1, 10'000'000);
  s.limits.rx_min_dbm = r.number("rx_min_dbm", -20.0, -60.0, 20.0);
  s.limits.rx_max_dbm = r.number("rx_max_dbm", -1.0, -60.0, 20.0);
  if (s.limits.rx_min_dbm >= s.limits.rx_max_dbm)
    r.error("rx_max_dbm", "must be above rx_min_dbm", "e.g. rx_min_dbm = -20, rx_max_dbm = -1");
  s.limits.rx_margin_db = r.number("rx_margin_db", 3.0, 0.0, 20.0);
  s.limits.tx_min_dbm = r.number("tx_min_dbm", -12.0, -60.0, 20.0);
  s.limits.tx_max_dbm = r.number("tx_max_dbm", 3.0, -60.0, 20.0);
  if (s.limits.tx_min_dbm >= s.limits.tx_max_dbm)
    r.error("tx_max_dbm", "must be above tx_min_dbm", "e.g. tx_min_dbm = -12, tx_max_dbm = 3");
  s.limits.tx_margin_db = r.number("tx_margin_db", 1.0, 0.0, 20.0);
  s.limits.flap_window = r.duration("flap_window", std::chrono::minutes(15));
  s.snmp_timeout = r.duration("snmp_timeout", Millis(1000), Millis(50), Millis(60000));
  s.snmp_retries = static_cast<int>(r.integer("snmp_retries", 1, 0, 10));
  s.snmp_max_repetitions = static_cast<int>(r.integer("snmp_max_repetitions", 10, 1, 200));
  s.endpoint_timeout = r.duration("endpoint_timeout", Millis(2000), Millis(50), Millis(60000));
  s.max_parallel_probes = static_cast<int>(r.integer("max_parallel_probes", 256, 1, 10000));
  s.read_secret = [](const std::filesystem::path& f) { return read_secret_file(f); };
  return s;
}

namespace {

struct Tally {
  int rooms = 0, covered = 0, degraded = 0, down = 0, not_planned = 0, unknown = 0;
  void add(RoomState s) {
    ++rooms;
    switch (s) {
      case RoomState::Covered: ++covered; break;
      case RoomState::Degraded: ++degraded; break;
      case RoomState::Down: ++down; break;
      case RoomState::NotPlanned: ++not_planned; break;
      case RoomState::Unknown: ++unknown; break;
    }
  }
  Json json() const {
    Json j = {{"rooms", rooms}, {"covered", covered}, {"degraded", degraded}, {"down", down},
              {"not_planned", not_planned}, {"unknown", unknown}};
    // An empty category has nothing uncovered; 1.0 keeps the ratio a number for dashboards.
    j["coverage"] = rooms == 0 ? 1.0 : static_cast<double>(covered) / rooms;
    return j;
  }
};

}  // namespace

AuditReport build_report(const Registers& registers, const Observations& seen, const Thresholds& limits,
                         const std::map<std::string, VendorProfile>& profiles) {
  AuditReport report;
  report.input_errors = registers.errors;
  std::map<std::string, std::pair<const Switch*, const SwitchStatus*>> switches;
  for (std::size_t i = 0; i < registers.switches.size(); ++i)
    switches[registers.switches[i].id] = {&registers.switches[i], i < seen.switches.size() ? &seen.switches[i] : nullptr};

  std::map<RoomType, Tally> by_type;
  Tally overall;
  Json not_covered = Json::array();
  for (const auto& room : registers.rooms) {
    RoomEvidence ev;
    if (auto it = switches.find(room.switch_id); it != switches.end()) {
      ev.sw = it->second.first;
      ev.switch_status = it->second.second;
      if (auto p = profiles.find(ev.sw->profile); p != profiles.end()) ev.profile = &p->second;
      // A port the switch does not have is a register error too: name the row.
      if (room.invalid.empty() && ev.switch_status && ev.switch_status->answered && room.port &&
          !resolve_port(*room.port, ev.switch_status->ports))
        report.input_errors.push_back({room.where + " column port",
                                       "port \"" + room.port->text() + "\" not found on switch " + room.switch_id,
                                       "use the ifIndex or ifName the switch reports (snmpwalk IF-MIB ifName)"});
    }
    if (auto it = seen.endpoints.find(room.id); it != seen.endpoints.end()) ev.endpoint = it->second;
    Verdict v = classify(room, ev, limits);
    if (room.type) by_type[*room.type].add(v.state);
    overall.add(v.state);
    if (v.state != RoomState::Covered)
      not_covered.push_back({{"room", room.id}, {"name", room.name},
                             {"type", room.type ? to_string(*room.type) : ""},
                             {"state", to_string(v.state)}, {"reason", v.reason}});
    report.findings.push_back({room.id, to_string(v.state), v.reason, std::move(v.details)});
  }
  Json& s = report.summary;
  for (RoomType t : kRoomTypes) s[to_string(t)] = by_type[t].json();
  s["overall"] = overall.json();
  s["not_covered"] = std::move(not_covered);
  int answered = 0;
  for (const auto& st : seen.switches) answered += st.answered ? 1 : 0;
  s["switches"] = {{"listed", registers.switches.size()}, {"answered", answered}};
  int reachable = 0;
  for (const auto& [id, r] : seen.endpoints) reachable += r.reachable ? 1 : 0;
  s["endpoints"] = {{"probed", seen.endpoints.size()}, {"reachable", reachable}};
  s["min_speed_mbps"] = limits.min_speed_mbps;
  s["rx_range_dbm"] = {limits.rx_min_dbm, limits.rx_max_dbm};
  s["tx_range_dbm"] = {limits.tx_min_dbm, limits.tx_max_dbm};
  return report;
}

FiberRun::FiberRun(asio::io_context& io, FiberSettings settings, SteadyTime deadline,
                   std::shared_ptr<spdlog::logger> log, std::function<void(AuditReport)> done)
    : io_(io), settings_(std::move(settings)), deadline_(deadline), log_(std::move(log)), done_(std::move(done)) {}

void FiberRun::start() {
  started_ = std::chrono::steady_clock::now();
  std::vector<std::filesystem::path> dirs = settings_.profile_dirs;
  ProfileSet profiles = load_profiles(dirs);
  extra_errors_ = profiles.errors;
  profiles_ = profiles.profiles;

  auto rooms = read_csv_file(settings_.rooms_file, kRoomColumns);
  auto switches = read_csv_file(settings_.switches_file, kSwitchColumns);
  CsvTable room_table, switch_table;
  if (rooms) room_table = std::move(rooms.value());
  else extra_errors_.push_back(rooms.error());
  if (switches) switch_table = std::move(switches.value());
  else extra_errors_.push_back(switches.error());
  registers_ = parse_registers(room_table, switch_table, profiles.names(), settings_.default_profile,
                               settings_.switches_file.parent_path());

  // SNMP targets, with their secrets read now (a bad secret file makes that switch invalid).
  std::vector<SnmpTarget> targets;
  std::vector<std::size_t> target_of;  // registers_.switches index per target
  std::map<std::string, std::vector<PortRef>> wanted;
  for (const auto& room : registers_.rooms)
    if (room.port && !room.switch_id.empty()) wanted[room.switch_id].push_back(*room.port);
  for (std::size_t i = 0; i < registers_.switches.size(); ++i) {
    Switch& sw = registers_.switches[i];
    if (!sw.invalid.empty()) continue;
    SnmpTarget t;
    t.id = sw.id;
    t.host = sw.host;
    t.port = sw.port;
    t.profile = profiles.profiles.at(sw.profile);
    t.wanted = wanted[sw.id];
    t.version = sw.credentials.version;
    auto secret = [&](const std::optional<std::filesystem::path>& f, const char* column) -> std::optional<std::string> {
      if (!f) return std::string{};
      auto r = settings_.read_secret(*f);
      if (r) return r.value();
      Error e{sw.where + " column " + column, r.error().message(), ""};
      registers_.errors.push_back(e);
      sw.invalid = e.message();
      return std::nullopt;
    };
    if (t.version == "2c") {
      if (sw.credentials.community_file) {
        if (auto c = secret(sw.credentials.community_file, "community_file")) t.community = *c;
      } else if (settings_.community) {
        t.community = *settings_.community;
      } else {
        Error e{sw.where + " column community_file", "no SNMP community for this switch",
                "set community_file in the switch list or [audits.fiber] community_file"};
        registers_.errors.push_back(e);
        sw.invalid = e.message();
      }
    } else {
      t.user = sw.credentials.user;
      t.auth_protocol = sw.credentials.auth_protocol;
      t.priv_protocol = sw.credentials.priv_protocol;
      if (auto k = secret(sw.credentials.auth_key_file, "auth_key_file")) t.auth_key = *k;
      if (auto k = secret(sw.credentials.priv_key_file, "priv_key_file")) t.priv_key = *k;
    }
    if (!sw.invalid.empty()) continue;
    targets.push_back(std::move(t));
    target_of.push_back(i);
  }
  seen_.switches.resize(registers_.switches.size());
  for (std::size_t i = 0; i < registers_.switches.size(); ++i) {
    seen_.switches[i].id = registers_.switches[i].id;
    seen_.switches[i].error = registers_.switches[i].invalid;
  }

  for (const auto& room : registers_.rooms)
    if (room.invalid.empty() && room.endpoint) probe_queue_.push_back(&room);

  PollOptions opts;
  opts.timeout = settings_.snmp_timeout;
  opts.retries = settings_.snmp_retries;
  opts.bulk_rows = settings_.snmp_max_repetitions;
  // Finish a little before the core's deadline, so a slow school still gets a report with
  // the late switches marked unknown instead of a timed-out run.
  soft_deadline_ = report_by(deadline_);
  opts.deadline = soft_deadline_;
  log_->debug("fiber: {} rooms, {} switches to poll, {} endpoints to probe", registers_.rooms.size(),
              targets.size(), probe_queue_.size());
  if (targets.empty()) {
    switches_done_ = true;
  } else {
    poller_ = std::make_shared<SwitchPoller>(io_);
    poller_->start(std::move(targets), opts,
                   [self = shared_from_this(), target_of](std::vector<SwitchStatus> statuses) {
                     for (std::size_t k = 0; k < statuses.size(); ++k)
                       self->seen_.switches[target_of[k]] = std::move(statuses[k]);
                     self->switches_done_ = true;
                     self->poller_.reset();
                     self->maybe_finish();
                   });
  }
  std::size_t first = std::min<std::size_t>(probe_queue_.size(), static_cast<std::size_t>(settings_.max_parallel_probes));
  for (std::size_t i = 0; i < first; ++i) probe_next();
  // Post so `done` is never called from inside audit() itself.
  asio::post(io_, [self = shared_from_this()] { self->maybe_finish(); });
}

void FiberRun::probe_next() {
  if (probes_started_ >= probe_queue_.size()) return;
  const Room* room = probe_queue_[probes_started_++];
  auto left = std::chrono::duration_cast<Millis>(soft_deadline_ - std::chrono::steady_clock::now());
  Millis timeout = std::max(Millis(1), std::min(settings_.endpoint_timeout, left));
  auto on_done = [self = shared_from_this(), id = room->id](ProbeResult r) {
    self->seen_.endpoints[id] = std::move(r);
    ++self->probes_done_;
    if (!self->cancelled_) self->probe_next();
    self->maybe_finish();
  };
  const Endpoint& e = *room->endpoint;
  if (cancelled_) {
    ProbeResult r;
    r.reason = "cancelled";
    return asio::post(io_, [on_done, r] { on_done(r); });
  }
  if (e.kind == Endpoint::Kind::Tcp) tcp_probe(io_, e.host, e.port, timeout, on_done);
  else icmp_probe(io_, e.host, timeout, on_done);
}

void FiberRun::maybe_finish() {
  if (finished_ || !switches_done_) return;
  if (probes_done_ < probe_queue_.size() && !cancelled_) return;
  finished_ = true;
  AuditReport report = build_report(registers_, seen_, settings_.limits, profiles_);
  report.input_errors.insert(report.input_errors.begin(), extra_errors_.begin(), extra_errors_.end());
  auto elapsed = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started_);
  report.summary["duration_ms"] = elapsed.count();
  auto done = std::move(done_);
  done(std::move(report));
}

void FiberRun::cancel() {
  cancelled_ = true;
  if (poller_) poller_->cancel();
  asio::post(io_, [self = shared_from_this()] { self->maybe_finish(); });
}

}  // namespace campus::fiber
