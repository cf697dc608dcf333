// Drains a backlog of outbox rows to a broker through the real Store and Publisher and prints
// the rate. scripts/bench-drain runs it next to `mosquitto_pub -q 1 -l` (docs/performance.md).
//
// usage: bench-drain --port P [--rows 100000] [--db FILE] [--payloads FILE] [--window 20]
//                    [--tls CA CERT KEY]
//   --payloads FILE: also writes each row's payload, one per line, for mosquitto_pub -l.
//   --serve SECONDS: no backlog; answer every request on .../cmd and .../all/cmd at once for
//                    that long (request/reply round-trip measurements with mosquitto_rr).
//   --commit-rate N: no broker; commit N reports of 10 findings that all change state (1 report +
//                    10 events per commit, each its own fsync'd transaction) and print the rate.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>

#include "core/publisher.hpp"
#include "core/store.hpp"
#include "core/store_executor.hpp"

using namespace campus;

int main(int argc, char** argv) {
  int port = 0, rows = 100000, window = 20, serve = 0, commit_reports = 0;
  std::string db = "/tmp/bench-drain.db", payloads, ca, cert, key;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--port") port = std::stoi(next());
    else if (a == "--rows") rows = std::stoi(next());
    else if (a == "--db") db = next();
    else if (a == "--payloads") payloads = next();
    else if (a == "--window") window = std::stoi(next());
    else if (a == "--serve") serve = std::stoi(next());
    else if (a == "--commit-rate") commit_reports = std::stoi(next());
    else if (a == "--tls") ca = next(), cert = next(), key = next();
    else {
      std::cerr << "bench-drain: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (port == 0 && commit_reports == 0) {
    std::cerr << "usage: bench-drain --port P [--rows N] [--db FILE] [--payloads FILE] [--window W] [--tls CA CERT KEY]\n";
    return 2;
  }
  std::filesystem::remove(db);
  std::filesystem::remove(db + "-wal");
  std::filesystem::remove(db + "-shm");
  StoreOptions so;
  so.max_size = 4ull << 30;
  auto opened = Store::open(db, so);
  if (!opened) {
    std::cerr << opened.error().message() << "\n";
    return 1;
  }
  auto& store = *opened.value();
  const Identity who{"zhenkang", "bench", "+08:00"};
  // Commit number c of a fiber report of `rooms` rooms that all change state every commit: one
  // report and (after the first) `rooms` events.
  auto commit_flipped = [&](int c, int rooms) {
    AuditReport r;
    r.summary = {{"rooms", rooms}};
    for (int i = 0; i < rooms; ++i)
      r.findings.push_back({"room-" + std::to_string(i), (c % 2) ? "down" : "covered", (c % 2) ? "link down" : "", {}});
    auto out = store.commit(who, "fiber", std::chrono::system_clock::now(), r);
    if (!out) std::cerr << out.error().message() << "\n";
    return out.ok();
  };

  if (commit_reports > 0) {
    // What an audit run costs the store: the report, the state comparison with the previous
    // report, and 11 outbox rows, in one transaction with synchronous=FULL.
    const int events = 10;
    auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < commit_reports; ++c)
      if (!commit_flipped(c, events)) return 1;
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The first commit has no previous report, so it derives no events.
    std::printf("store commit: %d reports (%d events each) in %.3f s = %.0f reports/s (%.0f outbox rows/s; outbox seq %lld)\n",
                commit_reports, events, secs, commit_reports / secs, static_cast<double>(store.last_seq()) / secs,
                static_cast<long long>(store.last_seq()));
    // The publisher's bookkeeping: PUBACKs marked sent in batches of 100, one transaction each.
    std::vector<std::int64_t> all;
    for (const auto& m : store.unsent(0, 1 << 30)) all.push_back(m.seq);
    int batches = 0;
    t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < all.size(); i += 100, ++batches)
      store.mark_sent({all.begin() + static_cast<std::ptrdiff_t>(i),
                       all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + 100))},
                      std::chrono::system_clock::now());
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("store mark_sent: %d batches of 100 in %.3f s = %.0f batches/s (%.0f acks/s)\n", batches, secs,
                batches / secs, all.size() / secs);
    return 0;
  }

  if (serve > 0) {
    asio::io_context io;
    auto log = std::make_shared<spdlog::logger>("mqtt", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    log->set_level(spdlog::level::warn);
    MqttConfig config;
    config.host = "127.0.0.1";
    config.port = static_cast<std::uint16_t>(port);
    config.insecure = true;
    StoreExecutor store_thread(store, io);
    auto publisher = make_publisher(io, store_thread, who, config, {}, log);
    publisher->on_request([&](IncomingRequest r) {
      if (r.response_topic)
        publisher->publish_reply(*r.response_topic, r.correlation_data,
                                 envelope(who, "reply", std::chrono::system_clock::now(), {{"ok", true}}));
    });
    publisher->start();
    asio::steady_timer t(io, std::chrono::seconds(serve));
    t.async_wait([&](const boost::system::error_code&) { publisher->stop(std::chrono::seconds(2), [&] { io.stop(); }); });
    std::printf("serving requests for %d s\n", serve);
    std::fflush(stdout);
    io.run();
    return 0;
  }
  // Fill: reports of 1000 rooms whose state flips each time: 1 report + 1000 events per commit.
  auto t0 = std::chrono::steady_clock::now();
  const int per = 1000;
  for (int c = 0; store.last_seq() < rows; ++c)
    if (!commit_flipped(c, per)) return 1;
  auto fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Only the first `rows` rows are drained: mark the surplus sent.
  std::vector<std::int64_t> surplus;
  for (std::int64_t s = rows + 1; s <= store.last_seq(); ++s) surplus.push_back(s);
  if (!surplus.empty()) store.mark_sent(surplus, std::chrono::system_clock::now());
  std::size_t bytes = 0;
  {
    std::ofstream out;
    if (!payloads.empty()) out.open(payloads);
    for (std::int64_t after = 0;;) {
      auto batch = store.unsent(after, 10000);
      if (batch.empty()) break;
      for (auto& m : batch) {
        bytes += m.payload.size();
        if (out) out << m.payload << '\n';
      }
      after = batch.back().seq;
    }
  }
  std::cerr << "filled " << rows << " rows (" << bytes / rows << " bytes average payload) in " << fill_s << " s\n";

  asio::io_context io;
  auto log = std::make_shared<spdlog::logger>("mqtt", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::warn);
  MqttConfig config;
  config.host = "127.0.0.1";
  config.port = static_cast<std::uint16_t>(port);
  config.inflight_window = window;
  config.insecure = ca.empty();
  config.ca_file = ca;
  config.cert_file = cert;
  config.key_file = key;
  StoreExecutor store_thread(store, io);  // what the daemon's runtime owns
  auto publisher = make_publisher(io, store_thread, who, config, {"fiber"}, log);
  auto start = std::chrono::steady_clock::now();
  publisher->start();
  asio::steady_timer poll(io);
  std::function<void()> check = [&] {
    poll.expires_after(std::chrono::milliseconds(10));
    poll.async_wait([&](const boost::system::error_code&) {
      if (publisher->stats().published >= rows) {
        auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        bool done = false;
        publisher->stop(std::chrono::seconds(3), [&] { done = true; });
        std::printf("agent drain: %d messages acknowledged in %.3f s = %.0f msg/s (window %d, %s)\n", rows, secs,
                    rows / secs, window, ca.empty() ? "plain" : "TLS");
        return;
      }
      check();
    });
  };
  check();
  io.run();
  auto unsent = store.stats().unsent;
  std::printf("outbox rows still unsent after stop: %lld\n", static_cast<long long>(unsent));
  return unsent == 0 ? 0 : 1;
}
