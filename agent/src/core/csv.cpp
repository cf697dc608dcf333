// CSV registers: RFC 4180 parsing with line numbers, UTF-8 validation, GB18030 detection.
#include "campus/csv.hpp"

#include <iconv.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace campus {
namespace {

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Strict GB18030 structure check. Two bytes (GBK): lead 0x81-0xFE, trail 0x40-0xFE except
// 0x7F. Four bytes (the characters GBK lacks, e.g. CJK Extension A/B in names): 0x81-0xFE,
// 0x30-0x39, 0x81-0xFE, 0x30-0x39.
bool looks_like_gb18030(std::string_view s) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = at(i);
    if (c < 0x80) continue;
    if (c == 0x80 || c == 0xFF || i + 1 >= s.size()) return false;
    auto t = at(i + 1);
    if (t >= 0x30 && t <= 0x39) {
      if (i + 3 >= s.size() || at(i + 2) < 0x81 || at(i + 2) == 0xFF || at(i + 3) < 0x30 || at(i + 3) > 0x39)
        return false;
      i += 3;
      continue;
    }
    if (t < 0x40 || t == 0x7F || t == 0xFF) return false;
    ++i;
  }
  return true;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int n;
    std::uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    else if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      auto t = static_cast<unsigned char>(s[i + k]);
      if ((t & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (t & 0x3F);
    }
    // Overlong forms, surrogates and out-of-range code points are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return false;
    i += n + 1;
  }
  return true;
}

std::optional<CsvEncoding> detect_encoding(std::string_view bytes) {
  if (bytes.substr(0, 3) == kBom || is_valid_utf8(bytes)) return CsvEncoding::Utf8;
  if (looks_like_gb18030(bytes)) return CsvEncoding::Gb18030;
  return std::nullopt;
}

Result<std::string> gb18030_to_utf8(std::string_view bytes) {
  iconv_t cd = iconv_open("UTF-8", "GB18030");
  if (cd == reinterpret_cast<iconv_t>(-1)) return Error{"", "iconv has no GB18030 converter", ""};
  std::string out(bytes.size() * 2 + 16, '\0');
  char* in = const_cast<char*>(bytes.data());
  std::size_t in_left = bytes.size();
  char* o = out.data();
  std::size_t out_left = out.size();
  std::size_t r = iconv(cd, &in, &in_left, &o, &out_left);
  iconv_close(cd);
  if (r == static_cast<std::size_t>(-1)) {
    return Error{"byte " + std::to_string(bytes.size() - in_left), "not valid GB18030 (GBK) text",
                 "save the file as \"CSV UTF-8\" in the spreadsheet program"};
  }
  out.resize(out.size() - out_left);
  return out;
}

std::string CsvRow::get(std::string_view column) const {
  if (!header) return {};
  for (std::size_t i = 0; i < header->size(); ++i)
    if ((*header)[i] == column) return i < cells.size() ? cells[i] : std::string{};
  return {};
}

bool CsvRow::has(std::string_view column) const {
  return header && std::find(header->begin(), header->end(), column) != header->end();
}

std::string CsvRow::where(std::string_view column) const {
  std::string w = file + ":" + std::to_string(line);
  if (!column.empty()) w += " column " + std::string(column);
  return w;
}

CsvTable parse_csv(std::string_view text, const std::string& name, const std::vector<std::string>& required) {
  CsvTable table;
  if (text.substr(0, 3) == kBom) text.remove_prefix(3);

  // Split into records, honouring quotes; remember the starting line of each.
  struct Raw { std::size_t line; std::vector<std::string> cells; std::string error; };
  std::vector<Raw> records;
  std::size_t line = 1, i = 0;
  while (i < text.size()) {
    Raw rec{line, {}, {}};
    std::string cell;
    bool in_quotes = false, end = false;
    std::size_t quote_at = 0, quote_line = 0;  // where the open quoted cell began
    while (i < text.size() && !end) {
      char c = text[i];
      if (in_quotes) {
        if (c == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') { cell += '"'; i += 2; continue; }
          in_quotes = false;
        } else {
          if (c == '\n') ++line;
          cell += c;
        }
        ++i;
      } else if (c == '"' && cell.empty()) {
        in_quotes = true; quote_at = i; quote_line = line; ++i;
      } else if (c == ',') {
        rec.cells.push_back(std::move(cell)); cell.clear(); ++i;
      } else if (c == '\r' || c == '\n') {
        if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
        ++i; ++line; end = true;
      } else {
        cell += c; ++i;
      }
    }
    if (in_quotes) {
      // One typo costs one row, not every row below it (csv_unclosed_quote in csv.hpp).
      std::size_t eol = text.find('\n', quote_at);
      i = eol == std::string_view::npos ? text.size() : eol + 1;
      line = quote_line + 1;
      cell.assign(text.substr(quote_at + 1, (eol == std::string_view::npos ? text.size() : eol) - quote_at - 1));
      rec.error = csv_unclosed_quote(quote_line);
    }
    rec.cells.push_back(std::move(cell));
    bool blank = rec.cells.size() == 1 && trim(rec.cells[0]).empty();
    if (!blank || !rec.error.empty()) records.push_back(std::move(rec));
  }
  if (records.empty()) {
    table.errors.push_back({name, "the file is empty: expected a header line", "export the register with its header row"});
    return table;
  }
  if (!records[0].error.empty()) {
    table.errors.push_back({name + ":" + std::to_string(records[0].line) + " (header)", records[0].error,
                            std::string(kCsvUnclosedQuoteFix)});
    return table;
  }
  for (auto& h : records[0].cells) table.header.push_back(lower(trim(h)));
  for (const auto& r : required) {
    if (std::find(table.header.begin(), table.header.end(), r) == table.header.end()) {
      std::string have;
      for (const auto& h : table.header) have += (have.empty() ? "" : ", ") + h;
      table.errors.push_back({name + ":1", "the header has no column \"" + r + "\" (columns: " + have + ")",
                              "add the column to the header row"});
    }
  }
  if (!table.errors.empty()) return table;
  // The subject of a bad row: its id cell when that cell itself is readable, so a register can
  // still name the room it cannot read instead of losing it from the report.
  auto id_at = static_cast<std::size_t>(
      std::find(table.header.begin(), table.header.end(), "id") - table.header.begin());
  if (id_at == table.header.size()) id_at = 0;
  auto bad_row = [&](const Raw& rec, Error e, bool id_cell_swallowed) {
    CsvBadRow bad{name + ":" + std::to_string(rec.line), {}, std::move(e)};
    if (!id_cell_swallowed && id_at < rec.cells.size() && is_valid_utf8(rec.cells[id_at]))
      bad.subject = trim(rec.cells[id_at]);
    table.errors.push_back(bad.error);
    table.bad_rows.push_back(std::move(bad));
  };
  for (std::size_t k = 1; k < records.size(); ++k) {
    auto& rec = records[k];
    std::string where = name + ":" + std::to_string(rec.line);
    if (!rec.error.empty()) {
      // The id cell is readable unless it is the unclosed cell itself (the last one).
      bad_row(rec, {where, rec.error, std::string(kCsvUnclosedQuoteFix)}, id_at + 1 >= rec.cells.size());
      continue;
    }
    bool utf8_ok = true;
    for (std::size_t c = 0; c < rec.cells.size(); ++c) {
      if (!is_valid_utf8(rec.cells[c])) {
        std::string col = c < table.header.size() ? table.header[c] : std::to_string(c + 1);
        bad_row(rec, {where + " column " + col, "not valid UTF-8 text",
                      "save the file as \"CSV UTF-8\" in the spreadsheet program"},
                false);
        utf8_ok = false;
        break;
      }
    }
    if (!utf8_ok) continue;
    if (rec.cells.size() > table.header.size()) {
      bad_row(rec, {where, "the row has " + std::to_string(rec.cells.size()) + " cells but the header has " +
                               std::to_string(table.header.size()),
                    "quote cells that contain commas"},
              false);
      continue;
    }
    CsvRow row;
    row.file = name;
    row.line = rec.line;
    for (auto& c : rec.cells) row.cells.push_back(trim(std::move(c)));
    table.rows.push_back(std::move(row));
  }
  auto header = std::make_shared<const std::vector<std::string>>(table.header);
  for (auto& r : table.rows) r.header = header;
  return table;
}

Result<CsvTable> read_csv_file(const std::filesystem::path& file, const std::vector<std::string>& required) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{file.string(), "cannot open the file", "check the path and that the agent's user may read it"};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  auto enc = detect_encoding(bytes);
  std::string name = file.string();
  if (enc == CsvEncoding::Gb18030) {
    auto utf8 = gb18030_to_utf8(bytes);
    if (!utf8) return Error{name, utf8.error().what, utf8.error().fix};
    bytes = std::move(utf8.value());
  }
  // Invalid UTF-8 that is not GB18030 either: parse anyway so each bad row is named by line.
  return parse_csv(bytes, name, required);
}

}  // namespace campus
