// Hikvision ISAPI reply parsers.
#include "hikvision_isapi.hpp"

#include <charconv>
#include <cstdio>

#include "rtsp_message.hpp"
#include "xml.hpp"

namespace campus::recording::hikvision {
namespace {

Error not_isapi(std::string_view xml, std::string_view root, const std::string& why) {
  return Error{"", "reply is not ISAPI <" + std::string(root) + "> XML (" + why + "; starts with \"" +
                       printable(xml, 40) + "\")",
               "check that recorder_url is the recorder's base address and recorder_api is right"};
}

std::optional<long> integer(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  long v = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || p != text->data() + text->size()) return std::nullopt;
  return v;
}

// The root element must be there and the document well-formed.
std::optional<Error> check_root(std::string_view xml, std::string_view root) {
  if (auto why = xml_check(xml); !why.empty()) return not_isapi(xml, root, "malformed XML: " + why);
  if (!xml_find(xml, root)) return not_isapi(xml, root, "no <" + std::string(root) + "> element");
  return std::nullopt;
}

}  // namespace

Result<RecorderIdentity> parse_device_info(std::string_view xml) {
  if (auto e = check_root(xml, "DeviceInfo")) return *e;
  RecorderIdentity id;
  id.model = xml_text(xml, "model").value_or("");
  id.serial = xml_text(xml, "serialNumber").value_or("");
  id.firmware = xml_text(xml, "firmwareVersion").value_or("");
  if (auto built = xml_text(xml, "firmwareReleasedDate"); built && !built->empty() && !id.firmware.empty())
    id.firmware += " " + *built;
  if (id.model.empty() && id.serial.empty()) return not_isapi(xml, "DeviceInfo", "neither model nor serialNumber");
  return id;
}

Result<std::vector<RecorderDisk>> parse_storage(std::string_view xml) {
  if (auto e = check_root(xml, "storage")) return *e;
  std::vector<RecorderDisk> disks;
  auto read = [&](std::string_view element, const std::string& prefix) {
    for (const auto& e : xml_find_all(xml, element)) {
      RecorderDisk d;
      d.id = prefix + xml_text(e.inner, "id").value_or("?");
      d.status = xml_text(e.inner, "status").value_or("");
      d.healthy = d.status == "ok" || d.status == "idle" || d.status == "sleeping";
      constexpr double kMiB = 1024.0 * 1024.0;  // ISAPI capacity and freeSpace are in MB
      if (auto c = integer(xml_text(e.inner, "capacity")); c && *c >= 0) d.capacity_bytes = *c * kMiB;
      if (auto f = integer(xml_text(e.inner, "freeSpace")); f && *f >= 0) d.free_bytes = *f * kMiB;
      disks.push_back(std::move(d));
    }
  };
  read("hdd", "");
  read("nas", "nas ");
  return disks;
}

Result<double> parse_time(std::string_view xml, int utc_offset_minutes) {
  if (auto e = check_root(xml, "Time")) return *e;
  auto local = xml_text(xml, "localTime");
  if (!local) return not_isapi(xml, "Time", "no <localTime>");
  const std::string& t = *local;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, used = 0;
  double s = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &s, &used) != 6)
    return Error{"", "localTime \"" + printable(t) + "\" is not YYYY-MM-DDTHH:MM:SS[+HH:MM]", ""};
  int offset = utc_offset_minutes;
  std::string_view zone = std::string_view(t).substr(static_cast<std::size_t>(used));
  if (zone == "Z") offset = 0;
  else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int zh = 0, zm = 0;
    if (std::sscanf(std::string(zone.substr(1)).c_str(), "%2d:%2d", &zh, &zm) != 2 || zh > 14 || zm > 59)
      return Error{"", "localTime \"" + printable(t) + "\" has an unreadable UTC offset", ""};
    offset = (zone[0] == '-' ? -1 : 1) * (zh * 60 + zm);
  } else if (!zone.empty()) {
    return Error{"", "localTime \"" + printable(t) + "\" has an unreadable UTC offset", ""};
  }
  auto when = utc_seconds(y, mo, d, h, mi, s, offset);
  if (!when) return Error{"", "localTime \"" + printable(t) + "\" is not a real date and time", ""};
  return *when;
}

Result<std::vector<RecorderChannel>> parse_working_status(std::string_view xml) {
  if (auto e = check_root(xml, "WorkingStatus")) return *e;
  std::vector<RecorderChannel> channels;
  for (const auto& e : xml_find_all(xml, "ChanStatus")) {
    RecorderChannel c;
    auto number = integer(xml_text(e.inner, "chanNo"));
    if (!number || *number < 1 || *number > 4096) continue;  // not a channel of ours to judge
    c.number = static_cast<int>(*number);
    if (auto online = integer(xml_text(e.inner, "online"))) c.online = *online == 1;
    auto record = integer(xml_text(e.inner, "record"));
    c.recording = record && *record == 1;
    c.state = !record ? "record not reported" : c.recording ? "recording" : "not recording";
    channels.push_back(std::move(c));
  }
  return channels;
}

std::optional<std::string> account_lock(std::string_view body) {
  if (!xml_find(body, "userCheck")) return std::nullopt;
  auto lock = xml_text(body, "lockStatus");
  if (!lock || *lock != "lock") return std::nullopt;
  std::string s = "locked";
  if (auto t = integer(xml_text(body, "unlockTime")); t && *t > 0) s += ", unlocks in " + std::to_string(*t) + " s";
  return s;
}

std::optional<std::string> response_status(std::string_view body) {
  if (!xml_find(body, "ResponseStatus")) return std::nullopt;
  std::string s = xml_text(body, "statusString").value_or("");
  if (auto sub = xml_text(body, "subStatusCode"); sub && !sub->empty()) s += (s.empty() ? "" : " ") + ("(" + *sub + ")");
  return printable(s, 120);
}

}  // namespace campus::recording::hikvision
