// Reachability probes with deadlines, on the io_context.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "campus/asio.hpp"
#include "campus/export.hpp"
#include "campus/units.hpp"

namespace campus {

struct ProbeResult {
  bool reachable = false;
  std::string reason;  // empty when reachable: "connection refused", "timeout after 2s", ...
  Millis rtt{0};
};

// TCP connect to host:port (host is an address literal or a name resolved asynchronously).
// `done` runs exactly once on io, at the latest when `timeout` has passed.
CAMPUS_API void tcp_probe(asio::io_context& io, const std::string& host, std::uint16_t port, Millis timeout,
                          std::function<void(ProbeResult)> done);

// ICMP echo to an IPv4 address literal. Uses an unprivileged ICMP socket where
// net.ipv4.ping_group_range allows the process's group, else a raw socket (needs CAP_NET_RAW);
// which one is logged once. All probes on one io_context share one socket. `done` runs exactly
// once on io, at the latest when `timeout` has passed; reason "ICMP not permitted: ..." when
// neither socket can be opened.
CAMPUS_API void icmp_probe(asio::io_context& io, const std::string& host, Millis timeout,
                           std::function<void(ProbeResult)> done);

}  // namespace campus
