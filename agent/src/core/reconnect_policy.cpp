#include "core/reconnect_policy.hpp"

#include <algorithm>

#include "core/backoff.hpp"

namespace campus {

ReconnectPolicy::ReconnectPolicy(Millis min, Millis max, std::size_t brokers)
    : min_(min), max_(max), brokers_(std::max<std::size_t>(1, brokers)) {}

Millis ReconnectPolicy::wait(int step, double uniform01) const { return backoff_delay(min_, max_, step, uniform01); }

void ReconnectPolicy::connected(Clock::time_point now) {
  connected_at_ = now;
  step_ = 0;
}

Millis ReconnectPolicy::lost(Clock::time_point now, bool taken_over, double uniform01) {
  if (taken_over) {
    step_ = kLongestStep;  // not a session the broker fails: short_lived_ stays
  } else if (now - connected_at_ < kShortLived) {
    ++short_lived_;
    step_ = std::max(step_, short_lived_);
  } else {
    short_lived_ = 0;
  }
  return wait(std::min(step_++, kLongestStep), uniform01);
}

Millis ReconnectPolicy::failed(double uniform01) {
  if (brokers_ > 1) {
    broker_ = (broker_ + 1) % brokers_;
    if (broker_ != 0) return wait(0, uniform01);
  }
  return wait(std::min(step_++, kLongestStep), uniform01);
}

Millis ReconnectPolicy::refused_v5(double uniform01) {
  v311_.insert(broker_);
  return wait(0, uniform01);
}

}  // namespace campus
