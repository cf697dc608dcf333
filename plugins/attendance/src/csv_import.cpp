// Streaming CSV import: the core's parse_csv applied to chunks of whole records.
#include "csv_import.hpp"

#include <charconv>

#include "campus/csv.hpp"
#include "text_file.hpp"

namespace campus::attendance {
namespace {

constexpr std::size_t kChunkRecords = 4096;

// Position just past the end of the record starting at `pos` (quote-aware), and the number of
// line breaks it contains.
std::size_t record_end(std::string_view text, std::size_t pos, std::size_t& newlines) {
  bool in_quotes = false;
  while (pos < text.size()) {
    char c = text[pos++];
    if (c == '"') in_quotes = !in_quotes;
    else if (c == '\n') {
      ++newlines;
      if (!in_quotes) break;
    }
  }
  return pos;
}

// parse_csv numbers lines from 1 within the chunk (header = line 1); rewrite to file lines.
std::string shift_where(const std::string& where, const std::string& name, std::size_t offset) {
  if (where.compare(0, name.size() + 1, name + ":") != 0) return where;
  std::size_t p = name.size() + 1, line = 0;
  auto r = std::from_chars(where.data() + p, where.data() + where.size(), line);
  if (r.ec != std::errc()) return where;
  return name + ":" + std::to_string(line + offset) + std::string(r.ptr, where.data() + where.size());
}

}  // namespace

CsvImportResult import_csv_text(std::string_view text, const std::string& name, const FieldNames& fields,
                                bool keep_names, const RecordSink& sink) {
  CsvImportResult result;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::size_t newlines = 0;
  std::size_t header_end = record_end(text, 0, newlines);
  std::string header(text.substr(0, header_end));
  if (header.empty() || header.back() != '\n') header += '\n';
  const std::vector<std::string> required = {fields.student_id, fields.class_name, fields.date, fields.status};

  std::size_t pos = header_end;
  std::size_t line = 1 + newlines;  // file line where the next chunk starts
  bool first = true;
  do {
    std::size_t chunk_start = pos, chunk_lines = 0;
    for (std::size_t n = 0; n < kChunkRecords && pos < text.size(); ++n) pos = record_end(text, pos, chunk_lines);
    std::string chunk = header;
    chunk.append(text.substr(chunk_start, pos - chunk_start));
    CsvTable table = parse_csv(chunk, name, first ? required : std::vector<std::string>{});
    const std::size_t offset = line - 2;  // chunk line 2 is file line `line`
    if (first && table.header.size() > 0 && !table.errors.empty() && table.rows.empty() &&
        table.errors.front().where == name + ":1") {
      result.errors = table.errors;
      result.fatal = true;
      return result;
    }
    if (first && table.header.empty()) {
      result.errors.push_back({name, "the file is empty: expected a header line", "export with the header row"});
      result.fatal = true;
      return result;
    }
    first = false;
    for (auto& e : table.errors) {
      e.where = shift_where(e.where, name, offset);
      result.errors.push_back(std::move(e));
      ++result.rows;
    }
    for (const auto& row : table.rows) {
      ++result.rows;
      auto rec = make_record([&](const std::string& col) { return row.get(col); }, fields, keep_names);
      if (!rec) {
        result.errors.push_back({name + ":" + std::to_string(row.line + offset) + " column " + rec.error().where,
                                 rec.error().what, rec.error().fix});
        continue;
      }
      sink(*rec);
      ++result.imported;
    }
    line += chunk_lines;
  } while (pos < text.size());
  return result;
}

CsvImportResult import_csv_file(const std::filesystem::path& file, const FieldNames& fields, bool keep_names,
                                const RecordSink& sink) {
  auto text = read_text_file(file);
  if (!text) {
    CsvImportResult r;
    r.errors.push_back(text.error());
    r.fatal = true;
    return r;
  }
  return import_csv_text(*text, file.filename().string(), fields, keep_names, sink);
}

}  // namespace campus::attendance
