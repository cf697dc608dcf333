// Streaming .xlsx reading: libzip hands out each part's decompressed bytes in chunks, expat
// parses them as they come. Element names are compared by their local name (the part after
// the namespace), so writers that use prefixes (<x:row>) or Strict OOXML read the same.
#include "xlsx_reader.hpp"

#include <expat.h>
#include <zip.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "xml_scan.hpp"

namespace campus::attendance {
namespace {

constexpr char kNsSep = '\x01';
constexpr std::size_t kChunk = 64u << 10;

std::string_view local_name(const XML_Char* name) {
  std::string_view n(name);
  auto at = n.rfind(kNsSep);
  return at == std::string_view::npos ? n : n.substr(at + 1);
}

// `local` is a literal: compared as it is first (an unprefixed attribute), by its local part next.
const XML_Char* attribute(const XML_Char** attrs, const char* local) {
  for (int i = 0; attrs[i]; i += 2)
    if (std::strcmp(attrs[i], local) == 0 || local_name(attrs[i]) == local) return attrs[i + 1];
  return nullptr;
}

// "AB12" -> column index 27 (0-based); -1 when there are no letters or too many.
long column_of(std::string_view ref) {
  long col = 0;
  std::size_t i = 0;
  for (; i < ref.size() && ref[i] >= 'A' && ref[i] <= 'Z'; ++i) {
    col = col * 26 + (ref[i] - 'A' + 1);
    if (col > static_cast<long>(XlsxReader::kMaxColumns)) return -1;
  }
  return i == 0 ? -1 : col - 1;
}

// A number cell's text: integers without a fraction or exponent ("2.0260001E7" -> "20260001").
std::string number_text(std::string_view v) {
  double d = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), d);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) return std::string(v);
  if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
  return std::string(v);
}

// One XML part streamed through expat with handlers of type H (H::start, H::end, H::text).
// Stops at the first error (broken XML, a DTD, the handler's own); returns it.
template <class H>
Status parse_part(zip_t* zip, const std::string& part, const std::string& name, H& handler, std::uint64_t limit) {
  zip_int64_t index = zip_name_locate(zip, part.c_str(), 0);
  if (index < 0) return Error{name, "the workbook has no part " + part, "save the file again as an Excel workbook (.xlsx)"};
  zip_file_t* f = zip_fopen_index(zip, static_cast<zip_uint64_t>(index), 0);
  if (!f) return Error{name, "cannot read " + part + ": " + zip_strerror(zip), "save the file again as an Excel workbook (.xlsx)"};
  XML_Parser p = XML_ParserCreateNS("UTF-8", kNsSep);
  struct Ctx {
    H* h;
    XML_Parser p;
    bool doctype = false;
  } ctx{&handler, p};
  XML_SetUserData(p, &ctx);
  XML_SetElementHandler(
      p,
      [](void* u, const XML_Char* el, const XML_Char** attrs) {
        auto* c = static_cast<Ctx*>(u);
        if (!c->h->start(local_name(el), attrs)) XML_StopParser(c->p, XML_FALSE);
      },
      [](void* u, const XML_Char* el) {
        auto* c = static_cast<Ctx*>(u);
        if (!c->h->end(local_name(el))) XML_StopParser(c->p, XML_FALSE);
      });
  XML_SetCharacterDataHandler(p, [](void* u, const XML_Char* s, int len) {
    static_cast<Ctx*>(u)->h->text(std::string_view(s, static_cast<std::size_t>(len)));
  });
  // A workbook part never has a DTD; refusing one shuts out entity expansion altogether.
  XML_SetStartDoctypeDeclHandler(p, [](void* u, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    auto* c = static_cast<Ctx*>(u);
    c->doctype = true;
    XML_StopParser(c->p, XML_FALSE);
  });
  std::string buf(kChunk, '\0');
  std::uint64_t total = 0;
  Status status;
  for (;;) {
    zip_int64_t n = zip_fread(f, buf.data(), buf.size());
    if (n < 0) {
      status = Error{name, "cannot decompress " + part + ": " + zip_file_strerror(f), "save the file again as an Excel workbook (.xlsx)"};
      break;
    }
    total += static_cast<std::uint64_t>(n);
    if (total > limit) {
      status = Error{name, part + " is larger than " + std::to_string(limit >> 20) + " MiB decompressed",
                     "split the export into smaller files"};
      break;
    }
    if (XML_Parse(p, buf.data(), static_cast<int>(n), n == 0) != XML_STATUS_OK) {
      if (handler.stopped) break;  // the handler has all it wants
      if (handler.failure) status = *handler.failure;
      else if (ctx.doctype) status = Error{name, part + " has a DTD, which no workbook has", "save the file again as an Excel workbook (.xlsx)"};
      else
        status = Error{name, part + " is not well-formed XML (line " + std::to_string(XML_GetCurrentLineNumber(p)) +
                                 "): " + XML_ErrorString(XML_GetErrorCode(p)),
                       "save the file again as an Excel workbook (.xlsx)"};
      break;
    }
    if (n == 0) break;
  }
  XML_ParserFree(p);
  zip_fclose(f);
  return status;
}

// _rels/*.rels: relationship id -> target part.
struct Relationships {
  bool stopped = false;
  std::string base;  // the directory targets are relative to ("xl/")
  std::map<std::string, std::string> target;
  std::map<std::string, std::string> by_type;  // last path element of Type -> target
  std::optional<Error> failure;
  bool start(std::string_view el, const XML_Char** attrs) {
    if (el != "Relationship") return true;
    const char* id = attribute(attrs, "Id");
    const char* t = attribute(attrs, "Target");
    const char* type = attribute(attrs, "Type");
    if (!id || !t) return true;
    std::string path = t;
    if (!path.empty() && path[0] == '/') path.erase(0, 1);
    else path = base + path;
    target[id] = path;
    if (type) {
      std::string_view ty(type);
      by_type[std::string(ty.substr(ty.rfind('/') + 1))] = path;
    }
    return true;
  }
  bool end(std::string_view) { return true; }
  void text(std::string_view) {}
};

// xl/workbook.xml: the sheets in order, and the date system.
struct WorkbookPart {
  bool stopped = false;
  std::vector<std::pair<std::string, std::string>> sheets;  // name, relationship id
  bool date1904 = false;
  std::optional<Error> failure;
  bool start(std::string_view el, const XML_Char** attrs) {
    if (el == "sheet") {
      const char* n = attribute(attrs, "name");
      const char* id = attribute(attrs, "id");
      if (n && id) sheets.emplace_back(n, id);
    } else if (el == "workbookPr") {
      const char* d = attribute(attrs, "date1904");
      date1904 = d && (std::strcmp(d, "1") == 0 || std::strcmp(d, "true") == 0);
    }
    return true;
  }
  bool end(std::string_view) { return true; }
  void text(std::string_view) {}
};

// xl/sharedStrings.xml: one text per <si>, its <t> runs joined, phonetic <rPh> runs left out.
struct SharedStrings {
  bool stopped = false;
  std::string chars;                 // every string, one after the other
  std::vector<std::uint32_t> ends;   // where each one ends in `chars`
  int in_si = 0, in_t = 0, in_rph = 0;
  std::optional<Error> failure;
  bool start(std::string_view el, const XML_Char**) {
    if (el == "si") in_si = 1;
    else if (el == "rPh") ++in_rph;
    else if (el == "t" && in_si && !in_rph) in_t = 1;
    return true;
  }
  bool end(std::string_view el) {
    if (el == "si") {
      in_si = 0;
      ends.push_back(static_cast<std::uint32_t>(chars.size()));
    } else if (el == "rPh") {
      --in_rph;
    } else if (el == "t") {
      in_t = 0;
    }
    return true;
  }
  void text(std::string_view s) {
    if (in_t) chars.append(s);
  }
  std::string_view at(std::size_t i) const {
    std::size_t b = i == 0 ? 0 : ends[i - 1];
    return std::string_view(chars).substr(b, ends[i] - b);
  }
};

// A worksheet, row by row.
struct SheetPart final : XmlEvents {
  const SharedStrings& strings;
  const XlsxReader::RowFn& emit;
  std::string name;
  std::vector<XlsxCell> cells;
  std::size_t used = 0;         // cells of this row in use (the vector keeps its strings' capacity)
  std::size_t row = 0;          // the current row's number
  long col = -1;                // the current cell's column
  char type = 'n';              // the current cell's t attribute: s, n, or the first letter of the others
  std::string value;            // its <v> or inline <t> text
  bool in_row = false, in_cell = false, in_v = false, in_is = false, in_t = false, has_value = false;
  int in_rph = 0;
  bool any = false;             // a non-empty cell in this row
  bool stopped = false;         // the caller wants no more rows
  std::optional<Error> failure;

  SheetPart(const SharedStrings& s, const XlsxReader::RowFn& e, std::string n) : strings(s), emit(e), name(std::move(n)) {}

  bool fail(std::string what) {
    failure = Error{name + ":" + std::to_string(row), std::move(what), "save the file again as an Excel workbook (.xlsx)"};
    return false;
  }
  bool start(std::string_view el, const XmlAttributes& attrs) override {
    if (el == "row") {
      std::size_t n = row + 1;
      if (auto r = attrs.get("r")) {
        auto res = std::from_chars(r->data(), r->data() + r->size(), n);
        if (res.ec != std::errc() || res.ptr != r->data() + r->size() || n == 0 || n > 10'000'000)
          return fail("a row with a bad number \"" + std::string(r->substr(0, 12)) + "\"");
      }
      row = n;
      in_row = true;
      used = 0;
      any = false;
      col = -1;
    } else if (el == "c" && in_row) {
      auto r = attrs.get("r");
      long c = r ? column_of(*r) : col + 1;
      if (c < 0 || c >= static_cast<long>(XlsxReader::kMaxColumns)) return fail("a cell with a bad reference");
      if (c <= col) return fail("cells out of order in the row");
      col = c;
      auto t = attrs.get("t");
      // s (shared), n (number), inlineStr, str (formula text), b (boolean), e (error), d (date text)
      type = !t ? 'n' : *t == "s" ? 's' : *t == "n" ? 'n' : 'o';
      value.clear();
      in_cell = true;
      has_value = false;
    } else if (in_cell && el == "v") {
      in_v = true;
      has_value = true;
    } else if (in_cell && el == "is") {
      in_is = true;
      has_value = true;
    } else if (in_is && el == "rPh") {
      ++in_rph;
    } else if (in_is && el == "t" && !in_rph) {
      in_t = true;
    }
    return true;
  }
  bool end(std::string_view el) override {
    if (el == "v") in_v = false;
    else if (el == "t") in_t = false;
    else if (el == "rPh" && in_rph) --in_rph;
    else if (el == "is") in_is = false;
    else if (el == "c" && in_cell) {
      in_cell = false;
      if (!has_value) return true;
      auto idx = static_cast<std::size_t>(col);
      if (cells.size() <= idx) cells.resize(idx + 1);
      for (std::size_t k = used; k < idx; ++k) {
        cells[k].text.clear();
        cells[k].number = false;
      }
      XlsxCell& cell = cells[idx];
      cell.number = false;
      if (type == 's') {
        std::size_t i = 0;
        auto res = std::from_chars(value.data(), value.data() + value.size(), i);
        if (res.ec != std::errc() || i >= strings.ends.size()) return fail("a cell refers to a shared string that does not exist");
        cell.text.assign(strings.at(i));
      } else if (type == 'n') {
        cell.text = number_text(value);
        cell.number = !cell.text.empty();
      } else {  // inlineStr, str (a formula's text), b (1/0), e (#N/A, ...)
        cell.text.assign(value);
      }
      used = idx + 1;
      any = any || !cell.text.empty();
    } else if (el == "row" && in_row) {
      in_row = false;
      if (!any) return true;
      cells.resize(used);  // the callback sees exactly this row's cells
      if (!emit(row, cells)) {
        stopped = true;
        return false;
      }
    }
    return true;
  }
  void text(std::string_view s) override {
    if (in_v || (in_t && in_is)) value.append(s);
  }
};

// Pieces of one zip entry, inflated on a thread of their own while the caller scans the ones
// before: on a term's sheet inflating is a fifth of the work, and a school's server has a
// second core. At most kPieces pieces wait; the thread ends with the entry, an error, or
// stop() (the scan needs no more), and is joined before the entry is closed.
class Inflater {
 public:
  static constexpr std::size_t kPieces = 4;
  Inflater(zip_file_t* f, std::uint64_t limit) : file_(f), limit_(limit), thread_([this] { run(); }) {}
  ~Inflater() {
    stop();
    thread_.join();
  }
  // The next piece (empty at the end); false with `error` set when inflating failed.
  bool next(std::string& piece, std::string& error) {
    std::unique_lock lock(mutex_);
    ready_cv_.wait(lock, [&] { return !ready_.empty() || done_; });
    if (!ready_.empty()) {
      piece.swap(ready_.front());
      ready_.pop_front();
      space_cv_.notify_one();
      return true;
    }
    piece.clear();
    error = error_;
    return error.empty();
  }
  void stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    space_cv_.notify_one();
  }

 private:
  void run() {
    std::uint64_t total = 0;
    for (;;) {
      std::string piece(4 * kChunk, '\0');
      zip_int64_t n = zip_fread(file_, piece.data(), piece.size());
      std::unique_lock lock(mutex_);
      if (n < 0) error_ = std::string("cannot decompress: ") + zip_file_strerror(file_);
      total += n > 0 ? static_cast<std::uint64_t>(n) : 0;
      if (total > limit_) error_ = "larger than " + std::to_string(limit_ >> 20) + " MiB decompressed";
      if (n <= 0 || !error_.empty() || stopped_) {
        done_ = true;
        ready_cv_.notify_one();
        return;
      }
      piece.resize(static_cast<std::size_t>(n));
      space_cv_.wait(lock, [&] { return ready_.size() < kPieces || stopped_; });
      if (stopped_) {
        done_ = true;
        ready_cv_.notify_one();
        return;
      }
      ready_.push_back(std::move(piece));
      ready_cv_.notify_one();
    }
  }

  zip_file_t* file_;
  const std::uint64_t limit_;
  std::mutex mutex_;
  std::condition_variable ready_cv_, space_cv_;
  std::deque<std::string> ready_;  // GUARDED_BY(mutex_), as are the three below
  bool done_ = false, stopped_ = false;
  std::string error_;
  std::thread thread_;  // last: starts once everything above exists
};

// The worksheet through XmlScanner (xml_scan.hpp says why not expat), as the Inflater's
// thread inflates it.
Status scan_sheet(zip_t* zip, const std::string& part, const std::string& name, SheetPart& sheet, std::uint64_t limit) {
  zip_int64_t index = zip_name_locate(zip, part.c_str(), 0);
  if (index < 0) return Error{name, "the workbook has no part " + part, "save the file again as an Excel workbook (.xlsx)"};
  zip_file_t* f = zip_fopen_index(zip, static_cast<zip_uint64_t>(index), 0);
  if (!f) return Error{name, "cannot read " + part + ": " + zip_strerror(zip), "save the file again as an Excel workbook (.xlsx)"};
  Status status;
  {
    XmlScanner scanner(sheet);
    Inflater inflater(f, limit);
    std::string piece, error;
    for (bool first = true;; first = false) {
      if (!inflater.next(piece, error)) {
        status = Error{name, part + ": " + error, error.rfind("larger", 0) == 0 ? "split the export into smaller files"
                                                                                 : "save the file again as an Excel workbook (.xlsx)"};
        break;
      }
      if (first && piece.size() >= 2 && ((piece[0] == '\xFF' && piece[1] == '\xFE') || (piece[0] == '\xFE' && piece[1] == '\xFF'))) {
        status = Error{name, part + " is UTF-16, which no spreadsheet program writes", "save the file again as an Excel workbook (.xlsx)"};
        break;
      }
      if (!scanner.feed(piece, piece.empty())) {
        if (sheet.stopped) break;
        if (sheet.failure) status = *sheet.failure;
        else
          status = Error{name, part + " is not well-formed XML (near row " + std::to_string(sheet.row) + "): " + scanner.error(),
                         "save the file again as an Excel workbook (.xlsx)"};
        break;
      }
      if (piece.empty()) break;
    }
  }  // the Inflater's thread is joined here, before the entry is closed
  zip_fclose(f);
  return status;
}

}  // namespace

struct XlsxReader::Workbook {
  std::string name;
  zip_t* zip = nullptr;
  std::vector<std::pair<std::string, std::string>> sheets;  // name, part
  std::vector<std::string> sheet_names;
  std::string shared_strings_part;
  bool date1904 = false;
  ~Workbook() {
    if (zip) zip_discard(zip);
  }
};

XlsxReader::XlsxReader(std::unique_ptr<Workbook> wb) : wb_(std::move(wb)) {}
XlsxReader::XlsxReader(XlsxReader&&) noexcept = default;
XlsxReader& XlsxReader::operator=(XlsxReader&&) noexcept = default;
XlsxReader::~XlsxReader() = default;

const std::vector<std::string>& XlsxReader::sheet_names() const { return wb_->sheet_names; }
bool XlsxReader::date1904() const { return wb_->date1904; }

Result<XlsxReader> XlsxReader::open_zip(void* archive, std::string name) {
  auto wb = std::make_unique<Workbook>();
  wb->name = std::move(name);
  wb->zip = static_cast<zip_t*>(archive);
  const std::string& file = wb->name;
  Relationships root;
  std::string workbook_part = "xl/workbook.xml";
  if (zip_name_locate(wb->zip, "_rels/.rels", 0) >= 0 && parse_part(wb->zip, "_rels/.rels", file, root, 16u << 20).ok()) {
    if (auto it = root.by_type.find("officeDocument"); it != root.by_type.end()) workbook_part = it->second;
  }
  WorkbookPart book;
  if (auto st = parse_part(wb->zip, workbook_part, file, book, 16u << 20); !st) return st.error();
  auto slash = workbook_part.rfind('/');
  Relationships rels;
  rels.base = slash == std::string::npos ? "" : workbook_part.substr(0, slash + 1);
  std::string rels_part = rels.base + "_rels/" + workbook_part.substr(slash == std::string::npos ? 0 : slash + 1) + ".rels";
  if (auto st = parse_part(wb->zip, rels_part, file, rels, 16u << 20); !st) return st.error();
  for (const auto& [sheet, id] : book.sheets) {
    auto it = rels.target.find(id);
    if (it == rels.target.end()) continue;
    wb->sheets.emplace_back(sheet, it->second);
    wb->sheet_names.push_back(sheet);
  }
  if (wb->sheets.empty())
    return Error{file, "the workbook has no worksheet", "save the file again as an Excel workbook (.xlsx) with its data sheet"};
  if (auto it = rels.by_type.find("sharedStrings"); it != rels.by_type.end()) wb->shared_strings_part = it->second;
  wb->date1904 = book.date1904;
  return XlsxReader(std::move(wb));
}

Result<XlsxReader> XlsxReader::open_file(const std::filesystem::path& file) {
  std::string name = file.filename().string();
  int err = 0;
  zip_t* zip = zip_open(file.c_str(), ZIP_RDONLY, &err);
  if (!zip) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    std::string why = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    return Error{name, "not an Excel workbook (.xlsx): " + why,
                 "save it from the spreadsheet as \"Excel Workbook (*.xlsx)\" (not .xls), or as CSV UTF-8"};
  }
  return open_zip(zip, name);
}

Result<XlsxReader> XlsxReader::open_bytes(std::string_view bytes, std::string name) {
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &ze);
  zip_t* zip = src ? zip_open_from_source(src, ZIP_RDONLY, &ze) : nullptr;
  if (!zip) {
    std::string why = zip_error_strerror(&ze);
    if (src) zip_source_free(src);
    zip_error_fini(&ze);
    return Error{name, "not an Excel workbook (.xlsx): " + why,
                 "save it from the spreadsheet as \"Excel Workbook (*.xlsx)\" (not .xls), or as CSV UTF-8"};
  }
  zip_error_fini(&ze);
  return open_zip(zip, std::move(name));
}

Status XlsxReader::read_rows(const std::string& sheet, const RowFn& row) {
  const Workbook& wb = *wb_;
  const std::pair<std::string, std::string>* chosen = nullptr;
  if (sheet.empty()) {
    chosen = &wb.sheets.front();
  } else {
    for (const auto& s : wb.sheets)
      if (s.first == sheet) chosen = &s;
    if (!chosen) {
      std::string have;
      for (const auto& s : wb.sheets) have += (have.empty() ? "\"" : ", \"") + s.first + "\"";
      return Error{wb.name, "the workbook has no sheet \"" + sheet + "\" (sheets: " + have + ")",
                   "set xlsx_sheet to one of them, or leave it out to read the first sheet"};
    }
  }
  SharedStrings strings;
  if (!wb.shared_strings_part.empty() && zip_name_locate(wb.zip, wb.shared_strings_part.c_str(), 0) >= 0) {
    if (auto st = parse_part(wb.zip, wb.shared_strings_part, wb.name, strings, kMaxSharedStringsXml); !st) return st;
  }
  SheetPart part(strings, row, wb.name + "[" + chosen->first + "]");
  return scan_sheet(wb.zip, chosen->second, wb.name, part, kMaxSheetXml);
}

std::optional<Day> excel_serial_day(double serial, bool date1904) {
  if (!std::isfinite(serial) || serial < 1 || serial > 2958465) return std::nullopt;  // 9999-12-31
  auto whole = static_cast<int>(std::floor(serial));
  // 1970-01-01 is serial 25569 in the 1900 system and 24107 in the 1904 system. The 1900
  // system counts a 1900-02-29 that never was (serial 60), as Lotus 1-2-3 did.
  if (date1904) return whole - 24107;
  if (whole == 60) return std::nullopt;
  return whole < 60 ? whole - 25568 : whole - 25569;
}

}  // namespace campus::attendance
