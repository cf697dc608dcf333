// Reconnect and retry waits: exponential from `min` to `max`, with jitter. Pure, so the agent's
// publisher and the county collector wait the same way and a test can check it without a clock.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "campus/units.hpp"

namespace campus {

// The wait before attempt `step` (0 for the first retry): min * 2^step, at most max, then
// scaled by `uniform01` (a random number in [0, 1]) into [d/2, d], so that many clients that
// lost the same server do not come back in step.
inline Millis backoff_delay(Millis min, Millis max, int step, double uniform01) {
  const double base = static_cast<double>(std::max<std::int64_t>(1, min.count()));
  const double cap = static_cast<double>(std::max(max.count(), min.count()));
  const double d = std::min(cap, base * std::pow(2.0, std::clamp(step, 0, 30)));
  return Millis(static_cast<std::int64_t>(d / 2 + d / 2 * std::clamp(uniform01, 0.0, 1.0)));
}

}  // namespace campus
