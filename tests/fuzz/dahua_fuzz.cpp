// A Dahua recorder's CGI replies as outside input: the first byte picks the call
// (getSystemInfo, getDeviceAllInfo, getCurrentTime, RecordMode, an error or lock body), the
// rest is the body. Checks what the audit relies on: free space within the disks, channels in
// range, finite clocks.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "dahua_cgi.hpp"
#include "recorder_status.hpp"

using namespace campus::recording;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  RecorderStatus st;
  switch (data[0] % 5) {
    case 0: (void)dahua::parse_system_info(body); break;
    case 1:
      if (auto disks = dahua::parse_storage(body); disks.ok()) {
        for (const auto& d : *disks)
          if (d.free_bytes && d.capacity_bytes && *d.free_bytes > *d.capacity_bytes) __builtin_trap();
        apply_disks(*disks, st);
        if (st.free_percent && !(*st.free_percent >= 0 && *st.free_percent <= 100)) __builtin_trap();
      }
      break;
    case 2:
      if (auto t = dahua::parse_time(body, -720); t.ok() && !std::isfinite(*t)) __builtin_trap();
      break;
    case 3:
      if (auto ch = dahua::parse_record_mode(body); ch.ok()) {
        for (const auto& c : *ch)
          if (c.number < 1) __builtin_trap();
        apply_channels(*ch, st);
      }
      break;
    default:
      (void)dahua::error_body(body);
      (void)dahua::account_lock(body);
  }
  return 0;
}
