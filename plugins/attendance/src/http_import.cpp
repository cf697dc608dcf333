// Paged HTTP import: one request at a time, following `next` links or page numbers.
#include "http_import.hpp"

#include <algorithm>

#include "json_page.hpp"

#include "campus/units.hpp"

namespace campus::attendance {
namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

struct Pager : std::enable_shared_from_this<Pager> {
  HttpClient& http;
  HttpSourceSettings settings;
  RecordRules rules;
  Day from, to;
  std::function<void(HttpImportResult)> done;
  std::chrono::steady_clock::time_point deadline;
  bool cut_by_deadline = false;  // the page in flight has less time than settings.timeout
  HttpImportResult result;
  int page = 1;

  Pager(HttpClient& h, HttpSourceSettings s, RecordRules k, Day f, Day t, std::function<void(HttpImportResult)> d,
        std::chrono::steady_clock::time_point dl)
      : http(h), settings(std::move(s)), rules(std::move(k)), from(f), to(t), done(std::move(d)), deadline(dl) {}

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
      // libcurl's timer for this page started a moment after `left` was measured, but its
      // callback can still land a few ms before `deadline`: a failure that close to the
      // deadline, on a page whose timeout the deadline shortened, was cut by it.
      bool by_deadline = cut_by_deadline && std::chrono::steady_clock::now() + Millis(250) >= deadline;
      fail(where, r.error().message() + (by_deadline ? " (cut by the audit deadline, before the page timeout of " +
                                                           format_duration(settings.timeout) + ")" : ""));
      return;
    }
    if (r->status != 200) {
      fail(where, "HTTP status " + std::to_string(r->status) + (r->status == 401 || r->status == 403 ? " (check token_file)" : ""));
      return;
    }
    JsonPageFormat format{settings.records_field, settings.next_field, settings.fields, rules,
                          settings.url.find("{page}") != std::string::npos};
    JsonPage parsed = parse_json_page(r->body, format, where, url, page);
    if (parsed.failure) { fail(where, *parsed.failure); return; }
    ++result.pages;
    for (auto& rec : parsed.records) result.records.push_back(std::move(rec));
    for (auto& e : parsed.row_errors) result.row_errors.push_back(std::move(e));
    if (parsed.next_url) { fetch(*parsed.next_url); return; }
    if (parsed.next_page) {
      page = *parsed.next_page;
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

void import_http(HttpClient& http, const HttpSourceSettings& settings, const RecordRules& rules, Day from, Day to,
                 std::function<void(HttpImportResult)> done, std::chrono::steady_clock::time_point deadline) {
  auto pager = std::make_shared<Pager>(http, settings, rules, from, to, std::move(done), deadline);
  pager->fetch(expand_url(settings.url, from, to, 1));
}

}  // namespace campus::attendance
