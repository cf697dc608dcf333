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

// What the command line gave, for every subcommand.
struct Args {
  std::string school;
  bool all = false;
  std::string audit;
  std::string state = "open";
  bool open_only = false, closed_only = false;  // cases --open / --closed: they win over --state
  std::vector<std::string> case_args;  // case update: [SCHOOL] CASE
  std::string action, note, by;
  std::string find_student;
  std::int64_t from_seq = 0, to_seq = 0;
  std::string for_duration;
  std::string html_file, lang = "en";
  int year = current_year();
  std::string since;
  bool gaps_open = false;
  std::optional<std::string> only_school() const {
    return !school.empty() && !all ? std::optional<std::string>(school) : std::nullopt;
  }
};

// ---- through the county broker: one function per subcommand ----

int county_status(County& c, const Options& o, const Args& a, Millis per_school) {
  auto rows = gather_status(c, a.only_school(), per_school, o.json);
  if (o.json)
    std::cout << Json{{"schools", rows}, {"summary", county_summary(rows, current_year())}}.dump() << "\n";
  else
    std::cout << status_table(rows);
  for (const auto& r : rows)
    if (r["answer"] != "yes" && r["answer"] != "offline") return kNoAnswer;
  return kOk;
}

int county_ping(County& c, const Options& o, const Args& a, Millis per_school) {
  return print_reply(ask(c, a.school, {{"cmd", "ping"}}, per_school), o.json, [&](const Json& r) {
    std::cout << a.school << ": " << r.value("version", std::string()) << ", up " << r.value("uptime_s", 0) << " s\n";
  });
}

int county_audit(County& c, const Options& o, const Args& a) {
  Json req = {{"cmd", "audit"}};
  if (!a.audit.empty()) req["audit"] = a.audit;
  return print_reply(ask(c, a.school, req, timeout_of(o, Millis(180000))), o.json, [&](const Json& r) {
    auto one = [&](const Json& run) {
      std::vector<std::string> pairs;
      if (run.contains("report") && run["report"].is_object())
        flatten(run["report"]["body"].value("summary", Json::object()), "", pairs);
      std::cout << a.school << " " << run.value("audit", std::string()) << ": report seq " << run.value("seq", 0)
                << " stored, " << run.value("events", 0) << " event(s)\n";
      for (const auto& p : pairs) std::cout << "  " << p << "\n";
    };
    if (r.contains("audits"))
      for (auto& [n, run] : r["audits"].items()) {
        Json x = run;
        x["audit"] = n;
        one(x);
      }
    else
      one(r);
  });
}

int county_cases(County& c, const Options& o, const Args& a, Millis per_school) {
  std::vector<std::string> schools;
  if (!a.school.empty())
    schools = {a.school};
  else if (a.all)
    schools = known_schools(c, true);
  else {
    std::cerr << "campusctl: name a SCHOOL or use --all\n";
    return kUsage;
  }
  Json list = Json::array(), errors = Json::object();
  std::vector<std::vector<std::string>> cells;
  int rc = kOk;
  for (const auto& s : schools) {
    auto body = ask(c, s, {{"cmd", "cases"}, {"state", a.state}}, per_school);
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
  if (o.json) {
    std::cout << Json{{"cases", list}, {"errors", errors}}.dump() << "\n";
  } else {
    std::cout << render_table(kCaseHeader, cells);
    for (auto& [s, e] : errors.items()) std::cerr << "campusctl: " << s << ": " << e.dump() << "\n";
  }
  return rc;
}

int county_case_update(County& c, const Options& o, const Args& a, Millis per_school) {
  if (a.case_args.size() != 2) {
    std::cerr << "campusctl: case update SCHOOL CASE --action ... --by ...\n";
    return kUsage;
  }
  Json req = {{"cmd", "case.update"}, {"case", a.case_args[1]}, {"action", a.action}, {"by", a.by}};
  if (!a.note.empty()) req["note"] = a.note;
  return print_reply(ask(c, a.case_args[0], req, per_school), o.json, [&](const Json& r) {
    std::cout << "case " << r.value("id", std::string()) << " on " << a.case_args[0] << ": stage "
              << r.value("stage", std::string())
              << (r.value("outcome", std::string()).empty() ? "" : " (" + r["outcome"].get<std::string>() + ")")
              << ", " << r.value("steps", Json::array()).size() << " step(s)\n";
  });
}

int county_resend(County& c, const Options& o, const Args& a) {
  Json req = {{"cmd", "resend"}, {"from_seq", a.from_seq}, {"to_seq", a.to_seq}};
  return print_reply(ask(c, a.school, req, timeout_of(o, Millis(70000))), o.json, [&](const Json& r) {
    std::cout << a.school << ": resent " << r.value("resent", 0) << " of " << r.value("held", 0)
              << " held message(s) in seq " << a.from_seq << ".." << a.to_seq;
    if (r.value("missing_count", 0) > 0) std::cout << "; no longer held: " << r["missing"].dump();
    if (!r["not_yet_produced"].is_null()) std::cout << "; not produced yet: " << r["not_yet_produced"].dump();
    std::cout << " (last seq " << r.value("last_seq", 0) << ")\n";
  });
}

int county_config(County& c, const Options& o, const Args& a, Millis per_school) {
  return print_reply(ask(c, a.school, {{"cmd", "config"}}, per_school), o.json,
                     [&](const Json& r) { std::cout << r.dump(2) << "\n"; });
}

// One line of the watch's "recent events" for an event message.
std::string event_line(const std::string& school, const std::string& leaf, const Json& env) {
  const Json b = env.value("body", Json::object());
  std::string subject = b.value(
      "subject", b.contains("case") && b["case"].is_object() ? b["case"].value("id", std::string()) : std::string());
  auto str = [](const Json& x) { return x.is_string() ? x.get<std::string>() : x.dump(); };
  return env.value("ts", std::string()) + "  " + school + "  " + leaf.substr(6) + "  " + subject + ": " +
         str(b.value("from", Json())) + " -> " + str(b.value("to", Json())) +
         (b.value("reason", std::string()).empty() ? "" : " (" + b["reason"].get<std::string>() + ")");
}

void draw_watch(const County& c, std::map<std::string, SchoolView>& views, const std::deque<std::string>& events,
                bool tty) {
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
}

// The county's retained states, health, reports and events as they arrive: a table redrawn
// at most every 300 ms on a terminal (1 s otherwise), or one JSON line per message.
int county_watch(County& c, const Options& o, const Args& a) {
  Millis limit = Millis(0);
  if (!a.for_duration.empty()) {
    auto d = parse_duration(a.for_duration);
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
        events.push_back(event_line(parts->first, parts->second, env));
        if (events.size() > 8) events.pop_front();
      }
      dirty = true;
    }
    if (!o.json && dirty && Clock::now() - last_draw > Millis(tty ? 300 : 1000)) {
      draw_watch(c, views, events, tty);
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

int county_report(County& c, const Options& o, const Args& a, Millis per_school) {
  auto rows = gather_status(c, std::nullopt, per_school, o.json);
  std::string html = html_report(c.config.county, rows, a.year, a.lang, now_local());
  std::ofstream out(a.html_file, std::ios::binary | std::ios::trunc);
  out << html;
  out.close();
  if (!out) {
    std::cerr << "campusctl: cannot write " << a.html_file << "\n";
    return kFailed;
  }
  auto sum = county_summary(rows, a.year);
  if (o.json)
    std::cout << Json{{"file", a.html_file}, {"summary", sum}, {"schools", rows}}.dump() << "\n";
  else
    std::cout << "wrote " << a.html_file << ": " << rows.size() << " school(s), digital campus "
              << percent(sum["targets"]["digital_campus"]["share"]) << " (plan " << a.year << ": "
              << percent(sum["targets"]["digital_campus"]["plan"]) << ")\n";
  return kOk;
}

// ---- the command line ----

// The subcommands, as CLI11 knows them, for the dispatch.
struct Commands {
  CLI::App *status, *ping, *audit, *cases, *update, *find, *resend, *config, *watch, *report, *history, *gaps;
};

Commands add_commands(CLI::App& app, Options& o, Args& a) {
  app.require_subcommand(1);
  // The global options (--json, --timeout, --config, --local, --agent-config) are accepted after
  // the subcommand too (`campusctl ping SCHOOL --json`): an option a subcommand does not know falls
  // through to its parent. Inherited by every subcommand created below.
  app.fallthrough();
  app.add_option("-c,--config", o.config, "county connection file (broker, CA, certificate, key)")->capture_default_str();
  app.add_flag("--json", o.json, "machine-readable JSON on stdout");
  app.add_flag("--local", o.local, "read this school's agent database directly (status, cases, case update)");
  app.add_option("--agent-config", o.agent_config, "the agent's agent.toml (with --local)")->capture_default_str();
  app.add_option("--timeout", o.timeout, "how long to wait for each school (default 5s; audit 3m)");
  app.add_option("--db", o.db, "read the county collector's database (status, cases, report, history, gaps)");

  Commands c{};
  c.status = app.add_subcommand("status", "one row per school: online, fiber, recording, cases, backlog, version");
  c.status->add_option("school", a.school, "school code (default: every school)");
  c.status->add_flag("--all", a.all, "every school of the county (the default)");

  c.ping = app.add_subcommand("ping", "is the school's agent answering?");
  c.ping->add_option("school", a.school)->required();

  c.audit = app.add_subcommand("audit", "run an audit now and show the fresh report");
  c.audit->add_option("school", a.school)->required();
  c.audit->add_option("audit", a.audit, "fiber, recording, attendance, ... (default: all)");

  c.cases = app.add_subcommand("cases", "attendance cases of one school or of every school");
  c.cases->add_option("school", a.school, "school code (default with --all: every school)");
  c.cases->add_flag("--all", a.all, "every school");
  c.cases->add_option("--state", a.state, "open, closed or all")->check(CLI::IsMember({"open", "closed", "all"}));
  c.cases->add_flag("--open", a.open_only, "open cases (the default)");
  c.cases->add_flag("--closed", a.closed_only, "closed cases");

  auto* case_cmd = app.add_subcommand("case", "change a case");
  case_cmd->require_subcommand(1);
  c.update = case_cmd->add_subcommand("update", "record a step: SCHOOL CASE (with --local: CASE)");
  c.update->add_option("args", a.case_args, "SCHOOL CASE")->required()->expected(1, 2);
  c.update->add_option("--action", a.action, case_step_names([](const CaseStepSpec& s) { return s.by_person; }))
      ->required()
      ->check(CLI::IsMember(kCaseUpdateActions));
  c.update->add_option("--note", a.note, "what happened");
  c.update->add_option("--by", a.by, "who did it")->required();

  c.find = case_cmd->add_subcommand("find", "with --local: a student's cases, by the school's own number (学籍号 too)");
  c.find->add_option("--student", a.find_student, "the student number as the school's export has it")->required();

  c.resend = app.add_subcommand("resend", "ask a school to publish stored messages FROM..TO again");
  c.resend->add_option("school", a.school)->required();
  c.resend->add_option("from", a.from_seq)->required()->check(CLI::PositiveNumber);
  c.resend->add_option("to", a.to_seq)->required()->check(CLI::PositiveNumber);

  c.config = app.add_subcommand("config", "the school agent's effective configuration (secrets redacted)");
  c.config->add_option("school", a.school)->required();

  c.watch = app.add_subcommand("watch", "live table of the county (Ctrl-C to stop)");
  c.watch->add_option("--for", a.for_duration, "stop after this long (e.g. 30s)");

  c.report = app.add_subcommand("report", "the county's picture against the plan's targets");
  c.report->add_option("--html", a.html_file, "write a self-contained HTML report to FILE")->required();
  c.report->add_option("--lang", a.lang, "en or zh")->check(CLI::IsMember({"en", "zh"}))->capture_default_str();
  c.report->add_option("--year", a.year, "the plan year to compare with (2023: 20%, 2024: 60%, 2025: 100%)");

  c.history = app.add_subcommand("history", "a school's history from the county database: states, coverage by day, case steps, events");
  c.history->add_option("school", a.school)->required();
  c.history->add_option("--audit", a.audit, "only this audit's events");
  c.history->add_option("--since", a.since, "from this day on (YYYY-MM-DD)");

  c.gaps = app.add_subcommand("gaps", "what the county database is missing: open, filled and lost ranges of seqs");
  c.gaps->add_option("school", a.school, "one school (default: every school)");
  c.gaps->add_flag("--open", a.gaps_open, "only the open ones");
  return c;
}

// Reads the county database (--db or [county] db) for the commands that can; nullopt when the
// command goes to the broker instead.
std::optional<int> from_county_record(const Commands& cmd, const Options& o, const Args& a) {
  if (o.local) return std::nullopt;
  const bool reads_record = cmd.status->parsed() || cmd.cases->parsed() || cmd.report->parsed() ||
                            cmd.history->parsed() || cmd.gaps->parsed();
  if (!reads_record) return std::nullopt;
  if (auto rec = county_record(o)) {
    if (cmd.status->parsed()) return record_status(*rec, a.only_school());
    if (cmd.cases->parsed()) return record_cases(*rec, a.all ? std::string() : a.school, a.state);
    if (cmd.report->parsed()) return record_report(*rec, a.html_file, a.year, a.lang);
    if (cmd.history->parsed()) return record_history(*rec, a.school, a.audit, a.since);
    return record_gaps(*rec, a.school, a.gaps_open);
  }
  if (cmd.history->parsed() || cmd.gaps->parsed()) {
    std::cerr << "campusctl: this command reads the county database: give --db PATH, or set [county] db in "
              << o.config << "\n";
    return kUsage;
  }
  return std::nullopt;
}

int on_this_school(const Commands& cmd, const Options& o, const Args& a) {
  if (cmd.status->parsed()) return local_status(o);
  if (cmd.cases->parsed()) return local_cases(o, a.state);
  if (cmd.update->parsed()) return local_case_update(o, a.case_args.back(), a.action, a.note, a.by);
  if (cmd.find->parsed()) return local_case_find(o, a.find_student);
  std::cerr << "campusctl: this command needs the county broker; --local supports status, cases, case update and case find\n";
  return kUsage;
}

int through_the_broker(const Commands& cmd, const Options& o, const Args& a) {
  if (cmd.find->parsed()) {
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
  const std::string& named = cmd.update->parsed() && !a.case_args.empty() ? a.case_args[0] : a.school;
  if (!named.empty())
    if (auto p = code_problem(named, c.config.county)) {
      std::cerr << "campusctl: " << *p << (named == "all" ? " (for every school: --all)" : "") << "\n";
      return kUsage;
    }
  if (cmd.status->parsed()) return county_status(c, o, a, per_school);
  if (cmd.ping->parsed()) return county_ping(c, o, a, per_school);
  if (cmd.audit->parsed()) return county_audit(c, o, a);
  if (cmd.cases->parsed()) return county_cases(c, o, a, per_school);
  if (cmd.update->parsed()) return county_case_update(c, o, a, per_school);
  if (cmd.resend->parsed()) return county_resend(c, o, a);
  if (cmd.config->parsed()) return county_config(c, o, a, per_school);
  if (cmd.watch->parsed()) return county_watch(c, o, a);
  if (cmd.report->parsed()) return county_report(c, o, a, per_school);
  return kUsage;
}

}  // namespace
}  // namespace campus::ctl

int main(int argc, char** argv) {
  using namespace campus;
  using namespace campus::ctl;
  keep_openssl_until_exit();  // first: see mqtt_tls.hpp (campusctl crashed at exit without it)
  spdlog::set_level(spdlog::level::warn);
  CLI::App app{"campusctl: the county's and the school's view of campus-agent"};
  Options o;
  Args a;
  const Commands cmd = add_commands(app, o, a);
  CLI11_PARSE(app, argc, argv);
  if (a.open_only) a.state = "open";
  if (a.closed_only) a.state = "closed";
  try {
    if (!a.since.empty() && (a.since.size() != 10 || !parse_rfc3339(a.since + "T00:00:00Z"))) {
      std::cerr << "campusctl: --since: expected a day like 2026-11-01, got \"" << a.since << "\"\n";
      return kUsage;
    }
    if (auto rc = from_county_record(cmd, o, a)) return *rc;
    if (o.local) return on_this_school(cmd, o, a);
    return through_the_broker(cmd, o, a);
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
}
