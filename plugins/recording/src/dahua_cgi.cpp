// Dahua CGI reply parsers.
#include "dahua_cgi.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>

#include "rtsp_message.hpp"

namespace campus::recording::dahua {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Error not_cgi(std::string_view body, const std::string& what) {
  if (auto e = error_body(body)) return Error{"", "the recorder answered Error: " + *e, ""};
  return Error{"", "reply is not a Dahua " + what + " reply (starts with \"" + printable(body, 40) + "\")",
               "check that recorder_url is the recorder's base address and recorder_api is right"};
}

// A byte count: a finite number up to 1e18 (an exabyte), so sums over a recorder's partitions
// stay finite (two partitions of 1e308 bytes would make the free percentage NaN).
std::optional<double> number(std::string_view s) {
  std::string t(trim(s));
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || !std::isfinite(v) || v > 1e18) return std::nullopt;
  return v;
}

// "list.info[3].Detail[0].TotalBytes" -> 3, and the rest after "]." ("Detail[0].TotalBytes").
std::optional<std::pair<long, std::string_view>> indexed(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix)) return std::nullopt;
  key.remove_prefix(prefix.size());
  long n = 0;
  auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), n);
  if (ec != std::errc() || n < 0 || n > 4096 || p == key.data() + key.size() || *p != ']') return std::nullopt;
  std::string_view rest(p + 1, static_cast<std::size_t>(key.data() + key.size() - (p + 1)));
  if (!rest.empty() && rest.front() == '.') rest.remove_prefix(1);
  return std::pair{n, rest};
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_lines(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!body.empty()) {
    auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    auto key = trim(line.substr(0, eq));
    if (key.empty()) continue;
    out.emplace_back(std::string(key), std::string(trim(line.substr(eq + 1))));
  }
  return out;
}

std::optional<std::string> error_body(std::string_view body) {
  auto t = trim(body);
  if (!t.starts_with("Error")) return std::nullopt;
  auto rest = trim(t.substr(5));
  return printable(rest.empty() ? std::string_view("(no reason given)") : rest, 120);
}

std::optional<std::string> account_lock(std::string_view body) {
  std::string lower;
  for (char c : body.substr(0, 4096)) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  auto at = lower.find("locked");
  if (at == std::string::npos) return std::nullopt;
  // The line that says it, as the recorder wrote it.
  auto begin = lower.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  auto end = lower.find('\n', at);
  return printable(trim(body.substr(begin, end == std::string::npos ? std::string_view::npos : end - begin)), 120);
}

Result<RecorderIdentity> parse_system_info(std::string_view body) {
  RecorderIdentity id;
  for (const auto& [k, v] : parse_lines(body)) {
    if (k == "deviceType") id.model = printable(v, 80);
    else if (k == "serialNumber") id.serial = printable(v, 80);
    else if (k == "softwareVersion") id.firmware = printable(v, 80);
  }
  if (id.model.empty() && id.serial.empty()) return not_cgi(body, "getSystemInfo");
  return id;
}

Result<std::vector<RecorderDisk>> parse_storage(std::string_view body) {
  struct Acc {
    RecorderDisk disk;
    double total = 0, used = 0;
    bool sized = false, partition_error = false;
  };
  std::map<long, Acc> by_index;
  bool any = false;
  for (const auto& [k, v] : parse_lines(body)) {
    auto at = indexed(k, "list.info[");
    if (!at) continue;
    any = true;
    Acc& a = by_index[at->first];
    std::string_view field = at->second;
    if (field == "Name") a.disk.id = printable(v, 60);
    else if (field == "State") a.disk.status = printable(v, 40);
    else if (auto part = indexed(field, "Detail[")) {
      if (part->second == "TotalBytes") {
        if (auto n = number(v); n && *n >= 0) { a.total += *n; a.sized = true; }
      } else if (part->second == "UsedBytes") {
        if (auto n = number(v); n && *n >= 0) a.used += *n;
      } else if (part->second == "IsError") {
        a.partition_error = a.partition_error || v == "true";
      }
    }
  }
  if (!any) {
    if (trim(body).empty()) return std::vector<RecorderDisk>{};  // no disk at all
    return not_cgi(body, "getDeviceAllInfo");
  }
  std::vector<RecorderDisk> disks;
  for (auto& [n, a] : by_index) {
    RecorderDisk d = std::move(a.disk);
    if (d.id.empty()) d.id = "disk " + std::to_string(n + 1);
    d.healthy = d.status == "Success" && !a.partition_error;
    if (a.partition_error) d.status += (d.status.empty() ? "" : ", ") + std::string("partition error");
    if (a.sized) {
      d.capacity_bytes = a.total;
      d.free_bytes = a.total > a.used ? a.total - a.used : 0.0;
    }
    disks.push_back(std::move(d));
  }
  return disks;
}

Result<double> parse_time(std::string_view body, int utc_offset_minutes) {
  for (const auto& [k, v] : parse_lines(body)) {
    if (k != "result") continue;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, used = 0;
    if (std::sscanf(v.c_str(), "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) != 6 ||
        static_cast<std::size_t>(used) != v.size())
      return Error{"", "getCurrentTime result \"" + printable(v) + "\" is not YYYY-MM-DD HH:MM:SS", ""};
    auto when = utc_seconds(y, mo, d, h, mi, s, utc_offset_minutes);
    if (!when) return Error{"", "getCurrentTime result \"" + printable(v) + "\" is not a real date and time", ""};
    return *when;
  }
  return not_cgi(body, "getCurrentTime");
}

Result<std::vector<RecorderChannel>> parse_record_mode(std::string_view body) {
  std::map<long, RecorderChannel> by_index;
  for (const auto& [k, v] : parse_lines(body)) {
    auto at = indexed(k, "table.RecordMode[");
    if (!at || at->second != "Mode") continue;
    RecorderChannel c;
    c.number = static_cast<int>(at->first) + 1;
    c.recording = v == "0" || v == "1";
    c.state = v == "0" ? "automatic" : v == "1" ? "manual" : v == "2" ? "stopped" : "mode " + printable(v, 20);
    by_index[at->first] = std::move(c);
  }
  if (by_index.empty()) return not_cgi(body, "RecordMode");
  std::vector<RecorderChannel> out;
  for (auto& [n, c] : by_index) out.push_back(std::move(c));
  return out;
}

}  // namespace campus::recording::dahua
