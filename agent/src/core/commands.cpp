// County requests and their replies (docs/protocol.md "Requests and replies"). Everything here runs
// on the io_context; reads and writes of the store go to the store's thread and come back, so a
// slow commit or a slow audit never delays a `ping`.
#include "core/commands.hpp"

#include <algorithm>
#include <set>
#include <string_view>
#include <vector>

#include "campus/units.hpp"

namespace campus {
namespace {

const std::set<std::string> kCaseActions(kCaseUpdateActions.begin(), kCaseUpdateActions.end());

Json ok(Json result) { return Json{{"ok", true}, {"result", std::move(result)}}; }

Json fail(const std::string& code, const std::string& message) {
  return Json{{"ok", false}, {"error", {{"code", code}, {"message", message}}}};
}

// The agent's own store could not be read (a failing disk, a damaged file): never answered as
// "nothing there".
Json store_error(const Error& e) { return fail("store_error", "the agent's store could not be read: " + e.message()); }

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// The payload's reply fields (MQTT 3.1.1 requesters): a reply topic is campus/v1/{county}/
// {school}/reply/{requester} with a requester of at most 128 bytes.
constexpr std::size_t kMaxReplyTopic = 512;
constexpr std::size_t kMaxCorrelation = 256;

// Keys every request may carry besides its arguments: the command, and where to reply.
bool envelope_key(const std::string& key) { return key == "cmd" || key == "reply_to" || key == "correlation"; }

// Unknown keys are refused so a typo ("form_seq") is an error, not a silently ignored argument.
std::optional<Json> unknown_key(const Json& request, const std::string& cmd, const std::set<std::string>& allowed) {
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (envelope_key(it.key()) || allowed.count(it.key())) continue;
    std::vector<std::string> names(allowed.begin(), allowed.end());
    return fail("unknown_argument", "unknown argument \"" + it.key() + "\" for \"" + cmd + "\"" +
                                        (names.empty() ? " (it takes none)" : " (it takes: " + joined(names) + ")"));
  }
  return std::nullopt;
}

// An optional string argument: nullopt when absent; error when present but not a non-empty string.
std::optional<Json> string_arg(const Json& request, const std::string& key, bool required, std::string& out,
                               std::size_t max_len = 256) {
  if (!request.contains(key)) {
    if (required) return fail("missing_argument", "\"" + key + "\" is required");
    return std::nullopt;
  }
  const Json& v = request[key];
  if (!v.is_string()) return fail("bad_argument", "\"" + key + "\" must be a string, got " + std::string(v.type_name()));
  out = v.get<std::string>();
  if (out.empty() && required) return fail("bad_argument", "\"" + key + "\" must not be empty");
  if (out.size() > max_len)
    return fail("bad_argument", "\"" + key + "\" is " + std::to_string(out.size()) + " bytes; at most " +
                                    std::to_string(max_len) + " are accepted");
  return std::nullopt;
}

std::optional<Json> seq_arg(const Json& request, const std::string& key, std::int64_t& out) {
  if (!request.contains(key)) return fail("missing_argument", "\"" + key + "\" is required");
  const Json& v = request[key];
  if (!v.is_number_integer())
    return fail("bad_argument", "\"" + key + "\" must be an integer seq, got " +
                                    (v.is_primitive() && !v.is_string() ? v.dump() : std::string(v.type_name())));
  out = v.get<std::int64_t>();
  if (out < 1) return fail("bad_argument", "\"" + key + "\" must be >= 1 (seqs start at 1), got " + v.dump());
  return std::nullopt;
}

// The typed arguments of each command that takes any, in the order their errors are reported.
std::optional<Json> parse_audit_arguments(const Json& j, const CommandLimits&, CommandRequest& r) {
  std::string s;
  if (auto e = string_arg(j, "audit", r.cmd == "report", s)) return e;
  if (j.contains("audit")) r.audit = s;
  return std::nullopt;
}

std::optional<Json> parse_cases_arguments(const Json& j, const CommandLimits&, CommandRequest& r) {
  if (auto e = string_arg(j, "state", false, r.state)) return e;
  if (r.state != "open" && r.state != "closed" && r.state != "all")
    return fail("bad_argument", "\"state\" must be open, closed or all, got \"" + r.state + "\"");
  std::string s;
  if (auto e = string_arg(j, "audit", false, s)) return e;
  if (j.contains("audit")) r.audit = s;
  std::string since;
  if (auto e = string_arg(j, "since", false, since)) return e;
  if (j.contains("since")) {
    r.since = parse_rfc3339(since);
    if (!r.since)
      return fail("bad_argument", "\"since\" must be an RFC 3339 time like 2026-11-28T08:00:00+08:00, got \"" +
                                      since + "\"");
  }
  return std::nullopt;
}

std::optional<Json> parse_case_update_arguments(const Json& j, const CommandLimits&, CommandRequest& r) {
  if (auto e = string_arg(j, "case", true, r.case_id)) return e;
  if (auto e = string_arg(j, "action", true, r.action)) return e;
  if (!kCaseActions.count(r.action))
    return fail("bad_argument", "\"action\" must be one of " + joined({kCaseActions.begin(), kCaseActions.end()}) +
                                    ", got \"" + r.action + "\"");
  if (auto e = string_arg(j, "note", false, r.note, 4096)) return e;
  if (r.action == "note" && r.note.empty()) return fail("missing_argument", "\"note\" is required with action \"note\"");
  if (auto e = string_arg(j, "by", true, r.by, 128)) return e;
  return std::nullopt;
}

std::optional<Json> parse_resend_arguments(const Json& j, const CommandLimits& limits, CommandRequest& r) {
  if (auto e = seq_arg(j, "from_seq", r.from_seq)) return e;
  if (auto e = seq_arg(j, "to_seq", r.to_seq)) return e;
  if (r.from_seq > r.to_seq)
    return fail("bad_argument", "\"from_seq\" " + std::to_string(r.from_seq) + " is after \"to_seq\" " +
                                    std::to_string(r.to_seq));
  // to - from cannot overflow: both are >= 1.
  if (r.to_seq - r.from_seq >= limits.max_resend)
    return fail("range_too_large", "at most " + std::to_string(limits.max_resend) + " seqs per resend; ask for " +
                                       std::to_string(r.from_seq) + ".." +
                                       std::to_string(r.from_seq + (limits.max_resend - 1)) + " first");
  return std::nullopt;
}

}  // namespace

// Every county command, declared once: its name, whether it changes anything (a read-only one
// runs even without a Response Topic), the arguments it takes (anything else is
// unknown_argument), how they are checked, and the member that runs it. parse_request, the
// read-only rule and execute all read this table; a command without an entry does not exist.
struct CommandSpec {
  std::string_view name;
  bool read_only;
  std::set<std::string> arguments;
  std::optional<Json> (*parse)(const Json&, const CommandLimits&, CommandRequest&);  // nullptr: takes none
  void (CommandHandler::*run)(const CommandRequest&, CommandHandler::Done);

  static const std::vector<CommandSpec>& all() {
    static const std::vector<CommandSpec> table = {
        {"ping", true, {}, nullptr, &CommandHandler::cmd_ping},
        {"status", true, {}, nullptr, &CommandHandler::cmd_status},
        {"audit", false, {"audit"}, parse_audit_arguments, &CommandHandler::cmd_audit},
        {"report", true, {"audit"}, parse_audit_arguments, &CommandHandler::cmd_report},
        {"cases", true, {"state", "since", "audit"}, parse_cases_arguments, &CommandHandler::cmd_cases},
        {"case.update", false, {"case", "action", "note", "by"}, parse_case_update_arguments,
         &CommandHandler::cmd_case_update},
        {"resend", false, {"from_seq", "to_seq"}, parse_resend_arguments, &CommandHandler::cmd_resend},
        {"config", true, {}, nullptr, &CommandHandler::cmd_config},
    };
    return table;
  }
  static const CommandSpec* find(std::string_view name) {
    for (const auto& c : all())
      if (c.name == name) return &c;
    return nullptr;
  }
};

namespace {
std::string command_names() {
  std::string out;
  for (const auto& c : CommandSpec::all()) out += (out.empty() ? "" : ", ") + std::string(c.name);
  return out;
}
}  // namespace

ParsedRequest parse_request(std::string_view payload, const CommandLimits& limits) {
  ParsedRequest out;
  auto& error = out.error;
  if (payload.size() > limits.max_payload) {
    error = fail("payload_too_large", "the request is " + std::to_string(payload.size()) + " bytes; at most " +
                                          std::to_string(limits.max_payload) + " are accepted");
    return out;
  }
  Json request;
  try {
    request = Json::parse(payload);
  } catch (const Json::parse_error& e) {
    // Not the parser's own message: it quotes the bytes it choked on, which need not be UTF-8
    // (the reply could then not be serialised). Where it broke is enough to fix the request.
    error = fail("not_json", "the request is not JSON (syntax error at byte " + std::to_string(e.byte) + " of " +
                                 std::to_string(payload.size()) + ")");
    return out;
  } catch (const Json::exception&) {
    // Found by fuzz_command: a number beyond a double (1e999) throws out_of_range, not
    // parse_error; it escaped the handler and would have stopped the agent.
    error = fail("not_json", "the request is not usable JSON: a number in it is out of range");
    return out;
  }
  std::string& cmd = out.request.cmd;
  if (request.is_object()) {
    // Read first: a request refused for its arguments is still answered where it asked.
    std::string reply_to, correlation;
    auto bad_reply_to = string_arg(request, "reply_to", false, reply_to, kMaxReplyTopic);
    auto bad_correlation = string_arg(request, "correlation", false, correlation, kMaxCorrelation);
    if (!bad_reply_to && request.contains("reply_to")) out.reply_to = std::move(reply_to);
    if (!bad_correlation && request.contains("correlation")) out.correlation = std::move(correlation);
    if (bad_reply_to || bad_correlation) {
      error = bad_reply_to ? std::move(bad_reply_to) : std::move(bad_correlation);
      return out;
    }
  }
  if (!request.is_object())
    error = fail("bad_request", "the request must be a JSON object like {\"cmd\":\"ping\"}, got " +
                                    std::string(request.type_name()));
  else if (!request.contains("cmd"))
    error = fail("missing_argument", "\"cmd\" is required (one of: " + command_names() + ")");
  else if (!request["cmd"].is_string())
    error = fail("bad_argument", "\"cmd\" must be a string, got " + std::string(request["cmd"].type_name()));
  else if (cmd = request["cmd"].get<std::string>(); !CommandSpec::find(cmd)) {
    error = fail("unknown_command", "unknown command \"" + utf8_prefix(cmd, 64) + (cmd.size() > 64 ? "...\"" : "\"") +
                                        " (known: " + command_names() + ")");
    cmd = utf8_prefix(cmd, 64);  // named in the reply and the log, bounded
  } else {
    const CommandSpec& spec = *CommandSpec::find(cmd);
    error = unknown_key(request, cmd, spec.arguments);
    if (!error && spec.parse) error = spec.parse(request, limits, out.request);
  }
  return out;
}

std::optional<std::string> reply_topic_for(const Identity& who, const std::string& response_topic) {
  const std::string own = subtree(who) + "reply/";
  const std::string all = "campus/v1/" + who.county + "/all/reply/";
  std::string requester;
  if (response_topic.starts_with(own)) requester = response_topic.substr(own.size());
  else if (response_topic.starts_with(all)) requester = response_topic.substr(all.size());
  else return std::nullopt;
  if (requester.empty() || requester.size() > 128 || requester.find_first_of(std::string("+#\0", 3)) != std::string::npos)
    return std::nullopt;
  return own + requester;
}

bool is_read_only_command(const std::string& cmd) {
  const CommandSpec* spec = CommandSpec::find(cmd);
  return spec && spec->read_only;
}

CommandHandler::CommandHandler(CommandServices services, std::shared_ptr<spdlog::logger> log, CommandLimits limits)
    : s_(std::move(services)), log_(std::move(log)), limits_(limits), start_(std::chrono::steady_clock::now()) {}

void CommandHandler::handle(IncomingRequest req) {
  const auto started = std::chrono::steady_clock::now();
  ParsedRequest parsed = parse_request(req.payload, limits_);
  const std::string& cmd = parsed.request.cmd;
  std::optional<Json>& error = parsed.error;

  // The MQTT 5 properties, or on MQTT 3.1.1 (which has none) the payload's fields.
  const auto& response_topic = req.response_topic ? req.response_topic : parsed.reply_to;
  const auto& correlation = req.correlation_data ? req.correlation_data : parsed.correlation;
  std::optional<Reply> to;
  if (response_topic) {
    auto t = reply_topic_for(s_.who, *response_topic);
    if (!t) {
      log_->warn("request on {} ignored: its reply topic \"{}\" is not {}reply/<requester> (or campus/v1/{}/all/"
                 "reply/<requester>); nothing is executed and no reply is sent outside this school's subtree",
                 req.topic, utf8_prefix(*response_topic, 300), subtree(s_.who), s_.who.county);
      return;
    }
    to = Reply{*t, correlation};
  }

  if (!to) {
    if (error) {
      log_->warn("request on {} without Response Topic ignored: {}", req.topic, (*error)["error"]["message"].get<std::string>());
    } else if (!is_read_only_command(cmd)) {
      log_->warn("request \"{}\" on {} has no Response Topic: not executed (only read-only commands run without one)",
                 cmd, req.topic);
    } else {
      log_->info("request \"{}\" on {} has no Response Topic: executed, nobody gets the answer", cmd, req.topic);
      execute(parsed.request, [](Json) {});
    }
    return;
  }
  if (error) {
    finish(std::nullopt, *to, cmd, started, std::move(*error));
    return;
  }

  // The same request delivered twice (QoS 1 redelivery, a retrying tool) runs once.
  std::optional<std::string> key;
  if (to->correlation) {
    key = to->topic + '\n' + *to->correlation + '\n' + std::to_string(std::hash<std::string>{}(req.payload));
    forget_old();
    for (auto& r : remembered_) {
      if (r.key != *key) continue;
      if (r.done) {
        log_->info("request \"{}\" for {} is a duplicate: answered again with the first result", cmd, to->topic);
        send(*to, r.envelope);
      } else {
        log_->info("request \"{}\" for {} is a duplicate of one still running: answered when it finishes", cmd, to->topic);
        r.waiting.push_back(*to);
      }
      return;
    }
    remembered_.push_back(Remembered{*key, started, false, {}, {}});
    remembered_bytes_ += key->size();
  }
  std::weak_ptr<CommandHandler> weak = weak_from_this();
  execute(parsed.request, [weak, key, to = *to, cmd, started](Json body) {
    if (auto self = weak.lock()) self->finish(key, to, cmd, started, std::move(body));
  });
}

void CommandHandler::execute(const CommandRequest& request, Done done) {
  const CommandSpec* spec = CommandSpec::find(request.cmd);
  if (!spec) return done(fail("unknown_command", "unknown command \"" + utf8_prefix(request.cmd, 64) + "\""));
  (this->*spec->run)(request, std::move(done));
}

void CommandHandler::cmd_ping(const CommandRequest&, Done done) {
  auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_).count();
  done(ok({{"version", std::string("campus-agent/") + kAgentVersion}, {"uptime_s", up}, {"county", s_.who.county},
           {"school", s_.who.school}}));
}

void CommandHandler::cmd_config(const CommandRequest&, Done done) {
  Json c = Json::parse(s_.config_json(), nullptr, false);
  done(c.is_discarded() ? fail("internal", "the configuration could not be rendered") : ok(std::move(c)));
}

void CommandHandler::on_store(std::function<Json()> work, std::function<void(Json)> then) {
  std::weak_ptr<CommandHandler> weak = weak_from_this();
  auto& io = s_.io;
  s_.on_store([weak, &io, work = std::move(work), then = std::move(then)]() mutable {
    Json result = work();
    asio::post(io, [weak, then = std::move(then), result = std::move(result)]() mutable {
      if (weak.lock()) then(std::move(result));
    });
  });
}

void CommandHandler::cmd_status(const CommandRequest&, Done done) {
  Json health = s_.health();
  auto names = s_.scheduler.audit_names();
  auto stats = s_.scheduler.stats();
  auto pub = s_.publisher.stats();
  Json audits = Json::object();
  for (const auto& n : names) {
    const auto& st = stats[n];
    audits[n] = {{"running", st.running},
                 {"last_run", st.last_run ? Json(rfc3339(*st.last_run, s_.who.timezone_offset)) : Json(nullptr)},
                 {"last_error", st.last_error},
                 {"summary", nullptr}};
  }
  Json base = {{"county", s_.who.county},
               {"school", s_.who.school},
               {"version", std::string("campus-agent/") + kAgentVersion},
               {"state", {{"online", pub.connected}, {"session", pub.session},
                          {"last_seq", health.contains("outbox") ? health["outbox"]["last_seq"] : Json(nullptr)}}},
               {"health", health},
               {"audits", audits}};
  Store& store = s_.store;
  on_store(
      [&store, names] {
        Json out = {{"summaries", Json::object()}};
        for (const auto& n : names) {
          auto body = store.latest_report(n);
          if (!body) return store_error(body.error());
          if (*body && (*body)->contains("summary")) out["summaries"][n] = (**body)["summary"];
        }
        CaseFilter f;
        f.state = "open";
        auto open = store.cases(f);
        if (!open) return store_error(open.error());
        std::int64_t overdue = 0;
        for (const auto& c : *open)
          if (c.details.is_object() && c.details.value("overdue", false)) ++overdue;
        out["cases"] = {{"open", open->size()}, {"overdue", overdue}};
        return out;
      },
      [done = std::move(done), base = std::move(base)](Json got) mutable {
        if (got.contains("ok")) return done(std::move(got));  // the store could not be read
        for (auto& [n, summary] : got["summaries"].items())
          if (base["audits"].contains(n)) base["audits"][n]["summary"] = summary;
        base["cases"] = got["cases"];
        done(ok(std::move(base)));
      });
}

void CommandHandler::run_audit(const std::string& audit, std::function<void(Json, std::optional<Json>)> done) {
  std::weak_ptr<CommandHandler> weak = weak_from_this();
  s_.scheduler.run_now(audit, [weak, audit, done](const AuditRun& run) {
    auto self = weak.lock();
    if (!self) return;
    if (run.status != AuditRun::Status::Ok) {
      bool timed_out = run.status == AuditRun::Status::TimedOut;
      done(nullptr, fail(timed_out ? "audit_timed_out" : "audit_failed", "audit \"" + audit + "\": " + run.error));
      return;
    }
    // The scheduler hands the run to the agent right after this callback; the agent commits it
    // on the store thread and calls on_committed with the same start time.
    self->commit_waiters_.push_back({audit, run.started, [weak, audit, done](const Result<CommitOutcome>& out) {
      auto self = weak.lock();
      if (!self) return;
      if (!out.ok()) {
        done(nullptr, fail("not_stored", "audit \"" + audit + "\" ran but its report was not stored: " +
                                             out.error().message()));
        return;
      }
      const std::int64_t seq = out->report_seq;
      const std::size_t events = out->event_seqs.size();
      Store& store = self->s_.store;
      self->on_store(
          [&store, seq] {
            auto rows = store.range(seq, seq);
            return rows.empty() ? Json(nullptr) : Json::parse(rows.front().payload, nullptr, false);
          },
          [done, audit, seq, events](Json envelope) {
            done(Json{{"audit", audit}, {"seq", seq}, {"events", events}, {"report", std::move(envelope)}}, std::nullopt);
          });
    }});
  });
}

void CommandHandler::on_committed(const std::string& audit, SystemTime started, const Result<CommitOutcome>& outcome) {
  std::vector<std::function<void(const Result<CommitOutcome>&)>> ready;
  for (auto it = commit_waiters_.begin(); it != commit_waiters_.end();) {
    if (it->audit == audit && it->started == started) {
      ready.push_back(std::move(it->done));
      it = commit_waiters_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& d : ready) d(outcome);
}

void CommandHandler::cmd_audit(const CommandRequest& request, Done done) {
  auto names = s_.scheduler.audit_names();
  if (names.empty()) return done(fail("unknown_audit", "no audit is enabled on this school"));
  if (request.audit) {
    const std::string& audit = *request.audit;
    if (std::find(names.begin(), names.end(), audit) == names.end())
      return done(fail("unknown_audit", "no enabled audit named \"" + audit + "\" (enabled: " + joined(names) + ")"));
    return run_audit(audit, [done](Json result, std::optional<Json> error) {
      done(error ? std::move(*error) : ok(std::move(result)));
    });
  }
  // All audits: one reply when every one has been committed (or failed).
  struct All {
    std::size_t left = 0;
    Json results = Json::object();
    std::vector<std::string> errors;
    std::string first_code;
  };
  auto all = std::make_shared<All>();
  all->left = names.size();
  for (const auto& n : names) {
    run_audit(n, [all, n, done](Json result, std::optional<Json> error) {
      if (error) {
        all->results[n] = {{"ok", false}, {"error", (*error)["error"]}};
        all->errors.push_back((*error)["error"]["message"].get<std::string>());
        if (all->first_code.empty()) all->first_code = (*error)["error"]["code"].get<std::string>();
      } else {
        result["ok"] = true;
        all->results[n] = std::move(result);
      }
      if (--all->left > 0) return;
      Json r = {{"audits", all->results}};
      if (all->errors.empty()) return done(ok(std::move(r)));
      Json body = fail(all->first_code, joined(all->errors));
      body["result"] = std::move(r);  // the audits that did run are still reported
      done(std::move(body));
    });
  }
}

void CommandHandler::cmd_report(const CommandRequest& request, Done done) {
  const std::string audit = request.audit.value_or("");
  auto names = s_.scheduler.audit_names();
  bool enabled = std::find(names.begin(), names.end(), audit) != names.end();
  Store& store = s_.store;
  on_store(
      [&store, audit] {
        auto body = store.latest_report(audit);
        if (!body) return store_error(body.error());
        return body->has_value() ? ok({{"audit", audit}, {"report", std::move(**body)}}) : Json(nullptr);
      },
           [done, audit, enabled, names](Json body) {
             if (!body.is_null()) return done(std::move(body));
             if (!enabled)
               return done(fail("unknown_audit", "no audit named \"" + audit + "\" is enabled or has ever reported (enabled: " +
                                                     joined(names) + ")"));
             done(fail("no_report", "audit \"" + audit + "\" has not reported yet; ask for {\"cmd\":\"audit\",\"audit\":\"" +
                                        audit + "\"}"));
           });
}

void CommandHandler::cmd_cases(const CommandRequest& request, Done done) {
  CaseFilter f;
  f.state = request.state;
  f.audit = request.audit.value_or("");
  f.since = request.since;
  Store& store = s_.store;
  on_store(
      [&store, f] {
        auto cases = store.cases(f);
        if (!cases) return store_error(cases.error());
        Json list = Json::array();
        for (const auto& c : *cases) list.push_back(c);
        return list;
      },
      [done, state = f.state](Json list) {
        if (list.is_object()) return done(std::move(list));  // the store could not be read
        auto n = list.size();
        done(ok({{"state", state}, {"count", n}, {"cases", std::move(list)}}));
      });
}

void CommandHandler::cmd_case_update(const CommandRequest& request, Done done) {
  const std::string id = request.case_id, action = request.action, note = request.note, by = request.by;
  Store& store = s_.store;
  const Identity who = s_.who;
  std::weak_ptr<CommandHandler> weak = weak_from_this();
  on_store(
      [&store, who, id, action, note, by]() -> Json {
        auto read = store.find_case(id);
        if (!read) return store_error(read.error());
        auto& found = *read;
        if (!found) return fail("unknown_case", "no case \"" + id + "\" on " + who.school + " (list them with {\"cmd\":\"cases\",\"state\":\"all\"})");
        if (found->stage == "closed")
          return fail("case_closed", "case \"" + id + "\" is closed (" + found->outcome + " at " + found->closed_at +
                                         ") and cannot change");
        auto updated = store.update_case(who, std::chrono::system_clock::now(), id, action, "county:" + by, note);
        if (!updated.ok()) return fail("case_update_refused", updated.error().message());
        return ok(Json(*updated));
      },
      [weak, done](Json body) {
        if (auto self = weak.lock(); self && body.value("ok", false)) self->s_.publisher.outbox_changed();
        done(std::move(body));
      });
}

void CommandHandler::cmd_resend(const CommandRequest& request, Done done) {
  const std::int64_t from = request.from_seq, to = request.to_seq;
  if (!s_.publisher.stats().connected) return done(fail("not_connected", "the agent is not connected to the broker"));

  struct Job {
    std::vector<OutboxMessage> messages;
    std::size_t next = 0, inflight = 0, acked = 0, failed = 0;
    bool finished = false;
    Json result;
    Done done;
    std::unique_ptr<asio::steady_timer> deadline;
    std::function<void()> pump;
    void complete(const std::string& why) {
      if (finished) return;
      finished = true;
      if (deadline) deadline->cancel();
      result["resent"] = acked;
      result["failed"] = failed + (messages.size() - next) + inflight;
      if (!why.empty()) result["stopped"] = why;
      auto d = std::move(done);
      d(ok(std::move(result)));
    }
  };
  auto job = std::make_shared<Job>();
  job->done = std::move(done);
  Store& store = s_.store;
  std::weak_ptr<CommandHandler> weak = weak_from_this();
  const auto limits = limits_;
  auto held = std::make_shared<std::vector<OutboxMessage>>();
  on_store(
      [&store, held, from, to] {
        *held = store.range(from, to);
        return Json{{"last_seq", store.last_seq()}};
      },
      [weak, job, held, from, to, limits](Json got) {
        auto self = weak.lock();
        if (!self) return;
        const std::int64_t last = got["last_seq"].get<std::int64_t>();
        job->messages = std::move(*held);
        // Which seqs of the range are not held: pruned after delivery, or never produced yet.
        Json missing = Json::array();
        std::int64_t missing_count = 0, expect = from;
        auto gap = [&](std::int64_t a, std::int64_t b) {
          b = std::min(b, last);
          if (a > b) return;
          missing.push_back({a, b});
          missing_count += b - a + 1;
        };
        for (const auto& m : job->messages) {
          gap(expect, m.seq - 1);
          expect = m.seq + 1;
        }
        gap(expect, to);
        job->result = {{"from_seq", from}, {"to_seq", to}, {"last_seq", last}, {"held", job->messages.size()},
                       {"missing", missing}, {"missing_count", missing_count},
                       {"not_yet_produced", to > last ? Json::array({std::max(from, last + 1), to}) : Json(nullptr)}};
        job->deadline = std::make_unique<asio::steady_timer>(self->s_.io, limits.resend_timeout);
        job->deadline->async_wait([job](const boost::system::error_code& ec) {
          if (!ec) job->complete("timed out before every copy was acknowledged");
        });
        // Paced: at most `resend_window` copies in flight, so the broker's Receive Maximum is
        // never exceeded and the live outbox keeps flowing. Copies in flight keep the job alive.
        std::weak_ptr<Job> wjob = job;
        job->pump = [weak, wjob, limits] {
          auto self = weak.lock();
          auto job = wjob.lock();
          if (!self || !job || job->finished) return;
          while (job->inflight < static_cast<std::size_t>(limits.resend_window) && job->next < job->messages.size()) {
            const auto& m = job->messages[job->next++];
            Json env = Json::parse(m.payload, nullptr, false);
            if (env.is_discarded() || !env.is_object()) {
              ++job->failed;
              continue;
            }
            env["resent"] = true;
            ++job->inflight;
            self->s_.publisher.publish_copy(m.topic, env.dump(), [job](bool delivered) {
              --job->inflight;
              if (delivered) ++job->acked;
              else ++job->failed;
              job->pump();
            });
          }
          if (job->next == job->messages.size() && job->inflight == 0) job->complete("");
        };
        job->pump();
      });
}

void CommandHandler::finish(const std::optional<std::string>& key, const Reply& to, const std::string& cmd,
                            SteadyTime started, Json body) {
  body["cmd"] = cmd;
  // In the body too: a requester on MQTT 3.1.1 gets no Correlation Data property.
  if (to.correlation) body["correlation"] = *to.correlation;
  Json env = envelope(s_.who, "reply", std::chrono::system_clock::now(), std::move(body));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (env["body"].value("ok", false))
    log_->info("request \"{}\" answered on {} in {} ms", cmd, to.topic, ms);
  else
    log_->info("request \"{}\" refused on {} in {} ms: {} ({})", cmd.empty() ? "?" : cmd, to.topic, ms,
               env["body"]["error"]["code"].get<std::string>(), env["body"]["error"]["message"].get<std::string>());
  // Replace, not throw: a reply quoting bytes that are not UTF-8 must still go out.
  const std::string text = env.dump(-1, ' ', false, Json::error_handler_t::replace);
  send(to, text);
  if (!key) return;
  for (auto& r : remembered_) {
    if (r.key != *key || r.done) continue;
    r.done = true;
    r.envelope = text;
    remembered_bytes_ += text.size();
    for (const auto& w : r.waiting) send(w, text);
    r.waiting.clear();
    break;
  }
  forget_old();
}

void CommandHandler::send(const Reply& to, const std::string& envelope) {
  s_.publisher.publish_reply(to.topic, to.correlation, Json::parse(envelope));
}

void CommandHandler::forget_old() {
  const auto now = std::chrono::steady_clock::now();
  auto drop_front = [this] {
    remembered_bytes_ -= std::min(remembered_bytes_, remembered_.front().key.size() + remembered_.front().envelope.size());
    remembered_.pop_front();
  };
  while (!remembered_.empty() &&
         (now - remembered_.front().at > limits_.duplicate_window || remembered_.size() > limits_.duplicate_entries ||
          remembered_bytes_ > limits_.duplicate_bytes))
    drop_front();
}

}  // namespace campus
