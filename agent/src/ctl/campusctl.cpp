// campusctl: the operator's tool. As the county (MQTT, campusctl.toml) it reads every school's
// retained state and asks schools for status, audits, cases, case updates and resends; with
// --local on a school's server it reads the agent's own database (read-only except `case update`).
#include <unistd.h>

#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <CLI/CLI.hpp>

#include "campus/pseudonym.hpp"
#include "campus/units.hpp"
#include "core/codes.hpp"
#include "core/config.hpp"
#include "core/envelope.hpp"
#include "core/mqtt_tls.hpp"
#include "core/store.hpp"
#include "ctl/county_client.hpp"
#include "ctl/county_record.hpp"
#include "county_view.hpp"

namespace campus::ctl {
using namespace campus::county;  // the county's picture (county_view.hpp), shared with campus-county's pages
namespace {

using Clock = std::chrono::steady_clock;

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kNoAnswer = 3 };

struct Options {
  std::string config = "/etc/campus-agent/campusctl.toml";
  std::string agent_config = "/etc/campus-agent/agent.toml";
  bool json = false, local = false;
  std::string timeout;  // per school; default depends on the command
  std::string db;       // --db: the county collector's database
};

// The county database to read, when there is one: --db, else [county] db of campusctl.toml.
// `record` carries what campusctl.toml adds (county code, register) when it can be read.
std::optional<RecordOptions> county_record(const Options& o) {
  RecordOptions r;
  r.json = o.json;
  std::error_code ec;
  if (std::filesystem::is_regular_file(o.config, ec)) {
    if (auto cfg = load_ctl_config(o.config); cfg.ok()) {
      r.county = cfg->county;
      r.register_schools = cfg->schools;
      r.db = cfg->db;
    }
  }
  if (!o.db.empty()) r.db = o.db;
  if (r.db.empty()) return std::nullopt;
  return r;
}

Millis timeout_of(const Options& o, Millis fallback) {
  if (o.timeout.empty()) return fallback;
  auto d = parse_duration(o.timeout);
  if (!d) throw CLI::ValidationError("--timeout", d.error().what);
  return *d;
}

std::string now_local() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S %z", std::localtime(&t));
  return b;
}

int current_year() {
  std::time_t t = std::time(nullptr);
  return std::localtime(&t)->tm_year + 1900;
}

void progress(const std::string& line, bool final) {
  if (::isatty(STDERR_FILENO)) {
    std::cerr << "\r\x1b[K" << line << (final ? "\n" : "") << std::flush;
  } else if (final) {
    std::cerr << line << "\n";
  }
}

// ---- county mode ----
struct County {
  CtlConfig config;
  std::unique_ptr<CountyClient> client;
};

Result<County> connect_county(const Options& o) {
  auto cfg = load_ctl_config(o.config);
  if (!cfg) return cfg.error();
  // An explicit --timeout also bounds the connect (a slow, loaded box may need more than 5 s).
  auto client = CountyClient::connect(*cfg, std::max(Millis(5000), timeout_of(o, Millis(5000))));
  if (!client) return client.error();
  County c{std::move(*cfg), std::move(client.value())};
  if (auto s = c.client->subscribe({c.client->reply_filter()}); !s) return s.error();
  return c;
}

// Sends one request and waits for its reply body (nullopt on timeout).
std::optional<Json> ask(County& c, const std::string& school, const Json& payload, Millis timeout) {
  auto corr = c.client->request(school, payload);
  if (!corr) {
    std::cerr << "campusctl: " << corr.error().message() << "\n";
    return std::nullopt;
  }
  auto deadline = Clock::now() + timeout;
  while (auto m = c.client->next(deadline)) {
    if (m->correlation != *corr) continue;
    auto env = Json::parse(m->payload, nullptr, false);
    if (env.is_discarded() || !env.contains("body")) continue;
    return env["body"];
  }
  return std::nullopt;
}

// Collects retained messages until none arrived for a moment (bounded).
void settle(County& c, std::map<std::string, SchoolView>& views, const std::optional<std::string>& only) {
  auto start = Clock::now();
  auto idle = Millis(400);
  while (Clock::now() - start < std::chrono::seconds(4)) {
    auto m = c.client->next(Clock::now() + idle);
    if (!m) break;
    auto parts = split_topic(c.config.county, m->topic);
    if (!parts || parts->first == "all" || (only && parts->first != *only)) continue;
    if (parts->second.starts_with("reply/")) continue;
    auto env = Json::parse(m->payload, nullptr, false);
    auto& v = views[parts->first];
    v.school = parts->first;
    absorb(v, parts->second, env);
  }
}

// Retained view of the county plus a `status` answer from every school that is not known to
// be offline, each bounded by `per_school`.
std::vector<Json> gather_status(County& c, const std::optional<std::string>& only, Millis per_school, bool quiet) {
  const std::string root = "campus/v1/" + c.config.county + "/" + (only ? *only : std::string("+")) + "/";
  c.client->subscribe({root + "state", root + "health", root + "report/+"});
  std::map<std::string, SchoolView> views;
  settle(c, views, only);
  if (only) views[*only].school = *only;
  else
    for (const auto& s : c.config.schools) views[s].school = s;

  std::map<std::string, std::string> pending;  // correlation -> school
  for (auto& [name, v] : views) {
    if (v.online == false) {
      v.answer = "offline";
      continue;
    }
    auto corr = c.client->request(name, Json{{"cmd", "status"}});
    if (!corr) {
      v.answer = "error:publish";
      continue;
    }
    pending[*corr] = name;
  }
  const std::size_t asked = pending.size();
  auto deadline = Clock::now() + per_school;
  auto report = [&](bool final) {
    if (quiet && !final) return;
    progress("status: " + std::to_string(asked - pending.size()) + "/" + std::to_string(asked) + " school(s) answered" +
                 (final && !pending.empty() ? ", " + std::to_string(pending.size()) + " did not within " +
                                                  format_duration(per_school)
                                            : ""),
             final);
  };
  report(false);
  while (!pending.empty()) {
    auto m = c.client->next(deadline);
    if (!m) break;
    auto parts = split_topic(c.config.county, m->topic);
    if (!parts) continue;
    auto env = Json::parse(m->payload, nullptr, false);
    if (env.is_discarded()) continue;
    auto it = m->correlation ? pending.find(*m->correlation) : pending.end();
    if (it == pending.end()) {
      // A live message (state/health/report) while we wait: keep the view current.
      if (!parts->second.starts_with("reply/") && views.count(parts->first)) absorb(views[parts->first], parts->second, env);
      continue;
    }
    auto& v = views[it->second];
    absorb(v, "reply", env);
    const Json& body = env["body"];
    if (body.value("ok", false)) absorb_status(v, body["result"]);
    else v.answer = "error:" + body["error"].value("code", std::string("?"));
    pending.erase(it);
    report(false);
  }
  for (auto& [corr, school] : pending) views[school].answer = "timeout";
  if (asked > 0) report(true);
  std::vector<Json> rows;
  for (auto& [name, v] : views) rows.push_back(school_row(v));
  return rows;
}

// Known schools from retained state (for --all requests other than status).
std::vector<std::string> known_schools(County& c, bool online_only) {
  c.client->subscribe({"campus/v1/" + c.config.county + "/+/state"});
  std::map<std::string, SchoolView> views;
  settle(c, views, std::nullopt);
  for (const auto& s : c.config.schools) views[s].school = s;
  std::vector<std::string> out;
  for (auto& [name, v] : views)
    if (!online_only || v.online != false) out.push_back(name);
  return out;
}

int print_reply(const std::optional<Json>& body, bool json, const std::function<void(const Json&)>& human) {
  if (!body) {
    std::cerr << "campusctl: no answer (is the school online? try `campusctl status`)\n";
    return kNoAnswer;
  }
  if (json) std::cout << body->dump() << "\n";
  if (!body->value("ok", false)) {
    const Json e = body->value("error", Json::object());
    std::cerr << "campusctl: refused: " << e.value("code", std::string("?")) << ": " << e.value("message", std::string())
              << "\n";
    return kFailed;
  }
  if (!json) human((*body)["result"]);
  return kOk;
}

std::vector<std::string> case_cells(const std::string& school, const Json& c) {
  std::string last;
  if (c.contains("steps") && !c["steps"].empty()) {
    const auto& s = c["steps"].back();
    last = s.value("action", std::string()) + " by " + s.value("actor", std::string());
  }
  const Json d = c.value("details", Json::object());
  bool overdue = d.is_object() && d.value("overdue", false);
  return {school, c.value("id", std::string()), c.value("subject", std::string()), c.value("stage", std::string()),
          c.value("opened_at", std::string()), overdue ? "yes" : "no", last};
}

const std::vector<std::string> kCaseHeader = {"SCHOOL", "CASE", "STUDENT", "STAGE", "OPENED", "OVERDUE", "LAST STEP"};

void flatten(const Json& j, const std::string& prefix, std::vector<std::string>& out) {
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string k = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object()) flatten(*it, k, out);
    else if (!it->is_array()) out.push_back(k + "=" + (it->is_string() ? it->get<std::string>() : it->dump()));
  }
}

// ---- local mode ----
struct Local {
  AgentConfig config;
  std::unique_ptr<Store> store;
};

Result<Local> open_local(const Options& o, bool write) {
  auto loaded = load_config(o.agent_config);
  if (!loaded.errors.empty()) return loaded.errors.front();
  StoreOptions so;
  so.read_only = !write;
  so.max_size = loaded.config.buffer.max_size;
  auto store = Store::open(loaded.config.data_dir / "agent.db", so);
  if (!store) return store.error();
  return Local{std::move(loaded.config), std::move(store.value())};
}

int store_failed(const Error& e) {
  std::cerr << "campusctl: the agent's store could not be read: " << e.message() << "\n";
  return kFailed;
}

int local_status(const Options& o) {
  auto l = open_local(o, false);
  if (!l) {
    std::cerr << "campusctl: " << l.error().message() << "\n";
    return kFailed;
  }
  SchoolView v;
  v.school = l->config.school;
  v.answer = "local";
  for (const auto& a : l->config.audits) {
    auto body = l->store->latest_report(a.name);
    if (!body) return store_failed(body.error());
    if (*body && (*body)->contains("summary")) v.summaries[a.name] = (**body)["summary"];
  }
  auto st = l->store->stats();
  v.health = {{"outbox", {{"depth", st.unsent}, {"last_seq", st.last_seq}}}};
  v.version = std::string("campus-agent/") + kAgentVersion;
  CaseFilter f;
  auto open = l->store->cases(f);
  if (!open) return store_failed(open.error());
  std::int64_t overdue = 0;
  for (const auto& c : *open) overdue += c.details.is_object() && c.details.value("overdue", false) ? 1 : 0;
  v.cases = {{"open", open->size()}, {"overdue", overdue}};
  std::vector<Json> rows = {school_row(v)};
  if (o.json) std::cout << Json{{"schools", rows}}.dump() << "\n";
  else std::cout << status_table(rows);
  return kOk;
}

int local_cases(const Options& o, const std::string& state) {
  auto l = open_local(o, false);
  if (!l) {
    std::cerr << "campusctl: " << l.error().message() << "\n";
    return kFailed;
  }
  CaseFilter f;
  f.state = state;
  Json list = Json::array();
  std::vector<std::vector<std::string>> cells;
  auto cases = l->store->cases(f);
  if (!cases) return store_failed(cases.error());
  for (const auto& c : *cases) {
    Json j = c;
    cells.push_back(case_cells(l->config.school, j));
    j["school"] = l->config.school;
    list.push_back(j);
  }
  if (o.json) std::cout << Json{{"cases", list}}.dump() << "\n";
  else std::cout << render_table(kCaseHeader, cells);
  return kOk;
}

int local_case_update(const Options& o, const std::string& id, const std::string& action, const std::string& note,
                      const std::string& by) {
  auto l = open_local(o, true);
  if (!l) {
    std::cerr << "campusctl: " << l.error().message() << "\n";
    return kFailed;
  }
  Identity who{l->config.county, l->config.school, l->config.timezone_offset};
  auto r = l->store->update_case(who, std::chrono::system_clock::now(), id, action, "school:" + by, note);
  if (!r) {
    std::cerr << "campusctl: " << r.error().message() << "\n";
    return kFailed;
  }
  if (o.json) std::cout << Json{{"ok", true}, {"result", Json(*r)}}.dump() << "\n";
  else
    std::cout << "case " << r->id << ": stage " << r->stage << (r->outcome.empty() ? "" : " (" + r->outcome + ")")
              << "; the agent delivers the event with its next messages\n";
  return kOk;
}

// case find --student NUMBER: a student's cases (every state) on this school's box. With the
// attendance audit's pseudonymize_students, the cases' subject is the number's pseudonym,
// computed here with the school's key; the number itself is neither stored nor sent anywhere.
int local_case_find(const Options& o, const std::string& student) {
  auto l = open_local(o, false);
  if (!l) {
    std::cerr << "campusctl: " << l.error().message() << "\n";
    return kFailed;
  }
  std::string subject = student;
  for (const auto& a : l->config.audits) {
    auto table = l->config.audit_tables.find(a.name);
    if ((a.plugin.empty() ? a.name : a.plugin) != "attendance" || table == l->config.audit_tables.end()) continue;
    Errors errors;
    TableReader r(*table->second, "audits." + a.name, l->config.file, errors);
    if (!r.boolean("pseudonymize_students", false)) break;
    auto keys = StudentPseudonyms::open(r.path("pseudonym_key_file", kDefaultStudentKeyFile, false), false);
    if (!keys) {
      std::cerr << "campusctl: " << keys.error().message() << "\n";
      return kFailed;
    }
    subject = keys->pseudonym(student);
    break;
  }
  CaseFilter f;
  f.state = "all";
  Json list = Json::array();
  std::vector<std::vector<std::string>> cells;
  auto cases = l->store->cases(f);
  if (!cases) return store_failed(cases.error());
  for (const auto& c : *cases) {
    if (c.subject != subject) continue;
    Json j = c;
    cells.push_back(case_cells(l->config.school, j));
    j["school"] = l->config.school;
    list.push_back(j);
  }
  if (o.json) {
    std::cout << Json{{"subject", subject}, {"cases", list}}.dump() << "\n";
  } else {
    std::cout << "student key on this box: " << subject << "\n";
    if (list.empty()) std::cout << "no case for this student\n";
    else std::cout << render_table(kCaseHeader, cells);
  }
  return kOk;
}

}  // namespace
}  // namespace campus::ctl

int main(int argc, char** argv) {
  using namespace campus;
  using namespace campus::ctl;
  keep_openssl_until_exit();  // first: see mqtt_tls.hpp (campusctl crashed at exit without it)
  spdlog::set_level(spdlog::level::warn);
  CLI::App app{"campusctl: the county's and the school's view of campus-agent"};
  app.require_subcommand(1);
  // The global options (--json, --timeout, --config, --local, --agent-config) are accepted after
  // the subcommand too (`campusctl ping SCHOOL --json`): an option a subcommand does not know falls
  // through to its parent. Inherited by every subcommand created below.
  app.fallthrough();
  Options o;
  app.add_option("-c,--config", o.config, "county connection file (broker, CA, certificate, key)")->capture_default_str();
  app.add_flag("--json", o.json, "machine-readable JSON on stdout");
  app.add_flag("--local", o.local, "read this school's agent database directly (status, cases, case update)");
  app.add_option("--agent-config", o.agent_config, "the agent's agent.toml (with --local)")->capture_default_str();
  app.add_option("--timeout", o.timeout, "how long to wait for each school (default 5s; audit 3m)");
  app.add_option("--db", o.db, "read the county collector's database (status, cases, report, history, gaps)");

  std::string school;
  bool all = false;
  auto* status = app.add_subcommand("status", "one row per school: online, fiber, recording, cases, backlog, version");
  status->add_option("school", school, "school code (default: every school)");
  status->add_flag("--all", all, "every school of the county (the default)");

  auto* ping = app.add_subcommand("ping", "is the school's agent answering?");
  ping->add_option("school", school)->required();

  std::string audit;
  auto* audit_cmd = app.add_subcommand("audit", "run an audit now and show the fresh report");
  audit_cmd->add_option("school", school)->required();
  audit_cmd->add_option("audit", audit, "fiber, recording, attendance, ... (default: all)");

  std::string state = "open";
  bool open_only = false, closed_only = false;
  auto* cases = app.add_subcommand("cases", "attendance cases of one school or of every school");
  cases->add_option("school", school, "school code (default with --all: every school)");
  cases->add_flag("--all", all, "every school");
  cases->add_option("--state", state, "open, closed or all")->check(CLI::IsMember({"open", "closed", "all"}));
  cases->add_flag("--open", open_only, "open cases (the default)");
  cases->add_flag("--closed", closed_only, "closed cases");

  auto* case_cmd = app.add_subcommand("case", "change a case");
  case_cmd->require_subcommand(1);
  std::vector<std::string> case_args;
  std::string action, note, by;
  auto* update = case_cmd->add_subcommand("update", "record a step: SCHOOL CASE (with --local: CASE)");
  update->add_option("args", case_args, "SCHOOL CASE")->required()->expected(1, 2);
  update->add_option("--action", action, "contacted, visited, returned, transferred, leave_approved, dropout_reported, note")
      ->required()
      ->check(CLI::IsMember(kCaseUpdateActions));
  update->add_option("--note", note, "what happened");
  update->add_option("--by", by, "who did it")->required();

  std::string find_student;
  auto* find = case_cmd->add_subcommand("find", "with --local: a student's cases, by the school's own number (学籍号 too)");
  find->add_option("--student", find_student, "the student number as the school's export has it")->required();

  std::int64_t from_seq = 0, to_seq = 0;
  auto* resend = app.add_subcommand("resend", "ask a school to publish stored messages FROM..TO again");
  resend->add_option("school", school)->required();
  resend->add_option("from", from_seq)->required()->check(CLI::PositiveNumber);
  resend->add_option("to", to_seq)->required()->check(CLI::PositiveNumber);

  auto* config_cmd = app.add_subcommand("config", "the school agent's effective configuration (secrets redacted)");
  config_cmd->add_option("school", school)->required();

  std::string for_duration;
  auto* watch = app.add_subcommand("watch", "live table of the county (Ctrl-C to stop)");
  watch->add_option("--for", for_duration, "stop after this long (e.g. 30s)");

  std::string html_file, lang = "en";
  int year = current_year();
  auto* report = app.add_subcommand("report", "the county's picture against the plan's targets");
  report->add_option("--html", html_file, "write a self-contained HTML report to FILE")->required();
  report->add_option("--lang", lang, "en or zh")->check(CLI::IsMember({"en", "zh"}))->capture_default_str();
  report->add_option("--year", year, "the plan year to compare with (2023: 20%, 2024: 60%, 2025: 100%)");

  std::string since;
  auto* history = app.add_subcommand("history", "a school's history from the county database: states, coverage by day, case steps, events");
  history->add_option("school", school)->required();
  history->add_option("--audit", audit, "only this audit's events");
  history->add_option("--since", since, "from this day on (YYYY-MM-DD)");

  bool gaps_open = false;
  auto* gaps = app.add_subcommand("gaps", "what the county database is missing: open, filled and lost ranges of seqs");
  gaps->add_option("school", school, "one school (default: every school)");
  gaps->add_flag("--open", gaps_open, "only the open ones");

  CLI11_PARSE(app, argc, argv);
  if (open_only) state = "open";
  if (closed_only) state = "closed";

  try {
    if (!since.empty() && (since.size() != 10 || !parse_rfc3339(since + "T00:00:00Z"))) {
      std::cerr << "campusctl: --since: expected a day like 2026-11-01, got \"" << since << "\"\n";
      return kUsage;
    }
    if (!o.local && (status->parsed() || cases->parsed() || report->parsed() || history->parsed() || gaps->parsed())) {
      if (auto rec = county_record(o)) {
        if (status->parsed())
          return record_status(*rec, !school.empty() && !all ? std::optional<std::string>(school) : std::nullopt);
        if (cases->parsed()) return record_cases(*rec, all ? std::string() : school, state);
        if (report->parsed()) return record_report(*rec, html_file, year, lang);
        if (history->parsed()) return record_history(*rec, school, audit, since);
        return record_gaps(*rec, school, gaps_open);
      }
      if (history->parsed() || gaps->parsed()) {
        std::cerr << "campusctl: this command reads the county database: give --db PATH, or set [county] db in "
                  << o.config << "\n";
        return kUsage;
      }
    }
    if (o.local) {
      if (status->parsed()) return local_status(o);
      if (cases->parsed()) return local_cases(o, state);
      if (update->parsed())
        return local_case_update(o, case_args.back(), action, note, by);
      if (find->parsed()) return local_case_find(o, find_student);
      std::cerr << "campusctl: this command needs the county broker; --local supports status, cases, case update and case find\n";
      return kUsage;
    }
    if (find->parsed()) {
      std::cerr << "campusctl: case find runs on the school's box (--local): only it has the key that turns a "
                   "student number into the pseudonym the county sees\n";
      return kUsage;
    }
    auto county = connect_county(o);
    if (!county) {
      std::cerr << "campusctl: " << county.error().message() << "\n";
      return kFailed;
    }
    County& c = *county;
    const Millis per_school = timeout_of(o, Millis(5000));
    // A SCHOOL argument is one school's code: "all" would address every school, a '/' or '+'
    // another topic.
    const std::string& named = update->parsed() && !case_args.empty() ? case_args[0] : school;
    if (!named.empty())
      if (auto p = code_problem(named, c.config.county)) {
        std::cerr << "campusctl: " << *p << (named == "all" ? " (for every school: --all)" : "") << "\n";
        return kUsage;
      }

    if (status->parsed()) {
      std::optional<std::string> only;
      if (!school.empty() && !all) only = school;
      auto rows = gather_status(c, only, per_school, o.json);
      if (o.json) std::cout << Json{{"schools", rows}, {"summary", county_summary(rows, current_year())}}.dump() << "\n";
      else std::cout << status_table(rows);
      for (const auto& r : rows)
        if (r["answer"] != "yes" && r["answer"] != "offline") return kNoAnswer;
      return kOk;
    }
    if (ping->parsed())
      return print_reply(ask(c, school, {{"cmd", "ping"}}, per_school), o.json, [&](const Json& r) {
        std::cout << school << ": " << r.value("version", std::string()) << ", up " << r.value("uptime_s", 0) << " s\n";
      });
    if (audit_cmd->parsed()) {
      Json req = {{"cmd", "audit"}};
      if (!audit.empty()) req["audit"] = audit;
      return print_reply(ask(c, school, req, timeout_of(o, Millis(180000))), o.json, [&](const Json& r) {
        auto one = [&](const Json& a) {
          std::vector<std::string> pairs;
          if (a.contains("report") && a["report"].is_object()) flatten(a["report"]["body"].value("summary", Json::object()), "", pairs);
          std::cout << school << " " << a.value("audit", std::string()) << ": report seq " << a.value("seq", 0)
                    << " stored, " << a.value("events", 0) << " event(s)\n";
          for (const auto& p : pairs) std::cout << "  " << p << "\n";
        };
        if (r.contains("audits"))
          for (auto& [n, a] : r["audits"].items()) {
            Json x = a;
            x["audit"] = n;
            one(x);
          }
        else one(r);
      });
    }
    if (cases->parsed()) {
      std::vector<std::string> schools;
      if (!school.empty()) schools = {school};
      else if (all) schools = known_schools(c, true);
      else {
        std::cerr << "campusctl: name a SCHOOL or use --all\n";
        return kUsage;
      }
      Json list = Json::array(), errors = Json::object();
      std::vector<std::vector<std::string>> cells;
      int rc = kOk;
      for (const auto& s : schools) {
        auto body = ask(c, s, {{"cmd", "cases"}, {"state", state}}, per_school);
        if (!body) {
          errors[s] = "no answer";
          rc = kNoAnswer;
          continue;
        }
        if (!body->value("ok", false)) {
          errors[s] = (*body)["error"];
          rc = kFailed;
          continue;
        }
        for (auto cs : (*body)["result"]["cases"]) {
          cells.push_back(case_cells(s, cs));
          cs["school"] = s;
          list.push_back(cs);
        }
      }
      if (o.json) std::cout << Json{{"cases", list}, {"errors", errors}}.dump() << "\n";
      else {
        std::cout << render_table(kCaseHeader, cells);
        for (auto& [s, e] : errors.items()) std::cerr << "campusctl: " << s << ": " << e.dump() << "\n";
      }
      return rc;
    }
    if (update->parsed()) {
      if (case_args.size() != 2) {
        std::cerr << "campusctl: case update SCHOOL CASE --action ... --by ...\n";
        return kUsage;
      }
      Json req = {{"cmd", "case.update"}, {"case", case_args[1]}, {"action", action}, {"by", by}};
      if (!note.empty()) req["note"] = note;
      return print_reply(ask(c, case_args[0], req, per_school), o.json, [&](const Json& r) {
        std::cout << "case " << r.value("id", std::string()) << " on " << case_args[0] << ": stage "
                  << r.value("stage", std::string())
                  << (r.value("outcome", std::string()).empty() ? "" : " (" + r["outcome"].get<std::string>() + ")")
                  << ", " << r.value("steps", Json::array()).size() << " step(s)\n";
      });
    }
    if (resend->parsed())
      return print_reply(ask(c, school, {{"cmd", "resend"}, {"from_seq", from_seq}, {"to_seq", to_seq}},
                             timeout_of(o, Millis(70000))),
                         o.json, [&](const Json& r) {
                           std::cout << school << ": resent " << r.value("resent", 0) << " of " << r.value("held", 0)
                                     << " held message(s) in seq " << from_seq << ".." << to_seq;
                           if (r.value("missing_count", 0) > 0) std::cout << "; no longer held: " << r["missing"].dump();
                           if (!r["not_yet_produced"].is_null())
                             std::cout << "; not produced yet: " << r["not_yet_produced"].dump();
                           std::cout << " (last seq " << r.value("last_seq", 0) << ")\n";
                         });
    if (config_cmd->parsed())
      return print_reply(ask(c, school, {{"cmd", "config"}}, per_school), o.json,
                         [&](const Json& r) { std::cout << r.dump(2) << "\n"; });
    if (watch->parsed()) {
      Millis limit = Millis(0);
      if (!for_duration.empty()) {
        auto d = parse_duration(for_duration);
        if (!d) {
          std::cerr << "campusctl: --for: " << d.error().what << "\n";
          return kUsage;
        }
        limit = *d;
      }
      const std::string root = "campus/v1/" + c.config.county + "/+/";
      c.client->subscribe({root + "state", root + "health", root + "report/+", root + "event/+"});
      std::map<std::string, SchoolView> views;
      for (const auto& s : c.config.schools) views[s].school = s;
      std::deque<std::string> events;
      const bool tty = ::isatty(STDOUT_FILENO);
      auto start = Clock::now();
      auto last_draw = Clock::now() - std::chrono::seconds(10);
      bool dirty = true;
      while (limit.count() == 0 || Clock::now() - start < limit) {
        auto wake = Clock::now() + Millis(500);
        if (limit.count() > 0) wake = std::min(wake, start + limit);
        if (auto m = c.client->next(wake)) {
          auto parts = split_topic(c.config.county, m->topic);
          if (!parts || parts->first == "all" || parts->second.starts_with("reply/") || parts->second == "cmd") continue;
          auto env = Json::parse(m->payload, nullptr, false);
          if (env.is_discarded()) continue;
          if (o.json) {
            std::cout << Json{{"school", parts->first}, {"topic", m->topic}, {"retained", m->retained}, {"message", env}}.dump()
                      << std::endl;
            continue;
          }
          auto& v = views[parts->first];
          v.school = parts->first;
          absorb(v, parts->second, env);
          if (parts->second.starts_with("event/")) {
            const Json b = env.value("body", Json::object());
            std::string subject = b.value("subject", b.contains("case") && b["case"].is_object()
                                                         ? b["case"].value("id", std::string()) : std::string());
            auto str = [](const Json& x) { return x.is_string() ? x.get<std::string>() : x.dump(); };
            events.push_back(env.value("ts", std::string()) + "  " + parts->first + "  " + parts->second.substr(6) + "  " +
                             subject + ": " + str(b.value("from", Json())) + " -> " + str(b.value("to", Json())) +
                             (b.value("reason", std::string()).empty() ? "" : " (" + b["reason"].get<std::string>() + ")"));
            if (events.size() > 8) events.pop_front();
          }
          dirty = true;
        }
        if (!o.json && dirty && Clock::now() - last_draw > Millis(tty ? 300 : 1000)) {
          std::vector<Json> rows;
          for (auto& [n, v] : views) rows.push_back(school_row(v));
          std::cout << (tty ? "\x1b[H\x1b[2J" : "") << "campusctl watch: " << c.config.county << ", " << rows.size()
                    << " school(s), " << now_local() << "\n"
                    << status_table(rows);
          if (!events.empty()) {
            std::cout << "recent events:\n";
            for (const auto& e : events) std::cout << "  " << e << "\n";
          }
          std::cout << std::flush;
          dirty = false;
          last_draw = Clock::now();
        }
      }
      if (!o.json && dirty) {
        std::vector<Json> rows;
        for (auto& [n, v] : views) rows.push_back(school_row(v));
        std::cout << status_table(rows) << std::flush;
      }
      return kOk;
    }
    if (report->parsed()) {
      auto rows = gather_status(c, std::nullopt, per_school, o.json);
      std::string html = html_report(c.config.county, rows, year, lang, now_local());
      std::ofstream out(html_file, std::ios::binary | std::ios::trunc);
      out << html;
      out.close();
      if (!out) {
        std::cerr << "campusctl: cannot write " << html_file << "\n";
        return kFailed;
      }
      auto sum = county_summary(rows, year);
      if (o.json) std::cout << Json{{"file", html_file}, {"summary", sum}, {"schools", rows}}.dump() << "\n";
      else
        std::cout << "wrote " << html_file << ": " << rows.size() << " school(s), digital campus "
                  << percent(sum["targets"]["digital_campus"]["share"]) << " (plan " << year << ": "
                  << percent(sum["targets"]["digital_campus"]["plan"]) << ")\n";
      return kOk;
    }
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
  return kUsage;
}
