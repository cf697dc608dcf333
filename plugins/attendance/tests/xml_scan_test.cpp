// The worksheet tokenizer: the events it gives, the same whatever the pieces, and what it refuses.
#include <gtest/gtest.h>

#include "xml_scan.hpp"

namespace campus::attendance {
namespace {

// Records events as text: <name r=..>, </name>, "text".
struct Recorder : XmlEvents {
  std::string log;
  bool start(std::string_view name, const XmlAttributes& attrs) override {
    log += "<" + std::string(name);
    for (const char* a : {"r", "t", "x"})
      if (auto v = attrs.get(a)) log += " " + std::string(a) + "=" + std::string(*v);
    log += ">";
    return true;
  }
  bool end(std::string_view name) override {
    log += "</" + std::string(name) + ">";
    return true;
  }
  void text(std::string_view t) override { log += "\"" + std::string(t) + "\""; }
};

// Feeds `xml` in pieces of `piece` bytes; returns the events, or "ERROR: ..." on an error.
std::string scan(std::string_view xml, std::size_t piece = 1 << 20) {
  Recorder r;
  XmlScanner s(r);
  for (std::size_t at = 0; at < xml.size(); at += piece)
    if (!s.feed(xml.substr(at, piece), false)) return "ERROR: " + s.error();
  if (!s.feed({}, true)) return "ERROR: " + s.error();
  return r.log;
}

TEST(XmlScan, TagsAttributesTextEntitiesAndCdata) {
  const char* xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- a comment -->"
      "<x:sheet xmlns:x=\"urn:x\"><x:row r=\"2\" spans='1:7'><c r=\"A2\" t=\"s\"><v>1</v></c>"
      "<c r=\"B2\" x=\"a&gt;b &amp; &#24464;&#x9759;\"><is><t>&lt;张&gt;&quot;&apos;</t></is></c>"
      "<c r='C2'/><c><v><![CDATA[<raw> & ]]></v></c><?pi inside?></x:row></x:sheet>\n";
  const std::string want =
      "<sheet><row r=2><c r=A2 t=s><v>\"1\"</v></c><c r=B2 x=a>b & 徐静><is><t>\"<张>\"'\"</t></is></c>"
      "<c r=C2></c><c><v>\"<raw> & \"</v></c></row></sheet>";
  EXPECT_EQ(scan(xml), want);
  // The same events whatever the pieces libzip hands over, down to one byte at a time.
  for (std::size_t piece : {1u, 2u, 3u, 7u, 64u}) EXPECT_EQ(scan(xml, piece), want) << piece;
}

TEST(XmlScan, AQuotedValueMayHoldAnAngleBracket) {
  EXPECT_EQ(scan("<a x=\"1>2\"><b x='3>4'/></a>"), "<a x=1>2><b x=3>4></b></a>");
}

TEST(XmlScan, RefusesWhatNoWorksheetHas) {
  struct Case {
    const char* xml;
    const char* error;
  } cases[] = {
      {"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>", "a DTD"},
      {"<a><b></a>", "</a> where </b> belongs"},
      {"<a></a></b>", "with no element open"},
      {"<a></a><b></b>", "a second document element"},
      {"text<a/>", "text outside the document element"},
      {"<a>&bogus;</a>", "an entity other than the five"},
      {"<a>&#0;</a>", "a character XML does not allow"},
      {"<a>&#xD800;</a>", "a character XML does not allow"},
      {"<a>&#x110000;</a>", "beyond Unicode"},
      {"<a>& b</a>", "starts no entity"},
      {"<a>\xff\xfe</a>", "not UTF-8"},
      {"<a><b>", "ends inside <b>"},
      {"<a x=\"1></a>", "a tag that is never closed"},
      {"<a><!-- never closed</a>", "a comment that is never closed"},
      {"", "no document element"},
      {"<a><", "a '<' at the end"},
  };
  for (const auto& c : cases) {
    auto got = scan(c.xml);
    EXPECT_EQ(got.rfind("ERROR: ", 0), 0u) << c.xml << " -> " << got;
    EXPECT_NE(got.find(c.error), std::string::npos) << c.xml << " -> " << got;
  }
}

TEST(XmlScan, AHandlerCanStopTheScan) {
  struct Stopper : Recorder {
    bool start(std::string_view name, const XmlAttributes& a) override {
      Recorder::start(name, a);
      return name != "stop";
    }
  } r;
  XmlScanner s(r);
  EXPECT_FALSE(s.feed("<a><b/><stop/><c/></a>", true));
  EXPECT_TRUE(s.error().empty());
  EXPECT_EQ(r.log, "<a><b></b><stop>");
}

}  // namespace
}  // namespace campus::attendance
