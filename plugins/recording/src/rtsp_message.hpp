// RTSP/1.0 responses (RFC 2326 section 7) read incrementally from a TCP stream, with bounded
// size; interleaved RTP frames ("$" channel length payload, section 10.12) are recognized too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace campus::recording {

struct RtspResponse {
  int status = 0;
  std::string reason;
  std::multimap<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::vector<std::string> skipped_lines;  // header lines that were not "name: value" (printable)

  // First value of a header, empty when absent.
  std::string header(const std::string& lower_name) const;
  std::optional<long> cseq() const;
};

// Feed bytes as they arrive; the parser says when a response (or an interleaved frame) is
// complete or the stream is not acceptable. Bytes after a complete message stay buffered.
class RtspReader {
 public:
  explicit RtspReader(std::size_t max_message_bytes) : max_(max_message_bytes) {}

  enum class Event { NeedMore, Response, Frame, Error };
  // Appends bytes and tries to complete one message.
  Event feed(std::string_view bytes);
  // Tries again on the buffered bytes without new input.
  Event next() { return feed({}); }

  const RtspResponse& response() const { return response_; }
  std::uint8_t frame_channel() const { return frame_channel_; }
  std::size_t frame_size() const { return frame_size_; }
  const std::string& error() const { return error_; }
  // Human description of what was received so far (for "closed mid-response" messages).
  std::string partial_description() const;
  std::size_t buffered() const { return buf_.size(); }

 private:
  Event fail(std::string why);
  std::size_t max_;
  std::string buf_;
  RtspResponse response_;
  std::uint8_t frame_channel_ = 0;
  std::size_t frame_size_ = 0;
  std::string error_;
};

// Renders peer bytes for messages: control bytes and invalid UTF-8 escaped (\\xNN), cut at `max`
// bytes, so reports are always valid UTF-8.
std::string printable(std::string_view bytes, std::size_t max = 60);

}  // namespace campus::recording
