// campusctl on the county database (see county_record.hpp).
#include "ctl/county_record.hpp"

#include <ctime>
#include <fstream>
#include <iostream>

#include "core/envelope.hpp"
#include "county_view.hpp"
#include "database.hpp"

namespace campus::ctl {
using namespace campus::county;  // the county's picture (county_view.hpp), shared with campus-county's pages
namespace {

using county::CountyDatabase;

std::unique_ptr<CountyDatabase> open(const RecordOptions& o) {
  county::DatabaseOptions d;
  d.read_only = true;
  // A PostgreSQL URL (province scale), its password from libpq's PGPASSFILE or ~/.pgpass; else
  // the SQLite file.
  const std::string where = o.db.string();
  auto db = where.rfind("postgresql://", 0) == 0 || where.rfind("postgres://", 0) == 0
                ? county::open_postgres(where, std::nullopt, d)
                : county::open_sqlite(o.db, d);
  if (!db.ok()) {
    std::cerr << "campusctl: " << db.error().message() << "\n";
    return nullptr;
  }
  return std::move(db.value());
}

std::string now_local() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S %z", std::localtime(&t));
  return b;
}

template <class T>
bool failed(const Result<T>& r) {
  if (r.ok()) return false;
  std::cerr << "campusctl: " << r.error().message() << "\n";
  return true;
}

std::string str(const Json& v, const std::string& none = "-") {
  if (v.is_null()) return none;
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string collector_line(const Json& st) {
  if (!st.is_object()) return "collector: no status in the database yet (has campus-county run?)";
  auto at = parse_rfc3339(st.value("at", std::string()));
  long long age = at ? std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - *at).count() : -1;
  const Json d = st.value("database", Json::object());
  std::string line = "collector: status " + std::to_string(age) + " s old, " +
                     (st["ingest"].value("connected", false) ? "connected" : "NOT connected") + ", " +
                     str(st.value("messages_per_s", Json(0))) + " msg/s, " + str(d.value("gaps_open", Json(0))) +
                     " open gap(s), " + str(d.value("seqs_lost", Json(0))) + " seq(s) lost, " +
                     str(d.value("quarantined", Json(0))) + " quarantined, " +
                     std::to_string(d.contains("silent") ? d["silent"].size() : 0) + " silent school(s)";
  if (!st["database_error"].is_null()) line += "; DATABASE ERROR: " + str(st["database_error"]);
  if (age > 120) line += " (is campus-county running?)";
  return line;
}

std::vector<Json> rows_of(CountyDatabase& db, const RecordOptions& o, bool& ok) {
  auto r = db.schools(o.register_schools);
  ok = !failed(r);
  std::vector<Json> rows;
  if (ok)
    for (const auto& s : r.value()) rows.push_back(school_row_of_record(s));
  return rows;
}

}  // namespace

int record_status(const RecordOptions& o, const std::optional<std::string>& school) {
  auto db = open(o);
  if (!db) return 1;
  bool ok = true;
  auto rows = rows_of(*db, o, ok);
  if (!ok) return 1;
  if (school) {
    std::erase_if(rows, [&](const Json& r) { return r["school"] != *school; });
    if (rows.empty()) {
      std::cerr << "campusctl: the county database has nothing of school " << *school << "\n";
      return 1;
    }
  }
  auto st = db->status();
  std::time_t t = std::time(nullptr);
  const int year = std::localtime(&t)->tm_year + 1900;
  if (o.json) {
    std::cout << Json{{"source", "database"}, {"database", o.db.string()}, {"schools", rows},
                      {"summary", county_summary(rows, year)}, {"collector", st.ok() ? st.value() : Json(nullptr)}}
                     .dump()
              << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> cells;
  auto n = [](const Json& v) { return v.is_number() ? std::to_string(v.get<std::int64_t>()) : std::string("-"); };
  for (const auto& r : rows) {
    const Json g = r["gaps"].is_object() ? r["gaps"] : Json::object();
    cells.push_back({r["school"].get<std::string>(), str(r["name"]),
                     r["online"].is_null() ? "?" : (r["online"] == true ? "yes" : "no"), str(r["last_seen"], "never"),
                     percent(r["fiber"]["classroom"]), percent(r["fiber"]["function_room"]), percent(r["fiber"]["office"]),
                     n(r["recording"]["compliant"]) + "/" + n(r["recording"]["total"]),
                     n(r["cases"]["open"]) + "/" + n(r["cases"]["overdue"]), n(r["backlog"]),
                     n(g.value("open", Json())) + "/" + n(g.value("lost", Json())), str(r["as_of"]["oldest_report"]),
                     r["ledger"]["takeovers"].is_number() && r["ledger"]["takeovers"].get<std::int64_t>() > 0
                         ? std::to_string(r["ledger"]["takeovers"].get<std::int64_t>()) : std::string("-"),
                     str(r["version"])});
  }
  std::cout << render_table({"SCHOOL", "NAME", "ONLINE", "LAST SEEN", "FIBER CLASS", "FIBER FUNC", "FIBER OFFICE",
                             "RECORDING", "CASES OPEN/OVERDUE", "BACKLOG", "GAPS OPEN/LOST", "REPORTS AS OF", "TAKEN OVER",
                             "VERSION"},
                            cells);
  std::cout << "figures from the county database " << o.db.string() << "\n" << collector_line(st.ok() ? st.value() : Json())
            << "\n";
  return 0;
}

int record_cases(const RecordOptions& o, const std::string& school, const std::string& state) {
  auto db = open(o);
  if (!db) return 1;
  auto cases = db->cases(state, school);
  if (failed(cases)) return 1;
  if (o.json) {
    std::cout << Json{{"source", "database"}, {"cases", cases.value()}}.dump() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> cells;
  for (const auto& c : cases.value()) {
    std::string last;
    if (!c["steps"].empty()) last = str(c["steps"].back()["action"]) + " by " + str(c["steps"].back()["actor"]);
    cells.push_back({str(c["school"]), str(c["id"]), str(c["subject"]), str(c["stage"]), str(c["opened_at"]),
                     c["overdue"] == true ? "yes" : "no", last, str(c["as_of"])});
  }
  std::cout << render_table({"SCHOOL", "CASE", "STUDENT", "STAGE", "OPENED", "OVERDUE", "LAST STEP", "AS OF"}, cells);
  return 0;
}

int record_history(const RecordOptions& o, const std::string& school, const std::string& audit, const std::string& since) {
  auto db = open(o);
  if (!db) return 1;
  auto h = db->history(school, audit, since);
  if (failed(h)) return 1;
  const Json& j = h.value();
  if (o.json) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::cout << "school " << school << (since.empty() ? "" : " since " + since) << "\n\nonline/offline:\n";
  std::vector<std::vector<std::string>> cells;
  for (const auto& s : j["states"])
    cells.push_back({str(s["at"]), s["online"] == true ? "online" : "offline", str(s["session"]), str(s["reason"]),
                     str(s["last_seq"])});
  std::cout << render_table({"AT (UTC)", "STATE", "SESSION", "REASON", "LAST SEQ"}, cells);
  const Json& up = j["uptime"];
  std::cout << "uptime: " << (up["share"].is_null() ? "-" : percent(up["share"])) << " of "
            << up.value("observed_s", 0) << " s observed\n\ncoverage and targets by day:\n";
  cells.clear();
  for (const auto& d : j["days"])
    cells.push_back({str(d["day"]), percent(d["fiber"]["classroom"]), percent(d["fiber"]["function_room"]),
                     percent(d["fiber"]["office"]), str(d["recording"]["compliant"]) + "/" + str(d["recording"]["total"]),
                     str(d["cases"]["open"]) + "/" + str(d["cases"]["overdue"]),
                     d["digital_campus"].is_null() ? "unknown" : (d["digital_campus"] == true ? "yes" : "no")});
  std::cout << render_table({"DAY", "FIBER CLASS", "FIBER FUNC", "FIBER OFFICE", "RECORDING", "CASES OPEN/OVERDUE",
                             "DIGITAL CAMPUS"},
                            cells);
  std::cout << "\ncase steps:\n";
  cells.clear();
  for (const auto& c : j["case_steps"]) cells.push_back({str(c["at"]), str(c["case"]), str(c["action"]), str(c["actor"]), str(c["note"], "")});
  std::cout << render_table({"AT", "CASE", "ACTION", "BY", "NOTE"}, cells);
  std::cout << "\nevents" << (audit.empty() ? "" : " of " + audit) << ": " << j["events"].size() << "\n";
  cells.clear();
  const auto& ev = j["events"];
  for (std::size_t i = ev.size() > 20 ? ev.size() - 20 : 0; i < ev.size(); ++i)
    cells.push_back({str(ev[i]["ts"]), str(ev[i]["seq"]), str(ev[i]["audit"]), str(ev[i]["subject"]),
                     str(ev[i]["from"]) + " -> " + str(ev[i]["to"]), str(ev[i]["reason"], "")});
  std::cout << render_table({"TS", "SEQ", "AUDIT", "SUBJECT", "CHANGE", "REASON"}, cells);
  return 0;
}

int record_gaps(const RecordOptions& o, const std::string& school, bool open_only) {
  auto db = open(o);
  if (!db) return 1;
  auto gaps = db->gaps(school);
  if (failed(gaps)) return 1;
  std::vector<Json> shown;
  std::size_t open = 0, lost = 0, filled = 0;
  for (const auto& g : gaps.value()) {
    const std::string s = g["state"];
    open += s == "open", lost += s == "lost", filled += s == "filled";
    if (!open_only || s == "open") shown.push_back(g);
  }
  if (o.json) {
    std::cout << Json{{"gaps", shown}, {"open", open}, {"lost", lost}, {"filled", filled}}.dump() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> cells;
  for (const auto& g : shown)
    cells.push_back({str(g["school"]), str(g["store"]).substr(0, 8), str(g["from_seq"]) + ".." + str(g["to_seq"]),
                     str(g["state"]), str(g["cause"]), str(g["opened_at"]), str(g["closed_at"]), str(g["filled"]),
                     str(g["lost"]), str(g["requests"]), str(g["lost_reason"], "")});
  std::cout << render_table({"SCHOOL", "STORE", "SEQS", "STATE", "CAUSE", "OPENED (UTC)", "CLOSED", "FILLED", "LOST",
                             "REQUESTS", "WHY LOST"},
                            cells);
  std::cout << open << " open, " << filled << " filled, " << lost << " lost\n";
  return 0;
}

int record_report(const RecordOptions& o, const std::string& html_file, int year, const std::string& lang) {
  auto db = open(o);
  if (!db) return 1;
  bool ok = true;
  auto rows = rows_of(*db, o, ok);
  if (!ok) return 1;
  auto monthly = db->monthly(o.register_schools);
  if (failed(monthly)) return 1;
  std::string county = o.county;
  if (county.empty()) {
    auto st = db->status();
    if (st.ok() && st.value().is_object()) county = st.value().value("county", std::string());
  }
  std::string html = html_report(county, rows, year, lang, now_local() + " (county database)", monthly.value());
  std::ofstream out(html_file, std::ios::binary | std::ios::trunc);
  out << html;
  out.close();
  if (!out) {
    std::cerr << "campusctl: cannot write " << html_file << "\n";
    return 1;
  }
  auto sum = county_summary(rows, year);
  if (o.json)
    std::cout << Json{{"file", html_file}, {"summary", sum}, {"schools", rows}, {"monthly", monthly.value()}}.dump() << "\n";
  else
    std::cout << "wrote " << html_file << ": " << rows.size() << " school(s), digital campus "
              << percent(sum["targets"]["digital_campus"]["share"]) << " (plan " << year << ": "
              << percent(sum["targets"]["digital_campus"]["plan"]) << "), " << monthly.value().size()
              << " month(s) of history from " << o.db.string() << "\n";
  return 0;
}

}  // namespace campus::ctl
