// campus-fiber.so: the fiber coverage audit as an agent plugin ([audits.fiber] in agent.toml).
#include <mutex>

#include "campus/plugin.hpp"
#include "fiber_audit.hpp"

namespace campus::fiber {

class FiberAudit : public AuditPlugin {
 public:
  void configure(TableReader& r, const PluginEnv& env) override {
    FiberSettings s = read_fiber_settings(r);
    r.finish();
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
