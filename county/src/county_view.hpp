// What the county knows about each school: built from retained messages (state, health,
// report/*), live messages, and `status` replies; rendered as a table row, JSON, or the HTML
// report's figures. Also the plan's targets and which schools meet them.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace campus {
using Json = nlohmann::json;  // the same alias as campus/plugin.hpp
}

namespace campus::county {

struct SchoolView {
  std::string school;
  std::optional<bool> online;            // from the retained state (or a live answer)
  std::string last_seen;                 // `ts` of the newest message from the school
  std::string version;
  Json health = nullptr;                 // health body
  std::map<std::string, Json> summaries;  // audit -> latest summary
  Json cases = nullptr;                  // {"open","overdue"} from a status answer
  std::string answer = "-";              // status request: "yes", "timeout", "offline", "error:<code>"
};

// Takes one message (envelope) published by the school under `leaf` (state, health,
// report/<audit>, event/<audit>, reply/...).
void absorb(SchoolView& s, const std::string& leaf, const Json& envelope);
// Takes a `status` reply's result.
void absorb_status(SchoolView& s, const Json& result);

// The numbers of one school, with null where unknown:
// {"school","online","last_seen","answer","version","backlog",
//  "fiber":{"classroom","function_room","office","overall"} (coverage 0..1),
//  "recording":{"compliant","total"}, "cases":{"open","overdue"},
//  "targets":{"fiber","recording","attendance","digital_campus"} (true/false/null)}
Json school_row(const SchoolView& s);
// The same row from the county database (CountyDatabase::schools), so the table, JSON, report
// and dashboard read alike from either source; plus what only the database knows: "name",
// "as_of" (how old each figure is), "gaps" and "ledger".
Json school_row_of_record(const Json& record);

// A school's findings that need a look now (fiber rooms down or degraded, recording classrooms
// failing a check) from its latest full reports (CountyDatabase::latest_reports) of `audit`:
// [{"subject","state","reason","details"}].
Json findings_needing_attention(const Json& latest_reports, const char* audit);

// The county's picture against the plan: shares of schools meeting each target, and the
// plan's digital-campus share for `year` (20% 2023, 60% 2024, 100% 2025).
Json county_summary(const std::vector<Json>& rows, int year);
double plan_share(int year);

// A plain-text table; columns sized to their widest cell (CJK counted as two columns).
std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
std::string status_table(const std::vector<Json>& rows);
std::string percent(const Json& ratio);  // 0.8333 -> "83%", null -> "-"

// The HTML report (self-contained, inline SVG). lang: "en" or "zh". `monthly`: the county
// database's month-by-month shares (CountyDatabase::monthly), drawn as the plan line and the
// actual line; empty when the figures come from retained messages only (no history).
// Text or an attribute value for HTML: & < > " ' escaped.
std::string html_escape(const std::string& s);
// Shares over time as an SVG line chart: one line per series over `labels` (days or months),
// values 0..1, a missing value breaks the line. Each point is a <circle class="point"
// data-series data-label data-value> for tests and screen readers.
struct LineSeries {
  std::string name, color;
  std::vector<std::optional<double>> values;  // one per label
};
std::string line_chart(const std::string& id, const std::string& title, const std::vector<std::string>& labels,
                       const std::vector<LineSeries>& series);
// The report's stylesheet (the dashboard's pages use it too).
std::string report_style();
// The report's "county against the plan" section alone (heading, charts, targets table), as the
// dashboard's plan page shows it.
std::string plan_section_html(const std::vector<Json>& rows, int year, const std::string& lang,
                              const std::vector<Json>& monthly);
std::string html_report(const std::string& county, const std::vector<Json>& rows, int year, const std::string& lang,
                        const std::string& generated_at, const std::vector<Json>& monthly = {});

}  // namespace campus::county
