// SDP parsing for DESCRIBE replies.
#include "sdp.hpp"

#include "rtsp_message.hpp"

#include <cctype>

namespace campus::recording {
namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split_ws(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > b) out.emplace_back(s.substr(b, i - b));
  }
  return out;
}

std::string static_payload_name(const std::string& pt) {
  if (pt == "26") return "JPEG";
  if (pt == "31") return "H261";
  if (pt == "32") return "MPV";
  if (pt == "33") return "MP2T";
  if (pt == "34") return "H263";
  if (pt == "0") return "PCMU";
  if (pt == "8") return "PCMA";
  if (pt == "14") return "MPA";
  return {};
}

}  // namespace

bool parse_sdp(std::string_view text, Sdp& out, std::string& error) {
  out = Sdp{};
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  bool first = true;
  std::size_t line_no = 0;
  while (!text.empty()) {
    std::size_t e = text.find('\n');
    std::string_view line = text.substr(0, e);
    text = e == std::string_view::npos ? std::string_view() : text.substr(e + 1);
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;
    if (first) {
      if (line != "v=0") {
        error = "not SDP: first line is not \"v=0\"";
        return false;
      }
      first = false;
      continue;
    }
    if (line.size() < 2 || line[1] != '=') {
      out.warnings.push_back("line " + std::to_string(line_no) + " is not <type>=<value>");
      continue;
    }
    char type = line[0];
    std::string_view value = line.substr(2);
    if (type == 's' && out.media.empty()) {
      out.session_name = std::string(value);
    } else if (type == 'm') {
      auto parts = split_ws(value);
      if (parts.size() < 4) {
        out.warnings.push_back("line " + std::to_string(line_no) + ": m= line with fewer than 4 fields");
        continue;
      }
      SdpMedia m;
      m.type = parts[0];
      m.proto = parts[2];
      m.formats.assign(parts.begin() + 3, parts.end());
      for (const auto& f : m.formats)
        if (auto n = static_payload_name(f); !n.empty()) m.codecs[f] = n;
      out.media.push_back(std::move(m));
    } else if (type == 'a') {
      std::size_t colon = value.find(':');
      std::string_view name = value.substr(0, colon);
      std::string_view arg = colon == std::string_view::npos ? std::string_view() : value.substr(colon + 1);
      if (name == "control") {
        if (out.media.empty()) out.control = std::string(arg);
        else out.media.back().control = std::string(arg);
      } else if (name == "rtpmap" && !out.media.empty()) {
        // a=rtpmap:<pt> <encoding>/<clock>[/<params>]
        auto sp = arg.find(' ');
        if (sp == std::string_view::npos) {
          out.warnings.push_back("line " + std::to_string(line_no) + ": malformed rtpmap");
          continue;
        }
        std::string pt(arg.substr(0, sp));
        std::string_view enc = arg.substr(sp + 1);
        while (!enc.empty() && enc.front() == ' ') enc.remove_prefix(1);
        out.media.back().codecs[pt] = printable(upper(std::string(enc.substr(0, enc.find('/')))), 40);
      }
    }
  }
  if (first) {
    error = "empty SDP";
    return false;
  }
  if (out.media.empty()) {
    error = "SDP has no media (m=) section";
    return false;
  }
  return true;
}

std::vector<std::string> video_codecs(const Sdp& sdp) {
  std::vector<std::string> out;
  for (const auto& m : sdp.media) {
    if (m.type != "video") continue;
    std::string codec = "unknown";
    if (!m.formats.empty()) {
      auto it = m.codecs.find(m.formats.front());
      if (it != m.codecs.end()) codec = it->second;
      else codec = "payload " + m.formats.front();
    }
    out.push_back(codec);
  }
  return out;
}

std::string resolve_control(const std::string& base, const std::string& control) {
  if (control.empty() || control == "*") return base;
  if (control.starts_with("rtsp://") || control.starts_with("rtsps://") || control.starts_with("RTSP://")) return control;
  std::string b = base;
  if (auto q = b.find('?'); q != std::string::npos && !control.starts_with("?")) {
    // Relative controls join the path, not the query of the base.
    b.resize(q);
  }
  if (!b.ends_with("/")) b += "/";
  return b + control;
}

}  // namespace campus::recording
