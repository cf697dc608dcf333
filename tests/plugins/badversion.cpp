// A module built for another plugin API version: the agent must refuse it.
#include "campus/plugin.hpp"

namespace {
class Never : public campus::AuditPlugin {
 public:
  void configure(campus::TableReader& r, const campus::PluginEnv&) override { r.finish(); }
  void audit(campus::AuditContext, std::function<void(campus::AuditReport)> done) override { done({}); }
};
}  // namespace

extern "C" __attribute__((visibility("default"))) const campus::PluginDescriptor* campus_plugin_descriptor() {
  static const campus::PluginDescriptor d{campus::kPluginApiVersion + 98, "badversion", "9.9.9",
                                          []() -> campus::AuditPlugin* { return new Never(); }};
  return &d;
}
