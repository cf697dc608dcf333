// A test audit: reports whatever its config (or a JSON file it re-reads every run) says.
// Lets the core, store and delivery tests produce any sequence of reports and events.
//
//   [audits.test]
//   findings_file = "findings.json"   # {"summary", "findings", "case_actions", "records"}, re-read every run
//   delay = "0s"                       # answer after this long
//   never_answer = false               # never call done (deadline tests)
//   summary_note = ""                  # copied into the summary
//   input_error = ""                   # reported as an input error (the core logs it just before
//                                      # it hands the report to the store: a test can time a signal)
#include <fstream>
#include <sstream>

#include "campus/plugin.hpp"

namespace {

using campus::Json;

class TestAudit : public campus::AuditPlugin {
 public:
  void configure(campus::TableReader& r, const campus::PluginEnv&) override {
    delay_ = r.duration("delay", campus::Millis(0));
    never_answer_ = r.boolean("never_answer", false);
    note_ = r.string("summary_note", "");
    input_error_ = r.string("input_error", "");
    findings_file_ = r.optional_path("findings_file", false);
    r.finish();
  }

  void audit(campus::AuditContext ctx, std::function<void(campus::AuditReport)> done) override {
    if (never_answer_) return;
    campus::AuditReport report;
    Json doc = Json::object();
    if (findings_file_) {
      std::ifstream in(*findings_file_);
      std::stringstream ss;
      ss << in.rdbuf();
      doc = Json::parse(ss.str(), nullptr, false);
      if (doc.is_discarded()) {
        report.input_errors.push_back({findings_file_->string(), "not JSON", ""});
        doc = Json::object();
      }
    }
    if (!input_error_.empty()) report.input_errors.push_back({"testaudit", input_error_, ""});
    report.summary = doc.value("summary", Json::object());
    report.summary["note"] = note_;
    for (const auto& f : doc.value("findings", Json::array()))
      report.findings.push_back({f.value("subject", ""), f.value("state", ""), f.value("reason", ""),
                                 f.value("details", Json::object())});
    for (const auto& a : doc.value("case_actions", Json::array())) {
      campus::CaseAction act;
      std::string kind = a.value("kind", "open");
      act.kind = kind == "close" ? campus::CaseAction::Kind::Close
               : kind == "update" ? campus::CaseAction::Kind::Update : campus::CaseAction::Kind::Open;
      act.subject = a.value("subject", "");
      // An outcome the API does not know closes nothing: Note, which the store refuses.
      act.outcome = campus::parse_case_step(a.value("outcome", "")).value_or(campus::CaseStepKind::Note);
      act.note = a.value("note", "");
      act.details = a.value("details", Json::object());
      act.announce = a.value("announce", false);
      report.case_actions.push_back(act);
    }
    for (const auto& w : doc.value("records", Json::array()))
      report.records.push_back({w.value("kind", ""), w.value("key", ""), w.contains("value") ? std::optional<Json>(w["value"]) : std::nullopt});
    report.summary["open_cases_seen"] = ctx.open_cases.size();
    report.summary["had_previous"] = ctx.previous_summary.has_value();
    if (delay_.count() == 0) {
      done(std::move(report));
      return;
    }
    auto timer = std::make_shared<campus::asio::steady_timer>(ctx.io, delay_);
    timer->async_wait([timer, done, report = std::move(report)](const boost::system::error_code&) mutable {
      done(std::move(report));
    });
  }

 private:
  campus::Millis delay_{0};
  bool never_answer_ = false;
  std::string note_;
  std::string input_error_;
  std::optional<std::filesystem::path> findings_file_;
};

}  // namespace

CAMPUS_DEFINE_PLUGIN("test", "0.1.0", TestAudit)
