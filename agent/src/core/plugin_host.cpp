// Plugin modules: dlopen, the one factory symbol, the API version check, configuration.
#include "core/plugin_host.hpp"

#include <dlfcn.h>

namespace campus {

Result<PluginModule> load_plugin_module(const std::filesystem::path& dir, const std::string& plugin) {
  std::filesystem::path file = dir / ("campus-" + plugin + ".so");
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    return Error{file.string(), "plugin module for audit \"" + plugin + "\" not found",
                 "install the plugin there, or set agent.plugin_dir to the directory that holds campus-" + plugin + ".so"};
  }
  void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!handle) {
    const char* why = ::dlerror();
    return Error{file.string(), std::string("cannot load the plugin module: ") + (why ? why : "unknown error"),
                 "rebuild the plugin against this agent's campus-core"};
  }
  using Entry = const PluginDescriptor* (*)();
  auto entry = reinterpret_cast<Entry>(::dlsym(handle, CAMPUS_PLUGIN_SYMBOL));
  if (!entry) {
    ::dlclose(handle);
    return Error{file.string(), std::string("not a campus-agent plugin: the symbol ") + CAMPUS_PLUGIN_SYMBOL + " is missing",
                 "define the plugin with CAMPUS_DEFINE_PLUGIN(...) from campus/plugin.hpp"};
  }
  const PluginDescriptor* d = entry();
  if (!d || d->api_version != kPluginApiVersion) {
    int v = d ? d->api_version : -1;
    ::dlclose(handle);
    return Error{file.string(),
                 "the plugin was built for plugin API version " + std::to_string(v) + ", this agent speaks version " +
                     std::to_string(kPluginApiVersion),
                 "rebuild the plugin against this agent's headers, or install the matching agent"};
  }
  if (!d->create || !d->name || !d->version) {
    return Error{file.string(), "the plugin descriptor is incomplete (name, version or create missing)", ""};
  }
  return PluginModule{file.string(), d};
}

std::vector<ConfiguredAudit> PluginHost::configure(const AgentConfig& config, const PluginEnv& env, Errors& errors) {
  std::vector<ConfiguredAudit> out;
  for (const auto& schedule : config.audits) {
    if (!schedule.enabled) continue;
    const PluginModule* module = nullptr;
    for (const auto& [name, m] : modules_)
      if (name == schedule.plugin) module = &m;
    if (!module) {
      auto loaded = load_plugin_module(config.plugin_dir, schedule.plugin);
      if (!loaded) {
        Error e = loaded.error();
        e.what = "audits." + schedule.name + ": " + e.what;
        errors.push_back(std::move(e));
        continue;
      }
      modules_.emplace_back(schedule.plugin, std::move(loaded.value()));
      module = &modules_.back().second;
    }
    std::shared_ptr<AuditPlugin> plugin(module->descriptor->create());
    const auto& table = *config.audit_tables.at(schedule.name);
    std::size_t before = errors.size();
    TableReader reader(table, "audits." + schedule.name, config.file, errors);
    for (const char* k : {"enabled", "interval", "jitter", "timeout", "first_delay", "plugin"}) reader.known(k);
    PluginEnv plugin_env = env;
    plugin_env.log = env.log ? env.log->clone(schedule.name) : nullptr;
    try {
      plugin->configure(reader, plugin_env);
    } catch (const std::exception& e) {
      errors.push_back({reader.where(""), std::string("the plugin failed while reading its configuration: ") + e.what(), ""});
    }
    reader.finish();
    if (errors.size() != before) continue;
    out.push_back({schedule, std::move(plugin), module->descriptor->version});
  }
  return out;
}

}  // namespace campus
