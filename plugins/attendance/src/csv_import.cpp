// Streaming CSV import. The core's parse_csv builds a table of strings, which for a term-sized
// export (900,000 rows) costs seconds and hundreds of MB; this reads records one at a time as
// views into the text (RFC 4180 quoting, CRLF or LF, cells trimmed as the core does), and maps
// UTF-8 files so pages already read are given back (peak memory stays near the book's size).
#include "csv_import.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <deque>

#include "campus/csv.hpp"
#include "text_file.hpp"

namespace campus::attendance {
namespace {

constexpr std::size_t kWindow = 4u << 20;  // pages behind the reader are released per window

// isspace() of the "C" locale, inline: it runs on both ends of every cell (a library call
// per character showed in the import's profile).
constexpr bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A read-only mapping of a file whose consumed pages can be handed back to the kernel.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_) munmap(data_, size_);
  }
  bool open(const std::filesystem::path& file) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    bool ok = fstat(fd, &st) == 0;
    size_ = ok ? static_cast<std::size_t>(st.st_size) : 0;
    if (ok && size_ > 0) {
      void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) ok = false;
      else {
        data_ = static_cast<char*>(p);
        madvise(data_, size_, MADV_SEQUENTIAL);
      }
    }
    ::close(fd);
    return ok;
  }
  std::string_view text() const { return {data_ ? data_ : "", size_}; }
  // Starts a new pass: everything may be released again.
  void rewind() { released_ = 0; }
  // Gives back the pages wholly before `pos` (they are re-read from the page cache if touched).
  void release_before(std::size_t pos) {
    static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    std::size_t end = pos / page * page;
    if (data_ && end > released_) {
      madvise(data_ + released_, end - released_, MADV_DONTNEED);
      released_ = end;
    }
  }

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t released_ = 0;
};

// Validates UTF-8 window by window, releasing what was checked.
bool valid_utf8_streaming(MappedFile& f) {
  std::string_view t = f.text();
  std::size_t pos = 0;
  while (pos < t.size()) {
    std::size_t end = std::min(t.size(), pos + kWindow);
    while (end < t.size() && end > pos && (static_cast<unsigned char>(t[end]) & 0xC0) == 0x80) --end;
    if (!is_valid_utf8(t.substr(pos, end - pos))) return false;
    pos = end;
    f.release_before(pos);
  }
  f.rewind();
  return true;
}

// One CSV record at a time. Unquoted cells are views into the text; a quoted cell with ""
// escapes is unescaped into storage owned by the scanner until the next record.
class CsvScanner {
 public:
  explicit CsvScanner(std::string_view text) : text_(text) {}
  bool done() const { return pos_ >= text_.size(); }
  std::size_t pos() const { return pos_; }
  // Reads the next non-blank record. Returns false at the end. `line` = its first line;
  // `error` is set (and cells are unusable) when a quote is never closed.
  bool next(std::vector<std::string_view>& cells, std::size_t& line, std::string& error) {
    for (;;) {
      if (pos_ >= text_.size()) return false;
      cells.clear();
      scratch_.clear();
      error.clear();
      line = line_;
      bool end = false;
      while (!end) {
        if (pos_ < text_.size() && text_[pos_] == '"' ) {
          const std::size_t quote_line = line_;
          ++pos_;
          std::size_t start = pos_;
          bool escaped = false;
          for (;;) {
            if (pos_ >= text_.size()) {
              // A stray quote: the record ends with the line it opened on; the lines after it
              // are read again as rows of their own (campus/csv.hpp, csv_unclosed_quote).
              error = campus::csv_unclosed_quote(quote_line);
              std::size_t eol = text_.find('\n', start);
              pos_ = eol == std::string_view::npos ? text_.size() : eol + 1;
              line_ = quote_line + 1;
              return true;
            }
            char c = text_[pos_];
            if (c == '"') {
              if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') { escaped = true; pos_ += 2; continue; }
              break;
            }
            if (c == '\n') ++line_;
            ++pos_;
          }
          std::string_view raw = text_.substr(start, pos_ - start);
          if (pos_ < text_.size()) ++pos_;  // closing quote
          // Anything between the closing quote and the separator is kept, as the core does.
          std::size_t tail = pos_;
          while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' && text_[pos_] != '\r') ++pos_;
          if (escaped || pos_ > tail) {
            std::string v;
            for (std::size_t i = 0; i < raw.size(); ++i) {
              v += raw[i];
              if (raw[i] == '"') ++i;
            }
            v.append(text_.substr(tail, pos_ - tail));
            scratch_.push_back(std::move(v));
            cells.push_back(trim(scratch_.back()));
          } else {
            cells.push_back(trim(raw));
          }
        } else {
          std::size_t start = pos_;
          while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' && text_[pos_] != '\r') ++pos_;
          cells.push_back(trim(text_.substr(start, pos_ - start)));
        }
        if (pos_ >= text_.size()) { end = true; }
        else if (text_[pos_] == ',') { ++pos_; }
        else {
          if (text_[pos_] == '\r') ++pos_;
          if (pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
          ++line_;
          end = true;
        }
      }
      if (cells.size() == 1 && cells[0].empty()) continue;  // blank line
      return true;
    }
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
  std::deque<std::string> scratch_;
};

ImportResult import_text(std::string_view text, const std::string& name, const FieldNames& fields,
                         const RecordRules& rules, const RecordSink& sink, MappedFile* mapped) {
  ImportResult result;
  std::size_t skip = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  CsvScanner scan(text.substr(skip));
  std::vector<std::string_view> cells;
  std::size_t line = 0;
  std::string error;
  if (!scan.next(cells, line, error) || !error.empty()) {
    if (!error.empty())
      result.errors.push_back({name + ":" + std::to_string(line) + " (header)", error, std::string(campus::kCsvUnclosedQuoteFix)});
    else
      result.errors.push_back({name, "the file is empty: expected a header line", "export the file with its header row"});
    result.fatal = true;
    return result;
  }
  ExportRows rows(name, fields, rules, sink, result);
  if (!rows.header(cells, line)) return result;
  std::size_t next_release = kWindow;
  while (scan.next(cells, line, error)) {
    if (!error.empty()) rows.bad_row(line, error, std::string(campus::kCsvUnclosedQuoteFix));
    else rows.row(cells, line);
    if (mapped && scan.pos() > next_release) {
      mapped->release_before(scan.pos() + skip);
      next_release = scan.pos() + kWindow;
    }
  }
  return result;
}

}  // namespace

ImportResult import_csv_text(std::string_view text, const std::string& name, const FieldNames& fields,
                             const RecordRules& rules, const RecordSink& sink) {
  return import_text(text, name, fields, rules, sink, nullptr);
}

ImportResult import_csv_file(const std::filesystem::path& file, const FieldNames& fields, const RecordRules& rules,
                             const RecordSink& sink) {
  std::string name = file.filename().string();
  // UTF-8 (the common case, and what a term-sized export should be): mapped, never copied.
  {
    MappedFile mapped;
    if (mapped.open(file) && valid_utf8_streaming(mapped))
      return import_text(mapped.text(), name, fields, rules, sink, &mapped);
  }
  // GB18030 (or unreadable): read, convert, import.
  auto text = read_text_file(file);
  if (!text) {
    ImportResult r;
    Error e = text.error();
    e.where = name;
    r.errors.push_back(e);
    r.fatal = true;
    return r;
  }
  return import_text(*text, name, fields, rules, sink, nullptr);
}

}  // namespace campus::attendance
