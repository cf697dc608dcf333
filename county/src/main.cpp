// campus-county: the county center's collector (docs/county.md).
#include <malloc.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "collector.hpp"
#include "core/envelope.hpp"
#include "core/logging.hpp"
#include "core/mqtt_tls.hpp"
#include "core/systemd_notify.hpp"
#include "county_config.hpp"
#include "dashboard.hpp"
#include "web_accounts.hpp"

namespace {

int report_errors(const campus::Errors& errors, const std::string& file) {
  for (const auto& e : errors) std::cerr << "config error: " << e.message() << "\n";
  std::cerr << errors.size() << " error(s) in " << file << "\n";
  return 1;
}

// One line of stdin; on a terminal without echo.
std::optional<std::string> read_password(const char* prompt) {
  const bool tty = ::isatty(STDIN_FILENO);
  termios old {};
  if (tty) {
    std::cerr << prompt << std::flush;
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  const bool got = static_cast<bool>(std::getline(std::cin, line));
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  }
  if (!got) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// campus-county passwd: adds or changes a dashboard account; the password from stdin (typed
// twice on a terminal), never from the command line, where `ps` would show it.
int passwd(const std::filesystem::path& accounts, const std::string& user, const std::string& role_text, int iterations) {
  auto role = campus::county::web::parse_role(role_text);
  if (auto bad = campus::county::web::user_name_problem(user)) {
    std::cerr << "campus-county passwd: user \"" << user << "\": " << *bad << "\n";
    return 1;
  }
  auto password = read_password("password: ");
  if (!password || password->empty()) {
    std::cerr << "campus-county passwd: no password given on stdin\n";
    return 1;
  }
  if (password->size() < 10) {
    std::cerr << "campus-county passwd: the password has " << password->size()
              << " characters; use at least 10\n";
    return 1;
  }
  if (::isatty(STDIN_FILENO)) {
    auto again = read_password("again: ");
    if (!again || *again != *password) {
      std::cerr << "campus-county passwd: the two passwords differ; nothing changed\n";
      return 1;
    }
  }
  if (auto st = campus::county::web::set_account(accounts, user, *role, *password, iterations); !st.ok()) {
    std::cerr << "campus-county passwd: " << st.error().message() << "\n";
    return 1;
  }
  std::cout << "campus-county passwd: " << user << " (" << role_text << ") written to " << accounts.string()
            << "; a running collector reads it at SIGHUP (systemctl reload campus-county)\n";
  return 0;
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
  auto* pw = app.add_subcommand("passwd", "add a dashboard account or set its password (read from stdin)");
  std::string accounts = "/etc/campus-county/dashboard-accounts", user, role = "viewer";
  int iterations = campus::county::web::kDefaultIterations;
  pw->add_option("--accounts", accounts, "the accounts file (dashboard.accounts)")->capture_default_str();
  pw->add_option("user", user, "the user name")->required();
  pw->add_option("--role", role, "viewer (reads every page) or operator (also records case steps)")
      ->check(CLI::IsMember({"viewer", "operator"}))
      ->capture_default_str();
  pw->add_option("--iterations", iterations, "PBKDF2-HMAC-SHA256 iterations")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (pw->parsed()) return passwd(accounts, user, role, iterations);
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
  std::shared_ptr<campus::county::Dashboard> dashboard;
  if (loaded.config.dashboard.enabled) {
    // Its own read-only connection (after the collector's, which creates and migrates the file).
    campus::county::DatabaseOptions ro = dbo;
    ro.read_only = true;
    auto reader = dbc.url.empty() ? campus::county::open_sqlite(dbc.path, ro)
                                  : campus::county::open_postgres(dbc.url, dbc.password, ro);
    if (!reader.ok()) {
      log->error("dashboard: cannot open the county database: {}", reader.error().message());
      return 1;
    }
    dashboard = std::make_shared<campus::county::Dashboard>(io, loaded.config, std::move(reader.value()), log,
                                                            [w = std::weak_ptr(collector)] {
                                                              auto c = w.lock();
                                                              return c ? c->figures() : campus::Json::object();
                                                            });
    if (auto st = dashboard->start(); !st.ok()) {
      log->error("dashboard: {}", st.error().message());
      return 1;
    }
    collector->on_commit([w = std::weak_ptr(dashboard)](const std::set<std::string>& schools) {
      if (auto d = w.lock()) d->committed(schools);
    });
    dashboard->set_case_updater([w = std::weak_ptr(collector)](const std::string& school, campus::Json args,
                                                               std::function<void(const campus::Json&)> done) {
      if (auto c = w.lock()) c->request_case_update(school, std::move(args), std::move(done));
    });
  }
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
        if (dashboard) dashboard->reload(next.config);
      }
      campus::systemd::ready("collecting for county " + loaded.config.county);
      signals.async_wait(on_signal);
      return;
    }
    log->info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    campus::systemd::stopping();
    if (dashboard) dashboard->stop();
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
