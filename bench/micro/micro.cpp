// Micro-benchmarks of the code on the agent's hot paths: parsing what schools and devices send
// (CSV in UTF-8 and GBK, SDP, RTSP responses, digest challenges), the attendance rule,
// envelope building, the attendance month records, the previous summary an audit run is
// given, and the store's commit (synchronous=FULL, as shipped, against NORMAL).
// Run through scripts/bench-micro, which converts the JSON output to the shared result rows.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "book.hpp"
#include "calendar.hpp"
#include "campus/csv.hpp"
#include "csv_import.hpp"
#include "digest_auth.hpp"
#include "core/envelope.hpp"
#include "rtsp_message.hpp"
#include "rule.hpp"
#include "sdp.hpp"
#include "core/sqlite.hpp"
#include "core/store.hpp"

namespace {

using namespace campus;

// A school's attendance export: `students` x `days` rows, one class per 40 students.
std::string attendance_csv(int students, int days, bool chinese) {
  std::string out = "student_id,class,grade,date,status,leave_approved,name\n";
  for (int s = 0; s < students; ++s)
    for (int d = 0; d < days; ++d) {
      char buf[160];
      const char* status = (s * 7 + d) % 50 == 0 ? (chinese ? "缺勤" : "absent") : (chinese ? "出勤" : "present");
      std::snprintf(buf, sizeof buf, "2026%04d,%d-%d,%d,2026-%02d-%02d,%s,%s,%s\n", s, 1 + s / 40 % 6, 1 + s / 240,
                    1 + s / 40 % 6, 9 + d / 20, 1 + d % 20, status, chinese ? "否" : "no", chinese ? "王芳" : "");
      out += buf;
    }
  return out;
}

// GBK bytes of a UTF-8 text, through iconv (the reverse of what the importer does).
std::string to_gbk(const std::string& utf8) {
  auto dir = std::filesystem::temp_directory_path() / ("campus-micro-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto in = dir / "in.csv", out = dir / "out.csv";
  FILE* f = std::fopen(in.c_str(), "wb");
  std::fwrite(utf8.data(), 1, utf8.size(), f);
  std::fclose(f);
  std::string cmd = "iconv -f UTF-8 -t GB18030 " + in.string() + " > " + out.string();
  if (std::system(cmd.c_str()) != 0) std::abort();
  std::string bytes;
  f = std::fopen(out.c_str(), "rb");
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.append(buf, n);
  std::fclose(f);
  std::filesystem::remove_all(dir);
  return bytes;
}

// The attendance importer on 1,000 rows (25 students x 40 days), per row.
void BM_AttendanceCsvImportUtf8(benchmark::State& state) {
  std::string text = attendance_csv(25, 40, false);
  for (auto _ : state) {
    std::size_t n = 0;
    attendance::import_csv_text(text, "bench.csv", attendance::FieldNames{}, attendance::RecordRules{},
                                [&](const attendance::AttendanceRecord& r) { n += r.date; });
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_AttendanceCsvImportUtf8);

// The same rows in Chinese, exported as GBK: detection, conversion, import.
void BM_AttendanceCsvImportGbk(benchmark::State& state) {
  std::string gbk = to_gbk(attendance_csv(25, 40, true));
  for (auto _ : state) {
    auto enc = detect_encoding(gbk);
    auto utf8 = gb18030_to_utf8(gbk);
    std::size_t n = 0;
    attendance::import_csv_text(*utf8, "bench.csv", attendance::FieldNames{}, attendance::RecordRules{},
                                [&](const attendance::AttendanceRecord& r) { n += r.date; });
    benchmark::DoNotOptimize(enc);
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_AttendanceCsvImportGbk);

// The core's table parser (room registers, calendars): 1,000 rows of a room register.
void BM_RegisterCsvParse(benchmark::State& state) {
  std::string text = "id,name,type,building,floor,switch,port,endpoint\n";
  for (int i = 0; i < 1000; ++i)
    text += "R" + std::to_string(i) + ",Room " + std::to_string(i) + ",classroom,A," + std::to_string(i / 40) +
            ",sw" + std::to_string(i / 48) + "," + std::to_string(1 + i % 48) + ",icmp:127.0.0.1\n";
  for (auto _ : state) {
    auto t = parse_csv(text, "rooms.csv", {"id", "name", "type"});
    benchmark::DoNotOptimize(t.rows.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_RegisterCsvParse);

// The absence rule over one term (90 school days) of 1,000 students, per student.
void BM_AbsenceRule(benchmark::State& state) {
  auto cal = attendance::SchoolCalendar::parse(
      "kind,start,end,name\nterm,2026-09-01,2027-01-22,Autumn\nholiday,2026-10-01,2026-10-07,National Day\n",
      "calendar.csv");
  attendance::AttendanceBook book;
  attendance::AttendanceRecord r;
  r.class_name = "1-1";
  r.grade = "1";
  std::vector<attendance::Day> days;
  for (auto d = *attendance::parse_day("2026-09-01"); days.size() < 90; ++d)
    if (cal->is_school_day(d)) days.push_back(d);
  for (int s = 0; s < 1000; ++s) {
    r.student = "2026" + std::to_string(10000 + s);
    for (std::size_t k = 0; k < days.size(); ++k) {
      r.date = days[k];
      // Every 40th student has a run of 4 days; others an absence now and then.
      bool absent = (s % 40 == 0 && k >= 30 && k < 34) || (s * 7 + static_cast<int>(k)) % 50 == 0;
      r.status = absent ? attendance::DayStatus::Absent : attendance::DayStatus::Present;
      book.put(r);
    }
  }
  attendance::RuleSettings rule;
  for (auto _ : state) {
    auto ev = attendance::evaluate(book, *cal, rule, days.back());
    benchmark::DoNotOptimize(ev.standings.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_AbsenceRule);

// The month records of a term's backfill (what the plugin hands the store): 1,000 students x
// 90 school days -> ~5,000 records, per student.
void BM_AttendanceMonthRecords(benchmark::State& state) {
  attendance::AttendanceRecord r;
  r.class_name = "3-2";
  r.grade = "3";
  auto first = *attendance::parse_day("2026-09-01");
  for (auto _ : state) {
    state.PauseTiming();
    attendance::AttendanceBook book;
    for (int s = 0; s < 1000; ++s) {
      r.student = "2026" + std::to_string(10000 + s);
      for (int k = 0; k < 126; ++k) {  // weekdays of 18 weeks
        if (k % 7 >= 5) continue;
        r.date = first + k;
        book.put(r);
      }
    }
    state.ResumeTiming();
    auto writes = book.take_writes();
    benchmark::DoNotOptimize(writes.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_AttendanceMonthRecords);

// One report envelope (a fiber report of 48 findings) built and serialized.
void BM_EnvelopeJson(benchmark::State& state) {
  Identity who{"zhenkang", "nansan", "+08:00"};
  Json body = {{"summary", {{"rooms", 48}, {"covered", 47}}}, {"findings", Json::array()}};
  for (int i = 0; i < 48; ++i)
    body["findings"].push_back({{"subject", "R" + std::to_string(i)}, {"state", "covered"}, {"reason", ""},
                                {"details", {{"switch", "sw1"}, {"port", std::to_string(i + 1)}, {"rx_dbm", -5.5}}}});
  auto ts = std::chrono::system_clock::now();
  for (auto _ : state) {
    auto env = envelope(who, "report", ts, body, 42, "fiber");
    std::string payload = env.dump();
    benchmark::DoNotOptimize(payload.data());
  }
}
BENCHMARK(BM_EnvelopeJson);

void BM_SdpParse(benchmark::State& state) {
  const std::string sdp =
      "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Classroom 3-2\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n"
      "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
      "a=control:trackID=1\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=control:trackID=2\r\n";
  for (auto _ : state) {
    recording::Sdp out;
    std::string error;
    bool ok = recording::parse_sdp(sdp, out, error);
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_SdpParse);

// A DESCRIBE response arriving in one read, parsed by the incremental reader.
void BM_RtspResponseParse(benchmark::State& state) {
  const std::string body = "v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
  const std::string msg = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://127.0.0.1:8554/live/\r\n"
                          "Content-Type: application/sdp\r\nServer: GStreamer RTSP server\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (auto _ : state) {
    recording::RtspReader reader(1 << 16);
    auto ev = reader.feed(msg);
    benchmark::DoNotOptimize(ev);
  }
}
BENCHMARK(BM_RtspResponseParse);

void BM_DigestAuth(benchmark::State& state) {
  const std::string header =
      "Digest realm=\"IP Camera\", nonce=\"5f1d8e0b6a7c4d3e\", qop=\"auth\", algorithm=MD5, Basic realm=\"x\"";
  recording::DigestInput in{"admin", "secret", "DESCRIBE", "rtsp://127.0.0.1:8554/live", "0a4f113b", 1};
  for (auto _ : state) {
    auto cs = recording::parse_challenges(header);
    auto auth = recording::digest_authorization(cs.at(0), in);
    benchmark::DoNotOptimize(auth);
  }
}
BENCHMARK(BM_DigestAuth);

// The store's commit of one fiber report of 60 findings, as shipped (synchronous=FULL, WAL),
// on a temp dir (the disk under it decides most of this: one fsync per commit).
void BM_StoreCommit(benchmark::State& state) {
  auto dir = std::filesystem::temp_directory_path() / ("campus-micro-store-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto store = Store::open(dir / "agent.db", StoreOptions{});
  if (!store) {
    state.SkipWithError(store.error().message().c_str());
    return;
  }
  Identity who{"zhenkang", "nansan", "+08:00"};
  AuditReport report;
  report.summary = {{"rooms", 60}};
  for (int i = 0; i < 60; ++i) report.findings.push_back({"R" + std::to_string(i), "covered", "", Json::object()});
  int k = 0;
  for (auto _ : state) {
    report.findings[0].state = (++k % 2) ? "down" : "covered";  // one event per commit
    auto r = (*store)->commit(who, "fiber", std::chrono::system_clock::now(), report);
    if (!r) state.SkipWithError(r.error().message().c_str());
  }
  store->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_StoreCommit)->UseRealTime();

// The previous summary an audit run is given, from a store whose last fiber report has 6,000
// findings (2 MB): the whole report parsed (arg 0, what the agent did) or the summary alone
// through json_extract (arg 1, Store::latest_summary).
void BM_PreviousSummary(benchmark::State& state) {
  auto dir = std::filesystem::temp_directory_path() / ("campus-micro-summary-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    auto store = Store::open(dir / "agent.db", StoreOptions{});
    if (!store) {
      state.SkipWithError(store.error().message().c_str());
      return;
    }
    AuditReport report;
    report.summary = {{"rooms", 6000}, {"covered", 6000}};
    for (int i = 0; i < 6000; ++i)
      report.findings.push_back({"R" + std::to_string(i), "covered", "",
                                 {{"switch", "sw" + std::to_string(i / 48)}, {"port", std::to_string(i % 48 + 1)},
                                  {"if_name", "GigabitEthernet1/0/" + std::to_string(i % 48 + 1)},
                                  {"oper", "up"}, {"admin", "up"}, {"speed_mbps", 1000}, {"rx_dbm", -5.5},
                                  {"endpoint", "icmp:127.0.0.1"}, {"reachable", true}, {"rtt_ms", 0.1}}});
    auto c = (*store)->commit(Identity{"zhenkang", "nansan", "+08:00"}, "fiber", std::chrono::system_clock::now(), report);
    if (!c) state.SkipWithError(c.error().message().c_str());
    for (auto _ : state) {
      std::optional<Json> summary;
      if (state.range(0) == 0) {
        if (auto body = (*store)->latest_report("fiber").value(); body && body->contains("summary")) summary = (*body)["summary"];
      } else {
        summary = (*store)->latest_summary("fiber").value();
      }
      benchmark::DoNotOptimize(summary);
    }
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_PreviousSummary)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// What synchronous=FULL costs against NORMAL for a commit-shaped transaction (three inserts),
// on the same WAL database: arg 2 = FULL, 1 = NORMAL.
void BM_SqliteCommitSync(benchmark::State& state) {
  auto dir = std::filesystem::temp_directory_path() / ("campus-micro-sync-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    sqlite::Connection db((dir / "t.db").string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(state.range(0) == 2 ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    db.exec("CREATE TABLE outbox(seq INTEGER PRIMARY KEY, topic TEXT, payload TEXT)");
    auto ins = db.prepare("INSERT INTO outbox(topic, payload) VALUES (?, ?)");
    const std::string payload(2000, 'x');
    for (auto _ : state) {
      db.exec("BEGIN IMMEDIATE");
      for (int i = 0; i < 3; ++i) {
        ins.bind_all("campus/v1/zhenkang/nansan/report/fiber", payload).run();
        ins.reset();
      }
      db.exec("COMMIT");
    }
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SqliteCommitSync)->Arg(2)->Arg(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
