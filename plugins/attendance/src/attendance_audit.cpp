// The attendance audit run: import, evaluate, decide cases, report.
#include "attendance_audit.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

#include "csv_import.hpp"
#include "xlsx_import.hpp"

namespace campus::attendance {
namespace {

namespace fs = std::filesystem;

std::optional<Day> json_day(const Json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return parse_day(it->get<std::string>());
}

// The local date of an RFC 3339 timestamp is its first ten characters.
std::optional<Day> rfc3339_day(const std::string& at) {
  return at.size() >= 10 ? parse_day(std::string_view(at).substr(0, 10)) : std::nullopt;
}

// A spool file by its extension, ignoring case (Windows saves "EXPORT.XLSX"): csv or xlsx.
std::string export_kind(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".csv" ? "csv" : ext == ".xlsx" ? "xlsx" : "";
}

struct SpoolFile {
  fs::path path;
  Errors errors;
  std::size_t imported = 0;
  bool fatal = false;
};

// Moves a processed spool file aside without overwriting an earlier one of the same name.
void move_aside(const fs::path& file, const fs::path& dir, const std::string* error_text,
                const std::shared_ptr<spdlog::logger>& log) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::path target = dir / file.filename();
  for (int n = 1; fs::exists(target, ec); ++n)
    target = dir / (file.stem().string() + "." + std::to_string(n) + file.extension().string());
  fs::rename(file, target, ec);
  if (ec) {
    if (log) log->error("attendance: cannot move {} to {}: {}", file.string(), dir.string(), ec.message());
    return;
  }
  if (error_text) {
    std::ofstream out(target.string() + ".error");
    out << *error_text;
  }
}

}  // namespace

Json CaseMarker::to_json() const {
  Json j = {{"first", format_day(first)}, {"last", format_day(last)}, {"cumulative", cumulative},
            {"open_day", format_day(open_day)}, {"deadline_day", format_day(deadline_day)}};
  if (handled_day) j["handled_day"] = format_day(*handled_day);
  if (closed_day) j["closed_day"] = format_day(*closed_day);
  if (!outcome.empty()) j["outcome"] = outcome;
  return j;
}

std::optional<CaseMarker> CaseMarker::from_json(const Json& j) {
  auto first = json_day(j, "first"), last = json_day(j, "last"), open = json_day(j, "open_day"),
       deadline = json_day(j, "deadline_day");
  if (!first || !last || !open || !deadline) return std::nullopt;
  CaseMarker m;
  m.first = *first;
  m.last = *last;
  m.open_day = *open;
  m.deadline_day = *deadline;
  m.cumulative = j.value("cumulative", false);
  m.handled_day = json_day(j, "handled_day");
  m.closed_day = json_day(j, "closed_day");
  m.outcome = j.value("outcome", "");
  return m;
}

struct AttendanceAudit::Run {
  AuditContext ctx;
  std::function<void(AuditReport)> done;
  AuditReport report;
  Day today = 0;
  std::vector<SpoolFile> spool;
  std::optional<Error> spool_error;
  std::optional<HttpImportResult> http;
  std::size_t rows_imported = 0;
  std::size_t rows_rejected = 0;
  std::optional<Error> student_key_error;  // the pseudonym key cannot be used: nothing imported
  std::vector<RecordWrite> key_writes;     // the key's record, and a rotation's erasures
  std::string key_fingerprint;

  Run(AuditContext c, std::function<void(AuditReport)> d) : ctx(std::move(c)), done(std::move(d)) {}
};

campus::Status AttendanceAudit::apply(AttendanceSettings settings) {
  auto cal = SchoolCalendar::load(settings.calendar_file);
  if (!cal) return cal.error();
  calendar_ = std::move(cal.value());
  std::error_code ec;
  calendar_mtime_ = fs::last_write_time(settings.calendar_file, ec);
  bool names_changed = settings.publish_names != settings_.publish_names;
  settings_ = std::move(settings);
  if (names_changed) loaded_ = false;  // reload so names are dropped/kept consistently
  return {};
}

void AttendanceAudit::reload(const RecordReader& records) {
  book_.load(records, settings_.publish_names);
  markers_.clear();
  records.scan(kCaseRecordKind, [&](const std::string& key, const Json& v) {
    auto bar = key.rfind('|');
    auto m = CaseMarker::from_json(v);
    if (bar == std::string::npos || !m) return;
    markers_[key.substr(0, bar)].push_back(*m);
  });
  stored_key_fingerprint_.clear();
  if (auto v = records.get(kPseudonymKeyRecordKind, kPseudonymKeyRecordKey); v && v->is_object())
    stored_key_fingerprint_ = v->value("fingerprint", "");
  loaded_ = true;
  dirty_ = false;
}

RecordRules AttendanceAudit::rules() const {
  RecordRules r;
  r.statuses = settings_.status_words;
  r.keep_names = settings_.publish_names;
  r.pseudonyms = settings_.pseudonymize_students ? pseudonyms_ : nullptr;
  return r;
}

bool AttendanceAudit::open_student_key(Run& run) {
  auto& log = run.ctx.log;
  pseudonyms_.reset();
  const std::string key_where = settings_.pseudonym_key_file.string();
  const std::string stored = stored_key_fingerprint_;
  // A key is made only for a school that has never imported with one: a key file that went
  // missing later is restored from the backup, never silently replaced (every student would
  // become someone new).
  bool created = false;
  auto keys = StudentPseudonyms::open(settings_.pseudonym_key_file, stored.empty(), &created);
  if (!keys) {
    Error e = keys.error();
    if (!stored.empty()) {
      e.what += "; the stored attendance was keyed with the key whose fingerprint is " + stored;
      e.fix = "restore the key file from this server's backup (plugins/attendance/README.md, \"Rotating the "
              "pseudonym key\")";
    }
    run.student_key_error = std::move(e);
    return false;
  }
  if (created && log)
    log->warn("attendance: created the student pseudonym key {} (back it up with the database)", key_where);
  auto current = keys->fingerprint();
  if (!stored.empty() && stored != current) {
    std::size_t open_under_old = 0;
    for (const auto& c : run.ctx.open_cases) open_under_old += StudentPseudonyms::is_pseudonym(c.subject) ? 1 : 0;
    if (open_under_old > 0) {
      run.student_key_error = Error{
          key_where,
          "the pseudonym key was replaced (stored attendance: key " + stored + ", this file: key " + current + ") while " +
              std::to_string(open_under_old) + " absence case(s) keyed by the old key are open; nothing was imported",
          "put the old key file back, or close those cases first (campusctl --local cases) and then replace the key "
          "(plugins/attendance/README.md, \"Rotating the pseudonym key\")"};
      return false;
    }
    // Accepted: attendance under the old key can never be matched again; it goes, the cases
    // (all closed) and their markers stay. The school drops the term's exports again.
    run.key_writes = book_.forget([](const std::string& s) { return StudentPseudonyms::is_pseudonym(s); });
    if (log)
      log->warn("attendance: the student pseudonym key changed ({} -> {}): {} month records under the old key erased; "
                "import the term's exports again",
                stored, current, run.key_writes.size());
    run.report.input_errors.push_back(
        {key_where, "the pseudonym key changed (" + stored + " -> " + current + "): attendance imported under the old key was erased",
         "drop the term's exports into the spool again"});
  }
  if (stored != current)
    run.key_writes.push_back(RecordWrite{kPseudonymKeyRecordKind, kPseudonymKeyRecordKey,
                                         Json{{"fingerprint", current}, {"since", format_day(run.today)}}});
  run.key_fingerprint = current;
  pseudonyms_ = std::make_shared<const StudentPseudonyms>(std::move(keys.value()));
  return true;
}

void AttendanceAudit::cancel() {
  if (http_in_flight_) http_in_flight_->cancel_all();
}

void AttendanceAudit::audit(AuditContext ctx, std::function<void(AuditReport)> done) {
  auto run = std::make_shared<Run>(std::move(ctx), std::move(done));
  auto& log = run->ctx.log;
  run->today = local_day(run->ctx.now, settings_.timezone_offset);
  if (!loaded_ || dirty_) reload(run->ctx.records);

  // A calendar edited since the last run (a new term) is picked up without a reload.
  std::error_code ec;
  auto mtime = fs::last_write_time(settings_.calendar_file, ec);
  if (!ec && mtime != calendar_mtime_) {
    auto cal = SchoolCalendar::load(settings_.calendar_file);
    if (cal) {
      calendar_ = std::move(cal.value());
      calendar_mtime_ = mtime;
    } else {
      run->report.input_errors.push_back(cal.error());
    }
  }

  const bool can_import = !settings_.pseudonymize_students || open_student_key(*run);
  const RecordRules rules = this->rules();

  // Spool: every *.csv and *.xlsx (never hidden or partial files: copy as .part and rename
  // when complete), in name order so a later export overrides an earlier one.
  if (settings_.spool_dir && can_import) {
    std::vector<fs::path> files;
    for (fs::directory_iterator it(*settings_.spool_dir, ec), end; !ec && it != end; it.increment(ec)) {
      const auto& p = it->path();
      if (it->is_regular_file() && !export_kind(p).empty() && p.filename().string()[0] != '.') files.push_back(p);
    }
    if (ec) {
      run->spool_error = Error{settings_.spool_dir->string(), "cannot read the spool directory: " + ec.message(),
                               "create it and let the agent's user read and write it"};
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      SpoolFile sf{f, {}, 0, false};
      auto sink = [&](const AttendanceRecord& r) { book_.put(r); };
      auto result = export_kind(f) == "xlsx" ? import_xlsx_file(f, settings_.csv_fields, settings_.xlsx_sheet, rules, sink)
                                             : import_csv_file(f, settings_.csv_fields, rules, sink);
      sf.errors = std::move(result.errors);
      sf.imported = result.imported;
      sf.fatal = result.fatal;
      run->rows_imported += result.imported;
      run->rows_rejected += sf.errors.size();
      if (log) log->info("attendance: {}: {} rows imported, {} rejected", f.filename().string(), result.imported, sf.errors.size());
      run->spool.push_back(std::move(sf));
    }
  }
  if (pseudonyms_) pseudonyms_->forget();  // no student number stays in memory past the import

  if (!settings_.http) {
    asio::post(run->ctx.io, [this, run] { finish(run); });
    return;
  }
  if (!can_import) {
    run->http = HttpImportResult{};
    run->http->failure = *run->student_key_error;
    asio::post(run->ctx.io, [this, run] { finish(run); });
    return;
  }
  Day from = run->today - settings_.http->lookback_days;
  http_in_flight_ = &run->ctx.http;
  import_http(run->ctx.http, *settings_.http, rules, from, run->today,
              [this, run, keys = pseudonyms_](HttpImportResult r) {
                http_in_flight_ = nullptr;
                if (keys) keys->forget();
                for (const auto& rec : r.records) book_.put(rec);
                run->rows_imported += r.records.size();
                run->rows_rejected += r.row_errors.size();
                run->http = std::move(r);
                finish(run);
              },
              report_by(run->ctx.deadline));  // the report, with the source unknown, before the deadline
}

// What the case pass of a run found: the open cases listed for the summary, the counts, and
// the case markers as they are after this run.
struct AttendanceAudit::CaseTally {
  std::map<std::string, std::vector<CaseMarker>> markers;  // by student
  Json open_list = Json::array();
  int opened_now = 0, closed_now = 0, overdue_count = 0;
  std::set<std::string> still_open;                        // students with an open case after this run
  std::map<std::string, std::pair<int, int>> class_cases;  // class -> (open, overdue)
  bool publish_names = false;

  // One open case in the summary's list (case_id empty: opened by this run).
  void list(const std::string& case_id, const std::string& student, const Json& details, const std::string& opened_at,
            const std::string& stage) {
    Json e = {{"case", case_id.empty() ? Json(nullptr) : Json(case_id)},
              {"student", student},
              {"class", details.value("class", "")},
              {"grade", details.value("grade", "")},
              {"rule", details.value("rule", "consecutive")},
              {"run_days", details.value("run_days", 0)},
              {"first_day", details.value("first_day", "")},
              {"last_absent_day", details.value("last_absent_day", "")},
              {"opened_at", opened_at},
              {"stage", stage},
              {"overdue", details.value("overdue", false)}};
    if (publish_names && details.contains("name")) e["name"] = details["name"];
    open_list.push_back(std::move(e));
    auto& cc = class_cases[details.value("class", "")];
    ++cc.first;
    if (details.value("overdue", false)) {
      ++cc.second;
      ++overdue_count;
    }
  }
};

Json AttendanceAudit::case_details(const std::string& student, const AbsenceRun& r, const CaseMarker& m, bool overdue,
                                   Day horizon) const {
  Json d = {{"rule", r.cumulative ? "cumulative" : "consecutive"},
            {"run_days", r.days},
            {"first_day", format_day(m.first)},
            {"last_absent_day", format_day(std::max(r.last, m.last))},
            {"gap_days", r.gap_days},
            {"excused_days", r.excused_days},
            {"watch_from", format_day(r.cumulative ? horizon : m.first)},
            {"opened_day", format_day(m.open_day)},
            {"deadline_day", format_day(m.deadline_day)},
            {"overdue", overdue}};
  if (const auto* s = book_.find(student)) {
    d["class"] = book_.latest_class(*s);
    d["grade"] = s->grade;
    if (settings_.publish_names && !s->name.empty()) d["name"] = s->name;
  }
  return d;
}

std::optional<Day> AttendanceAudit::returned_after(const std::string& student, Day after) const {
  const auto* s = book_.find(student);
  if (!s) return std::nullopt;
  auto it = std::upper_bound(s->days.begin(), s->days.end(), after, [](Day d, const DayEntry& x) { return d < x.day; });
  for (; it != s->days.end(); ++it)
    if (day_kind(it->status, it->leave_approved) == DayKind::Attended && calendar_ && calendar_->is_school_day(it->day))
      return it->day;
  return std::nullopt;
}

// The cases open before this run: closed when the student is back, updated as the run grows
// and when the deadline passes.
void AttendanceAudit::carry_open_cases(Run& run, const Evaluation& ev, CaseTally& t) {
  std::map<std::string, const CaseView*> open_by_student;
  for (const auto& c : run.ctx.open_cases) {
    if (open_by_student.count(c.subject) && run.ctx.log)
      run.ctx.log->warn("attendance: two open cases for one student ({})", c.id);
    open_by_student.emplace(c.subject, &c);
  }
  std::map<std::string, const StudentStanding*> standing_by_student;
  for (const auto& st : ev.standings) standing_by_student.emplace(st.student->id, &st);

  for (const auto& [student, cv] : open_by_student) {
    const CaseView& c = *cv;
    auto first = json_day(c.details, "first_day");
    auto& ms = t.markers[student];
    CaseMarker* m = nullptr;
    for (auto& x : ms)
      if (first && x.first == *first) m = &x;
    if (!m) {
      // A case this plugin has no marker for (opened by an older version or by hand).
      for (auto& x : ms)
        if (!x.closed_day) m = &x;
    }
    if (!m) {
      Day f = first.value_or(run.today);
      ms.push_back(CaseMarker{f, f, c.details.value("rule", "") == "cumulative", rfc3339_day(c.opened_at).value_or(run.today),
                              calendar_ ? calendar_->school_days_after(rfc3339_day(c.opened_at).value_or(run.today), settings_.contact_within) : run.today,
                              {}, {}, {}});
      m = &ms.back();
    }
    if (!m->handled_day && c.stage != "open") {
      for (const auto& step : c.steps)
        if (step.action == "contacted" || step.action == "visited") {
          m->handled_day = rfc3339_day(step.at);
          break;
        }
      if (!m->handled_day) m->handled_day = run.today;
    }
    Day watch_from = json_day(c.details, "watch_from").value_or(m->first);
    if (auto back = returned_after(student, watch_from)) {
      CaseAction close{CaseAction::Kind::Close, student, CaseStepKind::Returned, "present again on " + format_day(*back), {}};
      run.report.case_actions.push_back(std::move(close));
      if (!m->handled_day) m->handled_day = *back;
      m->closed_day = run.today;
      m->outcome = "returned";
      ++t.closed_now;
      continue;
    }
    t.still_open.insert(student);
    // "today" is the school's clock at the run (ctx.now). A clock set back across midnight
    // would make an overdue case look in time again, and set right it would be overdue once
    // more: two contradictory events for the county. Real time never goes back, so once an
    // open case was said to be overdue it stays so until it is handled (docs/reliability.md
    // "Clock jumps").
    bool overdue = c.stage == "open" && (run.today > m->deadline_day || c.details.value("overdue", false));
    Json details = c.details;
    AbsenceRun r;
    r.first = m->first;
    r.last = m->last;
    r.cumulative = m->cumulative;
    r.days = c.details.value("run_days", 0);
    if (auto it = standing_by_student.find(student); it != standing_by_student.end()) {
      for (const auto& sr : it->second->runs)
        if (!sr.returned_on && sr.cumulative == m->cumulative) r = sr;  // the run still going
    }
    r.cumulative = m->cumulative;
    m->last = std::max(m->last, r.last);
    details = case_details(student, r, *m, overdue, ev.horizon);
    if (details != c.details) {
      // The county hears of an update at once only when the case became overdue or stopped
      // being so; the rest (the run growing day by day) is history in the case's steps.
      const bool was_overdue = c.details.value("overdue", false);
      CaseAction update{CaseAction::Kind::Update, student, {},
                        overdue && !was_overdue ? "overdue: not contacted by " + format_day(m->deadline_day) : "",
                        details};
      update.announce = overdue != was_overdue;
      run.report.case_actions.push_back(std::move(update));
    }
    t.list(c.id, student, details, c.opened_at, c.stage);
  }


  // Markers of cases that left the open set without this plugin closing them: closed by the
  // county or the school (case.update, campusctl).
  for (auto& [student, ms] : t.markers)
    for (auto& m : ms)
      if (!m.closed_day && !open_by_student.count(student)) {
        m.closed_day = run.today;
        if (!m.handled_day) m.handled_day = run.today;
        m.outcome = "closed";
      }

}

// Runs of absences no case covers yet: a case each (closed at once when found after the fact).
void AttendanceAudit::open_new_cases(Run& run, const Evaluation& ev, CaseTally& t) {
  const std::string now_text = rfc3339(run.ctx.now, settings_.timezone_offset);
  for (const auto& st : ev.standings) {
    const std::string& student = st.student->id;
    if (t.still_open.count(student)) continue;
    auto& ms = t.markers[student];
    for (const auto& r : st.runs) {
      if (t.still_open.count(student)) break;
      bool covered = std::any_of(ms.begin(), ms.end(), [&](const CaseMarker& m) { return r.first <= m.last && m.first <= r.last; });
      if (covered) continue;
      // The deadline counts from the day the absences qualified, not from the day the data
      // arrived: a late export does not buy the school time.
      Day qualified = r.qualified_on ? r.qualified_on : run.today;
      CaseMarker m{r.first, r.last, r.cumulative, run.today,
                   calendar_ ? calendar_->school_days_after(qualified, settings_.contact_within) : run.today, {}, {}, {}};
      Json details = case_details(student, r, m, !r.returned_on && run.today > m.deadline_day, ev.horizon);
      std::string note = r.cumulative ? std::to_string(r.days) + " unexcused school days within " +
                                            std::to_string(settings_.rule.cumulative_window)
                                      : std::to_string(r.days) + " consecutive unexcused school days from " + format_day(r.first);
      run.report.case_actions.push_back(CaseAction{CaseAction::Kind::Open, student, {}, note, details});
      ++t.opened_now;
      if (r.returned_on) {
        // Found after the fact (a batch import): the case is recorded and closes at once.
        run.report.case_actions.push_back(CaseAction{CaseAction::Kind::Close, student, CaseStepKind::Returned,
                                                 "present again on " + format_day(*r.returned_on), {}});
        m.handled_day = *r.returned_on;
        m.closed_day = run.today;
        m.outcome = "returned";
        ++t.closed_now;
      } else {
        t.still_open.insert(student);
        t.list("", student, details, now_text, "open");
      }
      ms.push_back(m);
    }
  }

}

// Record writes for every marker that changed.
void AttendanceAudit::write_changed_markers(Run& run, const CaseTally& t) const {
  for (const auto& [student, ms] : t.markers) {
    const auto old = markers_.find(student);
    for (const auto& m : ms) {
      bool same = false;
      if (old != markers_.end())
        for (const auto& o : old->second)
          if (o.first == m.first) same = o.to_json() == m.to_json();
      if (!same) run.report.records.push_back(RecordWrite{kCaseRecordKind, student + "|" + format_day(m.first), m.to_json()});
    }
  }

}

namespace {

// Data gaps by class: (class-days with a gap, the latest such day).
std::map<std::string, std::pair<int, Day>> gaps_by_class(const Evaluation& ev, const AttendanceBook& book) {
  std::map<std::string, std::pair<int, Day>> out;
  for (const auto& g : ev.gaps) {
    auto& cg = out[book.class_name(g.class_index)];
    ++cg.first;
    cg.second = std::max(cg.second, g.day);
  }
  return out;
}

}  // namespace

Json AttendanceAudit::summarize(const Run& run, const Evaluation& ev, const CaseTally& t) const {
  Json summary = Json::object();
  summary["today"] = format_day(run.today);
  summary["rule"] = {{"threshold_days", settings_.rule.threshold_days},
                     {"leave_breaks_run", settings_.rule.leave_breaks_run},
                     {"cumulative_days", settings_.rule.cumulative_days},
                     {"cumulative_window", settings_.rule.cumulative_window},
                     {"contact_within", settings_.contact_within}};
  if (ev.term) {
    summary["term"] = {{"name", ev.term->name}, {"start", format_day(ev.term->start)}, {"end", format_day(ev.term->end)}};
    summary["as_of"] = format_day(ev.as_of);
    summary["evaluated_through"] = format_day(ev.horizon);
  } else {
    summary["term"] = nullptr;
  }
  summary["students"] = ev.students;
  summary["records"] = book_.record_count();
  summary["open_cases"] = t.open_list;
  summary["open"] = t.open_list.size();
  summary["overdue"] = t.overdue_count;
  summary["at_risk"] = ev.at_risk;
  summary["opened_this_run"] = t.opened_now;
  summary["closed_this_run"] = t.closed_now;
  Day period_from = ev.term ? ev.term->start : run.today;
  int opened_period = 0, closed_period = 0, due = 0, within = 0;
  for (const auto& [student, ms] : t.markers)
    for (const auto& m : ms) {
      if (m.open_day >= period_from && m.open_day <= run.today) ++opened_period;
      if (m.closed_day && *m.closed_day >= period_from && *m.closed_day <= run.today) ++closed_period;
      if (m.open_day < period_from) continue;
      if (m.handled_day || run.today > m.deadline_day) {
        ++due;
        if (m.handled_day && *m.handled_day <= m.deadline_day) ++within;
      }
    }
  summary["period"] = {{"from", format_day(period_from)}, {"to", format_day(run.today)}};
  summary["opened_in_period"] = opened_period;
  summary["closed_in_period"] = closed_period;
  summary["handled_within_deadline"] = {{"within", within}, {"due", due},
                                        {"share", due ? Json(static_cast<double>(within) / due) : Json(nullptr)}};
  int missing_total = 0;
  for (const auto& g : ev.gaps) missing_total += g.missing;
  Json latest = Json::array();
  for (auto it = ev.gaps.rbegin(); it != ev.gaps.rend() && static_cast<int>(latest.size()) < settings_.max_gap_entries; ++it)
    latest.push_back({{"class", book_.class_name(it->class_index)}, {"date", format_day(it->day)}, {"missing", it->missing}});
  summary["data_gaps"] = {{"class_days", ev.gaps.size()}, {"missing_records", missing_total}, {"latest", latest}};
  summary["records_outside_term"] = ev.records_outside_term;
  summary["records_on_non_school_days"] = ev.records_on_non_school_days;

  // ---- imports ----
  Json imports = Json::object();
  Json files_done = Json::array(), files_rejected = Json::array();
  for (const auto& f : run.spool) (f.errors.empty() ? files_done : files_rejected).push_back(f.path.filename().string());
  imports["files_imported"] = files_done;
  imports["files_rejected"] = files_rejected;
  imports["rows_imported"] = run.rows_imported;
  imports["rows_rejected"] = run.rows_rejected;
  if (run.http) {
    Json h = {{"ok", !run.http->failure}, {"pages", run.http->pages}, {"records", run.http->records.size()}};
    if (run.http->failure) h["error"] = run.http->failure->message();
    imports["http"] = h;
  }
  summary["imports"] = imports;
  // The key's fingerprint (not the key): the county sees when a school's pseudonyms changed.
  summary["student_key"] = settings_.pseudonymize_students
                               ? Json{{"pseudonyms", true},
                                      {"key", run.key_fingerprint.empty() ? Json(nullptr) : Json(run.key_fingerprint)}}
                               : Json{{"pseudonyms", false}};

  return summary;
}

void AttendanceAudit::add_findings(Run& run, const Evaluation& ev, CaseTally& t) const {
  auto class_gaps = gaps_by_class(ev, book_);
  std::size_t files_done = 0, files_rejected = 0;
  for (const auto& f : run.spool) ++(f.errors.empty() ? files_done : files_rejected);
  std::set<std::string> classes;
  for (std::size_t i = 0; i < book_.class_count(); ++i) classes.insert(book_.class_name(static_cast<std::uint16_t>(i)));
  for (const auto& [c, n] : t.class_cases) classes.insert(c);
  for (const auto& c : classes) {
    auto cc = t.class_cases.count(c) ? t.class_cases[c] : std::pair<int, int>{0, 0};
    auto cg = class_gaps.count(c) ? class_gaps[c] : std::pair<int, Day>{0, 0};
    Finding f{"class:" + c, "ok", "", {{"open_cases", cc.first}, {"overdue", cc.second}, {"gap_days", cg.first}}};
    if (cc.second > 0) {
      f.state = "overdue";
      f.reason = std::to_string(cc.second) + " of " + std::to_string(cc.first) + " open cases not contacted in time";
    } else if (cc.first > 0) {
      f.state = "open_cases";
      f.reason = std::to_string(cc.first) + " open absence case" + (cc.first > 1 ? "s" : "");
    } else if (cg.first > 0) {
      f.state = "data_gap";
      f.reason = "missing records on " + std::to_string(cg.first) + " school day(s), latest " + format_day(cg.second);
    }
    run.report.findings.push_back(std::move(f));
  }
  if (!calendar_ || !ev.term) {
    run.report.findings.push_back({"calendar", "unknown",
                                   calendar_ ? "no term in the calendar on or before " + format_day(run.today) : "the calendar could not be read",
                                   Json::object()});
  }
  if (settings_.spool_dir) {
    Finding f{"source:spool", "ok", "", {{"files_imported", files_done}, {"files_rejected", files_rejected}}};
    if (run.student_key_error) {
      f.state = "unknown";
      f.reason = run.student_key_error->message();
      run.report.input_errors.push_back(*run.student_key_error);
    } else if (run.spool_error) {
      f.state = "unknown";
      f.reason = run.spool_error->message();
      run.report.input_errors.push_back(*run.spool_error);
    } else if (files_rejected > 0) {
      f.state = "rejected_files";
      f.reason = std::to_string(files_rejected) + " file(s) moved to rejected/ (see the .error beside each)";
    }
    run.report.findings.push_back(std::move(f));
  }
  if (run.http) {
    Finding f{"source:http", run.http->failure ? "unknown" : "ok",
              run.http->failure ? run.http->failure->message() : "", {{"pages", run.http->pages}}};
    if (run.http->failure && !(run.student_key_error && settings_.spool_dir))
      run.report.input_errors.push_back(*run.http->failure);  // (once, when the spool already said it)
    run.report.findings.push_back(std::move(f));
  }
  // Bad rows: every one goes into the .error files; the report carries the first ones.
  std::size_t listed = 0, total_bad = 0;
  auto add_errors = [&](const Errors& es) {
    for (const auto& e : es) {
      ++total_bad;
      if (listed < static_cast<std::size_t>(settings_.max_error_entries)) {
        run.report.input_errors.push_back(e);
        ++listed;
      }
    }
  };
  for (const auto& f : run.spool) add_errors(f.errors);
  if (run.http) add_errors(run.http->row_errors);
  if (total_bad > listed)
    run.report.input_errors.push_back({"attendance import", std::to_string(total_bad - listed) + " more bad rows not listed", ""});

}

// After the commit: spool files aside, and the writes are now the store's truth.
void AttendanceAudit::hand_over(Run& run, CaseTally& t) {
  dirty_ = true;
  markers_ = t.markers;  // provisional; a failed commit reloads everything next run
  std::vector<std::pair<fs::path, std::optional<std::string>>> moves;
  for (const auto& f : run.spool) {
    if (f.errors.empty()) {
      moves.emplace_back(f.path, std::nullopt);
    } else {
      std::string text;
      for (const auto& e : f.errors) text += e.message() + "\n";
      moves.emplace_back(f.path, text);
    }
  }
  auto spool_dir = settings_.spool_dir;
  run.report.after_commit = [this, moves = std::move(moves), spool_dir, log = run.ctx.log, key = run.key_fingerprint]() {
    if (!key.empty()) stored_key_fingerprint_ = key;
    for (const auto& [path, error] : moves)
      move_aside(path, *spool_dir / (error ? "rejected" : "done"), error ? &*error : nullptr, log);
    dirty_ = false;
  };
}

void AttendanceAudit::finish(std::shared_ptr<Run> run) {
  AuditReport& report = run->report;
  // The months this run's imports changed, as store writes (committed with this report).
  // The first writes of the run, so the vector is taken over whole (a term's backfill for
  // 60,000 students is 180,000 month records; pushing them one by one regrew the vector).
  report.records = book_.take_writes();
  for (auto& w : run->key_writes) report.records.push_back(std::move(w));

  Evaluation ev;
  if (calendar_) ev = evaluate(book_, *calendar_, settings_.rule, run->today);

  CaseTally t;
  t.markers = markers_;
  t.publish_names = settings_.publish_names;
  carry_open_cases(*run, ev, t);
  open_new_cases(*run, ev, t);
  write_changed_markers(*run, t);
  report.summary = summarize(*run, ev, t);
  add_findings(*run, ev, t);
  hand_over(*run, t);
  if (run->ctx.log)
    run->ctx.log->info(
        "attendance: {} students, {} open cases ({} overdue), {} opened and {} closed this run, {} class-days with gaps",
        ev.students, t.open_list.size(), t.overdue_count, t.opened_now, t.closed_now, ev.gaps.size());
  run->done(std::move(report));
}

}  // namespace campus::attendance
