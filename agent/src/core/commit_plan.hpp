// What a commit writes, as a pure function: the audit's previous subject states and open
// cases, and the report, in; the report body, the events in outbox order, the state rows to
// upsert or delete and the case transitions out. No SQLite: the store reads the inputs, plans,
// and writes the plan in one transaction (store.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "campus/plugin.hpp"

namespace campus {

// Plugins pass through text from outside (registers, device replies) that may not be valid
// UTF-8; it is stored and published with U+FFFD instead of failing the commit.
std::string text_of(const Json& j);

// A case as a commit or a case update changes it. `saved_steps` steps are already stored.
struct WorkingCase {
  CaseView view;
  std::string audit;
  int n = 0;  // the case's number among the audit's cases of its subject (its id's suffix)
  std::size_t saved_steps = 0;
  bool is_new = false;
  bool changed = false;
};

struct SubjectState {
  std::string state, reason;
  bool operator==(const SubjectState&) const = default;
};

// What the store holds before the commit, as far as the plan needs it.
struct CommitInputs {
  std::map<std::string, SubjectState> subjects;   // the audit's subject_state rows
  std::map<std::string, WorkingCase> open_cases;  // subject -> the audit's open case
  // subject -> how many cases the audit has had for it (open or closed), for every subject
  // the report has an Open action for.
  std::map<std::string, int> cases_so_far;
};

struct CommitPlan {
  Json report_body;
  std::vector<Json> events;  // bodies, in outbox order after the report
  // Pointers into the report being committed (it outlives the plan): copying a term's 180,000
  // month records (60,000 students) or 6,000 rooms' findings nearly doubled the commit's peak.
  std::vector<const Finding*> states;          // subject_state rows to upsert
  std::vector<std::string> removed_subjects;  // subject_state rows to delete
  std::vector<WorkingCase> cases;             // changed or new cases: open ones, then closed ones
  const std::vector<RecordWrite>* records = nullptr;
  std::uint64_t bytes = 0;  // what the writes add, roughly (for the size cap); 0 unless counted
};

// The rules:
//  - a finding whose state differs from the subject's previous one is a state event
//    (from -> to); a subject no longer reported is removed with an event to "removed";
//  - a state row is written when state or reason changed;
//  - Open opens a case (<audit>-<subject>-<n>) unless one is open; Update replaces the details
//    of an open case and publishes an event only when the action says `announce`; Close closes
//    it with an outcome; an action on a subject without an open case, or a Close without an
//    outcome, is an error in the report's "errors" and changes nothing;
// `at` is the commit's time (RFC 3339); count_bytes estimates what the writes add (serializes
// everything once more: only the estimate made before the transaction needs it).
CommitPlan plan_commit(const std::string& audit, const std::string& at, const AuditReport& report, CommitInputs inputs,
                       bool count_bytes);

// One step a person records on a case (`case.update`): the case after it and its event body,
// or an Error when the step is not allowed (a closed case, a step back, an unknown action).
Result<std::pair<WorkingCase, Json>> plan_case_update(WorkingCase c, const std::string& action,
                                                      const std::string& actor, const std::string& note,
                                                      const std::string& at);

}  // namespace campus
