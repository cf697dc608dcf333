// [audits.attendance] configuration: every key validated, with the key's path in each error.
#include "attendance_audit.hpp"

namespace campus::attendance {
namespace {

FieldNames read_fields(TableReader& parent, const char* key, Errors& errors) {
  FieldNames f;
  const toml::table* t = parent.table(key);
  if (!t) return f;
  TableReader r(*t, parent.path() + "." + key, parent.file(), errors);
  f.student_id = r.string("student_id", f.student_id);
  f.class_name = r.string("class", f.class_name);
  f.grade = r.string("grade", f.grade);
  f.date = r.string("date", f.date);
  f.status = r.string("status", f.status);
  f.leave_approved = r.string("leave_approved", f.leave_approved);
  f.name = r.string("name", f.name);
  r.finish();
  return f;
}

// [audits.attendance.status_words]: "word" = "attended" | "late" | "absent" | "leave" |
// "excused_leave", on top of the shipped defaults.
std::shared_ptr<const StatusVocabulary> read_status_words(TableReader& parent, const char* key, Errors& errors) {
  const toml::table* t = parent.table(key);
  if (!t) return nullptr;
  TableReader r(*t, parent.path() + "." + key, parent.file(), errors);
  auto words = std::make_shared<StatusVocabulary>(StatusVocabulary::defaults());
  for (const auto& [k, v] : *t) {
    std::string word(k.str());
    r.known(word);
    auto text = v.value<std::string>();
    StatusMeaning m;
    if (!text || !parse_meaning(*text, m)) {
      r.error(word, "expected \"attended\", \"late\", \"absent\", \"leave\" (excused only when approved) or "
                    "\"excused_leave\" (excused by itself)",
              "see plugins/attendance/README.md, \"Status words\"");
      continue;
    }
    if (StatusVocabulary::normal_form(word).empty() || word.empty()) {
      r.error(word, "a status word is 1 to 64 bytes long", "");
      continue;
    }
    words->set(word, m);
  }
  r.finish();
  return words;
}

}  // namespace

std::optional<AttendanceSettings> read_settings(TableReader& reader, const PluginEnv& env) {
  Errors errors;
  AttendanceSettings s;
  s.timezone_offset = env.timezone_offset.empty() ? "+08:00" : env.timezone_offset;
  s.calendar_file = reader.path("calendar", {}, true);
  if (s.calendar_file.empty() && !reader.optional_string("calendar"))
    reader.error("calendar", "is required: the school calendar CSV",
                 "calendar = \"/etc/campus-agent/calendar.csv\" (format: plugins/attendance/README.md)");
  s.rule.threshold_days = static_cast<int>(reader.integer("threshold_days", 3, 1, 60));
  s.rule.leave_breaks_run = reader.boolean("leave_breaks_run", false);
  s.rule.cumulative_days = static_cast<int>(reader.integer("cumulative_days", 0, 0, 200));
  s.rule.cumulative_window = static_cast<int>(reader.integer("cumulative_window", 20, 1, 400));
  if (s.rule.cumulative_days > s.rule.cumulative_window)
    reader.error("cumulative_days", "is larger than cumulative_window", "make cumulative_days <= cumulative_window");
  s.contact_within = static_cast<int>(reader.integer("contact_within", 1, 0, 30));
  s.publish_names = reader.boolean("publish_names", false);
  s.max_gap_entries = static_cast<int>(reader.integer("max_gap_entries", 50, 0, 10000));
  s.spool_dir = reader.optional_path("spool_dir", true);
  s.csv_fields = read_fields(reader, "csv_fields", errors);
  s.xlsx_sheet = reader.string("xlsx_sheet", "");
  s.status_words = read_status_words(reader, "status_words", errors);
  s.pseudonymize_students = reader.boolean("pseudonymize_students", false);
  // Not required to exist: the agent creates it on its first run (the package already has).
  s.pseudonym_key_file = reader.path("pseudonym_key_file", kDefaultStudentKeyFile, false);
  if (const toml::table* h = reader.table("http")) {
    TableReader hr(*h, reader.path() + ".http", reader.file(), errors);
    HttpSourceSettings http;
    http.url = hr.required_string("url");
    http.token = hr.secret_file("token_file", false);
    http.timeout = hr.duration("timeout", Millis(10000), Millis(100), Millis(600000));
    http.verify_tls = hr.boolean("verify_tls", true);
    http.ca_file = hr.optional_path("ca_file", true);
    http.lookback_days = static_cast<int>(hr.integer("lookback_days", 14, 0, 400));
    http.records_field = hr.string("records_field", "records");
    http.next_field = hr.string("next_field", "next");
    http.max_pages = static_cast<int>(hr.integer("max_pages", 500, 1, 100000));
    http.fields = read_fields(hr, "fields", errors);
    if (http.url.rfind("http://", 0) != 0 && http.url.rfind("https://", 0) != 0 && !http.url.empty())
      hr.error("url", "expected an http:// or https:// URL", "");
    hr.finish();
    s.http = std::move(http);
  }
  if (!s.spool_dir && !s.http && !reader.has("spool_dir"))
    reader.error("spool_dir", "neither spool_dir nor [" + reader.path() + ".http] is set: nothing to import",
                 "set spool_dir = \"/var/lib/campus-agent/attendance-spool\" or an http table");
  reader.finish();
  // Sub-table readers collect into `errors`; hand them to the caller's reader under their
  // key path (audits.attendance.http.url, ...).
  const std::string marker = " key " + reader.path() + ".";
  for (auto& e : errors) {
    auto at = e.where.find(marker);
    reader.error(at == std::string::npos ? "" : e.where.substr(at + marker.size()), e.what, e.fix);
  }
  bool ok = errors.empty() && !s.calendar_file.empty();
  if (!s.calendar_file.empty()) {
    auto cal = SchoolCalendar::load(s.calendar_file);
    if (!cal) {
      reader.error("calendar", cal.error().message(), "see plugins/attendance/README.md, \"Calendar\"");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return s;
}

}  // namespace campus::attendance
