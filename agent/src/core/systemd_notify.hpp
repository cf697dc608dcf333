// sd_notify for Type=notify: READY once the store is open and the config loaded, STATUS
// lines, WATCHDOG pings from the io_context (a hung loop stops pinging and systemd restarts
// it). Every call is a no-op when NOTIFY_SOCKET is not set.
#pragma once
#include <optional>
#include <string>

#include "campus/units.hpp"

namespace campus::systemd {

void ready(const std::string& status);
void status(const std::string& status);
void reloading();
void stopping();
void watchdog();
// Half of WatchdogSec when systemd asked for pings (WATCHDOG_USEC for this pid), else nullopt.
std::optional<Millis> watchdog_period();

}  // namespace campus::systemd
