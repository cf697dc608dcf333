// Reading the recording-classroom register.
#include "classroom_register.hpp"

#include "rtsp_probe.hpp"

#include <cctype>
#include <charconv>
#include <map>
#include <set>

namespace campus::recording {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.pop_back();
  return s;
}

bool valid_role(const std::string& r) {
  if (r.empty()) return false;
  for (char c : r)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

// Checks scheme://host... and that no user:password@ is embedded.
std::string check_url(const std::string& url, const std::vector<std::string>& schemes) {
  auto sep = url.find("://");
  if (sep == std::string::npos) return "\"" + url + "\" is not a URL";
  std::string scheme = url.substr(0, sep);
  bool ok = false;
  for (const auto& s : schemes) ok = ok || s == scheme;
  if (!ok) {
    std::string list;
    for (const auto& s : schemes) list += (list.empty() ? "" : " or ") + s + "://";
    return "\"" + url + "\" must start with " + list;
  }
  auto host_end = url.find('/', sep + 3);
  std::string authority = url.substr(sep + 3, host_end == std::string::npos ? std::string::npos : host_end - sep - 3);
  if (authority.empty()) return "\"" + url + "\" has no host";
  if (authority.find('@') != std::string::npos) return "credentials inside the URL are not allowed";
  return {};
}

}  // namespace

std::vector<StreamSpec> parse_streams(const std::string& cell, std::string& error) {
  std::vector<StreamSpec> out;
  std::set<std::string> roles;
  std::size_t i = 0;
  std::string s = trim(cell);
  if (s.empty()) {
    error = "no streams: expected role=rtsp://... separated by ';'";
    return {};
  }
  while (i <= s.size()) {
    auto j = s.find(';', i);
    if (j == std::string::npos) j = s.size();
    std::string item = trim(s.substr(i, j - i));
    i = j + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      error = "stream \"" + item + "\" has no role: expected role=rtsp://...";
      return {};
    }
    StreamSpec spec{trim(item.substr(0, eq)), trim(item.substr(eq + 1))};
    if (!valid_role(spec.role)) {
      error = "stream role \"" + spec.role + "\" must be letters, digits, '-' or '_'";
      return {};
    }
    if (!roles.insert(spec.role).second) {
      error = "stream role \"" + spec.role + "\" appears twice";
      return {};
    }
    if (auto why = check_url(spec.url, {"rtsp"}); !why.empty()) {
      error = "stream " + spec.role + ": " + why;
      return {};
    }
    if (!parse_rtsp_url(spec.url)) {
      error = "stream " + spec.role + ": \"" + spec.url + "\" is not rtsp://host[:port]/path";
      return {};
    }
    out.push_back(std::move(spec));
  }
  if (out.empty()) error = "no streams: expected role=rtsp://... separated by ';'";
  return out;
}

std::optional<Credentials> parse_credentials(const std::string& text) {
  std::string line = trim(text.substr(0, text.find('\n')));
  auto colon = line.find(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  return Credentials{line.substr(0, colon), line.substr(colon + 1)};
}

std::vector<RecordingClassroom> parse_register(const CsvTable& table, const std::filesystem::path& base_dir,
                                               const SecretReader& read_secret, Errors& errors) {
  std::vector<RecordingClassroom> out;
  std::map<std::string, std::size_t> index;  // id -> out position
  for (const auto& e : table.errors) errors.push_back(e);
  // An error of classroom `c`: listed with the others, and the classroom's reason.
  auto bad = [&](RecordingClassroom& c, Error e) {
    c.invalid += (c.invalid.empty() ? "bad register row " : "; ") + e.message();
    errors.push_back(std::move(e));
  };
  auto credentials_from = [&](RecordingClassroom& c, const CsvRow& row, const std::string& column,
                              std::filesystem::path* path) -> std::optional<Credentials> {
    std::string file = trim(row.get(column));
    if (file.empty()) return std::nullopt;
    std::filesystem::path p(file);
    if (p.is_relative()) p = base_dir / p;
    if (path) *path = p;
    auto secret = read_secret(p);
    if (!secret.ok()) {
      bad(c, Error{row.where(column), secret.error().where + ": " + secret.error().what,
                   secret.error().fix.empty() ? "create the file with one line username:password (chmod 600), or fix the path"
                                              : secret.error().fix});
      return std::nullopt;
    }
    auto cred = parse_credentials(*secret);
    if (!cred) bad(c, Error{row.where(column), "credentials file " + p.string() + " must hold one line username:password",
                            "write the device's user and password as username:password"});
    return cred;
  };
  for (const auto& row : table.rows) {
    RecordingClassroom c;
    c.where = row.where();
    c.id = trim(row.get("id"));
    c.name = trim(row.get("name"));
    if (c.id.empty()) {
      // Nothing to name in the report: the error list is all there is.
      errors.push_back(Error{row.where("id"), "classroom id is empty", "give every classroom an id"});
      continue;
    }
    if (auto it = index.find(c.id); it != index.end()) {
      // Which of the two rows is right cannot be known: the first is not trusted either.
      RecordingClassroom& first = out[it->second];
      bad(first, Error{row.where("id"), "classroom id \"" + c.id + "\" appears twice (also at " + first.where + ")",
                       "give every classroom its own id"});
      continue;
    }
    c.recorder_url = trim(row.get("recorder_url"));
    c.onvif_url = trim(row.get("onvif_url"));
    std::string api = trim(row.get("recorder_api"));
    if (auto a = parse_recorder_api(api)) c.recorder_api = *a;
    else
      bad(c, Error{row.where("recorder_api"), "unknown recorder_api \"" + api + "\"",
                   "json (a JSON status page), hikvision (ISAPI) or dahua (CGI); empty means json"});
    if (!c.recorder_url.empty()) {
      if (auto why = check_url(c.recorder_url, {"http", "https"}); !why.empty())
        bad(c, Error{row.where("recorder_url"), why,
                     c.recorder_api == RecorderApi::Json
                         ? "write the recorder's JSON status URL, e.g. http://10.0.1.10/api/status (credentials go in the credentials file)"
                         : "write the recorder's address, e.g. http://10.0.1.10 (credentials go in the credentials file)"});
    } else if (c.recorder_api != RecorderApi::Json) {
      bad(c, Error{row.where("recorder_url"), std::string("recorder_api ") + to_string(c.recorder_api) +
                                                   " needs the recorder's address in recorder_url",
                   "write the recorder's address, e.g. http://10.0.1.10"});
    }
    if (!c.onvif_url.empty()) {
      if (auto why = check_url(c.onvif_url, {"http", "https"}); !why.empty())
        bad(c, Error{row.where("onvif_url"), why,
                     "write the ONVIF device service, e.g. http://10.0.1.10/onvif/device_service (credentials go in the credentials file)"});
    }
    if (c.recorder_url.empty() && c.onvif_url.empty() && c.recorder_api == RecorderApi::Json) {
      bad(c, Error{row.where("recorder_url"), "classroom " + c.id + " has neither recorder_url nor onvif_url",
                   "give the recorder's status URL, its ONVIF device service address, or both"});
    }
    std::string why;
    c.streams = parse_streams(row.get("streams"), why);
    if (!why.empty())
      bad(c, Error{row.where("streams"), why,
                   "write role=rtsp://ADDRESS[:PORT]/PATH separated by ';' (credentials go in camera_credentials)"});
    c.credentials = credentials_from(c, row, "credentials", &c.credentials_file);
    c.camera_credentials = credentials_from(c, row, "camera_credentials", nullptr);
    if (!c.camera_credentials) c.camera_credentials = c.credentials;
    if (std::string m = trim(row.get("min_cameras")); !m.empty()) {
      int n = 0;
      auto [p, ec] = std::from_chars(m.data(), m.data() + m.size(), n);
      if (ec != std::errc() || p != m.data() + m.size() || n < 0 || n > 64)
        bad(c, Error{row.where("min_cameras"), "expected a whole number 0..64, got \"" + m + "\"",
                     "e.g. 2, or leave it empty for the audit's min_cameras"});
      else
        c.min_cameras = n;
    }
    index[c.id] = out.size();
    out.push_back(std::move(c));
  }
  // Rows the CSV reader could not read (bad UTF-8, too many cells) but whose id it could.
  keep_bad_rows(table, "bad register row ", out, index);
  return out;
}

std::vector<RecordingClassroom> load_register(const std::filesystem::path& file, const SecretReader& read_secret,
                                              Errors& errors) {
  auto table = read_csv_file(file, {"id", "streams"});
  if (!table.ok()) {
    errors.push_back(table.error());
    return {};
  }
  return parse_register(*table, file.parent_path(), read_secret, errors);
}

}  // namespace campus::recording
