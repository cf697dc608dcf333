// Endpoint probes (agent/src/core/probe.cpp) as the fiber audit uses them: TCP connect to an
// open and a closed port, a silent address bounded by its timeout, and ICMP echo on loopback.
#include <gtest/gtest.h>

#include "campus/probe.hpp"

using namespace campus;

namespace {

ProbeResult run_tcp(asio::io_context& io, std::uint16_t port, Millis timeout = Millis(1000)) {
  ProbeResult out;
  int calls = 0;
  tcp_probe(io, "127.0.0.1", port, timeout, [&](ProbeResult r) { out = r; ++calls; });
  io.run();
  io.restart();
  EXPECT_EQ(calls, 1);
  return out;
}

}  // namespace

TEST(Probe, TcpOpenPortIsReachableClosedPortIsRefused) {
  asio::io_context io;
  asio::ip::tcp::acceptor listening(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto open_port = listening.local_endpoint().port();
  EXPECT_TRUE(run_tcp(io, open_port).reachable);
  std::uint16_t closed_port;
  {
    asio::ip::tcp::acceptor tmp(io, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = tmp.local_endpoint().port();
  }
  auto r = run_tcp(io, closed_port);
  EXPECT_FALSE(r.reachable);
  EXPECT_EQ(r.reason, "connection refused");
}

TEST(Probe, IcmpEchoOnLoopbackOrAClearRefusal) {
  asio::io_context io;
  int calls = 0;
  std::vector<ProbeResult> results;
  for (int i = 0; i < 20; ++i)
    icmp_probe(io, "127.0.0." + std::to_string(1 + i), Millis(1000), [&](ProbeResult r) { results.push_back(r); ++calls; });
  io.run();
  ASSERT_EQ(calls, 20);
  if (!results[0].reachable && results[0].reason.find("not permitted") != std::string::npos)
    GTEST_SKIP() << results[0].reason;
  for (const auto& r : results) EXPECT_TRUE(r.reachable) << r.reason;
}

TEST(Probe, IcmpRejectsNonIpv4) {
  asio::io_context io;
  ProbeResult out;
  icmp_probe(io, "::1", Millis(100), [&](ProbeResult r) { out = r; });
  io.run();
  EXPECT_FALSE(out.reachable);
  EXPECT_NE(out.reason.find("IPv4"), std::string::npos);
}
