// A validating JSON scanner for the collector's hot path: it checks a whole document against
// RFC 8259 (as strictly as nlohmann's parser: UTF-8, escapes, surrogate pairs, numbers; and on
// one point more: nlohmann stops at a NUL byte outside a string as if the input ended there,
// the scanner refuses it) and
// records where the members of the top-level object, and of one nested object, are, without
// building anything. The collector then parses only the small parts it needs (the envelope's
// fields, a report's summary) and keeps the bulk (a report's findings) as the bytes it received.
//
// Why: a fiber report is ~20 kB of JSON. Building nlohmann's DOM for it costs ~0.5 ms, which
// would hold the collector to a fraction of what the broker delivers (docs/performance.md).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace campus::county {

struct JsonMember {
  std::string key;          // decoded
  std::string_view value;   // the value's text, exactly as in the document
  std::size_t begin = 0;    // the member's extent in the document: from its key's opening quote
  std::size_t end = 0;      // to the end of its value
};

struct JsonSkim {
  bool ok = false;
  std::string error;                 // "at byte N: what" when !ok
  bool object = false;               // the document is an object
  std::vector<JsonMember> members;   // of the top-level object, in document order
  std::vector<JsonMember> nested;    // of the object value of top-level member `nested_key`, if any

  // The top-level member named `key` (the last one when repeated, as nlohmann keeps), or null.
  const JsonMember* find(std::string_view key) const;
  const JsonMember* find_nested(std::string_view key) const;
};

// Scans `text`; `nested_key` names the top-level member whose object members to record too
// ("body" for an envelope).
JsonSkim skim_json(std::string_view text, std::string_view nested_key = "body");

}  // namespace campus::county
