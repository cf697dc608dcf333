// campus-agent: audits a school and reports to the county (see README.md).
#include <malloc.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "core/agent.hpp"
#include "core/config.hpp"
#include "core/envelope.hpp"
#include "core/logging.hpp"
#include "core/mqtt_tls.hpp"
#include "core/plugin_host.hpp"

#ifndef CAMPUS_DEFAULT_PLUGIN_DIR
#define CAMPUS_DEFAULT_PLUGIN_DIR "/usr/lib/campus-agent/plugins"
#endif

int main(int argc, char** argv) {
  campus::keep_openssl_until_exit();  // first, before any OpenSSL use: see mqtt_tls.hpp
  // At most 2 malloc arenas instead of glibc's 8 per core: each thread that allocates would
  // otherwise keep an arena of its own, with its own free pages, for the daemon's whole life
  // (docs/performance.md, Footprint).
  mallopt(M_ARENA_MAX, 2);
  CLI::App app{"campus-agent: audits fiber coverage, recording classrooms and attendance, and reports to the county"};
  std::string config_path = "/etc/campus-agent/agent.toml";
  bool once = false, dry_run = false, json = false, check = false, version = false;
  std::string log_level;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--once", once, "run every enabled audit once, store, deliver, exit");
  app.add_flag("--dry-run", dry_run, "run every enabled audit once and print the reports; store and send nothing");
  app.add_flag("--json", json, "with --dry-run: one JSON object per audit instead of a table");
  app.add_flag("--check-config", check, "validate the configuration (and every enabled plugin's section), exit 0 or 1");
  app.add_flag("--version", version, "print the version and exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error (overrides agent.log_level)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "campus-agent " << campus::kAgentVersion << " (plugin API " << campus::kPluginApiVersion << ")\n";
    return 0;
  }
  auto log = campus::init_logging(log_level.empty() ? "info" : log_level);

  auto loaded = campus::load_config(config_path);
  // The plugin directory default is where the package installs them, unless configured.
  if (!(*loaded.config.raw)["agent"]["plugin_dir"]) loaded.config.plugin_dir = CAMPUS_DEFAULT_PLUGIN_DIR;
  if (check) {
    // Every problem in one pass: the agent's own keys and every enabled plugin's section.
    campus::PluginHost host;
    campus::Errors errors = loaded.errors;
    std::vector<campus::ConfiguredAudit> audits;
    if (!loaded.config.raw->empty())
      audits = host.configure(loaded.config, {loaded.config.county, loaded.config.school,
                                              loaded.config.timezone_offset, log}, errors);
    for (const auto& e : errors) std::cerr << "config error: " << e.message() << "\n";
    if (!errors.empty()) {
      std::cerr << errors.size() << " error(s) in " << config_path << "\n";
      return 1;
    }
    std::cout << config_path << ": OK (" << audits.size() << " audit(s) enabled:";
    for (const auto& a : audits) std::cout << " " << a.schedule.name;
    std::cout << ")\n";
    if (loaded.config.mqtt.enabled && loaded.config.mqtt.insecure)
      std::cout << "warning: mqtt.insecure = true: reports are sent without TLS\n";
    return 0;
  }
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors) std::cerr << "config error: " << e.message() << "\n";
    std::cerr << loaded.errors.size() << " error(s) in " << config_path << "\n";
    return 1;
  }
  campus::set_log_level(log_level.empty() ? loaded.config.log_level : log_level);

  campus::AgentOptions options;
  options.json = json;
  options.log_level_override = log_level;
  if (dry_run) return campus::run_dry_run(loaded.config, options);
  if (once) return campus::run_once(loaded.config, options);
  return campus::run_daemon(loaded.config, options);
}
