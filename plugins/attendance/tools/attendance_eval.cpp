// attendance-eval: imports attendance CSV or XLSX files and evaluates the absence rule, printing
// one JSON line (counts, timings, peak RSS). The benchmark's subject: the same code the plugin runs.
//   attendance-eval --calendar calendar.csv --today 2027-01-22 [--threshold 3] [--pseudonymize]
//                   FILE.csv|FILE.xlsx...
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "book.hpp"
#include "calendar.hpp"
#include "csv_import.hpp"
#include "rule.hpp"
#include "xlsx_import.hpp"

using namespace campus::attendance;

int main(int argc, char** argv) {
  std::string calendar_file, today_text;
  RuleSettings rule;
  std::vector<std::string> files;
  bool pseudonymize = false;  // every student key through HMAC-SHA256, as pseudonymize_students
  bool with_writes = false;  // also build the store writes, as a backfill through the plugin does
  std::vector<campus::RecordWrite> writes;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--calendar" && i + 1 < argc) calendar_file = argv[++i];
    else if (a == "--today" && i + 1 < argc) today_text = argv[++i];
    else if (a == "--threshold" && i + 1 < argc) rule.threshold_days = std::stoi(argv[++i]);
    else if (a == "--leave-breaks-run") rule.leave_breaks_run = true;
    else if (a == "--writes") with_writes = true;
    else if (a == "--pseudonymize") pseudonymize = true;
    else files.push_back(a);
  }
  auto cal = SchoolCalendar::load(calendar_file);
  auto today = parse_day(today_text);
  if (!cal || !today || files.empty()) {
    std::fprintf(stderr, "usage: attendance-eval --calendar FILE --today YYYY-MM-DD FILE.csv...\n%s\n",
                 cal ? "" : cal.error().message().c_str());
    return 2;
  }
  RecordRules rules_for_import;
  if (pseudonymize)
    rules_for_import.pseudonyms =
        std::make_shared<const campus::StudentPseudonyms>(campus::StudentPseudonyms::from_key("attendance-eval key"));
  auto t0 = std::chrono::steady_clock::now();
  AttendanceBook book;
  std::size_t bad = 0;
  for (const auto& f : files) {
    auto sink = [&](const AttendanceRecord& rec) { book.put(rec); };
    const bool xlsx = f.size() > 5 && f.substr(f.size() - 5) == ".xlsx";
    auto r = xlsx ? import_xlsx_file(f, FieldNames{}, "", rules_for_import, sink)
                  : import_csv_file(f, FieldNames{}, rules_for_import, sink);
    bad += r.errors.size();
    for (std::size_t i = 0; i < r.errors.size() && i < 5; ++i) std::fprintf(stderr, "%s\n", r.errors[i].message().c_str());
  }
  if (with_writes) writes = book.take_writes();
  auto t1 = std::chrono::steady_clock::now();
  Evaluation ev = evaluate(book, *cal, rule, *today);
  auto t2 = std::chrono::steady_clock::now();
  std::size_t runs = 0, ongoing = 0;
  for (const auto& st : ev.standings)
    for (const auto& r : st.runs) {
      ++runs;
      if (!r.returned_on) ++ongoing;
    }
  // Current and peak RSS from the kernel, to see what the book itself holds.
  long vm_rss = 0, vm_hwm = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      std::sscanf(line, "VmRSS: %ld", &vm_rss);
      std::sscanf(line, "VmHWM: %ld", &vm_hwm);
    }
    std::fclose(f);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  nlohmann::json out = {{"records", book.record_count()}, {"students", ev.students}, {"bad_rows", bad},
                        {"qualifying_runs", runs}, {"ongoing_runs", ongoing}, {"students_with_runs", ev.standings.size()},
                        {"gap_class_days", ev.gaps.size()}, {"import_ms", ms(t0, t1)}, {"evaluate_ms", ms(t1, t2)},
                        {"total_ms", ms(t0, t2)}, {"peak_rss_kib", ru.ru_maxrss}, {"rss_at_end_kib", vm_rss}, {"store_writes", writes.size()}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
