// Session descriptions (RFC 4566) as cameras return them to DESCRIBE: just what the audit needs,
// the media sections, their payload formats and codecs, and their control URLs.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace campus::recording {

struct SdpMedia {
  std::string type;     // "video", "audio", "application"
  std::string proto;    // "RTP/AVP"
  std::vector<std::string> formats;           // payload types as listed on the m= line
  std::map<std::string, std::string> codecs;  // payload type -> encoding name, upper-cased ("H264")
  std::string control;  // a=control value (absolute or relative), may be empty
};

struct Sdp {
  std::string session_name;
  std::string control;  // session-level a=control
  std::vector<SdpMedia> media;
  std::vector<std::string> warnings;  // lines that were not understood (never fatal)
};

// Parses SDP text; fails only when it is not SDP at all (no "v=0" first line, no media).
// Static payload types without rtpmap get their RFC 3551 names (26 = JPEG, 32 = MPV, ...).
bool parse_sdp(std::string_view text, Sdp& out, std::string& error);

// The codecs of the video sections, e.g. {"H264"}; one entry per video section (its first format).
std::vector<std::string> video_codecs(const Sdp& sdp);

// Resolves a control attribute against the base URL (Content-Base, else the request URL).
std::string resolve_control(const std::string& base, const std::string& control);

}  // namespace campus::recording
