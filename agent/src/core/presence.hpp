// The school's presence on its retained .../state topic (docs/protocol.md "state"): the birth
// published at every connect, the will the broker publishes when the connection dies, the
// offline state of a clean stop, and which state messages seen while connected are stale
// offline states of this agent that a fresh birth must answer. Pure: the publisher sends and
// times them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "campus/plugin.hpp"
#include "core/envelope.hpp"

namespace campus {

// store: the store identity (docs/store.md "Identity"); a new id tells the county seq restarted.
Json birth_body(std::int64_t session, std::int64_t last_seq, const std::vector<std::string>& audits,
                const Json& store);
// reason "will" (published by the broker) or "stopped" (by the agent at a clean stop).
Json offline_body(std::int64_t session, std::int64_t last_seq, const char* reason);

// A will from an older session delivered after the agent reconnected leaves the county
// believing the school is offline: it is answered with a fresh birth. One birth for a burst:
// a resumed session can hold a queued will for every connection the broker lost, and a birth
// each would be a burst of its own; the publisher sends it a moment after the first.
class StaleStates {
 public:
  struct Seen {
    std::int64_t session = 0;  // the stale state's session
    bool first = false;        // the first of a burst: the birth is to be scheduled
  };
  // A message on the agent's own state topic while connected in `session`; a value when it is
  // a stale offline state (online false, a session not newer than ours).
  std::optional<Seen> seen(const std::string& payload, std::int64_t session);
  // The birth goes out now: how many stale states it answers (0 when none was pending).
  int answer();
  // The connection ended or the agent stops: nothing is pending any more.
  void clear() { pending_ = 0; }
  bool pending() const { return pending_ > 0; }

 private:
  int pending_ = 0;
};

}  // namespace campus
