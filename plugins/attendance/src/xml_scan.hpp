// A small streaming XML tokenizer for the one part of a workbook that is large: the worksheet.
// expat reads every other part (xlsx_reader.cpp); on a term-sized sheet (900,000 rows, 348 MB
// of XML as openpyxl writes it) expat alone took 6.2 s on this project's 2-core machine, three
// times the 2 s the import may take, while this scanner finds each '<' with memchr.
//
// What it reads: start, end and empty-element tags (names compared by their local part, the
// prefix dropped, as expat's namespace mode gives them), attributes in either quote (found when
// asked for), text with the five predefined entities and character references (decoded to
// UTF-8), CDATA sections; comments and processing instructions are skipped. UTF-8 only (a
// worksheet in UTF-16, which no spreadsheet program writes, is refused). What it refuses, with a message: a DTD
// (no workbook has one), an end tag that does not match its start tag, a tag or text left open
// at the end, a character reference that is not a character, bytes that are not UTF-8, a token
// over 16 MiB. It is not a validating parser: it checks what it needs to deliver the right
// events and never to read past its buffer.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace campus::attendance {

// A start tag's attributes, read when asked: a sheet's rows carry attributes nobody reads
// (LibreOffice writes seven per row), so only the ones a handler asks for are found and decoded.
class XmlAttributes {
 public:
  explicit XmlAttributes(std::string_view text) : text_(text) {}
  // The value of the attribute whose local name is `name`, entities decoded; nullopt when it
  // is absent (or the attributes are malformed before it). Valid until the next get().
  std::optional<std::string_view> get(std::string_view name) const;

 private:
  std::string_view text_;
  mutable std::string decoded_;
};

class XmlEvents {
 public:
  virtual ~XmlEvents() = default;
  // Returning false stops the scan (feed() then returns false with an empty error()).
  virtual bool start(std::string_view local_name, const XmlAttributes& attrs) = 0;
  virtual bool end(std::string_view local_name) = 0;
  virtual void text(std::string_view text) = 0;
};

class XmlScanner {
 public:
  explicit XmlScanner(XmlEvents& events) : events_(events) {}
  // The next bytes of the document; `last` with the final (possibly empty) piece. False on an
  // error (error() says what) or when an event handler asked to stop (error() empty).
  bool feed(std::string_view bytes, bool last);
  const std::string& error() const { return error_; }

  static constexpr std::size_t kMaxToken = 16u << 20;

 private:
  // Handles the complete tokens in buf_ from pos_; false on an error or a stop.
  bool scan(bool last);
  bool tag(std::string_view inner);
  bool decode(std::string_view raw, std::string& out);
  bool fail(std::string what);

  XmlEvents& events_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::vector<std::string> open_;  // the names of the open elements: open_[0 .. depth_)
  std::size_t depth_ = 0;
  std::string text_;
  bool root_seen_ = false;
  std::string error_;
};

}  // namespace campus::attendance
