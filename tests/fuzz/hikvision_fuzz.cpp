// A Hikvision recorder's ISAPI replies as outside input: the first byte picks the call
// (deviceInfo, Storage, time, workingstatus, a 401/403 body), the rest is the body. Checks
// what the audit relies on: disks and channels in range, finite clocks.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "hikvision_isapi.hpp"
#include "recorder_status.hpp"

using namespace campus::recording;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  RecorderStatus st;
  switch (data[0] % 5) {
    case 0: (void)hikvision::parse_device_info(body); break;
    case 1:
      if (auto disks = hikvision::parse_storage(body); disks.ok()) {
        apply_disks(*disks, st);
        if (st.free_percent && !(*st.free_percent >= 0 && *st.free_percent <= 100)) __builtin_trap();
      }
      break;
    case 2:
      if (auto t = hikvision::parse_time(body, 480); t.ok() && !std::isfinite(*t)) __builtin_trap();
      break;
    case 3:
      if (auto ch = hikvision::parse_working_status(body); ch.ok()) {
        for (const auto& c : *ch)
          if (c.number < 1) __builtin_trap();
        apply_channels(*ch, st);
        if (st.recording && !*st.recording && st.recording_reason.empty()) __builtin_trap();
      }
      break;
    default:
      (void)hikvision::account_lock(body);
      (void)hikvision::response_status(body);
  }
  return 0;
}
