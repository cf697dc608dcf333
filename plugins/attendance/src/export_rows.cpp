// Header lookup and row validation shared by the CSV and XLSX importers.
#include "export_rows.hpp"

#include <algorithm>
#include <cctype>

namespace campus::attendance {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

ExportRows::ExportRows(std::string name, const FieldNames& fields, const RecordRules& rules, const RecordSink& sink,
                       ImportResult& result)
    : name_(std::move(name)), fields_(fields), rules_(rules), sink_(sink), result_(result) {}

bool ExportRows::header(const std::vector<std::string_view>& cells, std::size_t line) {
  std::vector<std::string> header;
  for (auto c : cells) header.push_back(lower(c));
  width_ = header.size();
  auto column = [&](const std::string& field) -> int {
    auto it = std::find(header.begin(), header.end(), lower(field));
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  student_ = column(fields_.student_id);
  class_ = column(fields_.class_name);
  grade_ = column(fields_.grade);
  date_ = column(fields_.date);
  status_ = column(fields_.status);
  approved_ = column(fields_.leave_approved);
  name_col_ = column(fields_.name);
  bool ok = true;
  for (const auto& [c, f] : {std::pair{student_, &fields_.student_id}, std::pair{class_, &fields_.class_name},
                             std::pair{date_, &fields_.date}, std::pair{status_, &fields_.status}}) {
    if (c >= 0) continue;
    std::string have;
    for (const auto& h : header) have += (have.empty() ? "" : ", ") + h;
    result_.errors.push_back({where(line), "the header has no column \"" + *f + "\" (columns: " + have + ")",
                              "add the column, or map it in csv_fields"});
    ok = false;
  }
  if (!ok) result_.fatal = true;
  return ok;
}

void ExportRows::bad_row(std::size_t line, std::string what, std::string fix) {
  ++result_.rows;
  result_.errors.push_back({where(line), std::move(what), std::move(fix)});
}

void ExportRows::row(const std::vector<std::string_view>& cells, std::size_t line) {
  ++result_.rows;
  if (cells.size() > width_) {
    result_.errors.push_back({where(line),
                              "the row has " + std::to_string(cells.size()) + " cells but the header has " +
                                  std::to_string(width_),
                              "quote cells that contain commas"});
    return;
  }
  auto cell = [&](int c) -> std::string_view {
    return c >= 0 && static_cast<std::size_t>(c) < cells.size() ? cells[static_cast<std::size_t>(c)] : std::string_view{};
  };
  auto rec = make_record(RecordFields{cell(student_), cell(class_), cell(grade_), cell(date_), cell(status_),
                                      cell(approved_), cell(name_col_)},
                         fields_, rules_);
  if (!rec) {
    result_.errors.push_back({where(line) + " column " + rec.error().where, rec.error().what, rec.error().fix});
    return;
  }
  sink_(*rec);
  ++result_.imported;
}

}  // namespace campus::attendance
