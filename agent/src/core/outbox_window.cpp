#include "core/outbox_window.hpp"

#include <algorithm>

namespace campus {

int OutboxWindow::open(int window, std::optional<int> receive_max) {
  window_ = std::max(1, window);
  if (receive_max && *receive_max > 0 && *receive_max < window_) window_ = *receive_max;
  rewind();
  return window_;
}

void OutboxWindow::close() {
  ephemeral_ = 0;
  rewind();  // in flight and read ahead both go
}

void OutboxWindow::rewind() {
  inflight_.clear();
  pending_.clear();
  cursor_ = 0;
  ++generation_;
  fetching_ = false;
  exhausted_ = false;
}

std::optional<OutboxWindow::Fetch> OutboxWindow::fetch_due() {
  if (fetching_ || exhausted_ || pending_.size() >= kLowWater) return std::nullopt;
  fetching_ = true;
  return Fetch{cursor_, kFetch, generation_};
}

bool OutboxWindow::fetched(const Fetch& fetch, std::vector<OutboxMessage> rows) {
  if (fetch.generation != generation_) return false;
  fetching_ = false;
  if (rows.size() < static_cast<std::size_t>(fetch.count)) exhausted_ = true;
  if (!rows.empty()) {
    cursor_ = rows.back().seq;
    for (auto& m : rows) pending_.push_back(std::move(m));
  }
  return true;
}

int OutboxWindow::limit() const { return window_ > 2 * kReserve ? window_ - kReserve : std::max(1, window_ / 2); }

const OutboxMessage* OutboxWindow::next() const {
  if (pending_.empty() || static_cast<int>(inflight_.size()) + ephemeral_ >= limit()) return nullptr;
  return &pending_.front();
}

void OutboxWindow::sent() {
  if (pending_.empty()) return;
  inflight_.emplace(pending_.front().seq, pending_.front().topic);
  pending_.pop_front();
}

bool OutboxWindow::acked(std::int64_t seq) { return inflight_.erase(seq) > 0; }

std::string OutboxWindow::failed(std::int64_t seq) {
  auto it = inflight_.find(seq);
  if (it == inflight_.end()) return {};
  std::string topic = std::move(it->second);
  inflight_.erase(it);
  return topic;
}

}  // namespace campus
