// campus-county's web dashboard (docs/county.md "The dashboard"): HTTP/1.1 (Boost.Beast) on the
// collector's io_context, TLS when configured, a login with the accounts file.
//
//   io thread: accept --> read a request (bounded: 16 KiB of header, 16 KiB of body, 30 s) -->
//              parse the target (web_request.hpp) --> the session (cookie) --> route
//   reader thread: its own read-only connection to the county database; every query, every page
//              rendered and every password checked runs here, so neither the collector's commits
//              nor its MQTT sessions ever wait for a page.
//
// Pages (HTML) and the JSON behind each: /plan and /api/plan, /schools and /api/schools,
// /school and /api/school, /cases and /api/cases, /quality and /api/quality; /api/live (Server-Sent
// Events: "commit" after the collector commits, which /live.js turns into a refresh of the page's
// figures without a reload); /metrics (Prometheus text, no login: counts
// only, no names); /login, /logout.
#pragma once
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "campus/asio.hpp"
#include "county_config.hpp"
#include "database.hpp"
#include "web_accounts.hpp"

namespace campus::county {

class Dashboard : public std::enable_shared_from_this<Dashboard> {
 public:
  // `collector_figures`: the collector's live figures (Collector::figures), called on the io thread.
  Dashboard(asio::io_context& io, const CountyConfig& config, std::unique_ptr<CountyDatabase> reader,
            std::shared_ptr<spdlog::logger> log, std::function<Json()> collector_figures);
  ~Dashboard();

  // Reads the accounts and binds dashboard.listen; an Error when it cannot listen.
  Status start();
  // Closes the listener and every connection, stops the reader thread.
  void stop();
  // SIGHUP: the accounts file again (a removed user or a changed role ends its sessions), the
  // session lifetime, the register's names. The listen address waits for a restart.
  void reload(const CountyConfig& next);
  std::uint16_t port() const { return port_; }
  // The collector committed a batch touching `schools` (io thread): every open page hears of it
  // within kLiveDelay (several commits in that time make one event).
  void committed(const std::set<std::string>& schools);
  // How an operator's case step reaches the school (Collector::request_case_update).
  using CaseUpdater = std::function<void(const std::string& school, Json args, std::function<void(const Json&)> done)>;
  void set_case_updater(CaseUpdater send) { case_updater_ = std::move(send); }

  struct Reply;
  struct Request;

 private:
  asio::awaitable<void> connection(std::shared_ptr<asio::ip::tcp::socket> socket, std::string peer);
  template <class Stream>
  asio::awaitable<void> serve(Stream& stream, const std::string& peer);
  asio::awaitable<Reply> handle(Request& req);
  template <class Stream>
  asio::awaitable<void> stream_events(Stream& stream, const std::string& token);
  void flush_events();
  asio::awaitable<Reply> login(Request& req);
  Reply record_case_step(const Request& req, bool api);
  asio::awaitable<void> accept_loop();
  // Runs `f(reader database)` on the reader thread; resumes on the io thread with its Reply.
  asio::awaitable<Reply> on_reader(const std::function<Reply(CountyDatabase&)>& job);
  void load_accounts();

  asio::io_context& io_;
  CountyConfig config_;
  std::unique_ptr<CountyDatabase> db_;  // reader thread only
  std::shared_ptr<spdlog::logger> log_;
  std::function<Json()> collector_figures_;
  asio::io_context reader_io_;
  asio::executor_work_guard<asio::io_context::executor_type> reader_work_;
  std::thread reader_thread_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::shared_ptr<void> tls_;  // asio::ssl::context when TLS is configured
  std::uint16_t port_ = 0;
  bool stopped_ = false;
  int connections_ = 0;
  std::map<std::string, web::Account> accounts_;  // io thread
  web::Sessions sessions_;
  struct Failures {
    int count = 0;
    std::chrono::steady_clock::time_point first;
  };
  std::map<std::string, Failures> failures_;  // failed logins per user name
  std::map<int, std::function<void()>> closers_;  // open connections, closed at stop()
  int next_connection_ = 0;
  // Live updates (Server-Sent Events on /api/live): what each open page has still to be sent.
  struct Subscriber {
    explicit Subscriber(asio::io_context& io) : wake(io) {}
    std::string queued;
    asio::steady_timer wake;
  };
  std::list<std::shared_ptr<Subscriber>> subscribers_;
  std::set<std::string> changed_;
  asio::steady_timer flush_timer_;
  bool flush_pending_ = false;
  // Case steps operators asked for, until the school's event shows them (in memory: a restart
  // forgets the pending marks, not the steps, which the schools keep and send).
  CaseUpdater case_updater_;
  std::deque<Json> case_steps_;
  std::int64_t next_step_ = 0;
  // Pages rendered since the last change (a commit, a case step's mark), shared by every request
  // for the same page by the same user: twenty open pages refreshing after one commit cost one
  // render, and a request that arrives while that render runs waits for it (io thread).
  struct RenderedPage {
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point at;
    std::shared_ptr<Reply> reply;               // null while it renders
    std::shared_ptr<asio::steady_timer> ready;  // cancelled when the render is done
  };
  std::map<std::string, RenderedPage> rendered_;
  std::uint64_t generation_ = 0;
  std::uint64_t renders_ = 0, shared_renders_ = 0;  // /metrics
  asio::awaitable<Reply> render_shared(const std::string& key, const std::function<Reply(CountyDatabase&)>& job);
};

}  // namespace campus::county
