#include "core/commit_plan.hpp"

#include <set>

#include "core/store.hpp"  // to_json(CaseView)

namespace campus {

std::string text_of(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

namespace {

Json error_json(const Error& e) { return Json{{"where", e.where}, {"what", e.what}, {"fix", e.fix}}; }

Json case_event(const CaseView& view, Json from, const std::string& to, const std::string& action,
                const std::string& note) {
  return Json{{"subject", view.id}, {"case", view},     {"from", std::move(from)},
              {"to", to},           {"action", action}, {"reason", note}};
}

bool outcome_step(const CaseStepSpec& s) { return s.outcome; }
bool person_step(const CaseStepSpec& s) { return s.by_person; }

void plan_cases(const std::string& audit, const std::string& at, const std::vector<CaseAction>& actions,
                CommitInputs& inputs, CommitPlan& plan, Json& errors) {
  auto& open = inputs.open_cases;
  std::vector<WorkingCase> closed;
  std::map<std::string, int> opened_now;  // subject -> cases opened by this commit
  const std::string opened = case_stage_name(CaseStage::Open);
  auto problem = [&](const CaseAction& a, const std::string& what, const std::string& fix) {
    const char* verb = a.kind == CaseAction::Kind::Update ? "update" : "close";
    errors.push_back(error_json(Error{"case action " + std::string(verb) + " for subject " + a.subject, what, fix}));
  };
  for (const auto& a : actions) {
    auto it = open.find(a.subject);
    if (a.kind == CaseAction::Kind::Open) {
      if (it != open.end()) continue;  // already open: the case carries on
      WorkingCase c;
      c.audit = audit;
      auto earlier = inputs.cases_so_far.find(a.subject);
      c.n = (earlier != inputs.cases_so_far.end() ? earlier->second : 0) + ++opened_now[a.subject];
      c.view.id = audit + "-" + a.subject + "-" + std::to_string(c.n);
      c.view.subject = a.subject;
      c.view.stage = opened;
      c.view.opened_at = at;
      c.view.details = a.details;
      c.view.steps.push_back(CaseStep{at, case_step_name(CaseStepKind::Opened), "agent", a.note});
      c.is_new = c.changed = true;
      plan.events.push_back(case_event(c.view, nullptr, opened, case_step_name(CaseStepKind::Opened), a.note));
      open[a.subject] = std::move(c);
      continue;
    }
    if (it == open.end()) {
      problem(a, "no open case of audit \"" + audit + "\" for this subject", "open the case before updating or closing it");
      continue;
    }
    WorkingCase& c = it->second;
    if (a.kind == CaseAction::Kind::Update) {
      if (a.details == c.view.details) continue;
      const std::string updated = case_step_name(CaseStepKind::Updated);
      c.view.details = a.details;
      c.view.steps.push_back(CaseStep{at, updated, "agent", a.note});
      c.changed = true;
      if (a.announce) plan.events.push_back(case_event(c.view, c.view.stage, c.view.stage, updated, a.note));
      continue;
    }
    if (!is_case_outcome(a.outcome)) {
      problem(a, "\"" + case_step_name(a.outcome) + "\" is not an outcome that closes a case",
              "close with one of: " + case_step_names(outcome_step));
      continue;
    }
    const std::string outcome = case_step_name(a.outcome);
    std::string from = c.view.stage;
    c.view.stage = case_stage_name(CaseStage::Closed);
    c.view.outcome = outcome;
    c.view.closed_at = at;
    c.view.steps.push_back(CaseStep{at, outcome, "agent", a.note});
    c.changed = true;
    plan.events.push_back(case_event(c.view, from, c.view.stage, outcome, a.note));
    closed.push_back(std::move(c));
    open.erase(it);
  }
  for (auto& [subject, c] : open)
    if (c.changed) plan.cases.push_back(std::move(c));
  for (auto& c : closed) plan.cases.push_back(std::move(c));
}

}  // namespace

CommitPlan plan_commit(const std::string& audit, const std::string& at, const AuditReport& report, CommitInputs inputs,
                       bool count_bytes) {
  CommitPlan plan;
  Json errors = Json::array();
  for (const auto& e : report.input_errors) errors.push_back(error_json(e));

  auto& previous = inputs.subjects;
  Json findings = Json::array();
  std::set<std::string> seen;
  for (const auto& f : report.findings) {
    findings.push_back(Json{{"subject", f.subject}, {"state", f.state}, {"reason", f.reason}, {"details", f.details}});
    const SubjectState now{f.state, f.reason};
    auto it = previous.find(f.subject);
    if (it != previous.end() && it->second.state != f.state)
      plan.events.push_back(Json{{"subject", f.subject},
                                 {"from", it->second.state},
                                 {"to", f.state},
                                 {"reason", f.reason},
                                 {"details", f.details}});
    if (it == previous.end() || it->second != now) plan.states.push_back(&f);
    previous[f.subject] = now;
    seen.insert(f.subject);
  }
  for (const auto& [subject, prev] : previous) {
    if (seen.count(subject)) continue;
    plan.events.push_back(Json{{"subject", subject},
                               {"from", prev.state},
                               {"to", "removed"},
                               {"reason", "no longer reported by the audit"},
                               {"details", Json::object()}});
    plan.removed_subjects.push_back(subject);
  }

  if (!report.case_actions.empty()) plan_cases(audit, at, report.case_actions, inputs, plan, errors);
  plan.records = &report.records;
  plan.report_body = Json{{"summary", report.summary}, {"findings", std::move(findings)}, {"errors", std::move(errors)}};

  // Bytes the writes add: the report twice (reports + outbox), each event, the changed
  // cases, the records, and a margin for envelopes and index pages.
  if (!count_bytes) return plan;
  plan.bytes = 2 * text_of(plan.report_body).size() + 16 * 1024;
  for (const auto& e : plan.events) plan.bytes += text_of(e).size() + 400;
  for (const auto& c : plan.cases) plan.bytes += text_of(Json(c.view)).size() + 200;
  for (const auto& r : report.records)
    plan.bytes += r.kind.size() + r.key.size() + (r.value ? text_of(*r.value).size() : 0) + 64;
  return plan;
}

Result<std::pair<WorkingCase, Json>> plan_case_update(WorkingCase c, const std::string& action,
                                                      const std::string& actor, const std::string& note,
                                                      const std::string& at) {
  const std::string& case_id = c.view.id;
  const std::string from = c.view.stage;
  const auto from_stage = parse_case_stage(from).value_or(CaseStage::Closed);
  if (from_stage == CaseStage::Closed)
    return Error{"case " + case_id,
                 "the case is closed (" + c.view.outcome + " at " + c.view.closed_at + ") and cannot change",
                 "a new absence run opens a new case"};
  const auto step = parse_case_step(action);
  if (!step || !case_step(*step).by_person)
    return Error{"case " + case_id, "unknown action \"" + action + "\"", "use one of: " + case_step_names(person_step)};
  CaseStage to = from_stage;
  if (*step == CaseStepKind::Contacted || *step == CaseStepKind::Visited) {
    to = *step == CaseStepKind::Contacted ? CaseStage::Contacted : CaseStage::Visited;
    if (to < from_stage)
      return Error{"case " + case_id, "action \"" + action + "\" would take the case back from stage \"" + from + "\"",
                   "record it as a note instead"};
  } else if (is_case_outcome(*step)) {
    to = CaseStage::Closed;
  }
  c.view.stage = case_stage_name(to);
  if (to == CaseStage::Closed) {
    c.view.outcome = action;
    c.view.closed_at = at;
  }
  c.view.steps.push_back(CaseStep{at, action, actor, note});
  c.changed = true;
  Json body = case_event(c.view, from, c.view.stage, action, note);
  return std::pair{std::move(c), std::move(body)};
}

}  // namespace campus
