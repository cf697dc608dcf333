// ONVIF SOAP replies as outside input: GetSystemDateAndTime and GetDeviceInformation bodies.
#include <cstddef>
#include <cstdint>
#include <string>

#include "onvif.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  std::string error;
  (void)campus::recording::parse_system_date_and_time(body, error);
  (void)campus::recording::parse_device_information(body, error);
  return 0;
}
