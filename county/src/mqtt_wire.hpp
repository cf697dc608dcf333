// MQTT 5.0 packets as the county collector speaks them (OASIS MQTT 5.0, chapter 3): encoding of
// what a client sends (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT) and decoding of
// what a server sends (CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP, DISCONNECT). Pure: bytes in,
// packets out, every malformed input an Error naming the packet and the field.
//
// Why the collector has its own MQTT client instead of Paho (docs/county.md "Why its own MQTT
// client"): Paho C sends a QoS 1 PUBACK as soon as its message callback returns, one message at
// a time, so "acknowledge only after commit" costs one database transaction per message. This
// client hands every PUBLISH to the collector with its packet id and sends the PUBACK only when
// the collector says the batch holding it is committed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "campus/error.hpp"

namespace campus::county::mqtt {

enum class PacketType : std::uint8_t {
  Connect = 1, Connack = 2, Publish = 3, Puback = 4, Pubrec = 5, Pubrel = 6, Pubcomp = 7, Subscribe = 8,
  Suback = 9, Unsubscribe = 10, Unsuback = 11, Pingreq = 12, Pingresp = 13, Disconnect = 14, Auth = 15
};
const char* packet_name(PacketType t);

// The properties this client sends or reads; every other property a server may send is parsed
// (so the packet is checked) and ignored.
struct Properties {
  std::optional<std::uint32_t> session_expiry;        // 0x11
  std::optional<std::uint16_t> receive_maximum;       // 0x21
  std::optional<std::uint32_t> maximum_packet_size;   // 0x27
  std::optional<std::uint8_t> maximum_qos;            // 0x24
  std::optional<std::uint16_t> topic_alias_maximum;   // 0x22
  std::optional<std::uint16_t> topic_alias;           // 0x23
  std::optional<std::uint16_t> server_keep_alive;     // 0x13
  std::optional<std::string> assigned_client_id;      // 0x12
  std::optional<std::string> reason_string;           // 0x1F
  std::optional<std::string> response_topic;          // 0x08
  std::optional<std::string> correlation_data;        // 0x09 (binary)
  std::optional<std::string> content_type;            // 0x03
  std::optional<std::uint8_t> payload_format;         // 0x01
  std::optional<std::uint32_t> message_expiry;        // 0x02
  std::vector<std::pair<std::string, std::string>> user;  // 0x26
  std::vector<std::uint32_t> subscription_ids;        // 0x0B
};

struct Connect {
  std::string client_id;
  bool clean_start = false;
  std::uint16_t keep_alive_s = 30;
  std::optional<std::string> username;
  std::optional<std::string> password;
  Properties properties;  // session_expiry, receive_maximum, maximum_packet_size, ...
};

struct Connack {
  bool session_present = false;
  std::uint8_t reason = 0;  // 0 = success; >= 0x80 refused
  Properties properties;
};

struct Publish {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // QoS > 0 only
  Properties properties;
};

struct Puback {
  std::uint16_t packet_id = 0;
  std::uint8_t reason = 0;
};

struct Subscription {
  std::string filter;
  std::uint8_t qos = 1;
  // 0: send retained messages at every subscribe; 1: only when the subscription is new (a
  // resumed session already has it); 2: never.
  std::uint8_t retain_handling = 0;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;
};

struct Suback {
  std::uint16_t packet_id = 0;
  std::vector<std::uint8_t> reasons;  // per filter: granted QoS (0..2) or >= 0x80 refused
  Properties properties;
};

struct Disconnect {
  std::uint8_t reason = 0;
  Properties properties;
};

// Encoding: the whole packet, fixed header included.
std::string encode(const Connect& p);
std::string encode(const Publish& p);
std::string encode(const Puback& p);
std::string encode(const Subscribe& p);
std::string encode(const Disconnect& p);
std::string pingreq();

// One whole packet as read off the wire: the first byte of the fixed header and the rest.
struct RawPacket {
  std::uint8_t header = 0;
  std::string body;
  PacketType type() const { return static_cast<PacketType>(header >> 4); }
  std::uint8_t flags() const { return header & 0x0f; }
};

// Cuts a byte stream into packets. A packet larger than `max_packet` (fixed header included) or a
// malformed remaining length is an error after which the stream cannot be trusted.
class Framer {
 public:
  explicit Framer(std::size_t max_packet = 268'435'460) : max_packet_(max_packet) {}
  void feed(const char* data, std::size_t size) { buffer_.append(data, size); }
  // The next whole packet, nullopt when more bytes are needed, or an Error.
  Result<std::optional<RawPacket>> next();
  std::size_t buffered() const { return buffer_.size() - offset_; }

 private:
  std::string buffer_;
  std::size_t offset_ = 0;
  std::size_t max_packet_;
};

Result<Connack> decode_connack(const RawPacket& p);
Result<Publish> decode_publish(const RawPacket& p);
Result<Puback> decode_puback(const RawPacket& p);
Result<Suback> decode_suback(const RawPacket& p);
Result<Disconnect> decode_disconnect(const RawPacket& p);

// Words for a CONNACK / DISCONNECT / PUBACK reason code ("0x87 not authorized").
std::string reason_text(std::uint8_t code);

}  // namespace campus::county::mqtt
