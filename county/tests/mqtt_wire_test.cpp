// MQTT 5 packets: what the collector sends is what the standard says, what a broker sends is
// read back, and a malformed packet is an Error naming the packet and the field.
#include <gtest/gtest.h>

#include "mqtt_wire.hpp"

using namespace campus::county::mqtt;

namespace {

RawPacket frame(const std::string& bytes) {
  Framer f;
  f.feed(bytes.data(), bytes.size());
  auto p = f.next();
  EXPECT_TRUE(p.ok());
  EXPECT_TRUE(p.value().has_value());
  return *p.value();
}

std::string hex(const std::string& s) {
  static const char* h = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) o += std::string{h[c >> 4], h[c & 15]};
  return o;
}

}  // namespace

TEST(MqttWire, ConnectCarriesTheDurableSession) {
  Connect c;
  c.client_id = "cc";
  c.clean_start = false;
  c.keep_alive_s = 30;
  c.properties.session_expiry = 604800;
  c.properties.receive_maximum = 1000;
  // 10 = CONNECT; "MQTT" v5, flags 0 (clean start off), keep alive 30, properties 8 bytes.
  EXPECT_EQ(hex(encode(c)), "10" "17" "00044d5154540500" "001e" "08" "1100093a80" "2103e8" "00026363");
}

TEST(MqttWire, PublishRoundTripsWithResponseTopicAndCorrelation) {
  Publish p;
  p.topic = "campus/v1/zhenkang/a/cmd";
  p.payload = R"({"cmd":"resend"})";
  p.qos = 1;
  p.packet_id = 7;
  p.retain = true;
  p.properties.response_topic = "campus/v1/zhenkang/a/reply/collector";
  p.properties.correlation_data = std::string("\x00\x01z", 3);
  RawPacket raw = frame(encode(p));
  EXPECT_EQ(raw.type(), PacketType::Publish);
  auto back = decode_publish(raw);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->topic, p.topic);
  EXPECT_EQ(back->payload, p.payload);
  EXPECT_EQ(back->qos, 1);
  EXPECT_TRUE(back->retain);
  EXPECT_EQ(back->packet_id, 7);
  EXPECT_EQ(*back->properties.response_topic, *p.properties.response_topic);
  EXPECT_EQ(*back->properties.correlation_data, *p.properties.correlation_data);
}

TEST(MqttWire, FramerWaitsForWholePacketsAndCutsSeveral) {
  Publish a{"t/a", "1", 1, false, false, 1, {}}, b{"t/b", std::string(300, 'x'), 0, false, false, 0, {}};
  std::string bytes = encode(a) + encode(b) + encode(Puback{9, 0});
  Framer f;
  std::vector<RawPacket> got;
  for (char c : bytes) {  // one byte at a time: every split point
    f.feed(&c, 1);
    while (true) {
      auto p = f.next();
      ASSERT_TRUE(p.ok());
      if (!*p) break;
      got.push_back(**p);
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(decode_publish(got[1])->payload.size(), 300u);
  EXPECT_EQ(decode_puback(got[2])->packet_id, 9);
}

TEST(MqttWire, ConnackSubackDisconnectAndTheirReasons) {
  auto ca = decode_connack(frame(std::string("\x20\x06\x01\x00\x03\x21\x00\x14", 8)));
  ASSERT_TRUE(ca.ok()) << ca.error().message();
  EXPECT_TRUE(ca->session_present);
  EXPECT_EQ(*ca->properties.receive_maximum, 20);
  auto sa = decode_suback(frame(std::string("\x90\x05\x00\x02\x00\x01\x87", 7)));
  ASSERT_TRUE(sa.ok());
  EXPECT_EQ(sa->reasons, (std::vector<std::uint8_t>{1, 0x87}));
  auto d = decode_disconnect(frame(std::string("\xe0\x01\x8e", 3)));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->reason, 0x8E);
  EXPECT_EQ(reason_text(0x8E), "0x8E session taken over");
  EXPECT_EQ(decode_disconnect(frame(std::string("\xe0\x00", 2)))->reason, 0);
  EXPECT_EQ(decode_puback(frame(std::string("\x40\x02\x00\x05", 4)))->reason, 0);
}

TEST(MqttWire, MalformedPacketsAreErrorsThatNameTheField) {
  // A PUBLISH whose topic length runs past the packet.
  auto p = decode_publish(frame(std::string("\x32\x04\x00\x09" "ab", 6)));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("topic name"), std::string::npos) << p.error().message();
  // QoS 3.
  EXPECT_FALSE(decode_publish(frame(std::string("\x36\x05\x00\x01t\x00\x01", 7))).ok());
  // A topic that is not UTF-8.
  auto u = decode_publish(frame(std::string("\x30\x04\x00\x01\xff\x00", 6)));
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message().find("UTF-8"), std::string::npos);
  // An unknown property.
  auto c = decode_connack(frame(std::string("\x20\x05\x00\x00\x02\x7f\x00", 7)));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("unknown property 0x7F"), std::string::npos) << c.error().message();
  // A remaining length of five bytes, and a packet above the limit.
  Framer f;
  std::string bad("\x30\xff\xff\xff\xff\x01", 6);
  f.feed(bad.data(), bad.size());
  EXPECT_FALSE(f.next().ok());
  Framer small(100);
  std::string big = encode(Publish{"t", std::string(200, 'x'), 0, false, false, 0, {}});
  small.feed(big.data(), big.size());
  EXPECT_FALSE(small.next().ok());
}
