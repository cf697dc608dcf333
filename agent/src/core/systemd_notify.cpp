#include "core/systemd_notify.hpp"

#include <systemd/sd-daemon.h>

namespace campus::systemd {

void ready(const std::string& s) { sd_notify(0, ("READY=1\nSTATUS=" + s).c_str()); }
void status(const std::string& s) { sd_notify(0, ("STATUS=" + s).c_str()); }
void reloading() { sd_notify(0, "RELOADING=1"); }
void stopping() { sd_notify(0, "STOPPING=1"); }
void watchdog() { sd_notify(0, "WATCHDOG=1"); }

std::optional<Millis> watchdog_period() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return Millis(static_cast<std::int64_t>(usec / 2000));
}

}  // namespace campus::systemd
