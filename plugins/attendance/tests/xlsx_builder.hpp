// Workbooks for the tests, assembled part by part with libzip the way spreadsheet writers lay
// them out: a sheet's rows are written as XML here, so each test shows exactly what it reads.
#pragma once
#include <zip.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace campus::attendance::testing {

inline const char* kContentTypes =
    R"(<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>)";
inline const char* kRootRels =
    R"(<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>)";

// A workbook with the given sheets (name -> sheetData XML) and shared strings.
struct Workbook {
  std::vector<std::pair<std::string, std::string>> sheets;
  std::vector<std::string> shared;  // <si> bodies
  bool date1904 = false;
  std::string sheet_prefix;          // "x:" for writers that prefix the main namespace

  std::string bytes() const {
    std::map<std::string, std::string> parts;
    parts["[Content_Types].xml"] = kContentTypes;
    parts["_rels/.rels"] = kRootRels;
    std::string wb = R"(<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">)";
    if (date1904) wb += R"(<workbookPr date1904="1"/>)";
    wb += "<sheets>";
    std::string rels = R"(<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">)";
    for (std::size_t i = 0; i < sheets.size(); ++i) {
      auto n = std::to_string(i + 1);
      wb += "<sheet name=\"" + sheets[i].first + "\" sheetId=\"" + n + "\" r:id=\"rId" + n + "\"/>";
      rels += "<Relationship Id=\"rId" + n +
              "\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet" +
              n + ".xml\"/>";
      const std::string& p = sheet_prefix;
      parts["xl/worksheets/sheet" + n + ".xml"] =
          "<?xml version=\"1.0\"?><" + p + "worksheet xmlns" + (p.empty() ? "" : ":" + p.substr(0, p.size() - 1)) +
          "=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><" + p + "sheetData>" + sheets[i].second + "</" + p +
          "sheetData></" + p + "worksheet>";
    }
    wb += "</sheets></workbook>";
    rels += R"(<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>)";
    parts["xl/workbook.xml"] = wb;
    parts["xl/_rels/workbook.xml.rels"] = rels;
    std::string sst = R"(<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">)";
    for (const auto& si : shared) sst += "<si>" + si + "</si>";
    parts["xl/sharedStrings.xml"] = sst + "</sst>";
    return zip_parts(parts);
  }

  static std::string zip_parts(const std::map<std::string, std::string>& parts) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t* out = zip_source_buffer_create(nullptr, 0, 0, &ze);
    zip_source_keep(out);
    zip_t* z = zip_open_from_source(out, ZIP_TRUNCATE, &ze);
    for (const auto& [name, body] : parts) {
      char* copy = static_cast<char*>(std::malloc(body.size() + 1));
      std::memcpy(copy, body.data(), body.size());
      zip_source_t* s = zip_source_buffer(z, copy, body.size(), 1);
      zip_file_add(z, name.c_str(), s, ZIP_FL_ENC_UTF_8);
    }
    zip_close(z);
    zip_source_open(out);
    zip_source_seek(out, 0, SEEK_END);
    auto size = zip_source_tell(out);
    zip_source_seek(out, 0, SEEK_SET);
    std::string bytes(static_cast<std::size_t>(size), '\0');
    zip_source_read(out, bytes.data(), static_cast<zip_uint64_t>(size));
    zip_source_close(out);
    zip_source_free(out);
    zip_error_fini(&ze);
    return bytes;
  }
};

inline std::string si(const std::string& t) { return "<t>" + t + "</t>"; }
inline std::string s_cell(const std::string& ref, int index) { return "<c r=\"" + ref + "\" t=\"s\"><v>" + std::to_string(index) + "</v></c>"; }
inline std::string n_cell(const std::string& ref, const std::string& v) { return "<c r=\"" + ref + "\"><v>" + v + "</v></c>"; }
inline std::string inline_cell(const std::string& ref, const std::string& t) {
  return "<c r=\"" + ref + "\" t=\"inlineStr\"><is><t>" + t + "</t></is></c>";
}

// The header row every sheet below starts with: student_id .. name in A..G as shared strings 0..6.
inline const std::vector<std::string> kHeaderStrings = {si("student_id"), si("class"), si("grade"), si("date"),
                                                 si("status"), si("leave_approved"), si("name")};
inline std::string header_row() {
  std::string r = "<row r=\"1\">";
  const char* cols = "ABCDEFG";
  for (int i = 0; i < 7; ++i) r += s_cell(std::string(1, cols[i]) + "1", i);
  return r + "</row>";
}

}  // namespace campus::attendance::testing
