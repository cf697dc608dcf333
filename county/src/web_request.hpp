// What the dashboard reads from a request line and a form body: the path and its parameters,
// percent-decoded and checked, with an error that names the parameter, what is wrong and how to
// fix it. Pure functions (the fuzz target fuzz_web_request drives them).
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "campus/error.hpp"

namespace campus::county::web {

inline constexpr std::size_t kMaxTarget = 4096;    // longer: 414
inline constexpr std::size_t kMaxParams = 32;
inline constexpr std::size_t kMaxParamName = 32;
inline constexpr std::size_t kMaxParamValue = 1024;

struct Params {
  std::vector<std::pair<std::string, std::string>> items;  // in order, decoded, names unique
  // The value of `name`, or nullopt when absent.
  std::optional<std::string> get(std::string_view name) const;
};

struct Target {
  std::string path;  // decoded, starts with '/', no "." or ".." segment, no NUL, no backslash
  Params params;
};

// "/schools?sort=name&q=%E4%B8%80" -> {"/schools", {{"sort","name"},{"q","一"}}}.
Result<Target> parse_target(std::string_view target);
// application/x-www-form-urlencoded ("user=a&password=b"; '+' is a space).
Result<Params> parse_form(std::string_view body);

// Checks a request's parameters against what its endpoint takes: an unknown or repeated name,
// or a value outside `choices` (when given), is an Error naming it and what is allowed.
struct ParamSpec {
  std::string name;
  std::vector<std::string> choices;  // empty: any value
};
Status check_params(const Params& params, const std::vector<ParamSpec>& allowed);

}  // namespace campus::county::web
