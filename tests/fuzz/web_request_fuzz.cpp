// The dashboard's request parser (county/src/web_request.cpp): any target or form body either
// parses into a path and parameters that keep every promise of web_request.hpp, or is an Error
// with a place and a reason; nothing crashes, nothing grows past the limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "web_request.hpp"

using namespace campus::county::web;

namespace {

void check(const Params& p) {
  if (p.items.size() > kMaxParams) __builtin_trap();
  for (std::size_t i = 0; i < p.items.size(); ++i) {
    const auto& [name, value] = p.items[i];
    if (name.empty() || name.size() > kMaxParamName || value.size() > kMaxParamValue) __builtin_trap();
    for (char c : name + value)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) __builtin_trap();
    for (std::size_t k = 0; k < i; ++k)
      if (p.items[k].first == name) __builtin_trap();
    if (p.get(name) != value) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = parse_target(text);
  if (t.ok()) {
    const std::string& path = t->path;
    if (text.size() > kMaxTarget || path.empty() || path[0] != '/') __builtin_trap();
    if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) __builtin_trap();
    if (path == "/.." || path.find("/../") != std::string::npos || path.ends_with("/..") ||
        path.find("/./") != std::string::npos || path.ends_with("/."))
      __builtin_trap();
    check(t->params);
    (void)check_params(t->params, {{"sort", {"a", "b"}}, {"q", {}}});
  } else if (t.error().where.empty() || t.error().what.empty()) {
    __builtin_trap();
  }
  auto f = parse_form(text);
  if (f.ok()) check(f.value());
  else if (f.error().what.empty()) __builtin_trap();
  return 0;
}
