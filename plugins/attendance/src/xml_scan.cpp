// The worksheet tokenizer: memchr to the next '<', then one tag at a time.
#include "xml_scan.hpp"

#include <cstring>

#include "campus/csv.hpp"

namespace campus::attendance {
namespace {

constexpr bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool all_ws(std::string_view s) {
  for (char c : s)
    if (!is_ws(c)) return false;
  return true;
}

std::string_view local_part(std::string_view name) {
  auto colon = name.rfind(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

// Most of a sheet is ASCII: eight bytes at a time before the full UTF-8 check.
bool ascii(std::string_view s) {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (w & 0x8080808080808080ull) return false;
  }
  for (; i < s.size(); ++i)
    if (static_cast<unsigned char>(s[i]) & 0x80) return false;
  return true;
}

constexpr bool name_char(char c) {
  return !is_ws(c) && c != '=' && c != '/' && c != '>' && c != '<' && c != '"' && c != '\'';
}

void put_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// XML 1.0's Char production.
bool xml_char(unsigned cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
         (cp >= 0x10000 && cp <= 0x10FFFF);
}

// Appends `raw` to `out` with entities and character references decoded. Error: what is wrong.
std::optional<std::string> decode_into(std::string_view raw, std::string& out) {
  if (!ascii(raw) && !is_valid_utf8(raw)) return "text that is not UTF-8";
  if (!std::memchr(raw.data(), '&', raw.size())) {
    out.append(raw);
    return std::nullopt;
  }
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '&') {
      out += raw[i];
      continue;
    }
    auto semi = raw.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) return std::string("an '&' that starts no entity");
    std::string_view e = raw.substr(i + 1, semi - i - 1);
    if (e == "lt") out += '<';
    else if (e == "gt") out += '>';
    else if (e == "amp") out += '&';
    else if (e == "quot") out += '"';
    else if (e == "apos") out += '\'';
    else if (e.size() >= 2 && e[0] == '#') {
      bool hex = e[1] == 'x';
      std::string_view digits = e.substr(hex ? 2 : 1);
      if (digits.empty()) return std::string("an empty character reference");
      unsigned long cp = 0;
      for (char c : digits) {
        int v = c >= '0' && c <= '9' ? c - '0' : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10 : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0) return std::string("a character reference with a bad digit");
        cp = cp * (hex ? 16 : 10) + static_cast<unsigned long>(v);
        if (cp > 0x10FFFF) return std::string("a character reference beyond Unicode");
      }
      if (!xml_char(static_cast<unsigned>(cp))) return std::string("a character reference to a character XML does not allow");
      put_utf8(out, static_cast<unsigned>(cp));
    } else {
      return "an entity other than the five XML predefines (&" + std::string(e.substr(0, 12)) + ";)";
    }
    i = semi;
  }
  return std::nullopt;
}

}  // namespace

bool XmlScanner::fail(std::string what) {
  error_ = std::move(what);
  return false;
}

bool XmlScanner::decode(std::string_view raw, std::string& out) {
  if (auto e = decode_into(raw, out)) return fail(*e);
  return true;
}

std::optional<std::string_view> XmlAttributes::get(std::string_view name) const {
  std::size_t i = 0;
  const std::string_view t = text_;
  while (true) {
    while (i < t.size() && is_ws(t[i])) ++i;
    if (i >= t.size()) return std::nullopt;
    std::size_t a = i;
    while (i < t.size() && name_char(t[i])) ++i;
    std::string_view attr = t.substr(a, i - a);
    while (i < t.size() && is_ws(t[i])) ++i;
    if (attr.empty() || i >= t.size() || t[i] != '=') return std::nullopt;
    ++i;
    while (i < t.size() && is_ws(t[i])) ++i;
    if (i >= t.size() || (t[i] != '"' && t[i] != '\'')) return std::nullopt;
    const char q = t[i++];
    auto close = t.find(q, i);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view raw = t.substr(i, close - i);
    i = close + 1;
    // Namespace declarations are not attributes (xmlns:x="..." is no attribute "x").
    if (local_part(attr) != name || attr.substr(0, 5) == "xmlns") continue;
    if (!std::memchr(raw.data(), '&', raw.size())) return raw;
    decoded_.clear();
    if (decode_into(raw, decoded_)) return std::nullopt;
    return std::string_view(decoded_);
  }
}



bool XmlScanner::tag(std::string_view inner) {
  if (!inner.empty() && inner.front() == '/') {
    std::string_view name = inner.substr(1);
    while (!name.empty() && is_ws(name.back())) name.remove_suffix(1);
    if (depth_ == 0) return fail("an end tag </" + std::string(name.substr(0, 40)) + "> with no element open");
    if (open_[depth_ - 1] != name)
      return fail("</" + std::string(name.substr(0, 40)) + "> where </" + open_[depth_ - 1] + "> belongs");
    --depth_;
    return events_.end(local_part(name));
  }
  bool empty = !inner.empty() && inner.back() == '/';
  if (empty) inner.remove_suffix(1);
  std::size_t i = 0;
  while (i < inner.size() && name_char(inner[i])) ++i;
  std::string_view name = inner.substr(0, i);
  if (name.empty()) return fail("a tag without a name");
  if (depth_ == 0 && root_seen_) return fail("a second document element <" + std::string(name.substr(0, 40)) + ">");
  XmlAttributes attrs(inner.substr(i));
  root_seen_ = true;
  const std::string_view local = local_part(name);
  if (!events_.start(local, attrs)) return false;
  if (empty) return events_.end(local);
  if (open_.size() <= depth_) open_.resize(depth_ + 1);
  open_[depth_++].assign(name);
  return true;
}

bool XmlScanner::scan(bool last) {
  while (pos_ < buf_.size()) {
    const char* p = buf_.data() + pos_;
    const std::size_t n = buf_.size() - pos_;
    if (*p != '<') {
      const void* lt = std::memchr(p, '<', n);
      if (!lt && !last) {
        if (n > kMaxToken) return fail("a text of more than 16 MiB");
        return true;  // the rest of the text comes with the next piece
      }
      std::size_t len = lt ? static_cast<std::size_t>(static_cast<const char*>(lt) - p) : n;
      std::string_view raw(p, len);
      if (depth_ == 0) {
        if (!all_ws(raw)) return fail("text outside the document element");
      } else if (ascii(raw) && !std::memchr(raw.data(), '&', raw.size())) {
        events_.text(raw);  // the common case: nothing to decode or check
      } else {
        text_.clear();
        if (!decode(raw, text_)) return false;
        events_.text(text_);
      }
      pos_ += len;
      continue;
    }
    if (n < 9 && !last) return true;  // "<!--", "<![CDATA[", "<?": decide with more bytes
    if (n >= 2 && p[1] != '?' && p[1] != '!') {
      // A tag, the common case: up to the first '>' outside quotes (a quoted value may hold
      // '>'). Tags are short: a plain loop, with memchr only across a quoted value.
      const char* end = p + n;
      const char* gt = nullptr;
      for (const char* c = p + 1; c < end; ++c) {
        if (*c == '>') {
          gt = c;
          break;
        }
        if (*c == '"' || *c == '\'') {
          c = static_cast<const char*>(std::memchr(c + 1, *c, static_cast<std::size_t>(end - c - 1)));
          if (!c) break;
        }
      }
      if (!gt) {
        if (!last && n <= kMaxToken) return true;
        return fail("a tag that is never closed");
      }
      std::size_t len = static_cast<std::size_t>(gt - p);
      if (!tag(std::string_view(p + 1, len - 1))) return false;
      pos_ += len + 1;
      continue;
    }
    std::string_view rest(p, n);
    // Comments, processing instructions and CDATA run to their closing mark: its end, or 0
    // when the mark has not arrived yet (more bytes come), or npos after an error.
    constexpr std::size_t kError = std::string_view::npos;
    auto closed_by = [&](std::string_view close, const char* what) -> std::size_t {
      auto at = rest.find(close, 2);
      if (at != std::string_view::npos) return at + close.size();
      if (!last && n <= kMaxToken) return 0;
      fail(std::string(what) + " that is never closed");
      return kError;
    };
    bool cdata = rest.substr(0, 9) == "<![CDATA[";
    if (rest.substr(0, 2) == "<?" || rest.substr(0, 4) == "<!--" || cdata) {
      std::size_t end = cdata ? closed_by("]]>", "a CDATA section")
                              : rest[1] == '?' ? closed_by("?>", "a processing instruction") : closed_by("-->", "a comment");
      if (end == 0) return true;
      if (end == kError) return false;
      if (cdata) {
        std::string_view raw = rest.substr(9, end - 12);
        if (depth_ == 0) return fail("a CDATA section outside the document element");
        if (!is_valid_utf8(raw)) return fail("text that is not UTF-8");
        events_.text(raw);
      }
      pos_ += end;
      continue;
    }
    return fail(n < 2 ? "a '<' at the end of the document" : "a DTD or declaration, which no workbook part has");
  }
  if (last) {
    if (depth_ > 0) return fail("the document ends inside <" + open_[depth_ - 1] + ">");
    if (!root_seen_) return fail("no document element");
  }
  return true;
}

bool XmlScanner::feed(std::string_view bytes, bool last) {
  if (!error_.empty()) return false;
  buf_.erase(0, pos_);
  pos_ = 0;
  buf_.append(bytes);
  return scan(last);
}

}  // namespace campus::attendance
