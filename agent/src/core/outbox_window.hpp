// The outbox's send window, as pure state: which stored rows are read ahead, which are in
// flight, what may be published next. No broker, no store, no clock: the publisher feeds it
// the rows the store read and the acknowledgements the broker sent, and asks it what to do.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/store.hpp"

namespace campus {

class OutboxWindow {
 public:
  static constexpr int kFetch = 2048;             // rows per outbox read
  static constexpr std::size_t kLowWater = 512;   // read ahead again below this many rows
  // Slots of the window left for birth, health and replies: Paho C 1.3.12 stalls for a second
  // when more publishes are outstanding than the broker's Receive Maximum (its send thread
  // waits for its timeout; fixed in 1.3.14 by eclipse-paho/paho.mqtt.c #1457), so the outbox
  // never fills the window alone.
  static constexpr int kReserve = 2;

  // A read of the outbox that is due: up to `count` unsent rows with seq > `after`. Its result
  // belongs to `generation`; one from before a rewind is dropped.
  struct Fetch {
    std::int64_t after = 0;
    int count = kFetch;
    std::uint64_t generation = 0;
  };

  // A new connection: `window` (inflight_window) clamped to the broker's Receive Maximum when
  // that is smaller. Everything not acknowledged is sent again, from the lowest seq. Returns
  // the window in use.
  int open(int window, std::optional<int> receive_max);
  // The connection is gone: nothing is in flight any more, and the next read starts again at
  // the lowest unsent seq.
  void close();
  // Refused or failed rows are sent again: forget what is read ahead and start from the lowest
  // unsent seq (only when nothing is in flight, so nothing is sent twice at once).
  void rewind();
  // New rows were committed: read again even if the last read found the end.
  void more_committed() { exhausted_ = false; }

  // The read to start now, if one is due (none running, the end not reached, fewer than
  // kLowWater rows read ahead); it is then running until fetched().
  std::optional<Fetch> fetch_due();
  // The rows a read returned (in seq order). Returns false for a read from before a rewind.
  bool fetched(const Fetch& fetch, std::vector<OutboxMessage> rows);

  // The row to publish next, when the window has room and a row is read ahead; else null.
  const OutboxMessage* next() const;
  // The row next() returned was handed to the client: it is in flight until acked or failed.
  void sent();
  // The broker acknowledged `seq`; false if it was not in flight (a late ack of another
  // connection).
  bool acked(std::int64_t seq);
  // `seq` failed; returns its topic ("" if it was not in flight).
  std::string failed(std::int64_t seq);
  // Birth, health, replies and copies take window slots too while they are in flight.
  void ephemeral_sent() { ++ephemeral_; }
  void ephemeral_done() {
    if (ephemeral_ > 0) --ephemeral_;
  }

  int window() const { return window_; }
  // How many outbox rows may be in flight next to the ephemeral ones.
  int limit() const;
  std::size_t in_flight() const { return inflight_.size(); }
  std::size_t read_ahead() const { return pending_.size(); }
  bool idle() const { return inflight_.empty(); }

 private:
  int window_ = 20;
  int ephemeral_ = 0;
  std::int64_t cursor_ = 0;  // the last seq read from the store in this generation
  std::uint64_t generation_ = 0;
  bool fetching_ = false, exhausted_ = false;
  std::deque<OutboxMessage> pending_;
  std::map<std::int64_t, std::string> inflight_;  // seq -> topic
};

}  // namespace campus
