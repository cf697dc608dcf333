// Encoding handling for school exports (Chinese spreadsheets save GB18030, of which GBK is a part).
#include "text_file.hpp"

#include <fstream>
#include <sstream>

#include "campus/csv.hpp"

namespace campus::attendance {

Result<std::string> to_utf8_text(std::string bytes, const std::string& name) {
  auto enc = detect_encoding(bytes);
  if (!enc)
    return Error{name, "the file is neither UTF-8 nor GB18030 (GBK) text",
                 "save it from the spreadsheet as \"CSV UTF-8 (comma delimited)\""};
  if (*enc == CsvEncoding::Gb18030) {
    auto utf8 = gb18030_to_utf8(bytes);
    if (!utf8) return Error{name, utf8.error().what, utf8.error().fix};
    return std::move(utf8.value());
  }
  return bytes;
}

Result<std::string> read_text_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{file.string(), "cannot open the file", "check the path and that the agent's user may read it"};
  std::ostringstream ss;
  ss << in.rdbuf();
  return to_utf8_text(std::move(ss).str(), file.string());
}

}  // namespace campus::attendance
