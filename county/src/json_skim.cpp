// The validating JSON scanner (see json_skim.hpp). One pass, no allocation but the member list;
// accepts exactly what nlohmann::json::parse accepts (the fuzz target checks it).
#include "json_skim.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace campus::county {
namespace {

bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
int hex(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Scanner {
  std::string_view s;
  std::size_t i = 0;
  std::string error;

  bool fail(const std::string& what) {
    if (error.empty()) error = "at byte " + std::to_string(i) + ": " + what;
    return false;
  }
  void ws() {
    while (i < s.size() && is_ws(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool at_end() const { return i >= s.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(s[i]); }

  // \uXXXX at i (after the backslash and 'u'): the code unit, or -1.
  long unit() {
    if (i + 4 > s.size()) return -1;
    long v = 0;
    for (int k = 0; k < 4; ++k) {
      int h = hex(static_cast<unsigned char>(s[i + k]));
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    i += 4;
    return v;
  }

  // A UTF-8 sequence starting at i with lead byte c >= 0x80 (RFC 3629, as nlohmann checks it).
  bool utf8(unsigned char c) {
    auto in = [&](std::size_t k, unsigned char lo, unsigned char hi) {
      if (i + k >= s.size()) return false;
      auto b = static_cast<unsigned char>(s[i + k]);
      return b >= lo && b <= hi;
    };
    std::size_t n = 0;
    if (c >= 0xC2 && c <= 0xDF) n = in(1, 0x80, 0xBF) ? 2 : 0;
    else if (c == 0xE0) n = in(1, 0xA0, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) n = in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
    else if (c == 0xED) n = in(1, 0x80, 0x9F) && in(2, 0x80, 0xBF) ? 3 : 0;
    else if (c == 0xF0) n = in(1, 0x90, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
    else if (c >= 0xF1 && c <= 0xF3) n = in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
    else if (c == 0xF4) n = in(1, 0x80, 0x8F) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
    if (n == 0) return fail("invalid UTF-8 in a string");
    i += n;
    return true;
  }

  // A string at i (on its opening quote). `decoded` gets its value when not null.
  bool string(std::string* decoded) {
    ++i;
    std::size_t run = i;  // start of the bytes copied as they are
    for (;;) {
      if (at_end()) return fail("a string is not closed");
      unsigned char c = peek();
      if (c == '"') {
        if (decoded) decoded->append(s.data() + run, i - run);
        ++i;
        return true;
      }
      if (c < 0x20) return fail("a control character in a string (escape it)");
      if (c == '\\') {
        if (decoded) decoded->append(s.data() + run, i - run);
        ++i;
        if (at_end()) return fail("a string ends inside an escape");
        unsigned char e = peek();
        ++i;
        const char* plain = "\"\\/bfnrt";
        const char* mapped = "\"\\/\b\f\n\r\t";
        bool simple = false;
        for (int k = 0; k < 8; ++k)
          if (e == static_cast<unsigned char>(plain[k])) {
            if (decoded) decoded->push_back(mapped[k]);
            simple = true;
          }
        if (!simple) {
          if (e != 'u') return fail("an invalid escape in a string");
          long cp = unit();
          if (cp < 0) return fail("\\u must be followed by four hex digits");
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("a low surrogate without its high surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 2 > s.size() || s[i] != '\\' || s[i + 1] != 'u') return fail("a high surrogate without its low surrogate");
            i += 2;
            long lo = unit();
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("a high surrogate without its low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          if (decoded) {
            if (cp < 0x80) decoded->push_back(static_cast<char>(cp));
            else if (cp < 0x800) {
              decoded->push_back(static_cast<char>(0xC0 | (cp >> 6)));
              decoded->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
            } else if (cp < 0x10000) {
              decoded->push_back(static_cast<char>(0xE0 | (cp >> 12)));
              decoded->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
              decoded->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
            } else {
              decoded->push_back(static_cast<char>(0xF0 | (cp >> 18)));
              decoded->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
              decoded->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
              decoded->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
            }
          }
        }
        run = i;
        continue;
      }
      if (c >= 0x80) {
        if (!utf8(c)) return false;
        continue;
      }
      ++i;
    }
  }

  bool digits() {
    std::size_t from = i;
    while (!at_end() && peek() >= '0' && peek() <= '9') ++i;
    return i > from;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and finite as a double: nlohmann refuses a
  // number that overflows ("number overflow"), an integer beyond 64 bits included.
  bool number() {
    const std::size_t from = i;
    if (!number_syntax()) return false;
    const std::string_view tok = s.substr(from, i - from);
    if (tok.size() > 15 || tok.find_first_of(".eE") != std::string_view::npos) {
      const std::string text(tok);
      if (!std::isfinite(std::strtod(text.c_str(), nullptr))) return fail("a number too large for a double");
    }
    return true;
  }

  bool number_syntax() {
    if (peek() == '-') ++i;
    if (at_end()) return fail("a number without digits");
    if (peek() == '0') ++i;
    else if (!digits()) return fail("a number without digits");
    if (!at_end() && peek() == '.') {
      ++i;
      if (!digits()) return fail("a number with no digit after its point");
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++i;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++i;
      if (!digits()) return fail("a number with no digit in its exponent");
    }
    return true;
  }

  bool literal(std::string_view word) {
    if (s.substr(i, word.size()) != word) return fail("not a JSON value");
    i += word.size();
    return true;
  }
};

}  // namespace

const JsonMember* JsonSkim::find(std::string_view key) const {
  for (auto it = members.rbegin(); it != members.rend(); ++it)
    if (it->key == key) return &*it;
  return nullptr;
}

const JsonMember* JsonSkim::find_nested(std::string_view key) const {
  for (auto it = nested.rbegin(); it != nested.rend(); ++it)
    if (it->key == key) return &*it;
  return nullptr;
}

JsonSkim skim_json(std::string_view text, std::string_view nested_key) {
  JsonSkim out;
  Scanner sc;
  sc.s = text;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") sc.i = 3;  // nlohmann skips a BOM too
  // The containers open at this point: '{' or '['; `level` 1 for the top-level object, 2 for
  // the nested object, 0 for anything else.
  struct Frame {
    char type = '{';
    int level = 0;
    bool first = true;  // nothing inside yet
    JsonMember member;  // the member being read (levels 1 and 2)
  };
  std::vector<Frame> stack;
  bool value_done = false;  // a value just ended at sc.i
  sc.ws();
  if (sc.at_end()) {
    out.error = "the document is empty";
    return out;
  }
  for (;;) {
    if (!value_done) {
      // A value begins here.
      sc.ws();
      if (sc.at_end()) {
        sc.fail("a value is missing");
        break;
      }
      const std::size_t vbegin = sc.i;
      unsigned char c = sc.peek();
      if (!stack.empty() && stack.back().level > 0) stack.back().member.value = text.substr(vbegin, 0);
      if (c == '{' || c == '[') {
        int level = 0;
        if (c == '{' && stack.empty()) level = 1, out.object = true;
        else if (c == '{' && stack.size() == 1 && stack.back().level == 1 && stack.back().member.key == nested_key) {
          level = 2;
          out.nested.clear();  // a repeated key: the last one counts
        }
        ++sc.i;
        Frame frame;
        frame.type = static_cast<char>(c);
        frame.level = level;
        stack.push_back(std::move(frame));
        sc.ws();
        if (sc.at_end()) {
          sc.fail(c == '{' ? "an object is not closed" : "an array is not closed");
          break;
        }
        if (sc.peek() == (c == '{' ? '}' : ']')) {
          ++sc.i;
          stack.pop_back();
          value_done = true;
          continue;
        }
        if (c == '[') continue;  // the first element
        // The first key of an object.
      } else {
        bool ok = c == '"' ? sc.string(nullptr)
                  : c == 't' ? sc.literal("true")
                  : c == 'f' ? sc.literal("false")
                  : c == 'n' ? sc.literal("null")
                  : (c == '-' || (c >= '0' && c <= '9')) ? sc.number()
                  : sc.fail("not a JSON value");
        if (!ok) break;
        value_done = true;
        continue;
      }
    } else {
      // A value ended: finish the member it was the value of, then what follows it.
      if (stack.empty()) {
        sc.ws();
        if (!sc.at_end()) sc.fail("more text after the document");
        else out.ok = true;
        break;
      }
      Frame& f = stack.back();
      if (f.level > 0 && f.type == '{') {
        const char* base = text.data();
        std::size_t vbegin = static_cast<std::size_t>(f.member.value.data() - base);
        f.member.value = text.substr(vbegin, sc.i - vbegin);
        f.member.end = sc.i;
        (f.level == 1 ? out.members : out.nested).push_back(std::move(f.member));
        f.member = JsonMember{};
      }
      sc.ws();
      if (sc.at_end()) {
        sc.fail(f.type == '{' ? "an object is not closed" : "an array is not closed");
        break;
      }
      unsigned char c = sc.peek();
      if (c == (f.type == '{' ? '}' : ']')) {
        ++sc.i;
        stack.pop_back();
        continue;  // value_done stays: the container was a value
      }
      if (c != ',') {
        sc.fail(f.type == '{' ? "expected , or } in an object" : "expected , or ] in an array");
        break;
      }
      ++sc.i;
      value_done = false;
      if (f.type == '[') continue;
      sc.ws();
    }
    // A key, its colon; then its value.
    Frame& f = stack.back();
    if (sc.at_end() || sc.peek() != '"') {
      sc.fail("expected a key (a string) in an object");
      break;
    }
    f.member.begin = sc.i;
    if (!sc.string(f.level > 0 ? &f.member.key : nullptr)) break;
    sc.ws();
    if (sc.at_end() || sc.peek() != ':') {
      sc.fail("expected : after a key");
      break;
    }
    ++sc.i;
    value_done = false;
  }
  if (!out.ok) {
    out.error = sc.error.empty() ? "not JSON" : sc.error;
    out.members.clear();
    out.nested.clear();
  }
  return out;
}

}  // namespace campus::county
