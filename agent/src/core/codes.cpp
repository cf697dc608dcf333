// County and school code rules (codes.hpp).
#include "core/codes.hpp"

#include <algorithm>
#include <cstdio>

namespace campus {
namespace {

bool code_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// The code in double quotes, bounded, with bytes outside printable ASCII as \xNN: a log line
// shows exactly what was given and nothing it could hide.
std::string quoted(const std::string& code) {
  constexpr std::size_t kShown = 80;
  std::string out = "\"";
  for (std::size_t i = 0; i < code.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(code[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (code.size() > kShown) out += "...";
  return out + "\"";
}

// The syntax rule, in a sentence that starts with `noun` ("code", "school code").
std::optional<std::string> syntax_problem(const std::string& code, const std::string& noun) {
  if (code.empty()) return noun + " is empty: use 1-64 of a-z, 0-9 and -, e.g. \"nansan-central-primary\"";
  if (code.size() > kMaxCodeLength)
    return noun + " " + quoted(code) + " is " + std::to_string(code.size()) + " characters long: at most " +
           std::to_string(kMaxCodeLength) + " of a-z, 0-9 and -";
  auto bad = std::find_if_not(code.begin(), code.end(), code_char);
  if (bad == code.end()) return std::nullopt;
  const auto c = static_cast<unsigned char>(*bad);
  std::string which;
  if (c >= 0x21 && c < 0x7f) {
    which = std::string("'") + static_cast<char>(c) + "'";
  } else {
    char buf[12];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    which = buf;
  }
  return noun + " " + quoted(code) + " contains " + which +
         ": use only lowercase a-z, 0-9 and -, e.g. \"nansan-central-primary\"";
}

}  // namespace

std::optional<std::string> code_syntax_problem(const std::string& code, const std::string& noun) {
  return syntax_problem(code, noun);
}

std::optional<std::string> code_problem(const std::string& code, const std::string& county) {
  if (auto p = syntax_problem(code, "school code")) return p;
  if (code == county)
    return "school code " + quoted(code) + " is the county's own code, which names the county itself: give the school "
           "another code in the county register";
  if (std::find(kReservedSchoolCodes.begin(), kReservedSchoolCodes.end(), code) != kReservedSchoolCodes.end()) {
    const std::string why = code == "all" ? "campus/v1/" + county + "/all/cmd is the request to every school"
                                          : "scripts/make-certs writes " + code + ".crt for something else";
    return "school code " + quoted(code) + " is reserved (" + why +
           "): give the school another code in the county register";
  }
  return std::nullopt;
}

}  // namespace campus
