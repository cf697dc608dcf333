// One camera stream checked over RTSP/1.0 (RFC 2326) on TCP: OPTIONS, DESCRIBE (Basic or
// Digest authentication after a 401), SDP inspection; optionally SETUP (TCP interleaved, or RTP
// over UDP when the camera refuses that) + PLAY until the first RTP packet, then TEARDOWN. Bounded in time (one timer closes the
// socket) and in bytes (the reader refuses oversized replies).
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "campus/asio.hpp"
#include "classroom_register.hpp"

namespace campus::recording {

struct RtspOptions {
  std::chrono::milliseconds timeout{5000};  // the whole exchange, connect included
  std::size_t max_response_bytes = 256 * 1024;
  bool deep_check = false;                 // SETUP + PLAY until the first RTP packet (TCP, else UDP)
  std::vector<std::string> codecs{"H264", "H265"};
  std::string user_agent = "campus-agent";
};

struct StreamResult {
  enum class Outcome {
    Video,       // described with at least one video track in a known codec (and RTP if deep)
    NoVideo,     // answered, but no usable video (no m=video, unknown codec, 404, no RTP)
    Failed,      // no usable RTSP exchange: refused, timeout, garbage, closed, oversized, wrong CSeq
    AuthFailed,  // the camera wants credentials we do not have or rejects ours: unknown, not broken
  };
  Outcome outcome = Outcome::Failed;
  std::string error;                 // empty for Video
  int status = 0;                    // last RTSP status seen
  int video_tracks = 0;
  std::vector<std::string> video_codecs;
  std::string auth;                  // "none", "basic", "digest"
  bool rtp_received = false;
  std::string rtp_transport;         // deep check: "tcp" (interleaved) or "udp" (after TCP was refused)
  std::chrono::milliseconds elapsed{0};
};

std::string to_string(StreamResult::Outcome o);

struct RtspUrl {
  std::string host;
  std::string port = "554";
  std::string path;  // "/..." (with query), "/" when absent
};
std::optional<RtspUrl> parse_rtsp_url(const std::string& url);

class RtspProbe {
 public:
  virtual ~RtspProbe() = default;
  // Closes the socket; the probe then completes with an error "cancelled".
  virtual void cancel() = 0;
};

// Starts the probe; `done` runs exactly once on io, at the latest at min(now + timeout, deadline).
std::shared_ptr<RtspProbe> probe_rtsp(asio::io_context& io, const std::string& url,
                                      const std::optional<Credentials>& credentials, const RtspOptions& options,
                                      std::chrono::steady_clock::time_point deadline,
                                      std::function<void(StreamResult)> done);

}  // namespace campus::recording
