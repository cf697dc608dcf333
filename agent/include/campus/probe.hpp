// Reachability probes with deadlines, on the io_context.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "campus/asio.hpp"
#include "campus/units.hpp"

namespace campus {

struct ProbeResult {
  bool reachable = false;
  std::string reason;  // empty when reachable: "connection refused", "timeout after 2s", ...
  Millis rtt{0};
};

// TCP connect to host:port (host is an address literal or a name resolved asynchronously).
// `done` runs exactly once on io, at the latest when `timeout` has passed.
void tcp_probe(asio::io_context& io, const std::string& host, std::uint16_t port, Millis timeout,
               std::function<void(ProbeResult)> done);

}  // namespace campus
