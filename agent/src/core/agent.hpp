// The daemon: one io_context running the scheduler and the publisher, the store on its own
// thread, signals (SIGTERM/SIGINT stop, SIGHUP reload), health. Also the --once and
// --dry-run modes, which share every piece but the endless loop.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/config.hpp"

namespace campus {

struct AgentOptions {
  bool json = false;                 // --dry-run output as JSON lines
  std::string log_level_override;    // --log-level
  // Called once the store is open and the config loaded (sd_notify READY=1 in issue 8).
  std::function<void()> on_ready;
};

// Runs every enabled audit once and prints the reports (table or JSON lines on stdout).
// Commits nothing, sends nothing. Returns the exit code: 0 when every audit reported.
int run_dry_run(const AgentConfig& config, const AgentOptions& options);

// Runs every enabled audit once, commits, tries to deliver, exits. 0 when every audit was
// committed; 2 when messages remain in the outbox (they go out with the daemon).
int run_once(const AgentConfig& config, const AgentOptions& options);

// The daemon loop, until SIGTERM/SIGINT. Returns the exit code.
int run_daemon(const AgentConfig& config, const AgentOptions& options);

}  // namespace campus
