// Health body builder (see health.hpp).
#include "core/health.hpp"

#include <unistd.h>

#include <fstream>

#include "core/envelope.hpp"

namespace campus {

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

Json health_body(const HealthInputs& in) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  const auto& o = in.outbox;
  const auto& p = in.publisher;
  Json outbox = {{"depth", o.unsent},
                 {"sent_kept", o.sent_kept},
                 {"last_seq", o.last_seq},
                 {"oldest_unsent_age_s", nullptr},
                 {"buffer_full", o.buffer_full},
                 {"refused_commits", o.refused_commits},
                 {"db_bytes", o.db_bytes}};
  if (o.oldest_unsent_created) {
    auto age = duration_cast<seconds>(in.now - *o.oldest_unsent_created).count();
    outbox["oldest_unsent_age_s"] = age < 0 ? 0 : age;
  }
  Json mqtt = {{"connected", p.connected},
               {"session", p.session},
               {"reconnects", p.reconnects},
               {"connect_attempts", p.connect_attempts},
               {"published", p.published},
               {"refused", p.refused},
               {"last_publish", nullptr},
               {"takeovers", p.takeovers},
               {"protocol", p.protocol},
               {"last_takeover", nullptr}};
  if (p.last_publish) mqtt["last_publish"] = rfc3339(*p.last_publish, in.timezone_offset);
  if (p.last_takeover) mqtt["last_takeover"] = rfc3339(*p.last_takeover, in.timezone_offset);
  Json audits = Json::object();
  for (const auto& [name, a] : in.audits) {
    Json j = {{"last_run", nullptr},
              {"duration_ms", a.last_duration.count()},
              {"ok", a.last_ok},
              {"runs", a.runs},
              {"errors", a.errors},
              {"timed_out", a.timed_out},
              {"skipped", a.skipped},
              {"running", a.running}};
    if (a.last_run) j["last_run"] = rfc3339(*a.last_run, in.timezone_offset);
    if (!a.last_ok) j["error"] = a.last_error;
    audits[name] = std::move(j);
  }
  auto uptime = duration_cast<seconds>(std::chrono::steady_clock::now() - in.started).count();
  return Json{{"outbox", std::move(outbox)},
              {"mqtt", std::move(mqtt)},
              {"audits", std::move(audits)},
              {"buffer_full", o.buffer_full},
              {"rss_bytes", resident_bytes()},
              {"uptime_s", uptime < 0 ? 0 : uptime},
              {"version", std::string("campus-agent/") + kAgentVersion}};
}

}  // namespace campus
