// TableReader: one TOML table read with precise errors (file:line:col, key path, expected).
#include "campus/config_table.hpp"

#include <sys/stat.h>

#include <fstream>
#include <limits>
#include <sstream>

namespace campus {
namespace {

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: case toml::node_type::time: case toml::node_type::date_time: return "a date/time";
    default: return "nothing";
  }
}

std::string show(const toml::node& n) {
  std::ostringstream os;
  if (auto s = n.as_string()) os << '"' << s->get() << '"';
  else if (n.is_table()) os << "a table";
  else if (n.is_array()) os << "an array";
  else n.visit([&](auto&& v) { os << v; });
  return os.str();
}

std::string octal(unsigned mode) {
  std::ostringstream os;
  os << std::oct << (mode & 0777);
  return os.str();
}

}  // namespace

TableReader::TableReader(const toml::table& table, std::string path, std::filesystem::path file, Errors& errors)
    : table_(table), path_(std::move(path)), file_(std::move(file)), errors_(errors) {}

std::string TableReader::where(const std::string& key) const {
  std::string full = path_.empty() ? key : (key.empty() ? path_ : path_ + "." + key);
  const toml::node* n = key.empty() ? &table_ : table_.get(key);
  std::string w = file_.string();
  if (n && n->source().begin) {
    w += ":" + std::to_string(n->source().begin.line) + ":" + std::to_string(n->source().begin.column);
  }
  return w + " key " + full;
}

void TableReader::error(const std::string& key, std::string what, std::string fix) {
  errors_.push_back(Error{where(key), std::move(what), std::move(fix)});
}

void TableReader::known(const std::string& key) { read_.insert(key); }

const toml::node* TableReader::get(const std::string& key) {
  read_.insert(key);
  return table_.get(key);
}

std::string TableReader::string(const std::string& key, const std::string& def) {
  auto v = optional_string(key);
  return v ? *v : def;
}

std::optional<std::string> TableReader::optional_string(const std::string& key) {
  const toml::node* n = get(key);
  if (!n) return std::nullopt;
  if (auto s = n->as_string()) return s->get();
  error(key, "expected a string, got " + type_name(*n) + " " + show(*n), "put the value in double quotes");
  return std::nullopt;
}

std::string TableReader::required_string(const std::string& key) {
  if (!table_.get(key)) {
    read_.insert(key);
    errors_.push_back(Error{where("") , "the key " + key + " is required but missing",
                            "add " + key + " = \"...\" to the [" + path_ + "] table"});
    return {};
  }
  auto v = optional_string(key);
  if (v && v->empty()) error(key, "must not be empty");
  return v.value_or("");
}

bool TableReader::boolean(const std::string& key, bool def) {
  const toml::node* n = get(key);
  if (!n) return def;
  if (auto b = n->as_boolean()) return b->get();
  error(key, "expected true or false, got " + type_name(*n) + " " + show(*n), "write true or false without quotes");
  return def;
}

std::int64_t TableReader::integer(const std::string& key, std::int64_t def, std::int64_t min, std::int64_t max) {
  const toml::node* n = get(key);
  if (!n) return def;
  auto i = n->as_integer();
  if (!i) {
    error(key, "expected an integer, got " + type_name(*n) + " " + show(*n), "write a whole number without quotes");
    return def;
  }
  if (i->get() < min || i->get() > max) {
    error(key, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                   std::to_string(i->get()));
    return def;
  }
  return i->get();
}

double TableReader::number(const std::string& key, double def, double min, double max) {
  const toml::node* n = get(key);
  if (!n) return def;
  std::optional<double> v;
  if (auto f = n->as_floating_point()) v = f->get();
  else if (auto i = n->as_integer()) v = static_cast<double>(i->get());
  if (!v) {
    error(key, "expected a number, got " + type_name(*n) + " " + show(*n), "write a number without quotes");
    return def;
  }
  if (*v < min || *v > max) {
    std::ostringstream os;
    os << "expected a number from " << min << " to " << max << ", got " << *v;
    error(key, os.str());
    return def;
  }
  return *v;
}

Millis TableReader::duration(const std::string& key, Millis def, Millis min, Millis max) {
  const toml::node* n = get(key);
  if (!n) return def;
  auto s = n->as_string();
  if (!s) {
    error(key, "expected a duration string like \"90s\", \"15m\" or \"1h\", got " + type_name(*n) + " " + show(*n),
          "write the duration in double quotes with its unit");
    return def;
  }
  auto d = parse_duration(s->get());
  if (!d) {
    error(key, d.error().what);
    return def;
  }
  if (*d < min || *d > max) {
    error(key, "expected a duration from " + format_duration(min) + " to " + format_duration(max) + ", got " +
                   format_duration(*d));
    return def;
  }
  return *d;
}

std::uint64_t TableReader::size(const std::string& key, std::uint64_t def) {
  const toml::node* n = get(key);
  if (!n) return def;
  if (auto i = n->as_integer()) {
    if (i->get() >= 0) return static_cast<std::uint64_t>(i->get());
  }
  auto s = n->as_string();
  if (!s) {
    error(key, "expected a size like \"256MiB\", got " + type_name(*n) + " " + show(*n));
    return def;
  }
  auto v = parse_size(s->get());
  if (!v) {
    error(key, v.error().what);
    return def;
  }
  return *v;
}

std::string TableReader::choice(const std::string& key, const std::string& def, const std::vector<std::string>& allowed) {
  auto v = optional_string(key);
  if (!v) return def;
  for (const auto& a : allowed)
    if (*v == a) return *v;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + ("\"" + a + "\"");
  error(key, "expected one of " + list + ", got \"" + *v + "\"");
  return def;
}

std::filesystem::path TableReader::path(const std::string& key, const std::filesystem::path& def, bool must_exist) {
  auto p = optional_path(key, must_exist);
  return p ? *p : def;
}

std::optional<std::filesystem::path> TableReader::optional_path(const std::string& key, bool must_exist) {
  auto v = optional_string(key);
  if (!v) return std::nullopt;
  if (v->empty()) {
    error(key, "expected a file path, got an empty string");
    return std::nullopt;
  }
  std::filesystem::path p(*v);
  if (p.is_relative()) p = file_.parent_path() / p;
  std::error_code ec;
  if (must_exist && !std::filesystem::exists(p, ec)) {
    error(key, "the file " + p.string() + " does not exist", "create it or correct the path");
    return std::nullopt;
  }
  return p;
}

Result<std::string> read_secret_file(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    return Error{file.string(), "the secret file does not exist or cannot be read", "create it with mode 0600"};
  if (!S_ISREG(st.st_mode)) return Error{file.string(), "the secret file is not a regular file", ""};
  if (st.st_mode & 077) {
    return Error{file.string(),
                 "the secret file is readable by group or others (mode " + octal(st.st_mode) + ")",
                 "chmod 600 " + file.string()};
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{file.string(), "cannot open the secret file", "check that the agent's user owns it"};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.empty()) return Error{file.string(), "the secret file is empty", "write the secret into it"};
  return s;
}

std::optional<std::string> TableReader::secret_file(const std::string& key, bool required) {
  auto p = optional_path(key, false);
  if (!p) {
    if (required && !table_.get(key)) {
      errors_.push_back(Error{where(""), "the key " + key + " (a secret file path) is required but missing",
                              "add " + key + " = \"/etc/campus-agent/secrets/...\""});
    }
    return std::nullopt;
  }
  auto s = read_secret_file(*p);
  if (!s) {
    error(key, s.error().what + ": " + p->string(), s.error().fix);
    return std::nullopt;
  }
  return s.value();
}

std::vector<std::string> TableReader::string_array(const std::string& key) {
  std::vector<std::string> out;
  const toml::node* n = get(key);
  if (!n) return out;
  auto a = n->as_array();
  if (!a) {
    error(key, "expected an array of strings like [\"a\", \"b\"], got " + type_name(*n));
    return out;
  }
  for (std::size_t i = 0; i < a->size(); ++i) {
    if (auto s = a->get(i)->as_string()) out.push_back(s->get());
    else error(key, "element " + std::to_string(i + 1) + " is " + type_name(*a->get(i)) + ", expected a string");
  }
  return out;
}

const toml::table* TableReader::table(const std::string& key) {
  const toml::node* n = get(key);
  if (!n) return nullptr;
  if (auto t = n->as_table()) return t;
  error(key, "expected a table ([" + (path_.empty() ? key : path_ + "." + key) + "]), got " + type_name(*n));
  return nullptr;
}

void TableReader::finish() {
  if (finished_) return;
  finished_ = true;
  for (const auto& [k, v] : table_) {
    std::string key(k.str());
    if (read_.count(key)) continue;
    errors_.push_back(Error{where(key), "unknown key",
                            "remove it or check its spelling against config/agent.toml"});
  }
}

}  // namespace campus
