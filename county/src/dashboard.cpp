// The dashboard (see dashboard.hpp).
#include "dashboard.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <list>
#include <sstream>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "campus/plugin.hpp"
#include "core/envelope.hpp"
#include "county_view.hpp"
#include "web_request.hpp"

namespace campus::county {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct Dashboard::Reply {
  int status = 200;
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool event_stream = false;  // /api/live: the connection becomes a Server-Sent Events stream
};

struct Dashboard::Request {
  std::string method;
  std::string target;
  web::Target parsed;
  std::string cookie, accept_language, origin, host, content_type, body;
  std::string peer;
  bool tls = false;
  std::optional<web::Session> session;
  std::string token;
};

namespace {

constexpr std::size_t kMaxHeader = 16 * 1024;
constexpr std::size_t kMaxBody = 16 * 1024;
constexpr auto kIdle = std::chrono::seconds(30);
constexpr int kMaxConnections = 128;
constexpr int kMaxFailures = 5;                     // failed logins of one user name ...
constexpr auto kFailureWindow = std::chrono::minutes(15);  // ... within this: refused until it ends
const char* kCookie = "campus_session";
constexpr auto kLiveDelay = std::chrono::milliseconds(500);  // commits within it make one event
// A rendered page serves the requests for it until the next change, and at most this long (its
// "silent for", "overdue" and ages move with the clock).
constexpr auto kRenderedMaxAge = std::chrono::seconds(2);
constexpr std::size_t kRenderedMax = 512;
constexpr auto kLiveKeepAlive = std::chrono::seconds(15);    // a comment line when nothing happens
constexpr std::size_t kMaxLivePages = 64;

// The pages' one script: on each "commit" event it fetches the page again and replaces its
// figures (<main id="content">) in place. Not while the user is typing in a field of it.
const char* kLiveJs = R"(// campus-county: live figures (Server-Sent Events from /api/live).
(function () {
  var main = document.getElementById("content");
  if (!main || !window.EventSource || !window.fetch) return;
  var busy = false, again = false;
  function refresh() {
    if (main.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById("content");
      if (fresh) {
        main.innerHTML = fresh.innerHTML;
        document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
      }
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }
  var live = new EventSource("/api/live");
  live.addEventListener("commit", refresh);
  live.addEventListener("open", function () { document.body.dataset.live = "open"; });
})();
)";

using Reply = Dashboard::Reply;
using Request = Dashboard::Request;

// ---- language ----
// "zh" or "en": ?lang=, else the `lang` cookie, else the first of Accept-Language with the
// highest q, else the configured default.
std::string cookie_value(const std::string& header, const std::string& name) {
  std::size_t i = 0;
  while (i < header.size()) {
    std::size_t end = header.find(';', i);
    if (end == std::string::npos) end = header.size();
    std::string part = header.substr(i, end - i);
    i = end + 1;
    const auto b = part.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    part = part.substr(b);
    if (part.rfind(name + "=", 0) == 0) return part.substr(name.size() + 1);
  }
  return "";
}

std::string language_of(const Request& r, const std::string& fallback) {
  if (auto l = r.parsed.params.get("lang"); l && (*l == "zh" || *l == "en")) return *l;
  const std::string c = cookie_value(r.cookie, "lang");
  if (c == "zh" || c == "en") return c;
  std::string best;
  double best_q = 0;
  std::stringstream ss(r.accept_language);
  for (std::string item; std::getline(ss, item, ',');) {
    std::string tag = item.substr(0, item.find(';'));
    tag.erase(std::remove(tag.begin(), tag.end(), ' '), tag.end());
    double q = 1.0;
    if (auto qp = item.find("q="); qp != std::string::npos) {
      try {
        q = std::stod(item.substr(qp + 2));
      } catch (const std::exception&) {
        q = 0;
      }
    }
    std::string lang = tag.substr(0, 2);
    std::transform(lang.begin(), lang.end(), lang.begin(), ::tolower);
    if ((lang == "zh" || lang == "en") && q > best_q) best = lang, best_q = q;
  }
  return best.empty() ? fallback : best;
}

// ---- what a page needs besides the database ----
struct Context {
  std::string lang = "zh";
  std::string user;
  web::Role role = web::Role::viewer;
  std::string path;
  web::Params params;
  std::string county_name;
  std::vector<std::string> register_codes;
  std::map<std::string, std::string> names_en;  // code -> English name from the register
  Millis silent_after{0};
  Json case_steps = Json::array();  // the steps operators asked for (Dashboard::case_steps_)
};

const char* tr(const Context& c, const char* en, const char* zh) { return c.lang == "zh" ? zh : en; }
std::string h(const std::string& s) { return html_escape(s); }
std::string str(const Json& v, const std::string& none = "-") {
  if (v.is_null()) return none;
  return v.is_string() ? v.get<std::string>() : v.dump();
}
std::string num(const Json& v) { return v.is_number() ? std::to_string(v.get<std::int64_t>()) : std::string("-"); }

Reply json_reply(int status, const Json& body) {
  Reply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump();
  return r;
}

Reply error_reply(bool api, int status, const Error& e, const std::string& lang = "en") {
  if (api) return json_reply(status, {{"error", {{"where", e.where}, {"what", e.what}, {"fix", e.fix}}}});
  Reply r;
  r.status = status;
  r.body = "<!DOCTYPE html><html lang=\"" + std::string(lang == "zh" ? "zh-CN" : "en") +
           "\"><head><meta charset=\"utf-8\"><title>" + std::to_string(status) + "</title></head><body><h1>" +
           std::to_string(status) + "</h1><p id=\"error\">" + h(e.message()) + "</p><p><a href=\"/\">" +
           (lang == "zh" ? "返回首页" : "Back to the dashboard") + "</a></p></body></html>\n";
  return r;
}

int current_year() {
  std::time_t t = std::time(nullptr);
  return std::localtime(&t)->tm_year + 1900;
}

// The page around a body: the county's name, the navigation, the language switch, the user.
std::string layout(const Context& c, const std::string& title, const std::string& body) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"" << (c.lang == "zh" ? "zh-CN" : "en") << "\"><head><meta charset=\"utf-8\">"
    << "<meta name=\"viewport\" content=\"width=device-width\"><title>" << h(title + " - " + c.county_name)
    << "</title>\n<script src=\"/live.js\" defer></script>\n<style>" << report_style()
    << "nav{margin-bottom:12px}nav a{margin-right:14px}nav form{display:inline}.who{float:right;color:#555}"
    << "th a{color:inherit}.offline{color:#c0392b}.online{color:#1e8449}</style></head><body>\n<nav>"
    << "<span class=\"who\">" << h(c.user) << " (" << web::role_name(c.role) << ") "
    << "<a id=\"lang-switch\" href=\"" << h(c.path) << "?lang=" << (c.lang == "zh" ? "en" : "zh") << "\">"
    << (c.lang == "zh" ? "English" : "中文") << "</a> "
    << "<form method=\"post\" action=\"/logout\"><button id=\"logout\">" << tr(c, "Log out", "退出") << "</button></form></span>"
    << "<strong>" << h(c.county_name) << "</strong> &nbsp; "
    << "<a href=\"/plan\">" << tr(c, "County vs plan", "规划达标") << "</a>"
    << "<a href=\"/schools\">" << tr(c, "Schools", "学校") << "</a>"
    << "<a href=\"/cases\">" << tr(c, "Cases", "控辍案件") << "</a>"
    << "<a href=\"/quality\">" << tr(c, "Data quality", "数据质量") << "</a>"
    << "<a href=\"/alerts\">" << tr(c, "Alerts", "告警") << "</a></nav>\n"
    << "<h1 id=\"title\">" << h(title) << "</h1>\n<main id=\"content\">\n"
    << body << "</main></body></html>\n";
  return o.str();
}

Reply page(const Context& c, const std::string& title, const std::string& body) {
  Reply r;
  r.body = layout(c, title, body);
  return r;
}

std::string display_name(const Context& c, const Json& row) {
  const std::string code = row["school"].get<std::string>();
  if (c.lang == "en")
    if (auto it = c.names_en.find(code); it != c.names_en.end() && !it->second.empty()) return it->second;
  return row["name"].is_string() ? row["name"].get<std::string>() : code;
}

// ---- schools ----
const std::vector<std::string> kSortKeys = {"school", "name", "online", "last_seen", "classroom", "function_room",
                                            "office", "recording", "cases_open", "cases_overdue", "backlog",
                                            "gaps_open", "gaps_lost", "version"};

Json sort_value(const Json& r, const std::string& key) {
  if (key == "classroom" || key == "function_room" || key == "office") return r["fiber"][key];
  if (key == "recording") return r["recording"]["compliant"];
  if (key == "cases_open") return r["cases"]["open"];
  if (key == "cases_overdue") return r["cases"]["overdue"];
  if (key == "gaps_open" || key == "gaps_lost") {
    const Json& g = r["gaps"];
    return g.is_object() ? g.value(key == "gaps_open" ? "open" : "lost", Json(nullptr)) : Json(nullptr);
  }
  return r.value(key, Json(nullptr));
}

const std::vector<web::ParamSpec> kSchoolParams = {
    {"sort", kSortKeys}, {"order", {"asc", "desc"}}, {"q", {}}, {"online", {"yes", "no", "unknown"}}, {"lang", {"zh", "en"}}};

// The register's schools with their figures, filtered and sorted as the parameters say.
Result<std::vector<Json>> school_rows(CountyDatabase& db, const Context& c) {
  auto records = db.schools(c.register_codes);
  if (!records.ok()) return records.error();
  std::vector<Json> rows;
  const std::string q = c.params.get("q").value_or("");
  const std::string online = c.params.get("online").value_or("");
  for (const auto& rec : records.value()) {
    Json row = school_row_of_record(rec);
    row["display_name"] = display_name(c, row);
    if (!q.empty() && row["school"].get<std::string>().find(q) == std::string::npos &&
        row["display_name"].get<std::string>().find(q) == std::string::npos &&
        str(row["name"], "").find(q) == std::string::npos)
      continue;
    if (online == "yes" && row["online"] != true) continue;
    if (online == "no" && row["online"] != false) continue;
    if (online == "unknown" && !row["online"].is_null()) continue;
    rows.push_back(std::move(row));
  }
  const std::string key = c.params.get("sort").value_or("school");
  const bool desc = c.params.get("order").value_or("asc") == "desc";
  // Unknown values last in either order: a missing figure is never better or worse than a known one.
  std::stable_sort(rows.begin(), rows.end(), [&](const Json& a, const Json& b) {
    const Json va = key == "name" ? a["display_name"] : sort_value(a, key);
    const Json vb = key == "name" ? b["display_name"] : sort_value(b, key);
    if (va.is_null() != vb.is_null()) return vb.is_null();
    if (va.is_null()) return false;
    return desc ? vb < va : va < vb;
  });
  return rows;
}

Reply schools_page(CountyDatabase& db, const Context& c, bool api) {
  auto rows = school_rows(db, c);
  if (!rows.ok()) return error_reply(api, 503, rows.error(), c.lang);
  const Json summary = county_summary(rows.value(), current_year());
  if (api) return json_reply(200, {{"county", c.county_name}, {"schools", rows.value()}, {"summary", summary}});
  const std::string key = c.params.get("sort").value_or("school");
  const bool desc = c.params.get("order").value_or("asc") == "desc";
  auto link = [&](const std::string& k, const std::string& label) {
    const std::string order = k == key && !desc ? "desc" : "asc";
    std::string href = "/schools?sort=" + k + "&order=" + order;
    if (auto q = c.params.get("q")) href += "&q=" + *q;  // the browser re-encodes; shown escaped below
    if (auto o = c.params.get("online")) href += "&online=" + *o;
    return "<th><a class=\"sort\" data-key=\"" + k + "\" href=\"" + h(href) + "\">" + h(label) +
           (k == key ? (desc ? " ▼" : " ▲") : "") + "</a></th>";
  };
  std::ostringstream o;
  o << "<form id=\"filter\" method=\"get\" action=\"/schools\"><input type=\"hidden\" name=\"sort\" value=\"" << h(key)
    << "\"><input name=\"q\" id=\"q\" placeholder=\"" << tr(c, "code or name", "代码或名称") << "\" value=\""
    << h(c.params.get("q").value_or("")) << "\"> <select name=\"online\" id=\"online\"><option value=\"\">"
    << tr(c, "online or not", "全部") << "</option>";
  for (const auto& [v, en, zh] : std::vector<std::tuple<std::string, const char*, const char*>>{
           {"yes", "online", "在线"}, {"no", "offline", "离线"}, {"unknown", "unknown", "未知"}})
    o << "<option value=\"" << v << "\"" << (c.params.get("online") == v ? " selected" : "") << ">" << tr(c, en, zh)
      << "</option>";
  o << "</select> <button>" << tr(c, "Filter", "筛选") << "</button></form>\n";
  o << "<p class=\"note\" id=\"count\">" << rows->size() << tr(c, " schools", " 所学校") << "</p>\n";
  o << "<table id=\"schools\"><tr>" << link("school", tr(c, "Code", "代码")) << link("name", tr(c, "School", "学校"))
    << link("online", tr(c, "Online", "在线")) << link("last_seen", tr(c, "Last seen", "最后联系"))
    << link("classroom", tr(c, "Fiber: classrooms", "光纤：教室"))
    << link("function_room", tr(c, "Fiber: function rooms", "光纤：功能室"))
    << link("office", tr(c, "Fiber: offices", "光纤：办公室"))
    << link("recording", tr(c, "Recording compliant/total", "录播合格/总数"))
    << link("cases_open", tr(c, "Open cases", "未结案件")) << link("cases_overdue", tr(c, "Overdue", "超期"))
    << link("backlog", tr(c, "Backlog", "待发消息")) << link("gaps_open", tr(c, "Open gaps", "未补缺口"))
    << link("gaps_lost", tr(c, "Lost gaps", "丢失缺口")) << link("version", tr(c, "Version", "版本")) << "</tr>\n";
  for (const auto& r : rows.value()) {
    const Json g = r["gaps"].is_object() ? r["gaps"] : Json::object();
    const std::string code = r["school"].get<std::string>();
    o << "<tr data-school=\"" << h(code) << "\"><td><a href=\"/school?code=" << h(code) << "\">" << h(code) << "</a></td><td>"
      << h(r["display_name"].get<std::string>())
      << "</td><td class=\"" << (r["online"] == true ? "online" : r["online"] == false ? "offline" : "") << "\">"
      << (r["online"].is_null() ? tr(c, "unknown", "未知") : r["online"] == true ? tr(c, "yes", "是") : tr(c, "no", "否"))
      << "</td><td>" << h(str(r["last_seen"], tr(c, "never", "从未"))) << "</td><td>" << percent(r["fiber"]["classroom"])
      << "</td><td>" << percent(r["fiber"]["function_room"]) << "</td><td>" << percent(r["fiber"]["office"])
      << "</td><td>" << num(r["recording"]["compliant"]) << "/" << num(r["recording"]["total"]) << "</td><td>"
      << num(r["cases"]["open"]) << "</td><td>" << num(r["cases"]["overdue"]) << "</td><td>" << num(r["backlog"])
      << "</td><td>" << num(g.value("open", Json())) << "</td><td>" << num(g.value("lost", Json())) << "</td><td>"
      << h(str(r["version"])) << "</td></tr>\n";
  }
  o << "</table>\n";
  return page(c, tr(c, "Schools", "学校"), o.str());
}

// ---- the plan ----
Reply plan_page(CountyDatabase& db, const Context& c, bool api) {
  auto records = db.schools(c.register_codes);
  if (!records.ok()) return error_reply(api, 503, records.error(), c.lang);
  auto monthly = db.monthly(c.register_codes);
  if (!monthly.ok()) return error_reply(api, 503, monthly.error(), c.lang);
  std::vector<Json> rows;
  for (const auto& rec : records.value()) rows.push_back(school_row_of_record(rec));
  const int year = current_year();
  const Json summary = county_summary(rows, year);
  if (api) return json_reply(200, {{"county", c.county_name}, {"year", year}, {"summary", summary}, {"monthly", monthly.value()}});
  std::ostringstream o;
  const std::size_t unknown = rows.size() - summary["targets"]["digital_campus"]["known"].get<std::size_t>();
  o << "<p class=\"note\" id=\"unknown\">"
    << (c.lang == "zh" ? "数据未知的学校不计为达标：" + std::to_string(unknown) + " / " + std::to_string(rows.size()) + " 所学校没有数字校园数据。"
                       : "Unknown data never counts as met: " + std::to_string(unknown) + " of " +
                             std::to_string(rows.size()) + " schools have no digital-campus figure.")
    << "</p>\n";
  o << plan_section_html(rows, year, c.lang, monthly.value());
  return page(c, tr(c, "County vs plan", "县域规划达标情况"), o.str());
}

// ---- cases ----
const std::vector<web::ParamSpec> kCaseParams = {{"state", {"open", "closed", "all"}}, {"school", {}}, {"lang", {"zh", "en"}}};

// The steps asked for on case `k` that its school's events do not show yet: pending until the
// case has as many steps as the school said it has after recording it (or refused).
Json pending_steps(const Context& c, const Json& k) {
  Json out = Json::array();
  for (const auto& p : c.case_steps) {
    if (p["school"] != k["school"] || p["case"] != k["id"]) continue;
    if (p["state"] == "accepted" && p["steps_after"].is_number() &&
        k["steps"].size() >= p["steps_after"].get<std::size_t>())
      continue;  // confirmed: the school's event carried it into the database
    out.push_back(p);
  }
  return out;
}

Reply cases_page(CountyDatabase& db, const Context& c, bool api) {
  const std::string state = c.params.get("state").value_or("open");
  const std::string school = c.params.get("school").value_or("");
  auto cases = db.cases(state, school);
  if (!cases.ok()) return error_reply(api, 503, cases.error(), c.lang);
  for (auto& k : cases.value()) k["pending"] = pending_steps(c, k);
  if (api) return json_reply(200, {{"state", state}, {"cases", cases.value()}});
  std::ostringstream o;
  o << "<p class=\"note\" id=\"count\">" << cases->size() << tr(c, " case(s), overdue first", " 个案件，超期在前") << "</p>\n"
    << "<table id=\"cases\"><tr><th>" << tr(c, "School", "学校") << "</th><th>" << tr(c, "Case", "案件") << "</th><th>"
    << tr(c, "Student", "学生") << "</th><th>" << tr(c, "Stage", "阶段") << "</th><th>" << tr(c, "Opened", "立案")
    << "</th><th>" << tr(c, "Deadline", "期限") << "</th><th>" << tr(c, "Overdue", "超期") << "</th><th>"
    << tr(c, "Last step", "最近处理") << "</th><th>" << tr(c, "Asked for", "已提交") << "</th>"
    << (c.role == web::Role::operator_ ? std::string("<th>") + tr(c, "Record a step", "记录处理") + "</th>" : "")
    << "</tr>\n";
  for (const auto& k : cases.value()) {
    std::string last = "-";
    if (!k["steps"].empty()) {
      const Json& s = k["steps"].back();
      last = str(s["action"]) + " (" + str(s["actor"]) + ", " + str(s["at"]) + ")";
    }
    const Json d = k["details"].is_object() ? k["details"] : Json::object();
    o << "<tr data-case=\"" << h(str(k["id"])) << "\"><td>" << h(str(k["school"])) << "</td><td>" << h(str(k["id"]))
      << "</td><td>" << h(str(k["subject"])) << "</td><td>" << h(str(k["stage"])) << "</td><td>" << h(str(k["opened_at"]))
      << "</td><td>" << h(str(d.value("deadline", Json(nullptr)))) << "</td><td class=\""
      << (k["overdue"] == true ? "missed\">" + std::string(tr(c, "yes", "是")) : "\">" + std::string(tr(c, "no", "否")))
      << "</td><td>" << h(last) << "</td><td class=\"pending\">";
    for (const auto& p : k["pending"]) {
      const std::string st = p["state"].get<std::string>();
      o << "<div data-step-state=\"" << h(st) << "\">" << h(str(p["action"])) << " (" << h(str(p["by"])) << "): "
        << (st == "refused" ? std::string(tr(c, "refused: ", "被拒绝：")) + h(str(p["error"]))
            : st == "accepted" ? tr(c, "recorded by the school, arriving", "学校已记录，等待同步")
                               : tr(c, "waiting for the school", "等待学校确认"))
        << "</div>";
    }
    o << "</td>";
    if (c.role == web::Role::operator_) {
      o << "<td>";
      if (k["stage"] != "closed") {
        o << "<form class=\"step\" method=\"post\" action=\"/cases/step\"><input type=\"hidden\" name=\"school\" value=\""
          << h(str(k["school"])) << "\"><input type=\"hidden\" name=\"case\" value=\"" << h(str(k["id"]))
          << "\"><select name=\"action\">";
        for (const auto& a : kCaseUpdateActions) o << "<option value=\"" << h(a) << "\">" << h(a) << "</option>";
        o << "</select> <input name=\"note\" maxlength=\"500\" placeholder=\"" << tr(c, "note", "备注")
          << "\"> <button>" << tr(c, "Record", "提交") << "</button></form>";
      }
      o << "</td>";
    }
    o << "</tr>\n";
  }
  o << "</table>\n";
  return page(c, tr(c, "Absence cases", "控辍案件"), o.str());
}

// ---- one school ----
const std::vector<web::ParamSpec> kSchoolPageParams = {{"code", {}}, {"lang", {"zh", "en"}}};
Reply school_page(CountyDatabase& db, const Context& c, bool api) {
  const std::string code = c.params.get("code").value_or("");
  if (code.empty())
    return error_reply(api, 400, Error{"query parameter code", "missing", "give the school's code, e.g. ?code=school-a"},
                       c.lang);
  auto records = db.schools(c.register_codes);
  if (!records.ok()) return error_reply(api, 503, records.error(), c.lang);
  Json row;
  for (const auto& rec : records.value())
    if (rec["school"] == code) row = school_row_of_record(rec);
  if (row.is_null())
    return error_reply(api, 404, Error{"school " + code, "is neither in the register nor heard from", "see /schools"},
                       c.lang);
  row["display_name"] = display_name(c, row);
  auto history = db.history(code, "", "");
  auto latest = db.latest_reports(code);
  auto cases = db.cases("all", code);
  auto gaps = db.gaps(code);
  for (const Error* e : {history.ok() ? nullptr : &history.error(), latest.ok() ? nullptr : &latest.error(),
                         cases.ok() ? nullptr : &cases.error(), gaps.ok() ? nullptr : &gaps.error()})
    if (e) return error_reply(api, 503, *e, c.lang);
  const Json rooms = findings_needing_attention(latest.value(), "fiber");
  const Json recording = findings_needing_attention(latest.value(), "recording");
  const Json& hist = history.value();
  if (api)
    return json_reply(200, {{"school", row}, {"rooms_needing_attention", rooms}, {"recording_failing", recording},
                            {"cases", cases.value()}, {"days", hist["days"]}, {"states", hist["states"]},
                            {"uptime", hist["uptime"]}, {"gaps", gaps.value()}});
  std::ostringstream o;
  o << "<p class=\"note\" id=\"summary\">" << h(code) << " &middot; "
    << (row["online"] == true ? tr(c, "online", "在线") : row["online"] == false ? tr(c, "offline", "离线") : tr(c, "unknown", "未知"))
    << " &middot; " << tr(c, "last seen ", "最后联系 ") << h(str(row["last_seen"], tr(c, "never", "从未"))) << " &middot; "
    << tr(c, "uptime ", "在线率 ") << percent(hist["uptime"].value("share", Json(nullptr))) << " &middot; "
    << h(str(row["version"])) << "</p>\n";
  std::vector<std::string> days;
  std::vector<LineSeries> cov = {{tr(c, "Classrooms", "教室"), "#1f618d", {}},
                                 {tr(c, "Function rooms", "功能室"), "#48c9b0", {}},
                                 {tr(c, "Offices", "办公室"), "#f5b041", {}}};
  for (const auto& d : hist["days"]) {
    days.push_back(d["day"].get<std::string>());
    int i = 0;
    for (const char* t : {"classroom", "function_room", "office"}) {
      const Json& v = d["fiber"][t];
      cov[i++].values.push_back(v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt);
    }
  }
  o << line_chart("chart-coverage", tr(c, "Fiber coverage by room type, day by day", "各类房间光纤覆盖率（逐日）"), days, cov);
  auto findings_table = [&](const char* id, const char* title_en, const char* title_zh, const Json& rows) {
    o << "<h2>" << tr(c, title_en, title_zh) << "</h2><table id=\"" << id << "\"><tr><th>" << tr(c, "Room", "房间")
      << "</th><th>" << tr(c, "State", "状态") << "</th><th>" << tr(c, "Reason", "原因") << "</th></tr>\n";
    for (const auto& f : rows)
      o << "<tr data-subject=\"" << h(str(f["subject"])) << "\"><td>" << h(str(f["subject"])) << "</td><td class=\"missed\">"
        << h(str(f["state"])) << "</td><td>" << h(str(f["reason"])) << "</td></tr>\n";
    o << "</table>\n";
  };
  findings_table("rooms", "Rooms down or degraded now", "当前断开或降级的房间", rooms);
  findings_table("recording", "Recording classrooms failing a check", "未通过检查的录播教室", recording);
  o << "<h2>" << tr(c, "Absence cases", "控辍案件") << "</h2><table id=\"cases\"><tr><th>" << tr(c, "Case", "案件")
    << "</th><th>" << tr(c, "Stage", "阶段") << "</th><th>" << tr(c, "Deadline", "期限") << "</th><th>"
    << tr(c, "Steps", "处理记录") << "</th></tr>\n";
  for (const auto& k : cases.value()) {
    std::string steps;
    for (const auto& st : k["steps"]) steps += (steps.empty() ? "" : "; ") + str(st["at"]) + " " + str(st["action"]) + " (" + str(st["actor"]) + ")";
    const Json d = k["details"].is_object() ? k["details"] : Json::object();
    o << "<tr data-case=\"" << h(str(k["id"])) << "\"><td>" << h(str(k["id"])) << "</td><td>" << h(str(k["stage"]))
      << (k["overdue"] == true ? std::string(" <span class=\"missed\">") + tr(c, "overdue", "超期") + "</span>" : "")
      << "</td><td>" << h(str(d.value("deadline", Json(nullptr)))) << "</td><td>" << h(steps) << "</td></tr>\n";
  }
  o << "</table>\n<h2>" << tr(c, "Online and offline", "上下线记录") << "</h2><table id=\"states\"><tr><th>"
    << tr(c, "At (UTC)", "时间 (UTC)") << "</th><th>" << tr(c, "State", "状态") << "</th><th>" << tr(c, "Reason", "原因")
    << "</th></tr>\n";
  for (const auto& st : hist["states"])
    o << "<tr><td>" << h(str(st["at"])) << "</td><td>" << (st["online"] == true ? tr(c, "online", "上线") : tr(c, "offline", "下线"))
      << "</td><td>" << h(str(st["reason"])) << "</td></tr>\n";
  o << "</table>\n<h2>" << tr(c, "Gaps", "消息缺口") << "</h2><table id=\"gaps\"><tr><th>seq</th><th>"
    << tr(c, "State", "状态") << "</th><th>" << tr(c, "Cause", "原因") << "</th><th>" << tr(c, "Why lost", "丢失原因")
    << "</th></tr>\n";
  for (const auto& g : gaps.value())
    o << "<tr data-state=\"" << h(str(g["state"])) << "\"><td>" << num(g["from_seq"]) << "-" << num(g["to_seq"])
      << "</td><td>" << h(str(g["state"])) << "</td><td>" << h(str(g["cause"])) << "</td><td>" << h(str(g["lost_reason"]))
      << "</td></tr>\n";
  o << "</table>\n";
  return page(c, row["display_name"].get<std::string>(), o.str());
}

// ---- data quality ----
Reply quality_page(CountyDatabase& db, const Context& c, bool api) {
  auto totals = db.totals(std::chrono::system_clock::now() - c.silent_after);
  if (!totals.ok()) return error_reply(api, 503, totals.error(), c.lang);
  auto gaps = db.gaps("");
  if (!gaps.ok()) return error_reply(api, 503, gaps.error(), c.lang);
  std::vector<Json> unfilled;
  for (const auto& g : gaps.value())
    if (g["state"] != "filled") unfilled.push_back(g);
  // Schools whose audits fail: each school's latest health says, per audit, whether its last
  // run went through, and the error when not.
  auto records = db.schools(c.register_codes);
  if (!records.ok()) return error_reply(api, 503, records.error(), c.lang);
  Json audit_errors = Json::array();
  for (const auto& rec : records.value()) {
    const Json health = rec.value("health", Json(nullptr));
    if (!health.is_object() || !health.contains("audits") || !health["audits"].is_object()) continue;
    for (const auto& [audit, a] : health["audits"].items())
      if (a.is_object() && a.value("ok", true) == false)
        audit_errors.push_back({{"school", rec["school"]}, {"audit", audit}, {"error", a.value("error", Json(nullptr))},
                                {"last_run", a.value("last_run", Json(nullptr))}, {"errors", a.value("errors", Json(nullptr))},
                                {"as_of", rec.value("health_at", Json(nullptr))}});
  }
  const Json& t = totals.value();
  if (api)
    return json_reply(200, {{"silent_after", format_duration(c.silent_after)}, {"silent", t["silent"]},
                            {"audit_errors", audit_errors},
                            {"gaps_open", t["gaps_open"]}, {"gaps_lost", t["gaps_lost"]}, {"seqs_open", t["seqs_open"]},
                            {"seqs_lost", t["seqs_lost"]}, {"quarantined", t["quarantined"]},
                            {"conflicts", t["conflicts"]}, {"gaps", unfilled}});
  std::ostringstream o;
  o << "<h2>" << tr(c, "Silent schools", "失联学校") << "</h2><p class=\"note\">"
    << tr(c, "Nothing received for longer than ", "超过以下时间未收到任何消息：") << h(format_duration(c.silent_after))
    << "</p><ul id=\"silent\">";
  for (const auto& s : t["silent"]) o << "<li>" << h(s.get<std::string>()) << "</li>";
  o << "</ul>\n<h2>" << tr(c, "Audits failing", "运行出错的检查") << "</h2><table id=\"audit-errors\"><tr><th>"
    << tr(c, "School", "学校") << "</th><th>" << tr(c, "Audit", "检查") << "</th><th>" << tr(c, "Error", "错误")
    << "</th><th>" << tr(c, "Last run", "最近运行") << "</th></tr>\n";
  for (const auto& e : audit_errors)
    o << "<tr><td>" << h(str(e["school"])) << "</td><td>" << h(str(e["audit"])) << "</td><td>" << h(str(e["error"]))
      << "</td><td>" << h(str(e["last_run"])) << "</td></tr>\n";
  o << "</table>\n<h2>" << tr(c, "Gaps", "消息缺口") << "</h2><table id=\"totals\">"
    << "<tr><th>" << tr(c, "open gaps", "未补缺口") << "</th><td id=\"gaps-open\">" << num(t["gaps_open"]) << "</td></tr>"
    << "<tr><th>" << tr(c, "lost gaps", "丢失缺口") << "</th><td id=\"gaps-lost\">" << num(t["gaps_lost"]) << "</td></tr>"
    << "<tr><th>" << tr(c, "seqs still open", "待补消息") << "</th><td>" << num(t["seqs_open"]) << "</td></tr>"
    << "<tr><th>" << tr(c, "seqs lost", "丢失消息") << "</th><td>" << num(t["seqs_lost"]) << "</td></tr>"
    << "<tr><th>" << tr(c, "quarantined messages", "隔离消息") << "</th><td id=\"quarantined\">" << num(t["quarantined"])
    << "</td></tr></table>\n<table id=\"gaps\"><tr><th>" << tr(c, "School", "学校") << "</th><th>seq</th><th>"
    << tr(c, "State", "状态") << "</th><th>" << tr(c, "Cause", "原因") << "</th><th>" << tr(c, "Opened", "发现")
    << "</th><th>" << tr(c, "Requests", "补发请求") << "</th><th>" << tr(c, "Why lost", "丢失原因") << "</th></tr>\n";
  for (const auto& g : unfilled)
    o << "<tr><td>" << h(str(g["school"])) << "</td><td>" << num(g["from_seq"]) << "-" << num(g["to_seq"]) << "</td><td>"
      << h(str(g["state"])) << "</td><td>" << h(str(g["cause"])) << "</td><td>" << h(str(g["opened_at"])) << "</td><td>"
      << num(g["requests"]) << "</td><td>" << h(str(g["lost_reason"])) << "</td></tr>\n";
  o << "</table>\n";
  return page(c, tr(c, "Data quality", "数据质量"), o.str());
}

// ---- alerts ----
const std::vector<web::ParamSpec> kAlertParams = {{"state", {"active", "all"}}, {"lang", {"zh", "en"}}};

Reply alerts_page(CountyDatabase& db, const Context& c, bool api) {
  const std::string state = c.params.get("state").value_or("all");
  auto alerts = db.alerts(state, 500);
  if (!alerts.ok()) return error_reply(api, 503, alerts.error(), c.lang);
  auto totals = db.alert_totals();
  if (!totals.ok()) return error_reply(api, 503, totals.error(), c.lang);
  if (api) return json_reply(200, {{"state", state}, {"totals", totals.value()}, {"alerts", alerts.value()}});
  const Json& t = totals.value();
  std::ostringstream o;
  o << "<p class=\"note\" id=\"alert-totals\">" << tr(c, "firing ", "告警中 ") << num(t["firing"]) << " &middot; "
    << tr(c, "pending ", "待定 ") << num(t["pending"]) << " &middot; <a href=\"/alerts?state="
    << (state == "all" ? "active" : "all") << "\">" << (state == "all" ? tr(c, "active only", "只看未恢复") : tr(c, "all", "全部"))
    << "</a></p>\n<table id=\"alerts\"><tr><th>" << tr(c, "State", "状态") << "</th><th>" << tr(c, "Rule", "规则")
    << "</th><th>" << tr(c, "Alert", "告警") << "</th><th>" << tr(c, "Since (UTC)", "开始 (UTC)") << "</th><th>"
    << tr(c, "Fired", "触发") << "</th><th>" << tr(c, "Resolved", "恢复") << "</th><th>" << tr(c, "Deliveries", "推送")
    << "</th></tr>\n";
  for (const auto& a : alerts.value()) {
    std::string deliveries;
    for (const auto& d : a["deliveries"]) {
      if (!deliveries.empty()) deliveries += "; ";
      deliveries += str(d["channel"]) + " " + str(d["transition"]) + ": " + str(d["state"]) + " (" + num(d["attempts"]) +
                    (c.lang == "zh" ? " 次" : " attempt(s)") + ")";
      if (d["last_error"].is_string() && d["state"] != "delivered") deliveries += " " + str(d["last_error"]);
    }
    o << "<tr data-state=\"" << h(str(a["state"])) << "\" data-rule=\"" << h(str(a["rule"])) << "\" data-key=\""
      << h(str(a["key"])) << "\"><td>" << h(str(a["state"])) << "</td><td>" << h(str(a["rule"])) << "</td><td><a href=\"/school?code="
      << h(str(a["school"])) << "\">" << h(str(a["summary"])) << "</a></td><td>" << h(str(a["since"])) << "</td><td>"
      << h(str(a["fired_at"])) << "</td><td>" << h(str(a["resolved_at"])) << "</td><td>" << h(deliveries) << "</td></tr>\n";
  }
  o << "</table>\n";
  return page(c, tr(c, "Alerts", "告警"), o.str());
}

// ---- metrics (Prometheus text format 0.0.4) ----
void metric(std::ostringstream& o, const std::string& name, const char* type, const char* help,
            const std::vector<std::pair<std::string, double>>& samples) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  for (const auto& [labels, v] : samples) {
    o << name << labels << " ";
    if (std::floor(v) == v && std::fabs(v) < 1e15) o << static_cast<long long>(v);
    else o << v;
    o << "\n";
  }
}

double number_of(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0;
}

Reply metrics(CountyDatabase& db, const Json& figures, Millis silent_after, std::size_t sessions, std::uint64_t renders,
              std::uint64_t shared) {
  auto totals = db.totals(std::chrono::system_clock::now() - silent_after);
  std::ostringstream o;
  const bool db_ok = totals.ok();
  const Json t = db_ok ? totals.value() : Json::object();
  metric(o, "campus_county_messages_committed_total", "counter",
         "Messages this collector committed to the county database since it started.",
         {{"", number_of(figures, "committed")}});
  metric(o, "campus_county_messages_per_second", "gauge", "Messages committed per second over the last status period.",
         {{"", number_of(figures, "messages_per_s")}});
  metric(o, "campus_county_pending_messages", "gauge", "Messages received and not yet committed.",
         {{"", number_of(figures, "pending")}});
  metric(o, "campus_county_health_dropped_total", "counter", "Health messages dropped while the database was behind.",
         {{"", number_of(figures, "health_dropped")}});
  auto connected = [&](const char* s) {
    return figures.contains(s) && figures[s].value("connected", false) ? 1.0 : 0.0;
  };
  metric(o, "campus_county_broker_connected", "gauge", "1 when the collector's MQTT session is connected.",
         {{"{session=\"ingest\"}", connected("ingest")}, {"{session=\"live\"}", connected("live")}});
  metric(o, "campus_county_database_up", "gauge", "1 when the dashboard's database connection answers.",
         {{"", db_ok ? 1.0 : 0.0}});
  if (db_ok) {
    const double schools = number_of(t, "schools"), online = number_of(t, "online");
    metric(o, "campus_county_schools", "gauge", "Schools the county database has heard from, by state.",
           {{"{state=\"online\"}", online}, {"{state=\"offline\"}", schools - online}});
    metric(o, "campus_county_schools_silent", "gauge", "Schools with nothing received for longer than silent_after.",
           {{"", static_cast<double>(t["silent"].size())}});
    metric(o, "campus_county_gaps", "gauge", "Gaps of the ledger by state.",
           {{"{state=\"open\"}", number_of(t, "gaps_open")}, {"{state=\"lost\"}", number_of(t, "gaps_lost")},
            {"{state=\"filled\"}", number_of(t, "gaps_filled")}});
    metric(o, "campus_county_seqs_lost", "gauge", "Seqs recorded lost (the school no longer has them).",
           {{"", number_of(t, "seqs_lost")}});
    metric(o, "campus_county_seqs_open", "gauge", "Seqs missing and still asked for.", {{"", number_of(t, "seqs_open")}});
    metric(o, "campus_county_quarantined", "gauge", "Messages kept aside as unreadable or not allowed.",
           {{"", number_of(t, "quarantined")}});
    metric(o, "campus_county_resend_requests_in_flight", "gauge", "Resend requests sent and not yet answered.",
           {{"", number_of(t, "requests_in_flight")}});
    metric(o, "campus_county_database_bytes", "gauge", "Size of the county database.", {{"", number_of(t, "db_bytes")}});
  }
  if (auto alerts = db.alert_totals(); alerts.ok()) {
    const Json& a = alerts.value();
    metric(o, "campus_county_alerts", "gauge", "Alerts not resolved, by state.",
           {{"{state=\"firing\"}", number_of(a, "firing")}, {"{state=\"pending\"}", number_of(a, "pending")}});
    std::vector<std::pair<std::string, double>> waiting;
    for (auto& [channel, d] : a["deliveries"].items())
      for (const char* st : {"queued", "sending", "delivered"})
        waiting.emplace_back("{channel=\"" + channel + "\",state=\"" + st + "\"}", number_of(d, st));
    metric(o, "campus_county_alert_deliveries", "gauge", "Alert deliveries in the outbox, by channel and state.", waiting);
  }
  std::vector<std::pair<std::string, double>> sent, failed;
  if (figures.contains("alert_channels"))
    for (auto& [channel, f] : figures["alert_channels"].items()) {
      sent.emplace_back("{channel=\"" + channel + "\"}", number_of(f, "delivered"));
      failed.emplace_back("{channel=\"" + channel + "\"}", number_of(f, "failed_attempts"));
    }
  metric(o, "campus_county_alerts_delivered_total", "counter", "Alert transitions this collector delivered, by channel.", sent);
  metric(o, "campus_county_alert_delivery_failures_total", "counter",
         "Delivery attempts that failed (retried with backoff), by channel.", failed);
  metric(o, "campus_county_dashboard_sessions", "gauge", "Dashboard login sessions open.",
         {{"", static_cast<double>(sessions)}});
  metric(o, "campus_county_dashboard_pages_total", "counter",
         "Pages and JSON answers served, by whether they were rendered or shared a render since the last change.",
         {{"{how=\"rendered\"}", static_cast<double>(renders)}, {"{how=\"shared\"}", static_cast<double>(shared)}});
  Reply r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = o.str();
  return r;
}

// ---- login page ----
std::string login_html(const std::string& lang, const std::string& county, const std::string& message,
                       const std::string& next) {
  const bool zh = lang == "zh";
  return "<!DOCTYPE html>\n<html lang=\"" + std::string(zh ? "zh-CN" : "en") + "\"><head><meta charset=\"utf-8\"><title>" +
         h(county) + "</title><style>" + report_style() + "</style></head><body><h1 id=\"title\">" + h(county) +
         "</h1>" + (message.empty() ? "" : "<p id=\"error\" class=\"missed\">" + h(message) + "</p>") +
         "<form id=\"login\" method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"" + h(next) +
         "\"><p><label>" + (zh ? "用户名" : "User") + " <input name=\"user\" id=\"user\" autocomplete=\"username\"></label></p>"
         "<p><label>" + (zh ? "密码" : "Password") +
         " <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\"></label></p>"
         "<p><button id=\"submit\">" + (zh ? "登录" : "Log in") + "</button> <a href=\"/login?lang=" +
         (zh ? "en" : "zh") + "\">" + (zh ? "English" : "中文") + "</a></p></form></body></html>\n";
}

// A local path to return to after login (never another site).
std::string safe_next(const std::string& next) {
  if (next.empty() || next[0] != '/' || next.rfind("//", 0) == 0 || next.find('\\') != std::string::npos ||
      next.rfind("/login", 0) == 0)
    return "/plan";
  return next;
}

bool is_api(const std::string& path) { return path.rfind("/api/", 0) == 0; }

}  // namespace

Dashboard::Dashboard(asio::io_context& io, const CountyConfig& config, std::unique_ptr<CountyDatabase> reader,
                     std::shared_ptr<spdlog::logger> log, std::function<Json()> collector_figures)
    : io_(io), config_(config), db_(std::move(reader)), log_(std::move(log)),
      collector_figures_(std::move(collector_figures)), reader_work_(reader_io_.get_executor()),
      sessions_(config.dashboard.session_lifetime), flush_timer_(io) {}

Dashboard::~Dashboard() {
  reader_work_.reset();
  reader_io_.stop();
  if (reader_thread_.joinable()) reader_thread_.join();
}

void Dashboard::load_accounts() {
  auto loaded = web::load_accounts(config_.dashboard.accounts);
  for (const auto& e : loaded.errors) log_->error("dashboard: {}", e.message());
  std::map<std::string, web::Account> next;
  for (auto& a : loaded.accounts) next.emplace(a.user, a);
  for (const auto& [user, acc] : accounts_) {
    auto it = next.find(user);
    if (it == next.end() || it->second.role != acc.role || it->second.hash != acc.hash) sessions_.close_user(user);
  }
  accounts_ = std::move(next);
  if (accounts_.empty())
    log_->warn("dashboard: no account in {}: nobody can log in (campus-county passwd --accounts {} USER --role viewer)",
               config_.dashboard.accounts.string(), config_.dashboard.accounts.string());
}

Status Dashboard::start() {
  const auto& d = config_.dashboard;
  load_accounts();
  if (!d.tls_cert.empty()) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->use_certificate_chain_file(d.tls_cert.string(), ec);
    if (!ec) ctx->use_private_key_file(d.tls_key.string(), ssl::context::pem, ec);
    if (ec)
      return Error{"dashboard.tls_cert/tls_key", "cannot load the certificate or its key: " + ec.message(),
                   "give a PEM certificate chain and its PEM private key"};
    tls_ = ctx;
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(d.host, ec);
  if (ec) return Error{"dashboard.listen", "\"" + d.host + "\" is not an IP address", "e.g. listen = \"127.0.0.1:8480\""};
  acceptor_ = std::make_unique<tcp::acceptor>(io_);
  tcp::endpoint ep(address, d.port);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(64, ec);
  if (ec)
    return Error{"dashboard.listen " + d.host + ":" + std::to_string(d.port), "cannot listen: " + ec.message(),
                 "choose a free port, or stop what uses it"};
  port_ = acceptor_->local_endpoint().port();
  reader_thread_ = std::thread([this] { reader_io_.run(); });
  asio::co_spawn(io_, [self = shared_from_this()] { return self->accept_loop(); }, asio::detached);
  log_->info("dashboard: listening on {}://{}:{} ({} account(s))", tls_ ? "https" : "http", d.host, port_,
             accounts_.size());
  return {};
}

void Dashboard::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (acceptor_) {
    boost::system::error_code ec;
    acceptor_->close(ec);
  }
  for (auto& [id, close] : std::map<int, std::function<void()>>(closers_)) close();
  for (auto& sub : subscribers_) sub->wake.cancel();
  flush_timer_.cancel();
  reader_work_.reset();
}

void Dashboard::reload(const CountyConfig& next) {
  const auto listen_host = config_.dashboard.host;
  const auto listen_port = config_.dashboard.port;
  if (next.dashboard.host != listen_host || next.dashboard.port != listen_port || next.dashboard.tls_cert != config_.dashboard.tls_cert)
    log_->warn("reload: dashboard.listen and TLS changes take effect at the next restart");
  auto tls_cert = config_.dashboard.tls_cert, tls_key = config_.dashboard.tls_key;
  config_ = next;
  config_.dashboard.host = listen_host;
  config_.dashboard.port = listen_port;
  config_.dashboard.tls_cert = tls_cert;
  config_.dashboard.tls_key = tls_key;
  sessions_.set_lifetime(config_.dashboard.session_lifetime);
  ++generation_;  // the register's names may have changed
  load_accounts();
}

void Dashboard::committed(const std::set<std::string>& schools) {
  ++generation_;  // rendered pages are out of date
  if (stopped_ || subscribers_.empty()) return;
  changed_.insert(schools.begin(), schools.end());
  if (flush_pending_) return;
  flush_pending_ = true;
  flush_timer_.expires_after(kLiveDelay);
  flush_timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
    if (auto self = w.lock(); self && !ec) self->flush_events();
  });
}

void Dashboard::flush_events() {
  flush_pending_ = false;
  const std::string event =
      "event: commit\ndata: " + Json{{"schools", Json(std::vector<std::string>(changed_.begin(), changed_.end()))}}.dump() +
      "\n\n";
  changed_.clear();
  for (auto& sub : subscribers_) {
    if (sub->queued.size() < 64 * 1024) sub->queued += event;  // a page that does not read is not fed forever
    sub->wake.cancel();
  }
}

template <class Stream>
asio::awaitable<void> Dashboard::stream_events(Stream& stream, const std::string& token) {
  auto sub = std::make_shared<Subscriber>(io_);
  subscribers_.push_back(sub);
  sub->queued = "HTTP/1.1 200 OK\r\nServer: campus-county\r\nContent-Type: text/event-stream\r\n"
                "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
                "retry: 3000\n\n";
  boost::system::error_code ec;
  // Until the client goes, the session ends or the dashboard stops.
  while (!stopped_ && sessions_.find(token, std::chrono::steady_clock::now())) {
    if (sub->queued.empty()) {
      sub->wake.expires_after(kLiveKeepAlive);
      boost::system::error_code wake_ec;
      co_await sub->wake.async_wait(asio::redirect_error(asio::use_awaitable, wake_ec));
      if (stopped_) break;
      if (sub->queued.empty()) sub->queued = ": keep-alive\n\n";
    }
    const std::string out = std::exchange(sub->queued, std::string());
    beast::get_lowest_layer(stream).expires_after(kIdle);
    co_await asio::async_write(stream, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
  subscribers_.remove(sub);
}

asio::awaitable<void> Dashboard::accept_loop() {
  auto self = shared_from_this();
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_->async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      log_->warn("dashboard: accept: {}", ec.message());
      continue;
    }
    if (connections_ >= kMaxConnections) {
      socket.close(ec);  // beyond the bound: closed at once (browsers retry)
      continue;
    }
    std::string peer = socket.remote_endpoint(ec).address().to_string();
    auto shared = std::make_shared<tcp::socket>(std::move(socket));
    asio::co_spawn(io_, [self, shared, peer] { return self->connection(shared, peer); }, asio::detached);
  }
}

// GCC 12 destroys some temporaries of a co_await expression twice (a lambda with captures
// passed by value crashed here): every awaited call takes references to named locals instead.
asio::awaitable<void> Dashboard::connection(std::shared_ptr<tcp::socket> socket, std::string peer) {
  auto self = shared_from_this();
  const int id = ++next_connection_;
  ++connections_;
  if (tls_) {
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(*socket)),
                                                *std::static_pointer_cast<ssl::context>(tls_));
    closers_[id] = [&stream] { beast::get_lowest_layer(stream).close(); };
    beast::get_lowest_layer(stream).expires_after(kIdle);
    boost::system::error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) co_await serve(stream, peer);
  } else {
    beast::tcp_stream stream(std::move(*socket));
    closers_[id] = [&stream] { stream.close(); };
    co_await serve(stream, peer);
  }
  closers_.erase(id);
  --connections_;
}

template <class Stream>
asio::awaitable<void> Dashboard::serve(Stream& stream, const std::string& peer) {
  beast::flat_buffer buffer(kMaxHeader + kMaxBody);
  const bool tls = !std::is_same_v<Stream, beast::tcp_stream>;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHeader);
    parser.body_limit(kMaxBody);
    beast::get_lowest_layer(stream).expires_after(kIdle);
    boost::system::error_code ec;
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::eof || stopped_)
      break;
    Reply reply;
    bool keep_alive = false;  // an unreadable request: answered, then the connection closes
    if (ec) {
      const int status = ec == http::error::header_limit || ec == http::error::buffer_overflow ? 431
                         : ec == http::error::body_limit                                       ? 413
                                                                                               : 400;
      reply = error_reply(true, status,
                          Error{"request", ec.message(),
                                status == 431 ? "send at most 16 KiB of header"
                                : status == 413 ? "send at most 16 KiB of body"
                                                : "send an HTTP/1.1 request"});
    } else {
      auto& msg = parser.get();
      Request req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.cookie = std::string(msg[http::field::cookie]);
      req.accept_language = std::string(msg[http::field::accept_language]);
      req.origin = std::string(msg[http::field::origin]);
      req.host = std::string(msg[http::field::host]);
      req.content_type = std::string(msg[http::field::content_type]);
      req.body = std::move(msg.body());
      req.peer = peer;
      req.tls = tls;
      keep_alive = msg.keep_alive();
      reply = co_await handle(req);
      if (reply.event_stream) {
        co_await stream_events(stream, req.token);
        break;
      }
    }
    http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
    res.set(http::field::server, "campus-county");
    res.set(http::field::content_type, reply.content_type);
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    res.set("X-Frame-Options", "DENY");
    res.set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
    for (const auto& [k, v] : reply.headers) res.insert(k, v);
    res.keep_alive(keep_alive);
    res.body() = std::move(reply.body);
    res.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(kIdle);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && reply.status >= 400 && !keep_alive) {
      // What the client is still sending (a body past the limit) is read and dropped for a
      // moment, so closing does not reset the connection before the client has read the answer.
      beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      std::array<char, 4096> sink;
      for (std::size_t drained = 0; !ec && drained < (1u << 20);)
        drained += co_await beast::get_lowest_layer(stream).async_read_some(
            asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
      break;
    }
    if (ec || !keep_alive || stopped_) break;
  }
  boost::system::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<Dashboard::Reply> Dashboard::on_reader(const std::function<Reply(CountyDatabase&)>& job) {
  // The reader's Reply comes back through a timer the reader thread cancels: the coroutine
  // resumes on the io thread with it.
  auto done = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  auto out = std::make_shared<Reply>();
  asio::post(reader_io_, [this, f = job, out, done] {
    try {
      *out = f(*db_);
    } catch (const std::exception& e) {
      *out = error_reply(true, 500, Error{"dashboard", e.what(), "see the collector's log"});
    }
    asio::post(io_, [done] { done->cancel(); });
  });
  boost::system::error_code ec;
  co_await done->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return std::move(*out);
}

asio::awaitable<Dashboard::Reply> Dashboard::render_shared(const std::string& key,
                                                          const std::function<Reply(CountyDatabase&)>& job) {
  auto it = rendered_.find(key);
  if (it != rendered_.end() && it->second.generation == generation_ &&
      std::chrono::steady_clock::now() - it->second.at < kRenderedMaxAge) {
    if (it->second.reply) {
      ++shared_renders_;
      co_return *it->second.reply;
    }
    auto ready = it->second.ready;
    boost::system::error_code ec;
    co_await ready->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    it = rendered_.find(key);
    if (it != rendered_.end() && it->second.ready == ready && it->second.reply) {
      ++shared_renders_;
      co_return *it->second.reply;
    }
    // That render failed or went out of date: this request renders for itself.
  }
  if (rendered_.size() >= kRenderedMax)
    for (auto i = rendered_.begin(); i != rendered_.end();)  // what is out of date goes; what renders stays
      i = i->second.generation != generation_ || (i->second.reply && std::chrono::steady_clock::now() - i->second.at >= kRenderedMaxAge)
              ? rendered_.erase(i) : std::next(i);
  auto ready = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  const std::uint64_t generation = generation_;
  if (rendered_.size() < kRenderedMax) rendered_[key] = RenderedPage{generation, std::chrono::steady_clock::now(), nullptr, ready};
  ++renders_;
  Reply r = co_await on_reader(job);
  it = rendered_.find(key);
  if (it != rendered_.end() && it->second.ready == ready) {
    if (r.status == 200 && generation == generation_) it->second.reply = std::make_shared<Reply>(r);
    else rendered_.erase(it);
  }
  ready->cancel();
  co_return r;
}

asio::awaitable<Dashboard::Reply> Dashboard::handle(Request& req) {
  const bool api_guess = req.target.rfind("/api/", 0) == 0;
  if (req.target.size() > web::kMaxTarget)
    co_return error_reply(api_guess, 414,
                          Error{"request target", "is " + std::to_string(req.target.size()) + " bytes, more than " +
                                                      std::to_string(web::kMaxTarget), "shorten the query"});
  auto parsed = web::parse_target(req.target);
  if (!parsed.ok()) co_return error_reply(api_guess, 400, parsed.error());
  req.parsed = std::move(parsed.value());
  const std::string& path = req.parsed.path;
  const bool api = is_api(path);
  const std::string lang = language_of(req, config_.dashboard.language);
  std::vector<std::pair<std::string, std::string>> lang_cookie;
  if (auto l = req.parsed.params.get("lang"); l && (*l == "zh" || *l == "en"))
    lang_cookie.emplace_back("Set-Cookie", "lang=" + *l + "; Path=/; SameSite=Strict; Max-Age=31536000");
  auto with_lang = [&](Reply r) {
    for (auto& hd : lang_cookie) r.headers.push_back(hd);
    return r;
  };

  if (req.method == "POST" && !req.origin.empty()) {
    // A form posted from another site: refused (the session cookie is SameSite=Strict as well).
    const std::string self_origin = std::string(req.tls ? "https://" : "http://") + req.host;
    if (req.origin != self_origin)
      co_return error_reply(api, 403, Error{"Origin " + req.origin, "is not this dashboard (" + self_origin + ")",
                                            "post from the dashboard's own pages"}, lang);
  }

  if (path == "/metrics") {
    if (req.method != "GET") co_return error_reply(true, 405, Error{path, req.method + " is not allowed", "use GET"});
    if (auto st = web::check_params(req.parsed.params, {}); !st.ok()) co_return error_reply(true, 400, st.error());
    Json figures = collector_figures_ ? collector_figures_() : Json::object();
    const std::size_t open_sessions = sessions_.size();
    const Millis silent = config_.silent_after;
    const std::function<Reply(CountyDatabase&)> job = [figures, silent, open_sessions, renders = renders_,
                                                       shared = shared_renders_](CountyDatabase& db) {
      return metrics(db, figures, silent, open_sessions, renders, shared);
    };
    co_return co_await on_reader(job);
  }
  if (path == "/live.js") {
    Reply r;
    r.content_type = "text/javascript; charset=utf-8";
    r.body = kLiveJs;
    co_return r;
  }
  if (path == "/login") {
    if (req.method == "GET") {
      if (auto st = web::check_params(req.parsed.params, {{"next", {}}, {"lang", {"zh", "en"}}}); !st.ok())
        co_return error_reply(false, 400, st.error(), lang);
      Reply r;
      r.body = login_html(lang, config_.name, "", req.parsed.params.get("next").value_or(""));
      co_return with_lang(r);
    }
    if (req.method == "POST") {
      Reply r = co_await login(req);
      co_return with_lang(std::move(r));
    }
    co_return error_reply(false, 405, Error{path, req.method + " is not allowed", "use GET or POST"}, lang);
  }

  // Everything else needs a session.
  req.token = cookie_value(req.cookie, kCookie);
  if (!req.token.empty()) req.session = sessions_.find(req.token, std::chrono::steady_clock::now());
  if (!req.session) {
    if (api || req.method != "GET")
      co_return error_reply(true, 401, Error{path, req.token.empty() ? "not logged in" : "the session has ended",
                                             "log in: POST /login with user and password"});
    Reply r;
    r.status = 303;
    r.headers.emplace_back("Location", "/login?next=" + std::string(path == "/" ? "/plan" : path));
    co_return with_lang(r);
  }
  if (path == "/logout") {
    if (req.method != "POST") co_return error_reply(false, 405, Error{path, req.method + " is not allowed", "use POST"}, lang);
    sessions_.close(req.token);
    log_->info("dashboard: {} logged out", req.session->user);
    Reply r;
    r.status = 303;
    r.headers.emplace_back("Location", "/login");
    r.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    co_return r;
  }
  if (path == "/api/cases/step" || path == "/cases/step") {
    if (req.method != "POST") co_return error_reply(api, 405, Error{path, req.method + " is not allowed", "use POST"}, lang);
    co_return record_case_step(req, api);
  }
  if (req.method != "GET")
    co_return error_reply(api, 405, Error{path, req.method + " is not allowed", "use GET"}, lang);

  Context c;
  c.lang = lang;
  c.user = req.session->user;
  c.role = req.session->role;
  c.path = path;
  c.params = req.parsed.params;
  c.county_name = config_.name;
  for (const auto& s : config_.schools) {
    c.register_codes.push_back(s.code);
    c.names_en[s.code] = s.name_en;
  }
  c.silent_after = config_.silent_after;
  const auto day_ago = std::chrono::system_clock::now() - std::chrono::hours(24);
  while (!case_steps_.empty() && case_steps_.front()["at_ms"].get<std::int64_t>() <
                                     std::chrono::duration_cast<std::chrono::milliseconds>(day_ago.time_since_epoch()).count()) {
    case_steps_.pop_front();  // a pending mark older than a day is dropped (the school has the step or refused it)
    ++generation_;
  }
  for (const auto& p : case_steps_) c.case_steps.push_back(p);

  using Render = Reply (*)(CountyDatabase&, const Context&, bool);
  struct Route {
    const char* page;
    const char* endpoint;
    Render render;
    const std::vector<web::ParamSpec>* params;
  };
  static const std::vector<web::ParamSpec> kLangOnly = {{"lang", {"zh", "en"}}};
  static const Route kRoutes[] = {{"/plan", "/api/plan", plan_page, &kLangOnly},
                                  {"/schools", "/api/schools", schools_page, &kSchoolParams},
                                  {"/school", "/api/school", school_page, &kSchoolPageParams},
                                  {"/cases", "/api/cases", cases_page, &kCaseParams},
                                  {"/quality", "/api/quality", quality_page, &kLangOnly},
                                  {"/alerts", "/api/alerts", alerts_page, &kAlertParams}};
  if (path == "/") {
    Reply r;
    r.status = 303;
    r.headers.emplace_back("Location", "/plan");
    co_return with_lang(r);
  }
  if (path == "/api/live") {
    if (auto st = web::check_params(c.params, {}); !st.ok()) co_return error_reply(true, 400, st.error());
    if (subscribers_.size() >= kMaxLivePages)
      co_return error_reply(true, 503, Error{path, std::to_string(kMaxLivePages) + " live pages are open already",
                                             "close some dashboard tabs; the pages still work without live updates"});
    Reply r;
    r.event_stream = true;
    co_return r;
  }
  if (path == "/api/me")
    co_return json_reply(200, {{"user", c.user}, {"role", web::role_name(c.role)}, {"lang", c.lang}});
  for (const auto& route : kRoutes) {
    if (path != route.page && path != route.endpoint) continue;
    if (auto st = web::check_params(c.params, *route.params); !st.ok()) co_return error_reply(api, 400, st.error(), lang);
    const std::function<Reply(CountyDatabase&)> job = [render = route.render, c, api](CountyDatabase& db) {
      return render(db, c, api);
    };
    const std::string key = c.user + "\n" + web::role_name(c.role) + "\n" + c.lang + "\n" + req.target;
    Reply r = co_await render_shared(key, job);
    co_return with_lang(std::move(r));
  }
  co_return error_reply(api, 404, Error{path, "no such page", "see /plan, /schools, /school?code=..., /cases, /quality"}, lang);
}

Dashboard::Reply Dashboard::record_case_step(const Request& req, bool api) {
  const std::string lang = language_of(req, config_.dashboard.language);
  const std::string where = "POST " + req.parsed.path;
  if (req.session->role != web::Role::operator_)
    return error_reply(api, 403, Error{where, "user " + req.session->user + " is a viewer: recording a case step needs the operator role",
                                       "ask the county's IT for an operator account (campus-county passwd --role operator)"}, lang);
  if (req.content_type.rfind("application/x-www-form-urlencoded", 0) != 0)
    return error_reply(api, 415, Error{where, "the body is not application/x-www-form-urlencoded",
                                       "post school, case, action and note as a form"}, lang);
  auto form = web::parse_form(req.body);
  if (!form.ok()) return error_reply(api, 400, form.error(), lang);
  const std::vector<web::ParamSpec> fields = {{"school", {}}, {"case", {}}, {"action", kCaseUpdateActions}, {"note", {}}};
  if (auto st = web::check_params(form.value(), fields); !st.ok()) {
    Error e = st.error();
    e.where.replace(0, std::string("query parameter").size(), "form field");
    return error_reply(api, 400, e, lang);
  }
  const std::string school = form->get("school").value_or(""), case_id = form->get("case").value_or("");
  const std::string action = form->get("action").value_or(""), note = form->get("note").value_or("");
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"school", &school}, {"case", &case_id}, {"action", &action}})
    if (value->empty()) return error_reply(api, 400, Error{std::string("form field ") + name, "missing", "give the case's school, id and the step"}, lang);
  if (action == "note" && note.empty())
    return error_reply(api, 400, Error{"form field note", "missing: a note step needs its text", "write the note"}, lang);
  if (note.size() > 500) return error_reply(api, 400, Error{"form field note", "longer than 500 bytes", "shorten it"}, lang);
  if (!case_updater_)
    return error_reply(api, 503, Error{where, "the collector cannot send requests now", "try again in a moment"}, lang);
  const auto now = std::chrono::system_clock::now();
  Json step = {{"id", ++next_step_}, {"school", school}, {"case", case_id}, {"action", action}, {"note", note},
               {"by", req.session->user}, {"at", rfc3339(now, "+00:00")},
               {"at_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()},
               {"state", "sent"}, {"error", nullptr}, {"steps_after", nullptr}};
  if (case_steps_.size() >= 1000) case_steps_.pop_front();
  case_steps_.push_back(step);
  ++generation_;
  log_->info("dashboard: {} asks {} to record {} on case {}", req.session->user, school, action, case_id);
  Json args = {{"case", case_id}, {"action", action}, {"by", req.session->user}};
  if (!note.empty()) args["note"] = note;
  case_updater_(school, std::move(args), [w = weak_from_this(), id = step["id"].get<std::int64_t>()](const Json& reply) {
    auto self = w.lock();
    if (!self) return;
    for (auto& p : self->case_steps_) {
      if (p["id"] != id) continue;
      if (reply.value("ok", false)) {
        p["state"] = "accepted";
        const Json& result = reply.contains("result") ? reply["result"] : Json::object();
        p["steps_after"] = result.contains("steps") && result["steps"].is_array() ? result["steps"].size() : 0;
      } else {
        const Json e = reply.value("error", Json::object());
        p["state"] = "refused";
        p["error"] = e.value("code", std::string("error")) + ": " + e.value("message", std::string());
      }
      // The page shows the answer at once: the reply is a commit of its own.
      self->committed({p["school"].get<std::string>()});
    }
  });
  if (api) return json_reply(202, {{"case_step", step}});
  Reply r;
  r.status = 303;
  r.headers.emplace_back("Location", "/cases");
  return r;
}

asio::awaitable<Dashboard::Reply> Dashboard::login(Request& req) {
  const std::string lang = language_of(req, config_.dashboard.language);
  const bool form = req.content_type.rfind("application/x-www-form-urlencoded", 0) == 0;
  if (!form)
    co_return error_reply(false, 415, Error{"POST /login", "the body is not application/x-www-form-urlencoded",
                                            "post the login form"}, lang);
  auto fields = web::parse_form(req.body);
  if (!fields.ok()) co_return error_reply(false, 400, fields.error(), lang);
  const std::string user = fields->get("user").value_or("");
  const std::string password = fields->get("password").value_or("");
  const std::string next = safe_next(fields->get("next").value_or(""));
  auto refuse = [&](int status, const std::string& message) {
    Reply r;
    r.status = status;
    r.body = login_html(lang, config_.name, message, next);
    return r;
  };
  const auto now = std::chrono::steady_clock::now();
  auto& f = failures_[user.substr(0, 64)];
  if (f.count > 0 && now - f.first > kFailureWindow) f = {};
  if (f.count >= kMaxFailures) {
    log_->warn("dashboard: login refused for user {} from {}: {} failed attempts in 15 minutes", user.substr(0, 64),
               req.peer, f.count);
    co_return refuse(429, lang == "zh" ? "该用户连续登录失败次数过多，请15分钟后再试。"
                                       : "Too many failed logins for this user: try again in 15 minutes.");
  }
  auto it = accounts_.find(user);
  std::string hash = it != accounts_.end() ? it->second.hash : std::string();
  // The check runs on the reader thread (PBKDF2 takes a few hundred milliseconds on purpose);
  // an unknown user costs the same as a wrong password.
  const std::function<Reply(CountyDatabase&)> check = [password, hash](CountyDatabase&) {
    static const std::string kNoSuchUser = web::hash_password("campus-county: no such user");
    Reply r;
    const bool match = web::verify_password(password, hash.empty() ? kNoSuchUser : hash);
    r.status = match && !hash.empty() ? 200 : 401;
    return r;
  };
  const Reply verdict = co_await on_reader(check);
  if (verdict.status != 200 || accounts_.find(user) == accounts_.end()) {
    if (f.count == 0) f.first = now;
    ++f.count;
    log_->warn("dashboard: login refused for user {} from {}: wrong user name or password", user.substr(0, 64), req.peer);
    co_return refuse(401, lang == "zh" ? "用户名或密码错误。" : "Wrong user name or password.");
  }
  failures_.erase(user);
  const web::Role role = accounts_.at(user).role;
  const std::string token = sessions_.open(user, role, now);
  log_->info("dashboard: {} ({}) logged in from {}", user, web::role_name(role), req.peer);
  Reply r;
  r.status = 303;
  r.headers.emplace_back("Location", next);
  r.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=" + token + "; Path=/; HttpOnly; SameSite=Strict" +
                                           (req.tls ? "; Secure" : "") + "; Max-Age=" +
                                           std::to_string(config_.dashboard.session_lifetime.count() / 1000));
  co_return r;
}

}  // namespace campus::county
