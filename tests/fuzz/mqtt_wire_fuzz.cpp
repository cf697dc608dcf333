// The collector's MQTT 5 decoder (county/src/mqtt_wire.cpp): a byte stream from a broker, cut
// into packets and decoded by type. Malformed input is an Error, never a crash.
#include <cstddef>
#include <cstdint>

#include "mqtt_wire.hpp"

using namespace campus::county::mqtt;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Framer f(1 << 16);
  // Fed in two parts, so a packet split across reads is exercised too.
  const std::size_t half = size / 2;
  f.feed(reinterpret_cast<const char*>(data), half);
  for (int round = 0; round < 2; ++round) {
    while (true) {
      auto p = f.next();
      if (!p.ok() || !*p) break;
      const RawPacket& raw = **p;
      switch (raw.type()) {
        case PacketType::Connack: (void)decode_connack(raw); break;
        case PacketType::Publish: {
          auto m = decode_publish(raw);
          if (m.ok() && m->topic.empty()) __builtin_trap();  // an empty topic is refused
          break;
        }
        case PacketType::Puback: (void)decode_puback(raw); break;
        case PacketType::Suback: (void)decode_suback(raw); break;
        case PacketType::Disconnect: (void)decode_disconnect(raw); break;
        default: break;
      }
    }
    if (round == 0) f.feed(reinterpret_cast<const char*>(data) + half, size - half);
  }
  return 0;
}
