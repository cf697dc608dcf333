// Test host: runs one fiber audit with settings from the command line and prints
// {"audit","summary","findings","errors"} as one JSON line, like `campus-agent --dry-run --json`.
#include <fstream>
#include <iostream>
#include <sstream>

#include "fiber_audit.hpp"

using namespace campus;
using namespace campus::fiber;

int main(int argc, char** argv) {
  FiberSettings s;
  s.profile_dirs.push_back(builtin_profile_dir());
  Millis deadline{60000};
  int repeat = 1;
  auto read_plain = [](const std::filesystem::path& f) -> Result<std::string> {
    std::ifstream in(f);
    if (!in) return Error{f.string(), "cannot read", ""};
    std::stringstream ss;
    ss << in.rdbuf();
    std::string v = ss.str();
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
    return v;
  };
  s.read_secret = read_plain;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--rooms") s.rooms_file = v;
    else if (k == "--switches") s.switches_file = v;
    else if (k == "--community-file") s.community = read_plain(v).value();
    else if (k == "--profiles-dir") s.profile_dirs.push_back(v);
    else if (k == "--default-profile") s.default_profile = v;
    else if (k == "--snmp-timeout-ms") s.snmp_timeout = Millis(std::stol(v));
    else if (k == "--snmp-retries") s.snmp_retries = std::stoi(v);
    else if (k == "--endpoint-timeout-ms") s.endpoint_timeout = Millis(std::stol(v));
    else if (k == "--deadline-ms") deadline = Millis(std::stol(v));
    else if (k == "--min-speed-mbps") s.limits.min_speed_mbps = std::stol(v);
    else if (k == "--max-parallel-probes") s.max_parallel_probes = std::stoi(v);
    else if (k == "--repeat") repeat = std::stoi(v);
    else { std::cerr << "unknown option " << k << "\n"; return 2; }
  }
  auto log = spdlog::default_logger();
  for (int n = 0; n < repeat; ++n) {
    asio::io_context io;
    Json out;
    auto run = std::make_shared<FiberRun>(io, s, std::chrono::steady_clock::now() + deadline, log,
                                          [&](AuditReport r) {
                                            Json findings = Json::array();
                                            for (auto& f : r.findings)
                                              findings.push_back({{"subject", f.subject}, {"state", f.state}, {"reason", f.reason}, {"details", f.details}});
                                            Json errors = Json::array();
                                            for (auto& e : r.input_errors) errors.push_back(e.message());
                                            out = {{"audit", "fiber"}, {"summary", r.summary}, {"findings", findings}, {"errors", errors}};
                                          });
    run->start();
    run.reset();
    io.run();
    std::cout << out.dump() << std::endl;
  }
  return 0;
}
