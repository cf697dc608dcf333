// JSON paths and recorder status interpretation.
#include "recorder_status.hpp"

#include "rtsp_message.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace campus::recording {
namespace {

struct Step {
  bool index = false;
  std::string key;
  std::size_t n = 0;
};

bool parse_path(const std::string& path, std::vector<Step>& steps, std::string& error) {
  steps.clear();
  if (path.empty()) {
    error = "empty JSON path";
    return false;
  }
  if (path[0] == '/') return true;  // JSON pointer, handled by nlohmann
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[') {
      auto close = path.find(']', i);
      if (close == std::string::npos || close == i + 1) {
        error = "unclosed or empty [ ] in JSON path \"" + path + "\"";
        return false;
      }
      std::string num = path.substr(i + 1, close - i - 1);
      if (!std::all_of(num.begin(), num.end(), [](unsigned char c) { return std::isdigit(c); })) {
        error = "index \"" + num + "\" in JSON path \"" + path + "\" is not a number";
        return false;
      }
      steps.push_back({true, {}, std::stoul(num)});
      i = close + 1;
      if (i < path.size() && path[i] == '.') ++i;
      continue;
    }
    auto e = path.find_first_of(".[", i);
    if (e == std::string::npos) e = path.size();
    if (e == i) {
      error = "empty key in JSON path \"" + path + "\"";
      return false;
    }
    steps.push_back({false, path.substr(i, e - i), 0});
    i = e;
    if (i < path.size() && path[i] == '.') {
      ++i;
      if (i == path.size()) {
        error = "JSON path \"" + path + "\" ends with '.'";
        return false;
      }
    }
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<double> as_number(const Json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    try {
      std::string s = v.get<std::string>();
      while (!s.empty() && (s.back() == '%' || s.back() == ' ')) s.pop_back();
      std::size_t used = 0;
      double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (...) {
    }
  }
  return std::nullopt;
}

}  // namespace

std::string json_path_check(const std::string& path) {
  std::vector<Step> steps;
  std::string error;
  if (!parse_path(path, steps, error)) return error;
  if (path[0] == '/') {
    try {
      Json::json_pointer p(path);
    } catch (const std::exception& e) {
      return "invalid JSON pointer \"" + path + "\": " + e.what();
    }
  }
  return {};
}

const Json* json_at(const Json& doc, const std::string& path, std::string* error) {
  std::vector<Step> steps;
  std::string err;
  if (!parse_path(path, steps, err)) {
    if (error) *error = err;
    return nullptr;
  }
  if (path[0] == '/') {
    try {
      Json::json_pointer p(path);
      if (!doc.contains(p)) return nullptr;
      return &doc.at(p);
    } catch (const std::exception& e) {
      if (error) *error = e.what();
      return nullptr;
    }
  }
  const Json* cur = &doc;
  for (const auto& s : steps) {
    if (s.index) {
      if (!cur->is_array() || s.n >= cur->size()) return nullptr;
      cur = &(*cur)[s.n];
    } else {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(s.key);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    }
  }
  return cur;
}

RecorderStatus parse_recorder_status(long http_status, const std::string& body, const RecorderPaths& paths) {
  RecorderStatus st;
  if (http_status < 200 || http_status > 299) {
    st.error = "status URL answered HTTP " + std::to_string(http_status);
    return st;
  }
  Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    st.error = "status reply is not JSON (starts with \"" + printable(body, 40) + "\")";
    return st;
  }
  if (!doc.is_object()) {
    st.error = "status reply is JSON but not an object";
    return st;
  }
  st.answered = true;

  if (const Json* v = json_at(doc, paths.recording)) {
    st.raw_fields[paths.recording] = *v;
    if (v->is_boolean()) {
      st.recording = v->get<bool>();
    } else if (v->is_string() || v->is_number()) {
      std::string s = lower(v->is_string() ? v->get<std::string>() : v->dump());
      st.recording = std::any_of(paths.recording_values.begin(), paths.recording_values.end(),
                                 [&](const std::string& w) { return lower(w) == s; });
    } else {
      st.recording_error = "field " + paths.recording + " is " + std::string(v->type_name()) + ", expected a boolean or string";
    }
  } else {
    st.recording_error = "field " + paths.recording + " missing in the recorder status";
  }

  if (const Json* v = json_at(doc, paths.free_percent)) {
    st.raw_fields[paths.free_percent] = *v;
    st.free_percent = as_number(*v);
    if (!st.free_percent) st.storage_error = "field " + paths.free_percent + " is not a number: " + v->dump();
  } else {
    const Json* f = json_at(doc, paths.free_bytes);
    const Json* t = json_at(doc, paths.total_bytes);
    if (f && t) {
      st.raw_fields[paths.free_bytes] = *f;
      st.raw_fields[paths.total_bytes] = *t;
      auto fv = as_number(*f), tv = as_number(*t);
      if (fv && tv && *tv > 0 && *fv >= 0) st.free_percent = 100.0 * *fv / *tv;
      else st.storage_error = "fields " + paths.free_bytes + " / " + paths.total_bytes + " are not usable numbers";
    } else {
      st.storage_error = "field " + paths.free_percent + " (or " + paths.free_bytes + " and " + paths.total_bytes +
                         ") missing in the recorder status";
    }
  }
  if (st.free_percent && (*st.free_percent < 0 || *st.free_percent > 100)) {
    st.storage_error = "free storage " + std::to_string(*st.free_percent) + "% is outside 0..100";
    st.free_percent.reset();
  }
  return st;
}

namespace {

std::string gib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", bytes / (1024.0 * 1024.0 * 1024.0));
  return b;
}

std::string join_numbers(const std::vector<int>& n) {
  std::string s;
  for (std::size_t i = 0; i < n.size(); ++i) s += (i == 0 ? "" : i + 1 == n.size() ? " and " : ", ") + std::to_string(n[i]);
  return s;
}

}  // namespace

void apply_disks(const std::vector<RecorderDisk>& disks, RecorderStatus& st) {
  double capacity = 0, free = 0;
  for (const auto& d : disks) {
    Json j = {{"id", d.id}, {"status", d.status}, {"healthy", d.healthy}};
    if (d.capacity_bytes) j["capacity_gib"] = std::stod(gib(*d.capacity_bytes));
    if (d.free_bytes) j["free_gib"] = std::stod(gib(*d.free_bytes));
    st.disks.push_back(std::move(j));
    if (!d.healthy) {
      st.storage_faults.push_back("disk " + d.id + " reports status \"" + (d.status.empty() ? "none" : d.status) + "\"");
      continue;
    }
    if (d.capacity_bytes && d.free_bytes && *d.capacity_bytes > 0) {
      capacity += *d.capacity_bytes;
      free += std::min(*d.free_bytes, *d.capacity_bytes);
    }
  }
  if (disks.empty()) st.storage_faults.push_back("the recorder reports no disk to record on");
  // 100 * free / capacity can round above 100 when nothing is used (found by fuzz_dahua: a
  // 400044304999999-byte disk with no UsedBytes gave 100.00000000000001).
  if (capacity > 0 && std::isfinite(capacity) && std::isfinite(free))
    st.free_percent = std::min(100.0, 100.0 * free / capacity);
  else if (!disks.empty() && st.storage_faults.empty()) st.storage_error = "the recorder reports no capacity for its disks";
}

void apply_channels(const std::vector<RecorderChannel>& channels, RecorderStatus& st) {
  std::vector<int> idle, offline;
  for (const auto& c : channels) {
    Json j = {{"channel", c.number}, {"recording", c.recording}, {"state", c.state}};
    if (c.online) j["online"] = *c.online;
    st.channels.push_back(std::move(j));
    if (c.online && !*c.online) offline.push_back(c.number);
    else if (!c.recording) idle.push_back(c.number);
  }
  if (channels.empty()) {
    st.recording_error = "the recorder reports no channels";
    return;
  }
  if (idle.empty() && offline.size() == channels.size()) {
    st.recording = false;
    st.recording_reason = "no channel of the recorder is online (" + join_numbers(offline) + " offline)";
    return;
  }
  st.recording = idle.empty();
  if (!idle.empty())
    st.recording_reason = std::string(idle.size() == 1 ? "channel " : "channels ") + join_numbers(idle) +
                          (idle.size() == 1 ? " is" : " are") + " not recording";
}

}  // namespace campus::recording
