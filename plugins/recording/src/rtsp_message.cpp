// Incremental RTSP response reader with size limits.
#include "rtsp_message.hpp"

#include <cctype>
#include <charconv>

namespace campus::recording {
namespace {

constexpr std::size_t kMaxHeaderBytes = 16 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

namespace {
// Length of the valid UTF-8 sequence starting at s[i], 0 when invalid.
std::size_t utf8_len(std::string_view s, std::size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  std::size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  return n;
}
}  // namespace

std::string printable(std::string_view bytes, std::size_t max) {
  std::string out;
  std::string_view head = bytes.substr(0, max);
  for (std::size_t i = 0; i < head.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(head[i]);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c >= 0x80) {
      if (std::size_t n = utf8_len(head, i)) {
        out.append(head.substr(i, n));
        i += n - 1;
      } else {
        char b[8];
        std::snprintf(b, sizeof b, "\\x%02x", c);
        out += b;
      }
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else out.push_back(static_cast<char>(c));
  }
  if (bytes.size() > max) out += "...";
  return out;
}

std::string RtspResponse::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::optional<long> RtspResponse::cseq() const {
  auto v = header("cseq");
  long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return n;
}

RtspReader::Event RtspReader::fail(std::string why) {
  error_ = std::move(why);
  return Event::Error;
}

std::string RtspReader::partial_description() const {
  if (buf_.empty()) return "nothing";
  return std::to_string(buf_.size()) + " bytes (\"" + printable(buf_, 40) + "\")";
}

RtspReader::Event RtspReader::feed(std::string_view bytes) {
  if (!error_.empty()) return Event::Error;
  buf_.append(bytes);
  if (buf_.empty()) return Event::NeedMore;

  if (buf_[0] == '$') {  // interleaved binary frame
    if (buf_.size() < 4) return Event::NeedMore;
    std::size_t len = (static_cast<unsigned char>(buf_[2]) << 8) | static_cast<unsigned char>(buf_[3]);
    if (buf_.size() < 4 + len) return Event::NeedMore;
    frame_channel_ = static_cast<std::uint8_t>(buf_[1]);
    frame_size_ = len;
    buf_.erase(0, 4 + len);
    return Event::Frame;
  }
  // Check the start early so garbage is refused without waiting for a blank line. The version
  // is compared without case ("Rtsp/1.0" is still RTSP/1.0).
  constexpr std::string_view kVersion = "RTSP/1.0 ";
  std::size_t n = std::min(buf_.size(), kVersion.size());
  if (lower(std::string_view(buf_).substr(0, n)) != lower(kVersion.substr(0, n)))
    return fail("not an RTSP response: starts with \"" + printable(buf_, 40) + "\"");

  std::size_t end = buf_.find("\r\n\r\n");
  std::size_t sep = 4;
  if (end == std::string::npos) {
    end = buf_.find("\n\n");
    sep = 2;
  }
  if (end == std::string::npos) {
    if (buf_.size() > std::min(kMaxHeaderBytes, max_))
      return fail("response header larger than " + std::to_string(std::min(kMaxHeaderBytes, max_)) + " bytes");
    return Event::NeedMore;
  }
  RtspResponse r;
  std::string_view head(buf_.data(), end);
  std::size_t line_end = head.find('\n');
  std::string_view status_line = trim(head.substr(0, line_end));
  // "RTSP/1.0 200 OK". A line cut short ("RTSP/1.0 \r\n", trimmed to 8 bytes) has no code
  // at all: found by fuzz_rtsp, it used to throw out_of_range out of the io_context.
  if (status_line.size() < kVersion.size() + 3)
    return fail("malformed status line \"" + printable(status_line) + "\"");
  std::string_view code = status_line.substr(kVersion.size(), 3);
  auto [p, ec] = std::from_chars(code.data(), code.data() + code.size(), r.status);
  if (ec != std::errc() || p != code.data() + code.size() || r.status < 100 || r.status > 999 ||
      (status_line.size() > kVersion.size() + 3 && status_line[kVersion.size() + 3] != ' '))
    return fail("malformed status line \"" + printable(status_line) + "\"");
  if (status_line.size() > kVersion.size() + 4) r.reason = std::string(status_line.substr(kVersion.size() + 4));
  std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 1);
  while (!rest.empty()) {
    std::size_t e = rest.find('\n');
    std::string_view line = trim(rest.substr(0, e));
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
    if (line.empty()) continue;
    // A line without a colon carries no header whose meaning could be known: it is skipped
    // (and listed), the rest of the reply is still read.
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || trim(line.substr(0, colon)).empty()) {
      r.skipped_lines.push_back(printable(line));
      continue;
    }
    r.headers.emplace(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }
  std::size_t body_len = 0;
  if (auto cl = r.header("content-length"); !cl.empty()) {
    auto [q, ec2] = std::from_chars(cl.data(), cl.data() + cl.size(), body_len);
    if (ec2 != std::errc() || q != cl.data() + cl.size()) return fail("malformed Content-Length \"" + printable(cl) + "\"");
  }
  std::size_t head_len = end + sep;
  if (head_len + body_len > max_)
    return fail("response larger than " + std::to_string(max_) + " bytes (Content-Length " + std::to_string(body_len) + ")");
  if (buf_.size() < head_len + body_len) return Event::NeedMore;
  r.body = buf_.substr(head_len, body_len);
  buf_.erase(0, head_len + body_len);
  response_ = std::move(r);
  return Event::Response;
}

}  // namespace campus::recording
