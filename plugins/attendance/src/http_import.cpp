// Paged HTTP import: one request at a time, following `next` links or page numbers.
#include "http_import.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "campus/units.hpp"

namespace campus::attendance {
namespace {

using Json = nlohmann::json;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

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

struct Pager : std::enable_shared_from_this<Pager> {
  HttpClient& http;
  HttpSourceSettings settings;
  bool keep_names;
  Day from, to;
  std::function<void(HttpImportResult)> done;
  std::chrono::steady_clock::time_point deadline;
  bool cut_by_deadline = false;  // the page in flight has less time than settings.timeout
  HttpImportResult result;
  int page = 1;

  Pager(HttpClient& h, HttpSourceSettings s, bool k, Day f, Day t, std::function<void(HttpImportResult)> d,
        std::chrono::steady_clock::time_point dl)
      : http(h), settings(std::move(s)), keep_names(k), from(f), to(t), done(std::move(d)), deadline(dl) {}

  void fail(std::string where, std::string what) {
    result.records.clear();
    result.failure = Error{std::move(where), std::move(what), ""};
    done(std::move(result));
  }

  void fetch(std::string url) {
    if (result.pages >= settings.max_pages) {
      fail("attendance API", "more than max_pages = " + std::to_string(settings.max_pages) + " pages");
      return;
    }
    // A slow API (a page a little under the timeout, many pages) must not run past the audit's
    // deadline: the core would discard the report. Each page gets what is left, at most timeout.
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      fail("attendance API page " + std::to_string(result.pages + 1),
           "not fetched: the audit deadline came after " + std::to_string(result.pages) + " page(s)");
      return;
    }
    HttpRequest req;
    req.url = url;
    auto left = std::chrono::duration_cast<Millis>(deadline - now);
    cut_by_deadline = left < settings.timeout;
    req.timeout = std::max(Millis(1), std::min(settings.timeout, left));
    req.verify_tls = settings.verify_tls;
    req.ca_file = settings.ca_file;
    req.headers.emplace_back("Accept", "application/json");
    if (settings.token) req.headers.emplace_back("Authorization", "Bearer " + *settings.token);
    auto self = shared_from_this();
    http.fetch(std::move(req), [self, url](Result<HttpResponse> r) { self->on_page(url, std::move(r)); });
  }

  void on_page(const std::string& url, Result<HttpResponse> r) {
    std::string where = "attendance API page " + std::to_string(result.pages + 1);
    if (!r) {
      bool by_deadline = cut_by_deadline && std::chrono::steady_clock::now() >= deadline;
      fail(where, r.error().message() + (by_deadline ? " (cut by the audit deadline, before the page timeout of " +
                                                           format_duration(settings.timeout) + ")" : ""));
      return;
    }
    if (r->status != 200) {
      fail(where, "HTTP status " + std::to_string(r->status) + (r->status == 401 || r->status == 403 ? " (check token_file)" : ""));
      return;
    }
    Json body = Json::parse(r->body, nullptr, false);
    if (body.is_discarded()) { fail(where, "the response is not JSON"); return; }
    const Json* items = nullptr;
    if (body.is_array()) items = &body;
    else if (body.is_object() && body.contains(settings.records_field) && body[settings.records_field].is_array())
      items = &body[settings.records_field];
    if (!items) { fail(where, "the response has no \"" + settings.records_field + "\" array"); return; }
    ++result.pages;
    std::size_t index = 0;
    for (const auto& item : *items) {
      ++index;
      if (!item.is_object()) {
        result.row_errors.push_back({where + " record " + std::to_string(index), "not a JSON object", ""});
        continue;
      }
      auto rec = make_record(
          [&](const std::string& f) { auto it = item.find(f); return it == item.end() ? std::string{} : field_text(*it); },
          settings.fields, keep_names);
      if (!rec) {
        result.row_errors.push_back({where + " record " + std::to_string(index) + " field " + rec.error().where,
                                     rec.error().what, rec.error().fix});
        continue;
      }
      result.records.push_back(std::move(rec.value()));
    }
    // Next page: a `next` member, when the API has one, is authoritative (null or empty = last
    // page); otherwise page numbers while the URL has {page}, up to `pages` when given, else
    // until an empty page.
    if (body.is_object()) {
      if (auto nx = body.find(settings.next_field); nx != body.end()) {
        if (nx->is_string() && !nx->get<std::string>().empty()) {
          std::string next = nx->get<std::string>();
          if (next.front() == '/') next = origin_of(url) + next;
          fetch(next);
          return;
        }
      } else if (settings.url.find("{page}") != std::string::npos) {
        auto cur = body.find("page");
        if (cur != body.end() && cur->is_number_integer()) page = cur->get<int>();
        auto pages = body.find("pages");
        bool more = pages != body.end() && pages->is_number_integer() ? page < pages->get<int>() : !items->empty();
        if (more) {
          ++page;
          fetch(expand_url(settings.url, from, to, page));
          return;
        }
      }
    } else if (settings.url.find("{page}") != std::string::npos && !items->empty()) {
      ++page;  // a bare array: page numbers until an empty page
      fetch(expand_url(settings.url, from, to, page));
      return;
    }
    done(std::move(result));
  }
};

}  // namespace

std::string expand_url(const std::string& tmpl, Day from, Day to, int page) {
  std::string u = tmpl;
  replace_all(u, "{from}", format_day(from));
  replace_all(u, "{to}", format_day(to));
  replace_all(u, "{page}", std::to_string(page));
  return u;
}

void import_http(HttpClient& http, const HttpSourceSettings& settings, bool keep_names, Day from, Day to,
                 std::function<void(HttpImportResult)> done, std::chrono::steady_clock::time_point deadline) {
  auto pager = std::make_shared<Pager>(http, settings, keep_names, from, to, std::move(done), deadline);
  pager->fetch(expand_url(settings.url, from, to, 1));
}

}  // namespace campus::attendance
