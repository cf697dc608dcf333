// What the collector makes of one MQTT message from a school: a checked envelope ready to be
// stored (Incoming), or the reason it is kept aside (Quarantined). Pure: the same topic and
// bytes always give the same answer; the database never sees an envelope that disagrees with
// its topic (docs/protocol.md "Envelope").
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace campus::county {

using Json = nlohmann::json;

enum class Kind { State, Report, Event, Health, Reply };
const char* kind_name(Kind k);

struct Incoming {
  std::string topic;
  std::string school;
  Kind kind = Kind::State;
  std::string audit;          // report, event
  std::int64_t seq = 0;       // report, event
  std::string store_id;       // report/event: the envelope's store_id; state/health: body.store.id; may be ""
  std::string ts;             // the envelope's ts, as sent (the school's offset)
  std::int64_t ts_ms = 0;     // ts as milliseconds since the epoch (UTC)
  std::string day;            // the school's local date of ts: "2026-11-28"
  bool resent = false;        // a copy sent on a resend request
  bool retained = false;      // delivered because it was retained (at a subscribe)
  // The envelope as received, with a top-level "resent" member cut out: what is stored, and
  // (hex SHA-256) what a later copy is compared with. An agent's copy is then byte for byte the
  // original.
  std::string payload;
  std::string sha256;
  // The parsed body; of a report only its summary ({"summary": ...}): the findings stay unparsed
  // in `payload` (json_skim.hpp says why).
  Json body;
  std::string requester;      // reply: the {requester} of .../reply/{requester}
  std::optional<std::string> correlation;  // reply: MQTT 5 Correlation Data
};

struct Quarantined {
  std::string topic;
  std::string school;         // from the topic when it has one, else ""
  std::string kind;           // the topic's kind ("report", "state", ...) or "?"
  std::string reason;         // not_json | not_an_object | bad_envelope | topic_mismatch | bad_seq | bad_id |
                              // too_large | unknown_kind | unknown_topic | unknown_school | bad_body
  std::string detail;         // where and what, in words
  std::string payload;        // at most kQuarantineKeep bytes of it
  std::size_t size = 0;       // the payload's real size
  std::optional<std::int64_t> seq;  // when the envelope had a usable seq: the ledger records it as lost
  std::string store_id;
};

inline constexpr std::size_t kQuarantineKeep = 64 * 1024;

using Parsed = std::variant<Incoming, Quarantined>;

struct IngestRules {
  std::string county;
  std::size_t max_payload = 16u << 20;
  // When set: a school it answers false for is quarantined as unknown_school.
  std::function<bool(const std::string& school)> registered;
};

// topic: where the message was published; payload: its bytes.
Parsed parse_message(const IngestRules& rules, std::string_view topic, std::string_view payload, bool retained,
                     std::optional<std::string> correlation = std::nullopt);

// Hex SHA-256 (OpenSSL).
std::string sha256_hex(std::string_view data);

}  // namespace campus::county
