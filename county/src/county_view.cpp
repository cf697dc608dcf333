// Per-school view, the plan's targets, the text table and the HTML report of campusctl.
#include "county_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/plan.hpp"

namespace campus::county {
namespace {

const char* kRoomTypes[] = {"classroom", "function_room", "office"};

Json num_or_null(const Json& obj, const char* key) {
  if (obj.is_object() && obj.contains(key) && obj[key].is_number()) return obj[key];
  return nullptr;
}

// Display width of UTF-8 text: CJK and full-width characters take two columns.
std::size_t width(const std::string& s) {
  std::size_t w = 0;
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp = c;
    int len = 1;
    if (c >= 0xF0) len = 4, cp = c & 0x07;
    else if (c >= 0xE0) len = 3, cp = c & 0x0F;
    else if (c >= 0xC0) len = 2, cp = c & 0x1F;
    for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += len;
    w += (cp >= 0x1100 && (cp <= 0x115F || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
                           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF00 && cp <= 0xFF60) || (cp >= 0x20000)))
             ? 2
             : 1;
  }
  return w;
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

namespace {

std::string esc(const std::string& s) { return html_escape(s); }

std::string fmt(double v, int decimals = 1) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

}  // namespace

void absorb(SchoolView& s, const std::string& leaf, const Json& env) {
  if (!env.is_object()) return;
  const Json body = env.value("body", Json::object());
  if (env.contains("ts") && env["ts"].is_string()) {
    auto ts = env["ts"].get<std::string>();
    if (ts > s.last_seen) s.last_seen = ts;  // same school, same offset: text order is time order
  }
  if (leaf == "state") {
    if (body.contains("online") && body["online"].is_boolean()) s.online = body["online"].get<bool>();
    if (body.contains("version") && body["version"].is_string()) s.version = body["version"];
  } else if (leaf == "health") {
    s.health = body;
    if (s.version.empty() && body.contains("version") && body["version"].is_string()) s.version = body["version"];
  } else if (leaf.starts_with("report/")) {
    if (body.contains("summary")) s.summaries[leaf.substr(7)] = body["summary"];
  }
}

void absorb_status(SchoolView& s, const Json& r) {
  s.answer = "yes";
  if (r.contains("state") && r["state"].contains("online")) s.online = true;  // it answered
  if (r.contains("version") && r["version"].is_string()) s.version = r["version"];
  if (r.contains("health")) s.health = r["health"];
  if (r.contains("audits") && r["audits"].is_object())
    for (auto& [name, a] : r["audits"].items())
      if (a.contains("summary") && !a["summary"].is_null()) s.summaries[name] = a["summary"];
  if (r.contains("cases")) s.cases = r["cases"];
}

Json school_row(const SchoolView& s) {
  Json row = {{"school", s.school},
              {"online", s.online ? Json(*s.online) : Json(nullptr)},
              {"last_seen", s.last_seen.empty() ? Json(nullptr) : Json(s.last_seen)},
              {"answer", s.answer},
              {"version", s.version.empty() ? Json(nullptr) : Json(s.version)},
              {"backlog", s.health.is_object() && s.health.contains("outbox") ? num_or_null(s.health["outbox"], "depth")
                                                                               : Json(nullptr)}};
  Json fiber = {{"classroom", nullptr}, {"function_room", nullptr}, {"office", nullptr}, {"overall", nullptr}};
  Json fiber_target = nullptr;
  if (auto it = s.summaries.find("fiber"); it != s.summaries.end()) {
    const Json& f = it->second;
    for (const char* t : kRoomTypes) fiber[t] = num_or_null(f.value(t, Json::object()), "coverage");
    fiber["overall"] = num_or_null(f.value("overall", Json::object()), "coverage");
    fiber_target = plan::fiber_target(f);
  }
  row["fiber"] = fiber;
  Json rec = {{"compliant", nullptr}, {"total", nullptr}};
  Json rec_target = nullptr;
  if (auto it = s.summaries.find("recording"); it != s.summaries.end()) {
    rec["compliant"] = num_or_null(it->second, "compliant");
    rec["total"] = num_or_null(it->second, "classrooms");
    rec_target = plan::recording_target(it->second);
  }
  row["recording"] = rec;
  Json cases = {{"open", nullptr}, {"overdue", nullptr}};
  if (s.cases.is_object()) {
    cases["open"] = num_or_null(s.cases, "open");
    cases["overdue"] = num_or_null(s.cases, "overdue");
  } else if (auto it = s.summaries.find("attendance"); it != s.summaries.end()) {
    cases["open"] = num_or_null(it->second, "open");
    cases["overdue"] = num_or_null(it->second, "overdue");
  }
  row["cases"] = cases;
  Json att_target = plan::attendance_target(cases["open"]);
  row["targets"] = {{"fiber", fiber_target}, {"recording", rec_target}, {"attendance", att_target},
                    {"digital_campus", plan::digital_campus(fiber_target, rec_target, att_target)}};
  return row;
}

namespace {
constexpr const char* kGoodStates[] = {"covered", "compliant"};  // a finding in any other state needs a look

}  // namespace

Json findings_needing_attention(const Json& latest, const char* audit) {
  Json out = Json::array();
  if (!latest.contains(audit) || !latest[audit]["body"].is_object()) return out;
  for (const auto& f : latest[audit]["body"].value("findings", Json::array())) {
    if (!f.is_object()) continue;
    const std::string state = f.value("state", "");
    if (std::find(std::begin(kGoodStates), std::end(kGoodStates), state) != std::end(kGoodStates)) continue;
    out.push_back({{"subject", f.value("subject", Json(nullptr))}, {"state", state},
                   {"reason", f.value("reason", Json(nullptr))}, {"details", f.value("details", Json::object())}});
  }
  return out;
}

Json school_row_of_record(const Json& r) {
  SchoolView v;
  v.school = r["school"];
  v.answer = "db";
  if (r.value("seen", false)) {
    if (r["online"].is_boolean()) v.online = r["online"].get<bool>();
    v.last_seen = r["last_seen"].is_string() ? r["last_seen"].get<std::string>() : "";
    v.version = r["version"].is_string() ? r["version"].get<std::string>() : "";
    if (r["health"].is_object()) v.health = r["health"];
    else if (r["backlog"].is_number()) v.health = {{"outbox", {{"depth", r["backlog"]}}}};
    for (auto& [audit, rep] : r["reports"].items()) v.summaries[audit] = rep["summary"];
  }
  Json row = school_row(v);
  row["name"] = r.value("name", Json(nullptr));
  Json as_of = {{"state", r.value("state_at", Json(nullptr))}, {"health", r.value("health_at", Json(nullptr))},
                {"reports", Json::object()}};
  std::string oldest;
  const Json reports = r.value("reports", Json::object());
  for (auto& [audit, rep] : reports.items()) {
    as_of["reports"][audit] = rep["ts"];
    const std::string ts = rep["ts"].get<std::string>();
    if (oldest.empty() || ts < oldest) oldest = ts;
  }
  as_of["oldest_report"] = oldest.empty() ? Json(nullptr) : Json(oldest);
  row["as_of"] = as_of;
  row["gaps"] = r.value("gaps", Json(nullptr));
  row["ledger"] = {{"store", r.value("store", Json(nullptr))}, {"max_seen", r.value("max_seen", Json(nullptr))},
                   {"contiguous_through", r.value("contiguous_through", Json(nullptr))},
                   {"takeovers", r.value("takeovers", Json(0))}};
  return row;
}

double plan_share(int year) { return plan::plan_share(year); }

Json county_summary(const std::vector<Json>& rows, int year) {
  Json out = {{"schools", rows.size()}, {"year", year}, {"targets", Json::object()}};
  for (const char* t : {"digital_campus", "fiber", "recording", "attendance"}) {
    std::size_t met = 0, known = 0;
    for (const auto& r : rows) {
      const Json& v = r["targets"][t];
      if (!v.is_null()) ++known;
      if (v == true) ++met;
    }
    double share = rows.empty() ? 0.0 : static_cast<double>(met) / rows.size();
    double plan = std::string(t) == "digital_campus" ? plan_share(year) : 1.0;
    out["targets"][t] = {{"met", met}, {"known", known}, {"share", std::round(share * 10000) / 10000}, {"plan", plan},
                         {"on_track", share + 1e-9 >= plan}};
  }
  return out;
}

std::string percent(const Json& v) {
  if (!v.is_number()) return "-";
  return fmt(v.get<double>() * 100, 0) + "%";
}

std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(header.size(), 0);
  for (std::size_t i = 0; i < header.size(); ++i) w[i] = width(header[i]);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  std::ostringstream os;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (std::size_t i = 0; i < cells.size() && i < w.size(); ++i) {
      l += cells[i];
      if (i + 1 < cells.size()) l += std::string(w[i] - width(cells[i]) + 2, ' ');
    }
    os << l << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return os.str();
}

std::string status_table(const std::vector<Json>& rows) {
  std::vector<std::vector<std::string>> cells;
  auto n = [](const Json& v) { return v.is_number() ? std::to_string(v.get<std::int64_t>()) : std::string("-"); };
  for (const auto& r : rows) {
    cells.push_back({r["school"].get<std::string>(),
                     r["online"].is_null() ? "?" : (r["online"] == true ? "yes" : "no"),
                     r["last_seen"].is_null() ? "never" : r["last_seen"].get<std::string>(),
                     r["answer"].get<std::string>(),
                     percent(r["fiber"]["classroom"]),
                     percent(r["fiber"]["function_room"]),
                     percent(r["fiber"]["office"]),
                     n(r["recording"]["compliant"]) + "/" + n(r["recording"]["total"]),
                     n(r["cases"]["open"]) + "/" + n(r["cases"]["overdue"]),
                     n(r["backlog"]),
                     r["version"].is_null() ? "-" : r["version"].get<std::string>()});
  }
  return render_table({"SCHOOL", "ONLINE", "LAST SEEN", "ANSWERED", "FIBER CLASS", "FIBER FUNC", "FIBER OFFICE",
                       "RECORDING", "CASES OPEN/OVERDUE", "BACKLOG", "VERSION"},
                      cells);
}

// ---- HTML report ----
namespace {

struct Labels {
  std::string title, generated, year, plan_title, plan_note, targets, schools_meeting, plan, actual, digital, fiber_t,
      recording_t, attendance_t, fiber_chart, recording_chart, cases_chart, classroom, function_room, office,
      compliant, total, open, overdue, table, school, online, last_seen, yes, no, unknown, version, backlog,
      on_track, behind, no_data, by_year, by_month, unknown_share;
};

Labels labels(const std::string& lang) {
  if (lang == "zh")
    return {"数字校园建设情况报告", "生成时间", "年度", "县域达标情况与规划目标对比",
            "数字校园：2023年20%、2024年60%、2025年100%；光纤覆盖每间教室、功能室和办公室；无未结控辍案件（动态清零）。",
            "达标学校占比", "达标学校", "规划目标", "实际", "数字校园", "光纤全覆盖", "录播教室全部合格",
            "无未结缺勤案件", "各校光纤覆盖率（按房间类型）", "各校录播教室合格情况", "各校缺勤案件（未结/超期）",
            "教室", "功能室", "办公室", "合格", "总数", "未结", "超期", "学校明细", "学校", "在线", "最后联系",
            "是", "否", "未知", "版本", "待发消息", "达标", "未达标", "无数据", "数字校园占比：规划与实际",
            "数字校园占比（逐月，来自县级数据库）：规划与实际", "数据未知的学校占比"};
  return {"Digital campus report", "Generated", "Year", "County against the plan",
          "Digital campus: 20% of schools in 2023, 60% in 2024, 100% in 2025; fiber in every classroom, function "
          "room and office; no open absence case (dynamic zero).",
          "Share of schools meeting each target", "schools meeting", "Plan", "Actual", "Digital campus",
          "Fiber in every room", "All recording classrooms compliant", "No open absence case",
          "Fiber coverage by room type", "Recording classrooms compliant", "Absence cases (open / overdue)",
          "Classroom", "Function room", "Office", "compliant", "total", "open", "overdue", "Schools", "School",
          "Online", "Last seen", "yes", "no", "unknown", "Version", "Backlog", "on track", "behind", "no data",
          "Digital campus share: plan and actual",
          "Digital campus share month by month (from the county database): plan and actual",
          "schools without data"};
}

// Horizontal bars: one group per item, each bar a value in [0, max].
struct Bar {
  std::string label;
  double value;  // < 0: no data
  std::string text;
  std::string color;
};
struct Group {
  std::string label;
  std::vector<Bar> bars;
  std::optional<double> marker;  // plan line
  std::string marker_text;
};

std::string bar_chart(const std::string& id, const std::string& title, const std::vector<Group>& groups, double max,
                      const std::vector<std::pair<std::string, std::string>>& legend, const std::string& no_data) {
  const int label_w = 230, plot_w = 420, bar_h = 16, gap = 4, group_gap = 14, top = 34;
  int h = top;
  for (const auto& g : groups) h += static_cast<int>(g.bars.size()) * (bar_h + gap) + group_gap;
  h += 10;
  std::ostringstream o;
  o << "<figure><figcaption>" << esc(title) << "</figcaption>\n";
  o << "<svg class=\"chart\" id=\"" << id << "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << label_w + plot_w + 170
    << "\" height=\"" << h << "\" role=\"img\" aria-label=\"" << esc(title) << "\">\n";
  int lx = label_w;
  for (const auto& [name, color] : legend) {
    o << "<rect x=\"" << lx << "\" y=\"6\" width=\"12\" height=\"12\" fill=\"" << color << "\"/><text x=\"" << lx + 16
      << "\" y=\"16\" class=\"legend\">" << esc(name) << "</text>\n";
    lx += 30 + static_cast<int>(width(name)) * 7;
  }
  int y = top;
  for (const auto& g : groups) {
    int gh = static_cast<int>(g.bars.size()) * (bar_h + gap);
    o << "<text x=\"" << label_w - 8 << "\" y=\"" << y + gh / 2 + 4 << "\" text-anchor=\"end\" class=\"group\">"
      << esc(g.label) << "</text>\n";
    for (const auto& b : g.bars) {
      double v = b.value < 0 ? 0 : std::min(b.value, max);
      int bw = max > 0 ? static_cast<int>(std::round(plot_w * v / max)) : 0;
      o << "<rect class=\"bar\" x=\"" << label_w << "\" y=\"" << y << "\" width=\"" << bw << "\" height=\"" << bar_h
        << "\" fill=\"" << b.color << "\"><title>" << esc(g.label + " " + b.label + ": " + b.text) << "</title></rect>";
      o << "<text class=\"value\" x=\"" << label_w + bw + 4 << "\" y=\"" << y + bar_h - 3 << "\">"
        << esc(b.value < 0 ? no_data : b.text) << "</text>\n";
      y += bar_h + gap;
    }
    if (g.marker) {
      int mx = label_w + static_cast<int>(std::round(plot_w * std::min(*g.marker, max) / max));
      o << "<line class=\"plan\" x1=\"" << mx << "\" x2=\"" << mx << "\" y1=\"" << y - gh - 2 << "\" y2=\"" << y
        << "\" stroke=\"#c0392b\" stroke-width=\"2\" stroke-dasharray=\"4 2\"><title>" << esc(g.marker_text)
        << "</title></line>\n";
    }
    y += group_gap;
  }
  o << "<line x1=\"" << label_w << "\" x2=\"" << label_w << "\" y1=\"" << top - 4 << "\" y2=\"" << h - 8
    << "\" stroke=\"#555\"/>\n</svg></figure>\n";
  return o.str();
}

// Month by month: the plan's share (a step each year) and the actual share of schools that are
// a digital campus at the month's end, with the share of schools whose data is unknown.
std::string monthly_chart(const std::vector<Json>& monthly, const Labels& L, const std::string& c_plan,
                          const std::string& c_actual) {
  const int left = 60, top = 34, plot_w = 640, plot_h = 220, bottom = 40;
  const std::size_t n = monthly.size();
  auto x = [&](std::size_t i) { return left + (n <= 1 ? plot_w / 2 : static_cast<int>(plot_w * i / (n - 1))); };
  auto y = [&](double v) { return top + static_cast<int>(std::round(plot_h * (1.0 - std::clamp(v, 0.0, 1.0)))); };
  std::ostringstream o;
  o << "<figure><figcaption>" << esc(L.by_month) << "</figcaption>\n";
  o << "<svg class=\"chart\" id=\"chart-monthly\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + plot_w + 40
    << "\" height=\"" << top + plot_h + bottom << "\" role=\"img\" aria-label=\"" << esc(L.by_month) << "\">\n";
  for (double g : {0.0, 0.2, 0.6, 1.0})
    o << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y(g) << "\" y2=\"" << y(g)
      << "\" stroke=\"#ddd\"/><text x=\"" << left - 6 << "\" y=\"" << y(g) + 4 << "\" text-anchor=\"end\">"
      << static_cast<int>(g * 100) << "%</text>\n";
  std::string plan_pts, actual_pts, unknown_pts;
  for (std::size_t i = 0; i < n; ++i) {
    const Json& m = monthly[i];
    const double plan = m.value("plan", 0.0);
    const Json dc = m.value("digital_campus", Json::object());
    const double share = dc.value("share", 0.0);
    const double schools = m.value("schools", 0.0);
    const double unknown = schools > 0 ? dc.value("unknown", 0.0) / schools : 0.0;
    auto pt = [](int px, int py) { return std::to_string(px) + "," + std::to_string(py); };
    if (n == 1) {
      plan_pts = pt(left, y(plan)) + " " + pt(left + plot_w, y(plan));  // one month: the plan as a level
    } else {
      if (i > 0) plan_pts += " " + pt(x(i), y(monthly[i - 1].value("plan", 0.0)));  // a step at each year
      plan_pts += (plan_pts.empty() ? "" : " ") + pt(x(i), y(plan));
    }
    actual_pts += (actual_pts.empty() ? "" : " ") + pt(x(i), y(share));
    unknown_pts += (unknown_pts.empty() ? "" : " ") + pt(x(i), y(unknown));
    o << "<circle class=\"actual\" data-month=\"" << esc(m.value("month", std::string())) << "\" data-share=\""
      << fmt(share, 4) << "\" cx=\"" << x(i) << "\" cy=\"" << y(share) << "\" r=\"3\" fill=\"" << c_actual << "\"><title>"
      << esc(m.value("month", std::string()) + ": " + percent(share) + " (" + L.plan + " " + percent(plan) + "; " +
             L.unknown_share + " " + percent(unknown) + ")")
      << "</title></circle>\n";
    if (n <= 12 || i % ((n + 11) / 12) == 0)
      o << "<text x=\"" << x(i) << "\" y=\"" << top + plot_h + 16 << "\" text-anchor=\"middle\">"
        << esc(m.value("month", std::string())) << "</text>\n";
  }
  o << "<polyline class=\"plan\" fill=\"none\" stroke=\"" << c_plan << "\" stroke-width=\"2\" stroke-dasharray=\"5 3\" points=\""
    << plan_pts << "\"/>\n";
  o << "<polyline class=\"unknown\" fill=\"none\" stroke=\"#999\" stroke-width=\"1\" points=\"" << unknown_pts << "\"/>\n";
  o << "<polyline class=\"actual\" fill=\"none\" stroke=\"" << c_actual << "\" stroke-width=\"2\" points=\"" << actual_pts
    << "\"/>\n";
  int lx = left;
  for (const auto& [name, color] : std::vector<std::pair<std::string, std::string>>{
           {L.plan, c_plan}, {L.actual, c_actual}, {L.unknown_share, "#999"}}) {
    o << "<rect x=\"" << lx << "\" y=\"8\" width=\"12\" height=\"12\" fill=\"" << color << "\"/><text x=\"" << lx + 16
      << "\" y=\"18\" class=\"legend\">" << esc(name) << "</text>\n";
    lx += 30 + static_cast<int>(width(name)) * 7;
  }
  o << "</svg></figure>\n";
  return o.str();
}

}  // namespace

std::string line_chart(const std::string& id, const std::string& title, const std::vector<std::string>& labels,
                       const std::vector<LineSeries>& series) {
  const int left = 50, top = 30, plot_w = 640, plot_h = 160, bottom = 36;
  const std::size_t n = labels.size();
  auto x = [&](std::size_t i) { return left + (n <= 1 ? plot_w / 2 : static_cast<int>(plot_w * i / (n - 1))); };
  auto y = [&](double v) { return top + static_cast<int>(std::round(plot_h * (1.0 - std::clamp(v, 0.0, 1.0)))); };
  std::ostringstream o;
  o << "<figure><figcaption>" << esc(title) << "</figcaption>\n<svg class=\"chart\" id=\"" << esc(id)
    << "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + plot_w + 40 << "\" height=\""
    << top + plot_h + bottom << "\" role=\"img\" aria-label=\"" << esc(title) << "\">\n";
  for (double g : {0.0, 0.5, 1.0})
    o << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y(g) << "\" y2=\"" << y(g)
      << "\" stroke=\"#ddd\"/><text x=\"" << left - 6 << "\" y=\"" << y(g) + 4 << "\" text-anchor=\"end\">"
      << static_cast<int>(g * 100) << "%</text>\n";
  for (std::size_t i = 0; i < n; ++i)
    if (n <= 8 || i % ((n + 7) / 8) == 0 || i + 1 == n)
      o << "<text x=\"" << x(i) << "\" y=\"" << top + plot_h + 16 << "\" text-anchor=\"middle\">" << esc(labels[i])
        << "</text>\n";
  int lx = left;
  for (const auto& sr : series) {
    std::string pts;
    for (std::size_t i = 0; i < n && i < sr.values.size(); ++i) {
      if (!sr.values[i]) {
        if (!pts.empty()) o << "<polyline fill=\"none\" stroke=\"" << sr.color << "\" stroke-width=\"2\" points=\"" << pts << "\"/>\n";
        pts.clear();
        continue;
      }
      pts += (pts.empty() ? "" : " ") + std::to_string(x(i)) + "," + std::to_string(y(*sr.values[i]));
      o << "<circle class=\"point\" data-series=\"" << esc(sr.name) << "\" data-label=\"" << esc(labels[i])
        << "\" data-value=\"" << fmt(*sr.values[i], 4) << "\" cx=\"" << x(i) << "\" cy=\"" << y(*sr.values[i])
        << "\" r=\"2.5\" fill=\"" << sr.color << "\"><title>" << esc(sr.name + " " + labels[i] + ": " + percent(*sr.values[i]))
        << "</title></circle>\n";
    }
    if (!pts.empty()) o << "<polyline fill=\"none\" stroke=\"" << sr.color << "\" stroke-width=\"2\" points=\"" << pts << "\"/>\n";
    o << "<rect x=\"" << lx << "\" y=\"6\" width=\"12\" height=\"12\" fill=\"" << sr.color << "\"/><text x=\"" << lx + 16
      << "\" y=\"16\" class=\"legend\">" << esc(sr.name) << "</text>\n";
    lx += 30 + static_cast<int>(width(sr.name)) * 7;
  }
  o << "</svg></figure>\n";
  return o.str();
}

std::string report_style() {
  return "body{font-family:sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{font-size:18px;margin-top:28px}"
         "figure{margin:12px 0}figcaption{font-weight:bold;margin-bottom:4px}svg text{font-size:12px;font-family:sans-serif}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
         "td:first-child,th:first-child{text-align:left}.met{color:#1e8449}.missed{color:#c0392b}.note{color:#555}";
}

std::string plan_section_html(const std::vector<Json>& rows, int year, const std::string& lang,
                              const std::vector<Json>& monthly) {
  const Labels L = labels(lang);
  const Json sum = county_summary(rows, year);
  const std::string c_plan = "#c0392b", c_actual = "#2e86c1";
  std::ostringstream o;
  o << "<h2>" << esc(L.plan_title) << "</h2>\n<p class=\"note\">" << esc(L.plan_note) << "</p>\n";
  std::vector<Group> tg;
  const std::vector<std::pair<std::string, std::string>> targets = {
      {"digital_campus", L.digital}, {"fiber", L.fiber_t}, {"recording", L.recording_t}, {"attendance", L.attendance_t}};
  for (const auto& [key, name] : targets) {
    const Json& t = sum["targets"][key];
    double share = t["share"].get<double>(), plan = t["plan"].get<double>();
    std::string met = std::to_string(t["met"].get<int>()) + "/" + std::to_string(rows.size());
    tg.push_back({name,
                  {{L.actual, share, percent(share) + " (" + met + ")", c_actual}, {L.plan, plan, percent(plan), c_plan}},
                  std::nullopt, ""});
  }
  o << bar_chart("chart-targets", L.targets, tg, 1.0, {{L.actual, c_actual}, {L.plan, c_plan}}, L.no_data);
  std::vector<Group> yg;
  for (int y : {2023, 2024, 2025}) {
    std::vector<Bar> bars = {{L.plan, plan_share(y), percent(plan_share(y)), c_plan}};
    if (y == year) bars.push_back({L.actual, sum["targets"]["digital_campus"]["share"].get<double>(),
                                   percent(sum["targets"]["digital_campus"]["share"]), c_actual});
    yg.push_back({std::to_string(y), bars, std::nullopt, ""});
  }
  o << bar_chart("chart-plan", L.by_year, yg, 1.0, {{L.plan, c_plan}, {L.actual, c_actual}}, L.no_data);
  if (!monthly.empty()) o << monthly_chart(monthly, L, c_plan, c_actual);
  o << "<table id=\"targets\"><tr><th></th><th>" << esc(L.schools_meeting) << "</th><th>" << esc(L.actual) << "</th><th>"
    << esc(L.plan) << "</th><th></th></tr>\n";
  for (const auto& [key, name] : targets) {
    const Json& t = sum["targets"][key];
    bool on = t["on_track"].get<bool>();
    o << "<tr data-target=\"" << key << "\"><td>" << esc(name) << "</td><td>" << t["met"].get<int>() << "/" << rows.size()
      << "</td><td>" << percent(t["share"]) << "</td><td>" << percent(t["plan"]) << "</td><td class=\""
      << (on ? "met" : "missed") << "\">" << esc(on ? L.on_track : L.behind) << "</td></tr>\n";
  }
  o << "</table>\n";
  return o.str();
}

std::string html_report(const std::string& county, const std::vector<Json>& rows, int year, const std::string& lang,
                        const std::string& generated_at, const std::vector<Json>& monthly) {
  const Labels L = labels(lang);
  const Json sum = county_summary(rows, year);
  const std::string c_plan = "#c0392b", c_actual = "#2e86c1", c_cls = "#1f618d", c_fn = "#48c9b0", c_off = "#f5b041",
                    c_ok = "#27ae60", c_open = "#e67e22", c_over = "#c0392b";
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"" << (lang == "zh" ? "zh-CN" : "en") << "\"><head><meta charset=\"utf-8\">"
    << "<title>" << esc(L.title + " - " + county) << "</title>\n<style>"
    << report_style() << "</style></head><body>\n";
  o << "<h1 id=\"title\">" << esc(L.title) << ": " << esc(county) << "</h1>\n<p class=\"note\">" << esc(L.generated)
    << " " << esc(generated_at) << " &middot; " << esc(L.year) << " " << year << " &middot; " << rows.size() << (lang == "zh" ? " 所学校" : " schools") << "</p>\n";

  o << plan_section_html(rows, year, lang, monthly);

  // Per school.
  std::vector<Group> fg, rg, cg;
  double max_cases = 1;
  for (const auto& r : rows) {
    double o2 = r["cases"]["open"].is_number() ? r["cases"]["open"].get<double>() : 0;
    max_cases = std::max(max_cases, o2);
  }
  for (const auto& r : rows) {
    const std::string name = r["school"].get<std::string>();
    auto cov = [&](const char* t) { return r["fiber"][t].is_number() ? r["fiber"][t].get<double>() : -1.0; };
    fg.push_back({name,
                  {{L.classroom, cov("classroom"), percent(r["fiber"]["classroom"]), c_cls},
                   {L.function_room, cov("function_room"), percent(r["fiber"]["function_room"]), c_fn},
                   {L.office, cov("office"), percent(r["fiber"]["office"]), c_off}},
                  1.0, L.plan + " 100%"});
    const Json& rc = r["recording"];
    double ratio = rc["total"].is_number() && rc["total"].get<double>() > 0
                       ? rc["compliant"].get<double>() / rc["total"].get<double>()
                       : -1.0;
    std::string rtext = rc["total"].is_number() ? std::to_string(rc["compliant"].get<int>()) + "/" +
                                                      std::to_string(rc["total"].get<int>()) + " " + L.compliant
                                                : L.no_data;
    rg.push_back({name, {{L.compliant, ratio, rtext, c_ok}}, 1.0, L.plan + " 100%"});
    const Json& cs = r["cases"];
    double open = cs["open"].is_number() ? cs["open"].get<double>() : -1;
    double over = cs["overdue"].is_number() ? cs["overdue"].get<double>() : -1;
    cg.push_back({name,
                  {{L.open, open, open < 0 ? L.no_data : std::to_string(static_cast<int>(open)) + " " + L.open, c_open},
                   {L.overdue, over, over < 0 ? L.no_data : std::to_string(static_cast<int>(over)) + " " + L.overdue,
                    c_over}},
                  std::nullopt, ""});
  }
  o << bar_chart("chart-fiber", L.fiber_chart, fg, 1.0, {{L.classroom, c_cls}, {L.function_room, c_fn}, {L.office, c_off}},
                 L.no_data);
  o << bar_chart("chart-recording", L.recording_chart, rg, 1.0, {{L.compliant, c_ok}}, L.no_data);
  o << bar_chart("chart-cases", L.cases_chart, cg, max_cases, {{L.open, c_open}, {L.overdue, c_over}}, L.no_data);

  o << "<h2>" << esc(L.table) << "</h2>\n<table id=\"schools\"><tr><th>" << esc(L.school) << "</th><th>" << esc(L.online)
    << "</th><th>" << esc(L.last_seen) << "</th><th>" << esc(L.classroom) << "</th><th>" << esc(L.function_room)
    << "</th><th>" << esc(L.office) << "</th><th>" << esc(L.recording_chart) << "</th><th>" << esc(L.open) << "</th><th>"
    << esc(L.overdue) << "</th><th>" << esc(L.digital) << "</th><th>" << esc(L.backlog) << "</th><th>" << esc(L.version)
    << "</th></tr>\n";
  auto n = [&](const Json& v) { return v.is_number() ? std::to_string(v.get<std::int64_t>()) : std::string("-"); };
  for (const auto& r : rows) {
    const Json& d = r["targets"]["digital_campus"];
    o << "<tr data-school=\"" << esc(r["school"].get<std::string>()) << "\"><td>" << esc(r["school"].get<std::string>())
      << "</td><td>" << esc(r["online"].is_null() ? L.unknown : r["online"] == true ? L.yes : L.no) << "</td><td>"
      << esc(r["last_seen"].is_null() ? "-" : r["last_seen"].get<std::string>()) << "</td><td>"
      << percent(r["fiber"]["classroom"]) << "</td><td>" << percent(r["fiber"]["function_room"]) << "</td><td>"
      << percent(r["fiber"]["office"]) << "</td><td>" << n(r["recording"]["compliant"]) << "/"
      << n(r["recording"]["total"]) << "</td><td>" << n(r["cases"]["open"]) << "</td><td>" << n(r["cases"]["overdue"])
      << "</td><td class=\"" << (d == true ? "met" : "missed") << "\">"
      << esc(d.is_null() ? L.no_data : d == true ? L.on_track : L.behind) << "</td><td>" << n(r["backlog"]) << "</td><td>"
      << esc(r["version"].is_null() ? "-" : r["version"].get<std::string>()) << "</td></tr>\n";
  }
  // The numbers, for scripts; "</" is escaped so no value can end the script element.
  std::string data = Json{{"county", county}, {"summary", sum}, {"schools", rows}, {"monthly", monthly}}.dump();
  for (std::size_t i = 0; (i = data.find("</", i)) != std::string::npos; i += 3) data.replace(i, 2, "<\\/");
  o << "</table>\n<script type=\"application/json\" id=\"data\">" << data << "</script>\n</body></html>\n";
  return o.str();
}

}  // namespace campus::county
