// Loading audit plugin modules (campus-<name>.so) and configuring them from agent.toml.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "campus/plugin.hpp"
#include "core/config.hpp"

namespace campus {

// A loaded module. The handle is never dlclose()d: plugins may leave spdlog loggers, curl or
// net-snmp state behind, and unloading buys nothing in a daemon.
struct PluginModule {
  std::string file;
  const PluginDescriptor* descriptor = nullptr;
};

// Loads `dir/campus-<plugin>.so`. Errors: missing file, not a loadable module, missing
// CAMPUS_PLUGIN_SYMBOL, API version mismatch: each says which file and how to fix it.
Result<PluginModule> load_plugin_module(const std::filesystem::path& dir, const std::string& plugin);

struct ConfiguredAudit {
  AuditSchedule schedule;
  std::shared_ptr<AuditPlugin> plugin;
  std::string plugin_version;
};

// Loads and configures every enabled audit of `config` (plugin modules are cached by name).
// All problems are appended to `errors`; audits with errors are left out of the result.
class PluginHost {
 public:
  std::vector<ConfiguredAudit> configure(const AgentConfig& config, const PluginEnv& env, Errors& errors);

 private:
  std::vector<std::pair<std::string, PluginModule>> modules_;
};

}  // namespace campus
