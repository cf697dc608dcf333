// campus-county: the county center's collector (docs/county.md).
#include <malloc.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "collector.hpp"
#include "core/envelope.hpp"
#include "core/logging.hpp"
#include "core/mqtt_tls.hpp"
#include "core/systemd_notify.hpp"
#include "county_config.hpp"

namespace {

int report_errors(const campus::Errors& errors, const std::string& file) {
  for (const auto& e : errors) std::cerr << "config error: " << e.message() << "\n";
  std::cerr << errors.size() << " error(s) in " << file << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  campus::keep_openssl_until_exit();  // first, before any OpenSSL use: see mqtt_tls.hpp
  mallopt(M_ARENA_MAX, 2);
  CLI::App app{"campus-county: receives what every school's campus-agent sends, keeps it, repairs what is missing"};
  std::string config_path = "/etc/campus-county/county.toml";
  std::string log_level;
  bool check = false, version = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check, "validate the configuration and the register, print the effective one, exit 0 or 1");
  app.add_flag("--version", version, "print the version and exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error (overrides county.log_level)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::cout << "campus-county " << campus::kAgentVersion << "\n";
    return 0;
  }
  auto log = campus::init_logging(log_level.empty() ? "info" : log_level);
  auto loaded = campus::county::load_county_config(config_path);
  if (!loaded.errors.empty()) return report_errors(loaded.errors, config_path);
  if (check) {
    std::cout << campus::county::redacted_summary(loaded.config) << "\n";
    std::cout << config_path << ": OK (county " << loaded.config.county << ", "
              << (loaded.config.register_file ? std::to_string(loaded.config.schools.size()) + " school(s) in the register"
                                              : std::string("no register: every school is accepted"))
              << ")\n";
    if (loaded.config.mqtt.insecure) std::cout << "warning: mqtt.insecure = true: the broker connection has no TLS\n";
    return 0;
  }
  campus::set_log_level(log_level.empty() ? loaded.config.log_level : log_level);
  if (loaded.config.mqtt.insecure) log->warn("mqtt.insecure = true: the connection to the broker is not encrypted");

  campus::county::DatabaseOptions dbo;
  dbo.synchronous_full = loaded.config.database.synchronous_full;
  dbo.retention = loaded.config.history;
  dbo.policy = loaded.config.repair;
  const auto& dbc = loaded.config.database;
  auto db = dbc.url.empty() ? campus::county::open_sqlite(dbc.path, dbo)
                            : campus::county::open_postgres(dbc.url, dbc.password, dbo);
  if (!db.ok()) {
    log->error("cannot open the county database: {}", db.error().message());
    return 1;
  }

  campus::asio::io_context io;
  auto collector = std::make_shared<campus::county::Collector>(io, loaded.config, std::move(db.value()), log);
  collector->start();
  campus::systemd::ready("collecting for county " + loaded.config.county);

  campus::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal;
  on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      log->info("SIGHUP: reloading {}", config_path);
      campus::systemd::reloading();
      auto next = campus::county::load_county_config(config_path);
      if (!next.errors.empty()) {
        for (const auto& e : next.errors) log->error("reload rejected: {}", e.message());
        log->error("reload rejected: {} error(s); the previous configuration keeps running", next.errors.size());
      } else {
        campus::set_log_level(log_level.empty() ? next.config.log_level : log_level);
        collector->reload(next.config);
      }
      campus::systemd::ready("collecting for county " + loaded.config.county);
      signals.async_wait(on_signal);
      return;
    }
    log->info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    campus::systemd::stopping();
    collector->stop([&io] { io.stop(); });
    // A second signal while stopping: stop now (nothing unacknowledged is lost: the broker keeps it).
    signals.async_wait([&](const boost::system::error_code& e2, int) {
      if (!e2) std::_Exit(1);
    });
  };
  signals.async_wait(on_signal);

  campus::asio::steady_timer watchdog(io);
  std::function<void()> arm;
  if (auto period = campus::systemd::watchdog_period()) {
    arm = [&, p = *period] {
      watchdog.expires_after(p);
      watchdog.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        collector->liveness([] { campus::systemd::watchdog(); });
        arm();
      });
    };
    arm();
  }
  io.run();
  return 0;
}
