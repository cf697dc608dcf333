// The attendance API's JSON pages -> records and the link to the next page.
#include "json_page.hpp"

#include <climits>

#include <nlohmann/json.hpp>

namespace campus::attendance {
namespace {

using Json = nlohmann::json;

// scheme://host[:port] of an absolute URL.
std::string origin_of(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return {};
  auto slash = url.find('/', scheme + 3);
  return url.substr(0, slash);
}

std::string field_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number()) return v.dump();
  return {};
}

// A page number the API sent: a positive integer that still has a successor in an int.
std::optional<int> page_number(const Json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) {
    auto v = it->get<std::uint64_t>();
    if (v < 1 || v >= INT_MAX) return std::nullopt;
    return static_cast<int>(v);
  }
  auto v = it->get<std::int64_t>();
  if (v < 1 || v >= INT_MAX) return std::nullopt;
  return static_cast<int>(v);
}

}  // namespace

JsonPage parse_json_page(std::string_view text, const JsonPageFormat& format, const std::string& where,
                         const std::string& page_url, int page) {
  JsonPage out;
  Json body = Json::parse(text, nullptr, false);
  if (body.is_discarded()) {
    out.failure = "the response is not JSON";
    return out;
  }
  const Json* items = nullptr;
  if (body.is_array()) {
    items = &body;
  } else if (body.is_object()) {
    auto it = body.find(format.records_field);
    if (it != body.end() && it->is_array()) items = &*it;
  }
  if (!items) {
    out.failure = "the response has no \"" + format.records_field + "\" array";
    return out;
  }
  std::size_t index = 0;
  for (const auto& item : *items) {
    ++index;
    if (!item.is_object()) {
      out.row_errors.push_back({where + " record " + std::to_string(index), "not a JSON object", ""});
      continue;
    }
    auto rec = make_record(
        [&](const std::string& f) { auto it = item.find(f); return it == item.end() ? std::string{} : field_text(*it); },
        format.fields, format.rules);
    if (!rec) {
      out.row_errors.push_back({where + " record " + std::to_string(index) + " field " + rec.error().where,
                                rec.error().what, rec.error().fix});
      continue;
    }
    out.records.push_back(std::move(rec.value()));
  }
  // Next page: a `next` member, when the API has one, is authoritative (null or empty = last
  // page); otherwise page numbers while the URL has {page}, up to `pages` when given, else
  // until an empty page. A "page"/"pages" that is not a usable positive number is ignored
  // (the API's own count cannot make us wrap around or go backwards).
  if (body.is_object()) {
    if (auto nx = body.find(format.next_field); nx != body.end()) {
      if (nx->is_string() && !nx->get<std::string>().empty()) {
        std::string next = nx->get<std::string>();
        if (next.front() == '/') next = origin_of(page_url) + next;
        out.next_url = std::move(next);
      }
    } else if (format.numbered) {
      if (auto cur = page_number(body, "page")) page = *cur;
      auto pages = body.find("pages");
      bool more = pages != body.end() && pages->is_number_integer()
                      ? page_number(body, "pages").value_or(0) > page
                      : !items->empty();
      if (more && page < INT_MAX) out.next_page = page + 1;
    }
  } else if (format.numbered && !items->empty() && page < INT_MAX) {
    out.next_page = page + 1;  // a bare array: page numbers until an empty page
  }
  return out;
}

}  // namespace campus::attendance
