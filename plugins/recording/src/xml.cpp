// Minimal XML reading for ONVIF SOAP replies.
#include "xml.hpp"

#include <cctype>
#include <vector>

namespace campus::recording {
namespace {

std::string_view local(std::string_view qname) {
  auto c = qname.find(':');
  return c == std::string_view::npos ? qname : qname.substr(c + 1);
}

struct Tag {
  enum Kind { Start, End, Empty, Other } kind = Other;
  std::string_view name;
  std::size_t begin = 0, end = 0;  // [begin, end) of the whole tag
};

// Next tag at or after pos; nullopt at the end; sets err on malformed markup.
std::optional<Tag> next_tag(std::string_view x, std::size_t pos, std::string& err) {
  std::size_t lt = x.find('<', pos);
  if (lt == std::string_view::npos) return std::nullopt;
  Tag t;
  t.begin = lt;
  if (x.substr(lt, 4) == "<!--") {
    auto e = x.find("-->", lt + 4);
    if (e == std::string_view::npos) { err = "unterminated comment"; return std::nullopt; }
    t.end = e + 3;
    return t;
  }
  if (x.substr(lt, 9) == "<![CDATA[") {
    auto e = x.find("]]>", lt + 9);
    if (e == std::string_view::npos) { err = "unterminated CDATA"; return std::nullopt; }
    t.end = e + 3;
    return t;
  }
  if (x.substr(lt, 2) == "<?" || x.substr(lt, 2) == "<!") {
    auto e = x.find('>', lt);
    if (e == std::string_view::npos) { err = "unterminated declaration"; return std::nullopt; }
    t.end = e + 1;
    return t;
  }
  // Find the closing '>' outside quoted attribute values.
  char quote = 0;
  std::size_t i = lt + 1;
  for (; i < x.size(); ++i) {
    char c = x[i];
    if (quote) { if (c == quote) quote = 0; continue; }
    if (c == '"' || c == '\'') quote = c;
    else if (c == '>') break;
    else if (c == '<') { err = "'<' inside a tag at byte " + std::to_string(i); return std::nullopt; }
  }
  if (i >= x.size()) { err = "unterminated tag at byte " + std::to_string(lt); return std::nullopt; }
  t.end = i + 1;
  std::size_t nb = lt + 1;
  bool closing = x[nb] == '/';
  if (closing) ++nb;
  std::size_t ne = nb;
  while (ne < i && x[ne] != ' ' && x[ne] != '\t' && x[ne] != '\r' && x[ne] != '\n' && x[ne] != '/') ++ne;
  t.name = x.substr(nb, ne - nb);
  if (t.name.empty()) { err = "tag without a name at byte " + std::to_string(lt); return std::nullopt; }
  t.kind = closing ? Tag::End : (x[i - 1] == '/' ? Tag::Empty : Tag::Start);
  return t;
}

std::string decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') { out.push_back(s[i]); continue; }
    auto semi = s.find(';', i);
    if (semi == std::string_view::npos) { out.push_back('&'); continue; }
    auto ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else { out += s.substr(i, semi - i + 1); }
    i = semi;
  }
  return out;
}

}  // namespace

std::string xml_check(std::string_view x) {
  std::vector<std::string_view> stack;
  std::size_t pos = 0;
  int roots = 0;
  std::string err;
  while (auto t = next_tag(x, pos, err)) {
    pos = t->end;
    if (t->kind == Tag::Start) {
      if (stack.empty()) ++roots;
      stack.push_back(t->name);
    } else if (t->kind == Tag::Empty) {
      if (stack.empty()) ++roots;
    } else if (t->kind == Tag::End) {
      if (stack.empty()) return "unexpected </" + std::string(t->name) + ">";
      if (stack.back() != t->name)
        return "</" + std::string(t->name) + "> closes <" + std::string(stack.back()) + ">";
      stack.pop_back();
    }
  }
  if (!err.empty()) return err;
  if (!stack.empty()) return "<" + std::string(stack.back()) + "> is never closed";
  if (roots == 0) return "no root element";
  if (roots > 1) return "more than one root element";
  return {};
}

std::optional<XmlElement> xml_find(std::string_view x, std::string_view name) {
  std::size_t pos = 0;
  std::string err;
  while (auto t = next_tag(x, pos, err)) {
    pos = t->end;
    if (local(t->name) != name) continue;
    if (t->kind == Tag::Empty) return XmlElement{x.substr(t->end, 0)};
    if (t->kind != Tag::Start) continue;
    // Find the matching end tag, counting nested elements of the same qualified name.
    int depth = 1;
    std::size_t p = t->end;
    while (auto u = next_tag(x, p, err)) {
      p = u->end;
      if (u->name != t->name) continue;
      if (u->kind == Tag::Start) ++depth;
      else if (u->kind == Tag::End && --depth == 0) return XmlElement{x.substr(t->end, u->begin - t->end)};
    }
    return std::nullopt;
  }
  return std::nullopt;
}

std::vector<XmlElement> xml_find_all(std::string_view x, std::string_view name) {
  std::vector<XmlElement> out;
  std::size_t pos = 0;
  while (pos <= x.size()) {
    auto e = xml_find(x.substr(pos), name);
    if (!e) break;
    out.push_back(*e);
    // Go on after this element's content (its end tag is skipped by the next search); the
    // content starts after the start tag, so the search always moves forward.
    pos = static_cast<std::size_t>(e->inner.data() - x.data()) + e->inner.size();
  }
  return out;
}

std::optional<std::string> xml_text(std::string_view x, std::string_view name) {
  auto e = xml_find(x, name);
  if (!e) return std::nullopt;
  std::string_view s = e->inner;
  if (s.starts_with("<![CDATA[") && s.ends_with("]]>")) return std::string(s.substr(9, s.size() - 12));
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return decode(s);
}

std::string xml_escape(std::string_view t) {
  std::string out;
  for (char c : t) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace campus::recording
