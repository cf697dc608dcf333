// MQTT 5.0 packet encoding and decoding (see mqtt_wire.hpp). Section numbers are the OASIS
// MQTT 5.0 standard's.
#include "mqtt_wire.hpp"

#include <cstdio>

namespace campus::county::mqtt {
namespace {

constexpr std::uint32_t kMaxVarint = 268'435'455;  // 2.2.3: four bytes at most

// ---- writing ----
struct Writer {
  std::string out;
  void u8(std::uint8_t v) { out.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void varint(std::uint32_t v) {
    do {
      std::uint8_t b = v % 128;
      v /= 128;
      if (v > 0) b |= 0x80;
      u8(b);
    } while (v > 0);
  }
  void str(std::string_view s) {  // 1.5.4 / 1.5.6: two-byte length, then the bytes
    u16(static_cast<std::uint16_t>(s.size()));
    out.append(s.data(), s.size());
  }
  void raw(std::string_view s) { out.append(s.data(), s.size()); }
};

void put_properties(Writer& w, const Properties& p) {
  Writer b;
  if (p.payload_format) b.u8(0x01), b.u8(*p.payload_format);
  if (p.message_expiry) b.u8(0x02), b.u32(*p.message_expiry);
  if (p.content_type) b.u8(0x03), b.str(*p.content_type);
  if (p.response_topic) b.u8(0x08), b.str(*p.response_topic);
  if (p.correlation_data) b.u8(0x09), b.str(*p.correlation_data);
  for (auto id : p.subscription_ids) b.u8(0x0B), b.varint(id);
  if (p.session_expiry) b.u8(0x11), b.u32(*p.session_expiry);
  if (p.receive_maximum) b.u8(0x21), b.u16(*p.receive_maximum);
  if (p.topic_alias_maximum) b.u8(0x22), b.u16(*p.topic_alias_maximum);
  if (p.maximum_packet_size) b.u8(0x27), b.u32(*p.maximum_packet_size);
  for (const auto& [k, v] : p.user) b.u8(0x26), b.str(k), b.str(v);
  w.varint(static_cast<std::uint32_t>(b.out.size()));
  w.raw(b.out);
}

std::string packet(std::uint8_t header, const std::string& body) {
  Writer w;
  w.u8(header);
  w.varint(static_cast<std::uint32_t>(body.size()));
  w.raw(body);
  return w.out;
}

// ---- reading ----
struct Reader {
  std::string_view in;
  std::size_t at = 0;
  const char* packet;
  std::string problem;  // the first problem found; empty while all is well

  bool fail(const std::string& what) {
    if (problem.empty()) problem = what;
    return false;
  }
  bool need(std::size_t n, const char* field) {
    if (in.size() - at >= n) return true;
    return fail(std::string(field) + ": the packet ends early");
  }
  bool u8(std::uint8_t& v, const char* field) {
    if (!need(1, field)) return false;
    v = static_cast<std::uint8_t>(in[at++]);
    return true;
  }
  bool u16(std::uint16_t& v, const char* field) {
    if (!need(2, field)) return false;
    v = static_cast<std::uint16_t>((static_cast<std::uint8_t>(in[at]) << 8) | static_cast<std::uint8_t>(in[at + 1]));
    at += 2;
    return true;
  }
  bool u32(std::uint32_t& v, const char* field) {
    std::uint16_t hi = 0, lo = 0;
    if (!u16(hi, field) || !u16(lo, field)) return false;
    v = (static_cast<std::uint32_t>(hi) << 16) | lo;
    return true;
  }
  bool varint(std::uint32_t& v, const char* field) {
    v = 0;
    std::uint32_t mult = 1;
    for (int i = 0; i < 4; ++i) {
      std::uint8_t b = 0;
      if (!u8(b, field)) return false;
      v += (b & 0x7f) * mult;
      if (!(b & 0x80)) return true;
      mult *= 128;
    }
    return fail(std::string(field) + ": a variable byte integer longer than 4 bytes");
  }
  bool binary(std::string& v, const char* field) {
    std::uint16_t n = 0;
    if (!u16(n, field) || !need(n, field)) return false;
    v.assign(in.substr(at, n));
    at += n;
    return true;
  }
  bool utf8(std::string& v, const char* field);
  std::size_t left() const { return in.size() - at; }
};

// 1.5.4: well-formed UTF-8, no U+0000, no surrogates.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    std::uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (std::size_t k = 1; k < n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n;
  }
  return true;
}

bool Reader::utf8(std::string& v, const char* field) {
  if (!binary(v, field)) return false;
  if (!valid_utf8(v)) return fail(std::string(field) + ": not well-formed UTF-8");
  return true;
}

bool read_properties(Reader& r, Properties& p) {
  std::uint32_t length = 0;
  if (!r.varint(length, "property length")) return false;
  if (length > r.left()) return r.fail("property length " + std::to_string(length) + " is beyond the packet");
  Reader b{r.in.substr(r.at, length), 0, r.packet, {}};
  r.at += length;
  while (b.left() > 0) {
    std::uint32_t id = 0;
    if (!b.varint(id, "property id")) break;
    std::uint8_t u8v = 0;
    std::uint16_t u16v = 0;
    std::uint32_t u32v = 0;
    std::string s, s2;
    bool ok = true;
    switch (id) {
      case 0x01: ok = b.u8(u8v, "payload format indicator"), p.payload_format = u8v; break;
      case 0x02: ok = b.u32(u32v, "message expiry interval"), p.message_expiry = u32v; break;
      case 0x03: ok = b.utf8(s, "content type"), p.content_type = s; break;
      case 0x08: ok = b.utf8(s, "response topic"), p.response_topic = s; break;
      case 0x09: ok = b.binary(s, "correlation data"), p.correlation_data = s; break;
      case 0x0B: ok = b.varint(u32v, "subscription identifier"), p.subscription_ids.push_back(u32v); break;
      case 0x11: ok = b.u32(u32v, "session expiry interval"), p.session_expiry = u32v; break;
      case 0x12: ok = b.utf8(s, "assigned client identifier"), p.assigned_client_id = s; break;
      case 0x13: ok = b.u16(u16v, "server keep alive"), p.server_keep_alive = u16v; break;
      case 0x15: case 0x1A: case 0x1C: ok = b.utf8(s, "string property"); break;
      case 0x16: ok = b.binary(s, "authentication data"); break;
      case 0x17: case 0x19: case 0x25: case 0x28: case 0x29: case 0x2A: ok = b.u8(u8v, "byte property"); break;
      case 0x18: ok = b.u32(u32v, "will delay interval"); break;
      case 0x1F: ok = b.utf8(s, "reason string"), p.reason_string = s; break;
      case 0x21: ok = b.u16(u16v, "receive maximum"), p.receive_maximum = u16v; break;
      case 0x22: ok = b.u16(u16v, "topic alias maximum"), p.topic_alias_maximum = u16v; break;
      case 0x23: ok = b.u16(u16v, "topic alias"), p.topic_alias = u16v; break;
      case 0x24: ok = b.u8(u8v, "maximum qos"), p.maximum_qos = u8v; break;
      case 0x26: ok = b.utf8(s, "user property name") && b.utf8(s2, "user property value"), p.user.emplace_back(s, s2); break;
      case 0x27: ok = b.u32(u32v, "maximum packet size"), p.maximum_packet_size = u32v; break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", id);
        return r.fail(std::string("unknown property ") + hex);
      }
    }
    if (!ok) break;
  }
  if (!b.problem.empty()) return r.fail(b.problem);
  return true;
}

Error wire_error(const Reader& r) {
  return Error{std::string("MQTT ") + r.packet, r.problem, "the broker sent a malformed packet; report it with the broker's version"};
}

template <class T>
Result<T> finish(const Reader& r, T value) {
  if (!r.problem.empty()) return wire_error(r);
  return value;
}

}  // namespace

const char* packet_name(PacketType t) {
  static const char* names[] = {"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
                                "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
                                "AUTH"};
  return names[static_cast<std::uint8_t>(t) & 0x0f];
}

std::string encode(const Connect& p) {  // 3.1
  Writer b;
  b.str("MQTT");
  b.u8(5);
  std::uint8_t flags = p.clean_start ? 0x02 : 0;
  if (p.username) flags |= 0x80;
  if (p.password) flags |= 0x40;
  b.u8(flags);
  b.u16(p.keep_alive_s);
  put_properties(b, p.properties);
  b.str(p.client_id);
  if (p.username) b.str(*p.username);
  if (p.password) b.str(*p.password);
  return packet(0x10, b.out);
}

std::string encode(const Publish& p) {  // 3.3
  Writer b;
  b.str(p.topic);
  if (p.qos > 0) b.u16(p.packet_id);
  put_properties(b, p.properties);
  b.raw(p.payload);
  std::uint8_t header = 0x30 | static_cast<std::uint8_t>((p.qos & 3) << 1);
  if (p.dup) header |= 0x08;
  if (p.retain) header |= 0x01;
  return packet(header, b.out);
}

std::string encode(const Puback& p) {  // 3.4: reason 0 and no properties may be left out
  Writer b;
  b.u16(p.packet_id);
  if (p.reason != 0) b.u8(p.reason);
  return packet(0x40, b.out);
}

std::string encode(const Subscribe& p) {  // 3.8
  Writer b;
  b.u16(p.packet_id);
  b.varint(0);
  for (const auto& s : p.subscriptions) {
    b.str(s.filter);
    b.u8(static_cast<std::uint8_t>((s.qos & 3) | ((s.retain_handling & 3) << 4)));
  }
  return packet(0x82, b.out);
}

std::string encode(const Disconnect& p) {  // 3.14
  Writer b;
  b.u8(p.reason);
  put_properties(b, p.properties);
  return packet(0xE0, b.out);
}

std::string pingreq() { return std::string("\xC0\x00", 2); }

Result<std::optional<RawPacket>> Framer::next() {
  const std::size_t avail = buffer_.size() - offset_;
  if (avail < 2) return std::optional<RawPacket>{};
  std::uint32_t length = 0, mult = 1;
  std::size_t i = 1;
  for (;; ++i) {
    if (i > 4) return Error{"MQTT stream", "a remaining length longer than 4 bytes", "the connection is closed and opened again"};
    if (i >= avail) return std::optional<RawPacket>{};
    auto b = static_cast<std::uint8_t>(buffer_[offset_ + i]);
    length += (b & 0x7f) * mult;
    mult *= 128;
    if (!(b & 0x80)) break;
  }
  const std::size_t total = i + 1 + length;
  if (length > kMaxVarint || total > max_packet_)
    return Error{"MQTT stream", "a packet of " + std::to_string(total) + " bytes, above the limit of " +
                                    std::to_string(max_packet_),
                 "the connection is closed and opened again"};
  if (avail < total) return std::optional<RawPacket>{};
  RawPacket p;
  p.header = static_cast<std::uint8_t>(buffer_[offset_]);
  p.body.assign(buffer_, offset_ + i + 1, length);
  offset_ += total;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  } else if (offset_ > (1u << 20) && offset_ * 2 > buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  return std::optional<RawPacket>(std::move(p));
}

Result<Connack> decode_connack(const RawPacket& p) {  // 3.2
  Reader r{p.body, 0, "CONNACK", {}};
  Connack c;
  std::uint8_t flags = 0;
  if (r.u8(flags, "acknowledge flags") && (flags & 0xfe)) r.fail("reserved acknowledge flags set");
  c.session_present = flags & 1;
  if (r.u8(c.reason, "reason code") && r.left() > 0) read_properties(r, c.properties);
  return finish(r, std::move(c));
}

Result<Publish> decode_publish(const RawPacket& p) {  // 3.3
  Reader r{p.body, 0, "PUBLISH", {}};
  Publish m;
  m.dup = p.flags() & 0x08;
  m.qos = (p.flags() >> 1) & 3;
  m.retain = p.flags() & 0x01;
  if (m.qos == 3) r.fail("QoS 3 is not a QoS");
  if (r.utf8(m.topic, "topic name") && (m.topic.find_first_of("+#") != std::string::npos))
    r.fail("a topic name with a wildcard");
  if (m.qos > 0 && r.u16(m.packet_id, "packet identifier") && m.packet_id == 0) r.fail("packet identifier 0");
  if (r.problem.empty()) read_properties(r, m.properties);
  if (r.problem.empty() && m.topic.empty()) r.fail("an empty topic name (topic aliases are not enabled)");
  if (r.problem.empty()) m.payload.assign(r.in.substr(r.at));
  return finish(r, std::move(m));
}

Result<Puback> decode_puback(const RawPacket& p) {  // 3.4
  Reader r{p.body, 0, "PUBACK", {}};
  Puback a;
  r.u16(a.packet_id, "packet identifier");
  if (r.problem.empty() && r.left() > 0) {
    r.u8(a.reason, "reason code");
    Properties ignored;
    if (r.problem.empty() && r.left() > 0) read_properties(r, ignored);
  }
  return finish(r, a);
}

Result<Suback> decode_suback(const RawPacket& p) {  // 3.9
  Reader r{p.body, 0, "SUBACK", {}};
  Suback s;
  if (r.u16(s.packet_id, "packet identifier")) read_properties(r, s.properties);
  while (r.problem.empty() && r.left() > 0) {
    std::uint8_t code = 0;
    r.u8(code, "reason code");
    s.reasons.push_back(code);
  }
  if (r.problem.empty() && s.reasons.empty()) r.fail("no reason code");
  return finish(r, std::move(s));
}

Result<Disconnect> decode_disconnect(const RawPacket& p) {  // 3.14: no body means reason 0
  Reader r{p.body, 0, "DISCONNECT", {}};
  Disconnect d;
  if (r.left() > 0 && r.u8(d.reason, "reason code") && r.left() > 0) read_properties(r, d.properties);
  return finish(r, std::move(d));
}

std::string reason_text(std::uint8_t code) {
  const char* what = "";
  switch (code) {
    case 0x00: what = "success"; break;
    case 0x04: what = "disconnect with will message"; break;
    case 0x10: what = "no matching subscribers"; break;
    case 0x80: what = "unspecified error"; break;
    case 0x81: what = "malformed packet"; break;
    case 0x82: what = "protocol error"; break;
    case 0x83: what = "implementation specific error"; break;
    case 0x84: what = "unsupported protocol version"; break;
    case 0x85: what = "client identifier not valid"; break;
    case 0x86: what = "bad user name or password"; break;
    case 0x87: what = "not authorized"; break;
    case 0x88: what = "server unavailable"; break;
    case 0x89: what = "server busy"; break;
    case 0x8A: what = "banned"; break;
    case 0x8B: what = "server shutting down"; break;
    case 0x8C: what = "bad authentication method"; break;
    case 0x8D: what = "keep alive timeout"; break;
    case 0x8E: what = "session taken over"; break;
    case 0x8F: what = "topic filter invalid"; break;
    case 0x90: what = "topic name invalid"; break;
    case 0x93: what = "receive maximum exceeded"; break;
    case 0x95: what = "packet too large"; break;
    case 0x97: what = "quota exceeded"; break;
    case 0x99: what = "payload format invalid"; break;
    case 0x9C: what = "use another server"; break;
    case 0x9D: what = "server moved"; break;
    case 0x9F: what = "connection rate exceeded"; break;
    default: what = "reason";
  }
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", code);
  return std::string(hex) + " " + what;
}

}  // namespace campus::county::mqtt
