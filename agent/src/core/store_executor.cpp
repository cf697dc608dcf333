#include "core/store_executor.hpp"

namespace campus {

StoreExecutor::StoreExecutor(Store& store, asio::io_context& io)
    : store_(store), io_(io), guard_(asio::make_work_guard(work_io_)), counts_timer_(work_io_) {
  // The first snapshot before anything runs: the birth and health of a fresh start need it.
  snapshot_.outbox = store_.stats();
  identity_ = store_.identity();
  counted_at_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { work_io_.run(); });
}

StoreExecutor::~StoreExecutor() {
  asio::post(work_io_, [this] { counts_timer_.cancel(); });
  guard_.reset();
  thread_.join();
}

void StoreExecutor::post(std::function<void(Store&)> work) {
  asio::post(work_io_, [this, work = std::move(work)] {
    work(store_);
    refresh(false);
  });
}

void StoreExecutor::after_queued(std::function<void()> done) {
  asio::post(work_io_, [this, done = std::move(done)]() mutable { asio::post(io_, std::move(done)); });
}

StoreSnapshot StoreExecutor::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

void StoreExecutor::refresh(bool counts_due) {
  const auto now = std::chrono::steady_clock::now();
  const bool count = counts_due || now - counted_at_ >= kCountsAge;
  OutboxStats counted;
  if (count) {
    counted = store_.stats();
    counted_at_ = now;
  }
  const auto last_seq = count ? counted.last_seq : store_.last_seq();
  {
    std::lock_guard lock(mu_);
    if (count) snapshot_.outbox = counted;
    snapshot_.outbox.last_seq = last_seq;
  }
  if (!count) schedule_counts();
}

void StoreExecutor::schedule_counts() {
  if (counts_pending_) return;
  counts_pending_ = true;
  counts_timer_.expires_at(counted_at_ + kCountsAge);
  counts_timer_.async_wait([this](const boost::system::error_code& ec) {
    counts_pending_ = false;
    if (!ec) refresh(true);
  });
}

}  // namespace campus
