// School code rules (see codes.hpp).
#include "core/codes.hpp"

namespace campus {

std::optional<std::string> code_problem(const std::string& code, const std::string& county) {
  bool shape = !code.empty() && code.size() <= 64;
  for (char c : code)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) shape = false;
  if (!shape) return "\"" + code + "\" is not a school code: use 1-64 of a-z, 0-9 and -";
  if (code == "all") return "\"all\" is reserved (campus/v1/{county}/all/cmd reaches every school): choose another code";
  if (code == county) return "\"" + code + "\" is the county's own code: choose another code for the school";
  return std::nullopt;
}

}  // namespace campus
