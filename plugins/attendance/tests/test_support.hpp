// Shared helpers for the attendance tests: a test calendar, a book built from day strings,
// and an in-memory stand-in for the core's store (records + cases) and HTTP client.
#pragma once
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "attendance_audit.hpp"

namespace campus::attendance::testing {

// Autumn term 2026: National Day holiday Thu 2026-10-01..Wed 10-07, make-up Saturday 10-10.
inline const char* kCalendarCsv =
    "kind,start,end,name\n"
    "term,2026-09-01,2027-01-22,Autumn 2026\n"
    "holiday,2026-10-01,2026-10-07,National Day\n"
    "makeup,2026-10-10,,Make-up for National Day\n"
    "holiday,2027-01-01,,New Year\n";

inline SchoolCalendar test_calendar() {
  auto c = SchoolCalendar::parse(kCalendarCsv, "calendar.csv");
  if (!c) throw std::runtime_error(c.error().message());
  return *c;
}

inline Day D(const char* text) {
  auto d = parse_day(text);
  if (!d) throw std::runtime_error(std::string("bad test date ") + text);
  return *d;
}

// One day's mark: P present, L late, A absent, E leave approved, U leave not approved.
inline AttendanceRecord rec(const std::string& student, const char* date, char mark, const std::string& cls = "3-2") {
  AttendanceRecord r;
  r.student = student;
  r.class_name = cls;
  r.grade = "3";
  r.date = D(date);
  switch (mark) {
    case 'P': r.status = DayStatus::Present; break;
    case 'L': r.status = DayStatus::Late; break;
    case 'A': r.status = DayStatus::Absent; break;
    case 'E': r.status = DayStatus::Leave; r.leave_approved = true; break;
    case 'U': r.status = DayStatus::Leave; break;
    default: throw std::runtime_error("bad mark");
  }
  return r;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/attendance-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::error_code ec; std::filesystem::remove_all(path, ec); }
  std::filesystem::path write(const std::string& name, const std::string& bytes) const {
    auto p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
};

// The core's side, in memory: records by kind and key, and cases with their history.
class FakeStore : public RecordReader {
 public:
  void scan(const std::string& kind, const std::function<void(const std::string&, const Json&)>& fn) const override {
    auto it = records.find(kind);
    if (it == records.end()) return;
    for (const auto& [k, v] : it->second) fn(k, v);
  }
  std::optional<Json> get(const std::string& kind, const std::string& key) const override {
    auto it = records.find(kind);
    if (it == records.end()) return std::nullopt;
    auto jt = it->second.find(key);
    return jt == it->second.end() ? std::nullopt : std::optional<Json>(jt->second);
  }
  // Applies a report as the core's commit would, then runs after_commit.
  void commit(AuditReport& report, const std::string& at) {
    for (const auto& w : report.records) {
      if (w.value) records[w.kind][w.key] = *w.value;
      else records[w.kind].erase(w.key);
    }
    for (const auto& a : report.case_actions) {
      if (a.kind == CaseAction::Kind::Open) {
        for (const auto& c : cases)
          if (c.subject == a.subject && c.stage != "closed") throw std::runtime_error("second open case for " + a.subject);
        CaseView c;
        c.id = "attendance-" + a.subject + "-" + std::to_string(++counter[a.subject]);
        c.subject = a.subject;
        c.stage = "open";
        c.opened_at = at;
        c.details = a.details;
        c.steps.push_back({at, "opened", "agent", a.note});
        cases.push_back(c);
      } else {
        CaseView* c = open_case(a.subject);
        if (!c) throw std::runtime_error("no open case for " + a.subject);
        if (a.kind == CaseAction::Kind::Update) {
          c->details = a.details;
          c->steps.push_back({at, "updated", "agent", a.note});
        } else {
          c->stage = "closed";
          c->outcome = case_step_name(a.outcome);
          c->closed_at = at;
          c->steps.push_back({at, case_step_name(a.outcome), "agent", a.note});
        }
      }
    }
    if (report.after_commit) report.after_commit();
  }
  CaseView* open_case(const std::string& subject) {
    for (auto& c : cases)
      if (c.subject == subject && c.stage != "closed") return &c;
    return nullptr;
  }
  std::vector<CaseView> open_cases() const {
    std::vector<CaseView> out;
    for (const auto& c : cases)
      if (c.stage != "closed") out.push_back(c);
    return out;
  }
  std::map<std::string, std::map<std::string, Json>> records;
  std::vector<CaseView> cases;
  std::map<std::string, int> counter;
};

// Scripted HTTP: each request is answered by `respond` (status + body, or an Error).
class FakeHttp : public HttpClient {
 public:
  explicit FakeHttp(asio::io_context& io) : io_(io) {}
  std::function<Result<HttpResponse>(const HttpRequest&)> respond;
  std::vector<HttpRequest> requests;
  void fetch(HttpRequest request, std::function<void(Result<HttpResponse>)> done) override {
    requests.push_back(request);
    auto r = respond(request);
    asio::post(io_, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }
  void cancel_all() override {}

 private:
  asio::io_context& io_;
};

// Runs one audit to completion at local time `local` ("2026-11-09T18:00:00") in +08:00.
inline AuditReport run_audit(AttendanceAudit& audit, FakeStore& store, HttpClient& http, asio::io_context& io,
                             const std::string& local) {
  std::tm tm{};
  strptime(local.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  auto now = std::chrono::system_clock::from_time_t(timegm(&tm)) - std::chrono::hours(8);
  std::optional<AuditReport> out;
  AuditContext ctx{io, std::chrono::steady_clock::now() + std::chrono::seconds(30), now, nullptr, http, store,
                   store.open_cases(), std::nullopt};
  audit.audit(ctx, [&](AuditReport r) { out = std::move(r); });
  io.restart();
  io.run();
  if (!out) throw std::runtime_error("audit did not finish");
  return std::move(*out);
}

}  // namespace campus::attendance::testing
