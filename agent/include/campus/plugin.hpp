// The plugin API: the only header (with what it includes) an audit plugin needs.
//
// A plugin is a shared module campus-<name>.so in the agent's plugin directory. It exports one
// extern "C" symbol, CAMPUS_PLUGIN_SYMBOL, returning a PluginDescriptor. The agent refuses a
// module whose api_version differs from kPluginApiVersion.
//
// Plugins never touch MQTT or SQLite: they describe what they saw (an AuditReport) and the
// core stores it, derives events from state changes, and delivers it.
#pragma once
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include "campus/asio.hpp"
#include "campus/config_table.hpp"
#include "campus/error.hpp"
#include "campus/http.hpp"

namespace campus {

// 2: AuditPlugin::reads_records (the records are read on the store's thread, before the run).
// 3: CaseAction::outcome is a CaseStepKind; CaseAction::announce says which updates publish an
//    event (the store no longer reads details["overdue"]).
inline constexpr int kPluginApiVersion = 3;
#define CAMPUS_PLUGIN_SYMBOL "campus_plugin_descriptor"

using Json = nlohmann::json;
using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

// One audited subject (room, classroom, ...) and its state. The core compares `state` with the
// subject's previous state and publishes an event when it changed.
struct Finding {
  std::string subject;  // stable id: room id, classroom id
  std::string state;    // plugin's vocabulary: "covered", "down", "compliant", "unknown", ...
  std::string reason;   // human sentence; empty for the healthy state
  Json details = Json::object();
};

// Follow-up cases (attendance absences): a case stays open across audits until closed, and
// nothing about a case is ever dropped. The core keeps cases and their history in the store;
// a plugin proposes changes through CaseAction and sees the open cases in its AuditContext.
// What happens to a case: every step of its history is one of these, named on the wire as
// case_step_name() spells it. The agent records `opened` and `updated`; a person records
// contacted, visited, note or an outcome (the `case.update` request's `action`, campusctl's
// and the county dashboard's choices); an outcome closes the case with that outcome.
enum class CaseStepKind { Opened, Contacted, Visited, Returned, Transferred, LeaveApproved, DropoutReported, Note, Updated };

struct CaseStepSpec {
  CaseStepKind kind;
  const char* name;
  bool outcome;    // closes the case
  bool by_person;  // a `case.update` action
};
inline constexpr CaseStepSpec kCaseSteps[] = {
    {CaseStepKind::Opened, "opened", false, false},
    {CaseStepKind::Contacted, "contacted", false, true},
    {CaseStepKind::Visited, "visited", false, true},
    {CaseStepKind::Returned, "returned", true, true},
    {CaseStepKind::Transferred, "transferred", true, true},
    {CaseStepKind::LeaveApproved, "leave_approved", true, true},
    {CaseStepKind::DropoutReported, "dropout_reported", true, true},
    {CaseStepKind::Note, "note", false, true},
    {CaseStepKind::Updated, "updated", false, false},
};

inline const CaseStepSpec& case_step(CaseStepKind kind) {
  for (const auto& s : kCaseSteps)
    if (s.kind == kind) return s;
  return kCaseSteps[0];
}
inline std::string case_step_name(CaseStepKind kind) { return case_step(kind).name; }
inline std::optional<CaseStepKind> parse_case_step(std::string_view name) {
  for (const auto& s : kCaseSteps)
    if (name == s.name) return s.kind;
  return std::nullopt;
}
inline bool is_case_outcome(CaseStepKind kind) { return case_step(kind).outcome; }
// The names of the steps `pred` selects, in the table's order, joined by `sep`.
inline std::string case_step_names(bool (*pred)(const CaseStepSpec&), const char* sep = ", ") {
  std::string out;
  for (const auto& s : kCaseSteps)
    if (pred(s)) out += (out.empty() ? "" : sep) + std::string(s.name);
  return out;
}
// The `case.update` actions, in the order tools offer them.
inline const std::vector<std::string> kCaseUpdateActions = [] {
  std::vector<std::string> out;
  for (const auto& s : kCaseSteps)
    if (s.by_person) out.push_back(s.name);
  return out;
}();

// The stages of a case, in the order it moves through them; a person's step never takes a
// case back to an earlier stage.
enum class CaseStage { Open, Contacted, Visited, Closed };
inline const char* case_stage_name(CaseStage stage) {
  switch (stage) {
    case CaseStage::Open: return "open";
    case CaseStage::Contacted: return "contacted";
    case CaseStage::Visited: return "visited";
    case CaseStage::Closed: return "closed";
  }
  return "open";
}
inline std::optional<CaseStage> parse_case_stage(std::string_view name) {
  for (auto stage : {CaseStage::Open, CaseStage::Contacted, CaseStage::Visited, CaseStage::Closed})
    if (name == case_stage_name(stage)) return stage;
  return std::nullopt;
}

struct CaseStep {
  std::string at;      // RFC 3339
  std::string action;  // case_step_name() of a CaseStepKind
  std::string actor;   // "agent", "county:<name>", "school:<name>"
  std::string note;
};

struct CaseView {
  std::string id;       // "<audit>-<subject>-<n>", stable, unique per school
  std::string subject;  // e.g. the student number
  std::string stage;    // case_stage_name() of a CaseStage
  std::string outcome;  // when closed: case_step_name() of the outcome
  std::string opened_at;
  std::string closed_at;
  Json details = Json::object();  // plugin's data (class, grade, run length, overdue, ...)
  std::vector<CaseStep> steps;
};

struct CaseAction {
  enum class Kind { Open, Update, Close };
  Kind kind = Kind::Open;
  std::string subject;  // Open: the subject; Update/Close: the subject of an open case
  // Close: an outcome (is_case_outcome); the default is none, so a Close that names none is
  // refused (an error in the report) instead of closing with a guess.
  CaseStepKind outcome = CaseStepKind::Note;
  std::string note;
  Json details = Json::object();  // Open/Update: replaces the case's details
  // Update: the store records every update that changes the details as an `updated` step in
  // the case's history; it publishes a case event (the county sees the change at once) only
  // when the plugin sets `announce`, e.g. the attendance case that became overdue. Open and
  // Close always publish one.
  bool announce = false;
};

// Data a plugin keeps between runs (imported attendance records, ...), stored by the core in
// the same transaction as the report that carries the writes.
struct RecordWrite {
  std::string kind;  // plugin-chosen namespace, e.g. "attendance"
  std::string key;   // unique within kind
  std::optional<Json> value;  // nullopt erases
};

// Read access to the plugin's own records. Synchronous and fast (indexed SQLite reads on the
// store's read connection); call it at the start of an audit, not per probe.
class RecordReader {
 public:
  virtual ~RecordReader() = default;
  virtual void scan(const std::string& kind, const std::function<void(const std::string& key, const Json& value)>& fn) const = 0;
  virtual std::optional<Json> get(const std::string& kind, const std::string& key) const = 0;
};

struct AuditReport {
  Json summary = Json::object();   // the audit's totals (docs/protocol.md "Bodies")
  std::vector<Finding> findings;   // every subject, healthy or not
  std::vector<CaseAction> case_actions;
  std::vector<RecordWrite> records;
  Errors input_errors;             // bad register rows etc.; also logged by the core
  // Runs on the io_context once the report is committed (e.g. move spool files to done/).
  // Not called when the commit failed or in --dry-run.
  std::function<void()> after_commit;
};

struct AuditContext {
  asio::io_context& io;
  SteadyTime deadline;                      // every probe must end by then
  SystemTime now;                           // wall time of this run (from the agent's clock)
  std::shared_ptr<spdlog::logger> log;
  HttpClient& http;
  const RecordReader& records;             // empty unless the plugin's reads_records() said true
  std::vector<CaseView> open_cases;         // this audit's open cases
  std::optional<Json> previous_summary;     // last committed report's summary, if any
};

// When a plugin should stop waiting for devices so that its report (what did not answer marked
// unknown, with the reason) is committed before ctx.deadline: past the deadline the core
// records a timeout and discards the late report. A tenth of the budget early, at most 1 s.
inline SteadyTime report_by(SteadyTime deadline, SteadyTime now = std::chrono::steady_clock::now()) {
  auto budget = deadline > now ? deadline - now : SteadyTime::duration::zero();
  return deadline - std::min<SteadyTime::duration>(std::chrono::seconds(1), budget / 10);
}

// What a plugin gets at configure time.
struct PluginEnv {
  std::string county;
  std::string school;
  std::string timezone_offset;  // "+08:00"
  std::shared_ptr<spdlog::logger> log;
};

class AuditPlugin {
 public:
  virtual ~AuditPlugin() = default;
  // Validates and takes the plugin's table ([audits.<name>]). Reports every problem through
  // `reader` (key path, what, fix) and calls reader.finish() so unknown keys are errors.
  // May be called again with a new table on reload: on errors the old settings stay.
  virtual void configure(TableReader& reader, const PluginEnv& env) = 0;
  // Starts one audit. `done` must be called exactly once, on ctx.io, with the report. The
  // core reports a run that passes ctx.deadline as timed out and then calls cancel().
  virtual void audit(AuditContext ctx, std::function<void(AuditReport)> done) = 0;
  // Asked just before each run: true when this run's audit() reads ctx.records. The core then
  // reads the plugin's records on the store's thread and hands a copy in the context (the
  // io_context never reads the disk); otherwise ctx.records is empty. A plugin keeps what it
  // needs in memory after the first read and says true again only when that is stale.
  virtual bool reads_records() const { return false; }
  // Abort in-flight probes (close sockets, cancel timers); `done` may still be called.
  virtual void cancel() {}
};

struct PluginDescriptor {
  int api_version;
  const char* name;     // audit name: [a-z0-9-]+, used in topics
  const char* version;  // plugin version string
  AuditPlugin* (*create)();
};

}  // namespace campus

// Defines the factory symbol. Use once per plugin in one .cpp file:
//   CAMPUS_DEFINE_PLUGIN("fiber", "0.1.0", campus::fiber::FiberAudit)
#define CAMPUS_DEFINE_PLUGIN(NAME, VERSION, TYPE)                                     \
  extern "C" __attribute__((visibility("default"))) const campus::PluginDescriptor*   \
  campus_plugin_descriptor() {                                                        \
    static const campus::PluginDescriptor d{campus::kPluginApiVersion, NAME, VERSION, \
                                            []() -> campus::AuditPlugin* { return new TYPE(); }}; \
    return &d;                                                                        \
  }
