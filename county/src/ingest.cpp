// Checks one message from a school against docs/protocol.md (see ingest.hpp). The payload is
// validated whole by the JSON scanner; only the envelope's fields and the small parts of the
// body the collector uses are parsed.
#include "ingest.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <string_view>
#include <vector>

#include "core/codes.hpp"
#include "core/envelope.hpp"
#include "json_skim.hpp"

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

// A member's value, parsed (the scanner has validated it: this cannot fail).
Json value_of(const JsonMember* m) { return m ? Json::parse(m->value, nullptr, false) : Json(); }

// A string member's value; the common case (no escape) without a parser.
std::optional<std::string> string_of(const JsonMember* m) {
  if (!m || m->value.size() < 2 || m->value[0] != '"') return std::nullopt;
  if (m->value.find('\\') == std::string_view::npos) return std::string(m->value.substr(1, m->value.size() - 2));
  return value_of(m).get<std::string>();
}

bool starts(const JsonMember* m, char c) { return m && !m->value.empty() && m->value[0] == c; }

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

  const JsonSkim sk = skim_json(payload);
  const bool seq_kind = kind == Kind::Report || kind == Kind::Event;
  auto usable_seq = [&]() -> std::optional<std::int64_t> {
    const JsonMember* m = sk.find("seq");
    if (m && !m->value.empty() && m->value.size() <= 18 && m->value[0] >= '1' && m->value[0] <= '9' &&
        m->value.find_first_not_of("0123456789") == std::string_view::npos) {
      std::int64_t v = 0;
      for (char c : m->value) v = v * 10 + (c - '0');
      return v;  // the common case without a parser
    }
    Json seq = value_of(m);
    if (!integer(seq) || (seq.is_number_integer() && seq.get<std::int64_t>() < 1) ||
        (seq.is_number_unsigned() && seq.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)))
      return std::nullopt;
    return seq.get<std::int64_t>();
  };
  // Scanned even when too large, so that its seq is known and the ledger records it instead of
  // asking for it again and again.
  if (payload.size() > rules.max_payload) {
    if (sk.ok && seq_kind) {
      q.seq = usable_seq();
      if (auto sid = string_of(sk.find("store_id")); sid && is_hex32(*sid)) q.store_id = *sid;
    }
    return reject("too_large", std::to_string(payload.size()) + " bytes, above ingest.max_payload (" +
                                   std::to_string(rules.max_payload) + ")");
  }
  if (!sk.ok) return reject("not_json", sk.error);
  if (!sk.object) return reject("not_an_object", "the payload is JSON but not an object");
  // An agent never repeats a member. A repeated one would let the checked fields (the last
  // copy, as nlohmann reads them) and the stored copy (which drops one "resent") disagree.
  // Sorted, not compared pairwise: a payload up to ingest.max_payload may hold many members.
  {
    std::vector<std::string_view> keys;
    keys.reserve(sk.members.size());
    for (const auto& m : sk.members) keys.emplace_back(m.key);
    std::sort(keys.begin(), keys.end());
    if (auto twice = std::adjacent_find(keys.begin(), keys.end()); twice != keys.end())
      return reject("bad_envelope", "member \"" + std::string(twice->substr(0, 40)) +
                                        "\" appears more than once in the envelope (each may appear once)");
  }

  const JsonMember* v = sk.find("v");
  if (!v || (v->value != "1" && !(integer(value_of(v)) && value_of(v) == 1)))
    return reject("bad_envelope", "\"v\" must be 1");
  auto ks = string_of(sk.find("kind"));
  if (!ks) return reject("bad_envelope", "\"kind\" is missing or not a string");
  if (*ks != "state" && *ks != "report" && *ks != "event" && *ks != "health" && *ks != "reply")
    return reject("unknown_kind", "kind \"" + *ks + "\" is none of state, report, event, health, reply");
  if (*ks != parts->leaf) return reject("topic_mismatch", "kind \"" + *ks + "\" published on a .../" + parts->leaf + " topic");
  if (string_of(sk.find("county")) != rules.county)
    return reject("topic_mismatch", "\"county\" is not \"" + rules.county + "\", the topic's county");
  if (string_of(sk.find("school")) != parts->school)
    return reject("topic_mismatch", "\"school\" is not \"" + parts->school + "\", the topic's school");
  auto ts = string_of(sk.find("ts"));
  std::optional<SystemTime> when;
  if (ts) when = parse_rfc3339(*ts);
  if (!when) return reject("bad_envelope", "\"ts\" is missing or not RFC 3339 (\"2026-11-28T21:00:00+08:00\")");
  const JsonMember* body = sk.find("body");
  if (!starts(body, '{')) return reject("bad_envelope", "\"body\" is missing or not an object");

  Incoming in;
  in.topic = std::string(topic);
  in.school = parts->school;
  in.kind = kind;
  in.retained = retained;
  in.ts = *ts;
  in.ts_ms = std::chrono::duration_cast<std::chrono::milliseconds>(when->time_since_epoch()).count();
  in.day = in.ts.substr(0, 10);
  in.correlation = std::move(correlation);
  const JsonMember* resent = nullptr;

  if (seq_kind) {
    auto seq = usable_seq();
    if (!seq) {
      const JsonMember* m = sk.find("seq");
      return reject("bad_seq", "\"seq\" must be an integer of at least 1, got " +
                                   (m ? std::string(m->value.substr(0, 40)) : std::string("none")));
    }
    in.seq = *seq;
    q.seq = in.seq;
    if (const JsonMember* sid = sk.find("store_id")) {
      auto id = string_of(sid);
      if (!id || !is_hex32(*id)) return reject("bad_envelope", "\"store_id\" must be 32 hex digits");
      in.store_id = *id;
      q.store_id = in.store_id;
    }
    if (string_of(sk.find("id")) != parts->school + ":" + std::to_string(in.seq))
      return reject("bad_id", "\"id\" must be \"" + parts->school + ":" + std::to_string(in.seq) + "\"");
    if (string_of(sk.find("audit")) != parts->sub)
      return reject("topic_mismatch", "\"audit\" is not \"" + parts->sub + "\", the topic's audit");
    in.audit = parts->sub;
    if ((resent = sk.find("resent"))) {
      Json r = value_of(resent);
      if (!r.is_boolean()) return reject("bad_envelope", "\"resent\" must be true or false");
      in.resent = r.get<bool>();
    }
    if (kind == Kind::Report) {
      const JsonMember* summary = sk.find_nested("summary");
      if (!starts(summary, '{') || !starts(sk.find_nested("findings"), '['))
        return reject("bad_body", "a report body needs \"summary\" (an object) and \"findings\" (an array)");
      in.body = Json{{"summary", value_of(summary)}};
    } else {
      in.body = value_of(body);
      if (!in.body.contains("subject") || !in.body["subject"].is_string() || !in.body.contains("to"))
        return reject("bad_body", "an event body needs \"subject\" (a string) and \"to\"");
    }
  } else {
    in.body = value_of(body);
    const Json& b = in.body;
    if (kind == Kind::State) {
      if (!b.contains("online") || !b["online"].is_boolean() || !b.contains("session") || !integer(b["session"]) ||
          !b.contains("last_seq") || !integer(b["last_seq"]) || b["last_seq"].get<std::int64_t>() < 0)
        return reject("bad_body", "a state body needs \"online\" (true/false), \"session\" and \"last_seq\" (integers)");
      if (b.contains("store") && b["store"].is_object() && b["store"].contains("id") && b["store"]["id"].is_string()) {
        if (!is_hex32(b["store"]["id"])) return reject("bad_body", "\"store.id\" must be 32 hex digits");
        in.store_id = b["store"]["id"];
      }
    } else if (kind == Kind::Health) {
      if (!b.contains("outbox") || !b["outbox"].is_object() || !b["outbox"].contains("last_seq") ||
          !integer(b["outbox"]["last_seq"]) || !b["outbox"].contains("depth") || !integer(b["outbox"]["depth"]))
        return reject("bad_body", "a health body needs \"outbox\" with \"last_seq\" and \"depth\" (integers)");
      if (b.contains("store") && b["store"].is_object() && b["store"].contains("id") && b["store"]["id"].is_string() &&
          is_hex32(b["store"]["id"]))
        in.store_id = b["store"]["id"];
    } else {
      if (!b.contains("ok") || !b["ok"].is_boolean()) return reject("bad_body", "a reply body needs \"ok\"");
      in.requester = parts->sub;
      // A school on MQTT 3.1.1 cannot send Correlation Data: its body carries the correlation.
      if (!in.correlation && b.contains("correlation") && b["correlation"].is_string())
        in.correlation = b["correlation"].get<std::string>();
    }
  }
  // The stored copy: as received, without a top-level "resent" member (and the comma that
  // joined it), so that a resent copy of an agent's message is its original byte for byte.
  if (resent) {
    std::size_t from = resent->begin, to = resent->end;
    const JsonMember* next = nullptr;
    const JsonMember* prev = nullptr;
    for (const auto& m : sk.members) {
      if (m.begin > resent->begin && (!next || m.begin < next->begin)) next = &m;
      if (m.begin < resent->begin && (!prev || m.begin > prev->begin)) prev = &m;
    }
    if (next) to = next->begin;
    else if (prev) from = prev->end;
    in.payload.reserve(payload.size());
    in.payload.append(payload.substr(0, from)).append(payload.substr(to));
  } else {
    in.payload = std::string(payload);
  }
  in.sha256 = sha256_hex(in.payload);
  return in;
}

}  // namespace campus::county
