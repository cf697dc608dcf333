// When and where the publisher connects next, as pure state: the backoff step, the broker of
// the list, which brokers speak only MQTT 3.1.1, and when a resumed session is given up for a
// clean one. Time and randomness are passed in, so a test drives it with a fake clock.
#pragma once
#include <chrono>
#include <cstddef>
#include <set>

#include "campus/units.hpp"

namespace campus {

class ReconnectPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  // A connection the broker closes within kShortLived of accepting it is no success: it does
  // not reset the backoff, and kCleanStartAfter of them in a row give up the session for a
  // clean one (a broker choking on what the resumed session replays, e.g. queued wills, which
  // a clean start drops; nothing of ours is lost: every unacknowledged row is sent again from
  // the store).
  static constexpr auto kShortLived = std::chrono::seconds(2);
  static constexpr int kCleanStartAfter = 3;
  // A step whose wait is reconnect_max (the delay doubles per step and is capped there).
  static constexpr int kLongestStep = 30;

  ReconnectPolicy(Millis min, Millis max, std::size_t brokers);

  // The broker of the list the next attempt goes to, and whether it gets MQTT 3.1.1.
  std::size_t broker() const { return broker_; }
  bool speaks_v311(std::size_t broker) const { return v311_.count(broker) > 0; }
  // The next attempt starts a clean session.
  bool clean_start() const { return short_lived_ >= kCleanStartAfter; }
  int short_lived() const { return short_lived_; }

  void connected(Clock::time_point now);
  // The connection ended; the wait before the next attempt. taken_over: another client took
  // the session (DISCONNECT 0x8E): the wait is reconnect_max (jittered down to half at most),
  // so the agent never fights the other client in a tight loop.
  Millis lost(Clock::time_point now, bool taken_over, double uniform01);
  // An attempt failed. With several brokers the next one of the list is tried after
  // reconnect_min; the backoff grows only when every one has failed in this round.
  Millis failed(double uniform01);
  // The current broker refused MQTT 5: it gets MQTT 3.1.1 from now on, after reconnect_min.
  Millis refused_v5(double uniform01);

 private:
  Millis wait(int step, double uniform01) const;

  Millis min_, max_;
  std::size_t brokers_;
  std::size_t broker_ = 0;
  std::set<std::size_t> v311_;
  int step_ = 0;
  int short_lived_ = 0;
  Clock::time_point connected_at_{};
};

}  // namespace campus
