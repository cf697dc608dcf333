// The one thread every SQLite call of the daemon runs on (docs/architecture.md "Threads").
// The io thread posts work here and gets its result back on the io_context; it never takes the
// store's lock, so a commit's fsync or a large report never stalls requests, timers or MQTT.
// What the io thread must know at any moment (the last seq, the outbox depth) is a snapshot
// kept here, refreshed on the store thread when the work that changes it completes.
#pragma once
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "campus/asio.hpp"
#include "core/store.hpp"

namespace campus {

struct StoreSnapshot {
  OutboxStats outbox;  // last_seq exact after every completed work; the counts at most kCountsAge old
};

class StoreExecutor {
 public:
  // The outbox counts (count(*) over the outbox) are read again at most this often, and at the
  // latest this long after the work that changed them: a drain acknowledges thousands of rows a
  // second, and counting after every batch would cost more than the batch.
  static constexpr std::chrono::milliseconds kCountsAge{250};

  // Starts the thread. REQUIRES: `store` and `io` outlive the executor.
  StoreExecutor(Store& store, asio::io_context& io);
  // Runs the work already posted, then joins the thread.
  ~StoreExecutor();
  StoreExecutor(const StoreExecutor&) = delete;
  StoreExecutor& operator=(const StoreExecutor&) = delete;

  // Runs work(store) on the store thread, in posting order; then(result) runs on the io_context,
  // with the snapshot already updated for what the work did.
  template <class Work, class Then>
  void run(Work work, Then then) {
    asio::post(work_io_, [this, work = std::move(work), then = std::move(then)]() mutable {
      auto result = work(store_);
      refresh(false);
      asio::post(io_, [then = std::move(then), result = std::move(result)]() mutable { then(std::move(result)); });
    });
  }
  // Runs work(store) on the store thread, in posting order.
  void post(std::function<void(Store&)> work);
  // Runs `done` on the io_context once everything posted before it has run.
  void after_queued(std::function<void()> done);

  // A copy, from any thread; never waits for the store.
  StoreSnapshot snapshot() const;
  // Which store this is (fixed once open).
  const StoreIdentity& identity() const { return identity_; }

 private:
  void refresh(bool counts_due);  // store thread
  void schedule_counts();         // store thread

  Store& store_;
  asio::io_context& io_;
  asio::io_context work_io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  asio::steady_timer counts_timer_;     // store thread: the deferred count of the outbox
  bool counts_pending_ = false;         // store thread
  std::chrono::steady_clock::time_point counted_at_{};
  mutable std::mutex mu_;               // guards snapshot_ only (never held during SQLite)
  StoreSnapshot snapshot_;
  StoreIdentity identity_;
  std::thread thread_;
};

}  // namespace campus
