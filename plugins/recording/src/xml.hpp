// The little XML the ONVIF and Hikvision ISAPI probes need: a well-formedness check and element
// text by local name (namespace prefixes ignored). No DTDs, no entities beyond the five predefined ones.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace campus::recording {

struct XmlElement {
  std::string_view inner;  // raw content between the start and end tags
};

// Empty string when `xml` is well-formed enough (tags balanced, one root), else why not.
std::string xml_check(std::string_view xml);
// The first element with this local name inside `xml` (any prefix), searching in document order.
std::optional<XmlElement> xml_find(std::string_view xml, std::string_view local_name);
// Every element with this local name, in document order (elements nested in an earlier match
// are not searched again).
std::vector<XmlElement> xml_find_all(std::string_view xml, std::string_view local_name);
// Text content of the first element with that local name, entities decoded, trimmed.
std::optional<std::string> xml_text(std::string_view xml, std::string_view local_name);
// Escapes &, <, >, " for text and attribute values.
std::string xml_escape(std::string_view text);

}  // namespace campus::recording
