// campus-fiber.so: the fiber coverage audit as an agent plugin ([audits.fiber] in agent.toml).
#include <mutex>

#include "campus/plugin.hpp"
#include "fiber_audit.hpp"

namespace campus::fiber {

class FiberAudit : public AuditPlugin {
 public:
  void configure(TableReader& r, const PluginEnv& env) override {
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
    s.limits.flap_window = r.duration("flap_window", std::chrono::minutes(15));
    s.snmp_timeout = r.duration("snmp_timeout", Millis(1000), Millis(50), Millis(60000));
    s.snmp_retries = static_cast<int>(r.integer("snmp_retries", 1, 0, 10));
    s.snmp_max_repetitions = static_cast<int>(r.integer("snmp_max_repetitions", 10, 1, 200));
    s.endpoint_timeout = r.duration("endpoint_timeout", Millis(2000), Millis(50), Millis(60000));
    s.max_parallel_probes = static_cast<int>(r.integer("max_parallel_probes", 256, 1, 10000));
    r.finish();
    s.read_secret = [](const std::filesystem::path& f) { return read_secret_file(f); };
    init_netsnmp();
    log_ = env.log;
    std::lock_guard lock(mu_);
    settings_ = std::move(s);
  }

  void audit(AuditContext ctx, std::function<void(AuditReport)> done) override {
    FiberSettings s;
    {
      std::lock_guard lock(mu_);
      s = settings_;
    }
    auto log = ctx.log ? ctx.log : (log_ ? log_ : spdlog::default_logger());
    auto run = std::make_shared<FiberRun>(ctx.io, std::move(s), ctx.deadline, log, std::move(done));
    run_ = run;
    run->start();
  }

  void cancel() override {
    if (auto run = run_.lock()) run->cancel();
  }

 private:
  std::mutex mu_;
  FiberSettings settings_;
  std::shared_ptr<spdlog::logger> log_;
  std::weak_ptr<FiberRun> run_;
};

}  // namespace campus::fiber

CAMPUS_DEFINE_PLUGIN("fiber", "0.1.0", campus::fiber::FiberAudit)
