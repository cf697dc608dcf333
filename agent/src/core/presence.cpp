#include "core/presence.hpp"

namespace campus {

Json birth_body(std::int64_t session, std::int64_t last_seq, const std::vector<std::string>& audits,
                const Json& store) {
  return {{"online", true},
          {"session", session},
          {"last_seq", last_seq},
          {"version", std::string("campus-agent/") + kAgentVersion},
          {"audits", audits},
          {"store", store}};
}

Json offline_body(std::int64_t session, std::int64_t last_seq, const char* reason) {
  return {{"online", false}, {"session", session}, {"last_seq", last_seq}, {"reason", reason}};
}

std::optional<StaleStates::Seen> StaleStates::seen(const std::string& payload, std::int64_t session) {
  Json env = Json::parse(payload, nullptr, false);
  if (env.is_discarded() || !env.is_object() || !env.contains("body") || !env["body"].is_object()) return std::nullopt;
  const Json& body = env["body"];
  const Json online = body.value("online", Json(true));
  if (!online.is_boolean() || online.get<bool>()) return std::nullopt;
  const Json stale = body.value("session", Json(0));
  if (!stale.is_number_integer()) return std::nullopt;
  const auto seen_session = stale.get<std::int64_t>();
  if (seen_session > session) return std::nullopt;  // not ours to contradict
  return Seen{seen_session, pending_++ == 0};
}

int StaleStates::answer() {
  const int n = pending_;
  pending_ = 0;
  return n;
}

}  // namespace campus
