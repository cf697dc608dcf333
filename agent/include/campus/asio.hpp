// The one way campus code includes Boost.Asio.
// Boost 1.74 + GCC 12 + C++20: asio/awaitable.hpp uses std::exchange without
// including <utility>, so it must come first (docs/dependencies.md, "Boost 1.74").
#pragma once
#include <utility>
#include <boost/asio.hpp>

namespace campus {
namespace asio = boost::asio;
}
