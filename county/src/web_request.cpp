// Request targets and form bodies (see web_request.hpp).
#include "web_request.hpp"

#include <algorithm>
#include <cstdint>

namespace campus::county::web {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; `plus_is_space` for query strings and forms. nullopt: a '%' not followed
// by two hex digits.
std::optional<std::string> decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// Valid UTF-8 (overlong forms and surrogates refused): every value is shown in pages and JSON.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (std::size_t k = 1; k < len; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

bool has_control(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return true;
  return false;
}

Result<Params> parse_pairs(std::string_view s, const char* what) {
  Params p;
  if (s.empty()) return p;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t amp = s.find('&', start);
    if (amp == std::string_view::npos) amp = s.size();
    std::string_view pair = s.substr(start, amp - start);
    start = amp + 1;
    if (pair.empty()) {
      if (amp == s.size()) break;
      continue;
    }
    if (p.items.size() == kMaxParams)
      return Error{what, "more than " + std::to_string(kMaxParams) + " parameters", "send only the parameters the page takes"};
    const std::size_t eq = pair.find('=');
    auto name = decode(pair.substr(0, eq), true);
    auto value = decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    const std::string shown(pair.substr(0, std::min<std::size_t>(eq == std::string_view::npos ? pair.size() : eq, kMaxParamName)));
    if (!name || !value)
      return Error{std::string(what) + " parameter " + (name ? *name : shown), "a '%' not followed by two hex digits",
                   "percent-encode the value (a literal % is %25)"};
    if (name->empty()) return Error{what, "a parameter without a name", "write name=value"};
    if (name->size() > kMaxParamName || has_control(*name) || !valid_utf8(*name))
      return Error{what, "a parameter name longer than " + std::to_string(kMaxParamName) +
                             " bytes or with control characters", "use the names the page documents"};
    if (value->size() > kMaxParamValue)
      return Error{std::string(what) + " parameter " + *name,
                   "the value is " + std::to_string(value->size()) + " bytes, more than " + std::to_string(kMaxParamValue),
                   "shorten it"};
    if (has_control(*value) || !valid_utf8(*value))
      return Error{std::string(what) + " parameter " + *name, "the value is not UTF-8 text (control characters or bad bytes)",
                   "send UTF-8 text"};
    for (const auto& [n, v] : p.items)
      if (n == *name)
        return Error{std::string(what) + " parameter " + *name, "given twice", "give each parameter once"};
    p.items.emplace_back(std::move(*name), std::move(*value));
  }
  return p;
}

}  // namespace

std::optional<std::string> Params::get(std::string_view name) const {
  for (const auto& [n, v] : items)
    if (n == name) return v;
  return std::nullopt;
}

Result<Target> parse_target(std::string_view target) {
  if (target.size() > kMaxTarget)
    return Error{"request target", "longer than " + std::to_string(kMaxTarget) + " bytes", "shorten the query"};
  if (target.empty() || target[0] != '/')
    return Error{"request target", "does not start with '/'", "request a path of this server, e.g. /schools"};
  const std::size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  auto path = decode(raw_path, false);
  if (!path) return Error{"request path", "a '%' not followed by two hex digits", "percent-encode the path"};
  if (path->find('\0') != std::string::npos || path->find('\\') != std::string::npos || has_control(*path) ||
      !valid_utf8(*path))
    return Error{"request path", "contains a NUL, a backslash, a control character or bytes that are not UTF-8",
                 "request a path of this server, e.g. /schools"};
  // No "." or ".." segment, encoded or not: nothing outside what the server serves is named.
  for (std::size_t i = 0; i <= path->size();) {
    std::size_t slash = path->find('/', i);
    if (slash == std::string::npos) slash = path->size();
    std::string_view seg(path->data() + i, slash - i);
    if (seg == "." || seg == "..")
      return Error{"request path", "has a \".\" or \"..\" segment", "request the page's own path, e.g. /schools"};
    i = slash + 1;
  }
  Target t;
  t.path = std::move(*path);
  if (q != std::string_view::npos) {
    auto params = parse_pairs(target.substr(q + 1), "query");
    if (!params.ok()) return params.error();
    t.params = std::move(params.value());
  }
  return t;
}

Result<Params> parse_form(std::string_view body) { return parse_pairs(body, "form"); }

Status check_params(const Params& params, const std::vector<ParamSpec>& allowed) {
  for (const auto& [name, value] : params.items) {
    const ParamSpec* spec = nullptr;
    for (const auto& a : allowed)
      if (a.name == name) spec = &a;
    if (!spec) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a.name;
      return Error{"query parameter " + name, "is not one this page takes",
                   names.empty() ? "remove it: the page takes no parameter" : "use one of: " + names};
    }
    if (!spec->choices.empty() && std::find(spec->choices.begin(), spec->choices.end(), value) == spec->choices.end()) {
      std::string choices;
      for (const auto& c : spec->choices) choices += (choices.empty() ? "" : ", ") + c;
      return Error{"query parameter " + name, "\"" + value + "\" is not allowed", "use one of: " + choices};
    }
  }
  return {};
}

}  // namespace campus::county::web
