// Checks one message from a school against docs/protocol.md (see ingest.hpp).
#include "ingest.hpp"

#include <openssl/evp.h>

#include "core/codes.hpp"
#include "core/envelope.hpp"

namespace campus::county {
namespace {

struct TopicParts {
  std::string school;
  std::string leaf;      // state | health | report | event | reply
  std::string sub;       // the audit of report/event, the requester of reply
};

// campus/v1/{county}/{school}/{leaf}[/{sub}]
std::optional<TopicParts> split(const std::string& county, std::string_view topic) {
  const std::string root = "campus/v1/" + county + "/";
  if (topic.substr(0, root.size()) != root) return std::nullopt;
  std::string_view rest = topic.substr(root.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  TopicParts p;
  p.school = std::string(rest.substr(0, slash));
  rest = rest.substr(slash + 1);
  slash = rest.find('/');
  p.leaf = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) p.sub = std::string(rest.substr(slash + 1));
  return p;
}

bool is_hex32(const std::string& s) {
  if (s.size() != 32) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool integer(const Json& j) { return j.is_number_integer() || j.is_number_unsigned(); }

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::State: return "state";
    case Kind::Report: return "report";
    case Kind::Event: return "event";
    case Kind::Health: return "health";
    case Kind::Reply: return "reply";
  }
  return "?";
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (unsigned int i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

Parsed parse_message(const IngestRules& rules, std::string_view topic, std::string_view payload, bool retained,
                     std::optional<std::string> correlation) {
  Quarantined q;
  q.topic = std::string(topic);
  q.size = payload.size();
  q.payload = std::string(payload.substr(0, kQuarantineKeep));
  q.kind = "?";
  auto reject = [&](const char* reason, std::string detail) -> Parsed {
    q.reason = reason;
    q.detail = std::move(detail);
    return q;
  };

  auto parts = split(rules.county, topic);
  if (!parts) return reject("unknown_topic", "not a topic of county " + rules.county + " (campus/v1/" + rules.county + "/SCHOOL/...)");
  q.school = parts->school;
  q.kind = parts->leaf;
  if (auto bad = code_problem(parts->school, rules.county)) {
    q.school.clear();
    return reject("unknown_topic", "the school part of the topic: " + *bad);
  }
  static const std::pair<const char*, Kind> kLeaves[] = {
      {"state", Kind::State}, {"health", Kind::Health}, {"report", Kind::Report}, {"event", Kind::Event}, {"reply", Kind::Reply}};
  Kind kind = Kind::State;
  bool known_leaf = false;
  for (const auto& [leaf, k] : kLeaves)
    if (parts->leaf == leaf) kind = k, known_leaf = true;
  const bool needs_sub = kind == Kind::Report || kind == Kind::Event || kind == Kind::Reply;
  if (!known_leaf || needs_sub == parts->sub.empty() || parts->sub.find('/') != std::string::npos)
    return reject("unknown_topic", "a school topic is .../state, .../health, .../report/AUDIT, .../event/AUDIT or "
                                   ".../reply/REQUESTER, not .../" + parts->leaf + (parts->sub.empty() ? "" : "/" + parts->sub));
  if (rules.registered && !rules.registered(parts->school))
    return reject("unknown_school", "school " + parts->school + " is not in the county register; add it there "
                                    "(and reload with SIGHUP) to accept its messages");

  // Parsed even when too large, so that its seq is known and the ledger records it instead of
  // asking for it again and again.
  Json env = Json::parse(payload, nullptr, false);
  if (payload.size() > rules.max_payload) {
    if (env.is_object() && env.contains("seq") && integer(env["seq"]) && env["seq"].get<std::int64_t>() > 0) {
      q.seq = env["seq"].get<std::int64_t>();
      if (env.contains("store_id") && env["store_id"].is_string()) q.store_id = env["store_id"];
    }
    return reject("too_large", std::to_string(payload.size()) + " bytes, above ingest.max_payload (" +
                                   std::to_string(rules.max_payload) + ")");
  }
  if (env.is_discarded()) {
    // Parsed again with exceptions only for the message: where the JSON breaks.
    try {
      Json strict = Json::parse(payload);
      (void)strict;
    } catch (const Json::exception& e) {
      return reject("not_json", e.what());
    }
    return reject("not_json", "not JSON");
  }
  if (!env.is_object()) return reject("not_an_object", "the payload is JSON but not an object");

  auto field = [&](const char* name) -> const Json* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : &*it;
  };
  const Json* v = field("v");
  if (!v || !integer(*v) || v->get<std::int64_t>() != 1) return reject("bad_envelope", "\"v\" must be 1");
  const Json* k = field("kind");
  if (!k || !k->is_string()) return reject("bad_envelope", "\"kind\" is missing or not a string");
  const std::string ks = k->get<std::string>();
  if (ks != "state" && ks != "report" && ks != "event" && ks != "health" && ks != "reply")
    return reject("unknown_kind", "kind \"" + ks + "\" is none of state, report, event, health, reply");
  if (ks != parts->leaf)
    return reject("topic_mismatch", "kind \"" + ks + "\" published on a ." + "../" + parts->leaf + " topic");
  const Json* county = field("county");
  const Json* school = field("school");
  if (!county || !county->is_string() || *county != rules.county)
    return reject("topic_mismatch", "\"county\" is not \"" + rules.county + "\", the topic's county");
  if (!school || !school->is_string() || *school != parts->school)
    return reject("topic_mismatch", "\"school\" is not \"" + parts->school + "\", the topic's school");
  const Json* ts = field("ts");
  std::optional<SystemTime> when;
  if (ts && ts->is_string()) when = parse_rfc3339(ts->get<std::string>());
  if (!when) return reject("bad_envelope", "\"ts\" is missing or not RFC 3339 (\"2026-11-28T21:00:00+08:00\")");
  const Json* body = field("body");
  if (!body || !body->is_object()) return reject("bad_envelope", "\"body\" is missing or not an object");

  Incoming in;
  in.topic = std::string(topic);
  in.school = parts->school;
  in.kind = kind;
  in.retained = retained;
  in.ts = ts->get<std::string>();
  in.ts_ms = std::chrono::duration_cast<std::chrono::milliseconds>(when->time_since_epoch()).count();
  in.day = in.ts.substr(0, 10);
  in.correlation = std::move(correlation);

  if (kind == Kind::Report || kind == Kind::Event) {
    const Json* seq = field("seq");
    if (!seq || !integer(*seq) || (seq->is_number_integer() && seq->get<std::int64_t>() < 1) ||
        (seq->is_number_unsigned() && seq->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)))
      return reject("bad_seq", "\"seq\" must be an integer of at least 1, got " + (seq ? seq->dump() : std::string("none")));
    in.seq = seq->get<std::int64_t>();
    q.seq = in.seq;
    if (const Json* sid = field("store_id")) {
      if (!sid->is_string() || !is_hex32(sid->get<std::string>()))
        return reject("bad_envelope", "\"store_id\" must be 32 hex digits");
      in.store_id = sid->get<std::string>();
      q.store_id = in.store_id;
    }
    const Json* id = field("id");
    if (!id || !id->is_string() || *id != parts->school + ":" + std::to_string(in.seq))
      return reject("bad_id", "\"id\" must be \"" + parts->school + ":" + std::to_string(in.seq) + "\"");
    const Json* audit = field("audit");
    if (!audit || !audit->is_string() || *audit != parts->sub)
      return reject("topic_mismatch", "\"audit\" is not \"" + parts->sub + "\", the topic's audit");
    in.audit = parts->sub;
    if (const Json* r = field("resent")) {
      if (!r->is_boolean()) return reject("bad_envelope", "\"resent\" must be true or false");
      in.resent = r->get<bool>();
    }
    if (kind == Kind::Report && (!body->contains("summary") || !(*body)["summary"].is_object() ||
                                 !body->contains("findings") || !(*body)["findings"].is_array()))
      return reject("bad_body", "a report body needs \"summary\" (an object) and \"findings\" (an array)");
    if (kind == Kind::Event && (!body->contains("subject") || !(*body)["subject"].is_string() || !body->contains("to")))
      return reject("bad_body", "an event body needs \"subject\" (a string) and \"to\"");
    env.erase("resent");
  } else if (kind == Kind::State) {
    const Json& b = *body;
    if (!b.contains("online") || !b["online"].is_boolean() || !b.contains("session") || !integer(b["session"]) ||
        !b.contains("last_seq") || !integer(b["last_seq"]) || b["last_seq"].get<std::int64_t>() < 0)
      return reject("bad_body", "a state body needs \"online\" (true/false), \"session\" and \"last_seq\" (integers)");
    if (b.contains("store") && b["store"].is_object() && b["store"].contains("id") && b["store"]["id"].is_string()) {
      if (!is_hex32(b["store"]["id"])) return reject("bad_body", "\"store.id\" must be 32 hex digits");
      in.store_id = b["store"]["id"];
    }
  } else if (kind == Kind::Health) {
    const Json& b = *body;
    if (!b.contains("outbox") || !b["outbox"].is_object() || !b["outbox"].contains("last_seq") ||
        !integer(b["outbox"]["last_seq"]) || !b["outbox"].contains("depth") || !integer(b["outbox"]["depth"]))
      return reject("bad_body", "a health body needs \"outbox\" with \"last_seq\" and \"depth\" (integers)");
    if (b.contains("store") && b["store"].is_object() && b["store"].contains("id") && b["store"]["id"].is_string() &&
        is_hex32(b["store"]["id"]))
      in.store_id = b["store"]["id"];
  } else {  // reply
    if (!body->contains("ok") || !(*body)["ok"].is_boolean()) return reject("bad_body", "a reply body needs \"ok\"");
    in.requester = parts->sub;
  }
  in.canonical = env.dump(-1, ' ', false, Json::error_handler_t::replace);
  in.sha256 = sha256_hex(in.canonical);
  in.envelope = std::move(env);
  return in;
}

}  // namespace campus::county
