// agent.toml as outside input: any bytes give a config or precise errors, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto loaded = campus::parse_config(text, "/nonexistent/fuzz/agent.toml");
  for (const auto& e : loaded.errors) (void)e.message();
  if (loaded.errors.empty()) (void)campus::redacted_summary(loaded.config);
  return 0;
}
