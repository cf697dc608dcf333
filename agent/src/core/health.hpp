// The body of the retained .../health message: what the county needs to see that a school's
// agent is alive and keeping up (docs/protocol.md, docs/schemas/health.json).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "campus/plugin.hpp"
#include "core/publisher.hpp"
#include "core/store.hpp"

namespace campus {

// One audit's latest run, as the scheduler saw it.
struct AuditHealth {
  std::optional<SystemTime> last_run;
  Millis last_duration{0};
  bool last_ok = true;
  std::string last_error;        // empty when last_ok
  std::int64_t runs = 0;
  std::int64_t errors = 0;       // failed or timed out
  std::int64_t timed_out = 0;
  std::int64_t skipped = 0;      // ticks that found the audit still running
  bool running = false;
};

struct HealthInputs {
  OutboxStats outbox;            // Store::stats()
  PublisherStats publisher;      // Publisher::stats()
  std::map<std::string, AuditHealth> audits;
  SteadyTime started;            // when the agent started
  SystemTime now;
  std::string timezone_offset = "+08:00";
};

// Pure: the same inputs give the same body.
Json health_body(const HealthInputs& in);

// Resident set size of this process in bytes (0 when /proc is unreadable).
std::uint64_t resident_bytes();

}  // namespace campus
