// A camera's RTSP replies as outside input: the incremental reader fed in arbitrary chunks,
// then the SDP and the WWW-Authenticate challenges it carries.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "digest_auth.hpp"
#include "rtsp_message.hpp"
#include "sdp.hpp"

using namespace campus::recording;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::size_t chunk = 1 + data[0] % 64;  // first byte chooses how the bytes arrive
  RtspReader reader(64 * 1024);
  for (std::size_t at = 0; at < all.size(); at += chunk) {
    auto ev = reader.feed(all.substr(at, chunk));
    while (ev == RtspReader::Event::Response || ev == RtspReader::Event::Frame) ev = reader.next();
    if (ev == RtspReader::Event::Error) break;
  }
  Sdp sdp;
  std::string error;
  (void)parse_sdp(all, sdp, error);
  (void)parse_challenges(all);
  return 0;
}
