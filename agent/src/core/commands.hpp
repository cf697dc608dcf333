// County requests (docs/protocol.md "Requests and replies"): validates each request on .../cmd or
// .../all/cmd, runs it on the io_context (store work on the store's thread), and replies to the
// request's Response Topic with its Correlation Data. Never throws, never stays silent when a
// valid Response Topic was given.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/asio.hpp"
#include "campus/plugin.hpp"
#include "core/envelope.hpp"
#include "core/publisher.hpp"
#include "core/scheduler.hpp"
#include "core/store.hpp"

namespace campus {

// What the handler needs from the running agent. REQUIRES: everything outlives the handler.
struct CommandServices {
  asio::io_context& io;
  Identity who;
  Store& store;
  Scheduler& scheduler;
  Publisher& publisher;
  // Runs `work` on the store's thread (FIFO with the agent's commits).
  std::function<void(std::function<void()> work)> on_store;
  std::function<Json()> health;              // the health body (io_context thread)
  std::function<std::string()> config_json;  // the effective config, secrets redacted
};

struct CommandLimits {
  std::size_t max_payload = 64 * 1024;          // larger requests: payload_too_large
  Millis duplicate_window{std::chrono::minutes(10)};
  std::size_t duplicate_entries = 512;          // bounded memory for remembered replies
  std::size_t duplicate_bytes = 8u << 20;
  std::int64_t max_resend = 10000;              // seqs per resend request
  int resend_window = 8;                        // copies in flight at once (< broker Receive Maximum)
  Millis resend_timeout{std::chrono::seconds(60)};
};

// Error codes in replies: payload_too_large, not_json, bad_request, missing_argument,
// bad_argument, unknown_argument, unknown_command, unknown_audit, no_report, audit_failed,
// audit_timed_out, not_stored, unknown_case, case_closed, case_update_refused,
// range_too_large, not_connected, stopping, store_error.

// A county request after validation: the command and its arguments, typed and range-checked,
// before anything runs. What needs the running agent (is the audit enabled, does the case
// exist) is checked when it runs.
struct CommandRequest {
  std::string cmd;
  std::optional<std::string> audit;        // audit (optional), report (required), cases
  std::string state = "open";              // cases: open | closed | all
  std::optional<SystemTime> since;         // cases
  std::string case_id, action, note, by;   // case.update
  std::int64_t from_seq = 0, to_seq = 0;   // resend
};

// Parses and validates a request payload (pure: no agent state). On error, `error` is the
// reply body {"ok":false,"error":{"code","message"}} and `request.cmd` is the command when it
// was recognised. Every message is valid UTF-8 whatever the payload's bytes were.
struct ParsedRequest {
  CommandRequest request;
  std::optional<Json> error;
  // The payload's "reply_to" and "correlation": where a requester on MQTT 3.1.1, which has no
  // Response Topic or Correlation Data, wants the reply (docs/protocol.md "MQTT 3.1.1"). The
  // MQTT 5 properties win where a request has both.
  std::optional<std::string> reply_to, correlation;
};
ParsedRequest parse_request(std::string_view payload, const CommandLimits& limits);

// Where a reply to `request` may go: the Response Topic itself when it is
// campus/v1/{county}/{school}/reply/{requester} for this school, or, for the county-wide form
// campus/v1/{county}/all/reply/{requester}, this school's own reply/{requester}. nullopt when
// the Response Topic points anywhere else (then nothing is executed or published).
std::optional<std::string> reply_topic_for(const Identity& who, const std::string& response_topic);

// True for commands that change nothing (executed even without a Response Topic).
bool is_read_only_command(const std::string& cmd);

struct CommandSpec;  // commands.cpp: every command, declared once

class CommandHandler : public std::enable_shared_from_this<CommandHandler> {
 public:
  CommandHandler(CommandServices services, std::shared_ptr<spdlog::logger> log, CommandLimits limits = {});

  // A request from the publisher (on the io_context thread).
  void handle(IncomingRequest request);
  // The agent committed (or failed to commit) the report of the run of `audit` started at
  // `started`: completes the `audit` requests waiting for it.
  void on_committed(const std::string& audit, SystemTime started, const Result<CommitOutcome>& outcome);

 private:
  struct Reply {
    std::string topic;
    std::optional<std::string> correlation;
  };
  struct Remembered {
    std::string key;
    SteadyTime at;
    bool done = false;
    std::string envelope;       // the reply, once done (sent again verbatim to duplicates)
    std::vector<Reply> waiting;  // duplicates that arrived while it was running
  };
  using Done = std::function<void(Json body)>;  // {"ok":..., ...}

  friend struct CommandSpec;  // takes the cmd_* members into its table

  void execute(const CommandRequest& request, Done done);
  void cmd_ping(const CommandRequest& request, Done done);
  void cmd_config(const CommandRequest& request, Done done);
  void cmd_status(const CommandRequest& request, Done done);
  void cmd_audit(const CommandRequest& request, Done done);
  void cmd_report(const CommandRequest& request, Done done);
  void cmd_cases(const CommandRequest& request, Done done);
  void cmd_case_update(const CommandRequest& request, Done done);
  void cmd_resend(const CommandRequest& request, Done done);
  void run_audit(const std::string& audit, std::function<void(Json result, std::optional<Json> error)> done);
  void finish(const std::optional<std::string>& key, const Reply& to, const std::string& cmd, SteadyTime started,
              Json body);
  void send(const Reply& to, const std::string& envelope);
  void forget_old();
  // Runs `work` on the store thread and `then` with its result back on the io_context.
  void on_store(std::function<Json()> work, std::function<void(Json)> then);

  CommandServices s_;
  std::shared_ptr<spdlog::logger> log_;
  CommandLimits limits_;
  SteadyTime start_;
  std::deque<Remembered> remembered_;  // oldest first
  std::size_t remembered_bytes_ = 0;
  struct CommitWaiter {
    std::string audit;
    SystemTime started;
    std::function<void(const Result<CommitOutcome>&)> done;
  };
  std::vector<CommitWaiter> commit_waiters_;
};

}  // namespace campus
