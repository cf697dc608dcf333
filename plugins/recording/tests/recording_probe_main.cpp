// recording-probe: runs one recording audit without the daemon and prints the report as one
// JSON line like `campus-agent --dry-run --json`. Used by the integration tests and the benchmark.
//   recording-probe --register FILE [--deep] [--rtsp-timeout 5s] [--http-timeout 5s]
//                   [--deadline 60s] [--min-cameras N] [--max-parallel N] [--min-free 15]
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/sinks/stdout_sinks.h>

#include "audit_run.hpp"

using namespace campus;
using namespace campus::recording;

namespace {

struct NoRecords : RecordReader {
  void scan(const std::string&, const std::function<void(const std::string&, const Json&)>&) const override {}
  std::optional<Json> get(const std::string&, const std::string&) const override { return std::nullopt; }
};

Result<std::string> read_secret(const std::filesystem::path& p) {
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0) return Error{p.string(), "cannot read the secret file", {}};
  if (st.st_mode & 077) return Error{p.string(), "secret file is readable by group or others", "chmod 600 " + p.string()};
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

Millis duration_arg(const char* v) {
  auto d = parse_duration(v);
  if (!d.ok()) {
    std::cerr << "bad duration " << v << ": " << d.error().what << "\n";
    std::exit(2);
  }
  return *d;
}

}  // namespace

int main(int argc, char** argv) {
  RecordingSettings s;
  Millis deadline{60000};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--register") s.register_file = next();
    else if (a == "--deep") s.rtsp.deep_check = true;
    else if (a == "--rtsp-timeout") s.rtsp.timeout = duration_arg(next());
    else if (a == "--http-timeout") s.http_timeout = duration_arg(next());
    else if (a == "--deadline") deadline = duration_arg(next());
    else if (a == "--max-clock-drift") s.max_clock_drift = duration_arg(next());
    else if (a == "--min-cameras") s.min_cameras = std::stoi(next());
    else if (a == "--max-parallel") s.max_parallel = std::stoul(next());
    else if (a == "--min-free") s.min_free_percent = std::stod(next());
    else if (a == "--max-rtsp-response") s.rtsp.max_response_bytes = std::stoul(next());
    else if (a == "--free-percent-path") s.paths.free_percent = next();
    else if (a == "--recording-path") s.paths.recording = next();
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  auto log = std::make_shared<spdlog::logger>("recording", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  asio::io_context io;
  auto http = make_http_client(io);
  NoRecords records;
  AuditContext ctx{io, std::chrono::steady_clock::now() + deadline, std::chrono::system_clock::now(), log, *http,
                   records, {}, std::nullopt};
  std::optional<AuditReport> report;
  auto run = run_recording_audit(ctx, s, read_secret, [&](AuditReport r) { report = std::move(r); });
  io.run();
  if (!report) {
    std::cerr << "the audit never completed\n";
    return 1;
  }
  Json findings = Json::array();
  for (const auto& f : report->findings)
    findings.push_back({{"subject", f.subject}, {"state", f.state}, {"reason", f.reason}, {"details", f.details}});
  Json errors = Json::array();
  for (const auto& e : report->input_errors) errors.push_back(e.message());
  std::cout << Json{{"audit", "recording"}, {"summary", report->summary}, {"findings", findings}, {"errors", errors}}.dump(-1, ' ', false, Json::error_handler_t::replace)
            << std::endl;
  return 0;
}
