// A recorder's status page as outside input, read through the default JSON paths.
#include <cstddef>
#include <cstdint>
#include <string>

#include "recorder_status.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  campus::recording::RecorderPaths paths;
  (void)campus::recording::parse_recorder_status(200, body, paths);
  return 0;
}
