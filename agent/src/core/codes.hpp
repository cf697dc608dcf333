// County and school codes: topic levels of campus/v1/{county}/{school}/ (docs/protocol.md).
#pragma once
#include <optional>
#include <string>

namespace campus {

// nullopt when `code` may name a school of `county`; else one sentence saying what is wrong
// and how to fix it: a code is 1-64 of a-z, 0-9 and -, and is not a reserved word (`all`, the
// county's own code).
std::optional<std::string> code_problem(const std::string& code, const std::string& county);

}  // namespace campus
