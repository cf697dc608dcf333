// libcurl multi interface on one dedicated thread: transfers run there, completions are posted
// to the io_context the client was made with, so plugins never block the io_context.
#include "campus/http.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "campus/units.hpp"

namespace campus {
namespace {

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The URL without user:password@, for messages.
std::string redact_url(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto host_start = scheme + 3;
  auto path_start = url.find_first_of("/?#", host_start);
  auto at = url.rfind('@', path_start == std::string::npos ? url.size() : path_start);
  if (at == std::string::npos || at < host_start) return url;
  return url.substr(0, host_start) + url.substr(at + 1);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

struct Transfer {
  HttpRequest request;
  std::function<void(Result<HttpResponse>)> done;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpResponse response;
  bool too_large = false;
  char errbuf[CURL_ERROR_SIZE] = {};
  std::chrono::steady_clock::time_point started;
  // Keeps io.run() from returning while the transfer is in flight.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;

  ~Transfer() {
    if (easy) curl_easy_cleanup(easy);
    if (headers) curl_slist_free_all(headers);
  }
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  if (t->response.body.size() + bytes > t->request.max_response_bytes) {
    t->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  t->response.body.append(data, bytes);
  return bytes;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  std::string_view line(data, bytes);
  if (line.starts_with("HTTP/")) {
    // A new response (after a 401 challenge or 100 Continue): only the last one's headers count.
    t->response.headers.clear();
    return bytes;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  // A header sent more than once (two WWW-Authenticate challenges) keeps every value, joined
  // with ", " as RFC 9110 5.3 combines field lines.
  std::string& value = t->response.headers[lower(trim(line.substr(0, colon)))];
  value += (value.empty() ? "" : ", ") + trim(line.substr(colon + 1));
  return bytes;
}

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(asio::io_context& io) : io_(io) {
    global_init_once();
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, 64L);
    worker_ = std::thread([this] { run(); });
  }

  ~CurlHttpClient() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    worker_.join();
    curl_multi_cleanup(multi_);
  }

  void fetch(HttpRequest request, std::function<void(Result<HttpResponse>)> done) override {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->done = std::move(done);
    t->work.emplace(io_.get_executor());
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        incoming_.push_back(std::move(t));
        t = nullptr;
      }
    }
    if (t) {
      complete(*t, Error{redact_url(t->request.url), "cancelled: the HTTP client is shutting down", {}});
      return;
    }
    curl_multi_wakeup(multi_);
  }

  void cancel_all() override {
    std::deque<std::unique_ptr<Transfer>> queued;
    {
      std::lock_guard lock(mutex_);
      ++cancel_generation_;
      queued.swap(incoming_);
    }
    for (auto& t : queued) complete(*t, Error{redact_url(t->request.url), "cancelled", {}});
    curl_multi_wakeup(multi_);
  }

 private:
  void complete(Transfer& t, Result<HttpResponse> result) {
    asio::post(io_, [done = std::move(t.done), r = std::move(result)]() mutable { done(std::move(r)); });
  }

  // Everything below runs on the worker thread only.
  void run() {
    std::uint64_t seen_generation = 0;
    for (;;) {
      std::deque<std::unique_ptr<Transfer>> incoming;
      bool stopping;
      std::uint64_t generation;
      {
        std::lock_guard lock(mutex_);
        incoming.swap(incoming_);
        stopping = stopping_;
        generation = cancel_generation_;
      }
      if (stopping) {
        for (auto& t : incoming) start(std::move(t));
        abort_all("cancelled: the HTTP client is shutting down");
        return;
      }
      // Transfers started before cancel_all() are aborted; those queued after it run.
      if (generation != seen_generation) {
        seen_generation = generation;
        abort_all("cancelled");
      }
      for (auto& t : incoming) start(std::move(t));
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        finish(msg->easy_handle, msg->data.result);
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
  }

  void start(std::unique_ptr<Transfer> t) {
    t->started = std::chrono::steady_clock::now();
    const HttpRequest& r = t->request;
    CURL* e = curl_easy_init();
    if (!e) {
      complete(*t, Error{redact_url(r.url), "cannot create a libcurl handle", {}});
      return;
    }
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    long ms = static_cast<long>(std::max<std::int64_t>(1, r.timeout.count()));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    // Fails early when Content-Length announces too much; on_body catches the rest.
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.max_response_bytes));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, r.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, r.verify_tls ? 2L : 0L);
    if (r.ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, r.ca_file->c_str());

    if (r.method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (r.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
      if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT") {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, r.body.c_str());
      if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    bool has_expect = false;
    for (const auto& [name, value] : r.headers) {
      if (lower(name) == "expect") has_expect = true;
      t->headers = curl_slist_append(t->headers, (name + ": " + value).c_str());
    }
    // No "Expect: 100-continue" round trip for small SOAP bodies unless asked for.
    if (!has_expect) t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    if (r.auth != HttpAuth::None) {
      long mask = r.auth == HttpAuth::Basic    ? CURLAUTH_BASIC
                  : r.auth == HttpAuth::Digest ? CURLAUTH_DIGEST
                                               : CURLAUTH_ANY;
      curl_easy_setopt(e, CURLOPT_HTTPAUTH, mask);
      curl_easy_setopt(e, CURLOPT_USERNAME, r.username.c_str());
      curl_easy_setopt(e, CURLOPT_PASSWORD, r.password.c_str());
    }

    CURLMcode mc = curl_multi_add_handle(multi_, e);
    if (mc != CURLM_OK) {
      complete(*t, Error{redact_url(r.url), std::string("cannot start the transfer: ") + curl_multi_strerror(mc), {}});
      return;
    }
    active_.push_back(std::move(t));
  }

  std::list<std::unique_ptr<Transfer>>::iterator find(CURL* e) {
    return std::find_if(active_.begin(), active_.end(), [e](const auto& t) { return t->easy == e; });
  }

  void finish(CURL* e, CURLcode code) {
    auto it = find(e);
    if (it == active_.end()) return;
    std::unique_ptr<Transfer> t = std::move(*it);
    active_.erase(it);
    curl_multi_remove_handle(multi_, e);
    t->response.elapsed = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - t->started);
    if (code == CURLE_OK) {
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t->response.status);
      complete(*t, std::move(t->response));
      return;
    }
    complete(*t, Error{redact_url(t->request.url), describe(*t, code), {}});
  }

  static std::string describe(const Transfer& t, CURLcode code) {
    const auto& r = t.request;
    std::string detail = t.errbuf[0] ? std::string(t.errbuf) : std::string(curl_easy_strerror(code));
    switch (code) {
      case CURLE_WRITE_ERROR:
        if (t.too_large) return "response larger than " + std::to_string(r.max_response_bytes) + " bytes";
        return "write error: " + detail;
      case CURLE_FILESIZE_EXCEEDED:
        return "response larger than " + std::to_string(r.max_response_bytes) + " bytes";
      case CURLE_OPERATION_TIMEDOUT:
        return "timeout after " + format_duration(r.timeout) + " (" + detail + ")";
      case CURLE_COULDNT_CONNECT:
        return "connection failed: " + detail;
      case CURLE_COULDNT_RESOLVE_HOST:
        return "cannot resolve host: " + detail;
      case CURLE_PEER_FAILED_VERIFICATION:
        return "TLS certificate not trusted: " + detail;
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
        return "TLS error: " + detail;
      case CURLE_GOT_NOTHING:
        return "server closed the connection without a response";
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
        return "connection error: " + detail;
      case CURLE_PARTIAL_FILE:
        return "connection closed mid-response: " + detail;
      case CURLE_UNSUPPORTED_PROTOCOL:
        return "unsupported URL scheme (only http and https): " + detail;
      case CURLE_URL_MALFORMAT:
        return "malformed URL: " + detail;
      default:
        return detail;
    }
  }

  void abort_all(const std::string& why) {
    for (auto& t : active_) {
      curl_multi_remove_handle(multi_, t->easy);
      complete(*t, Error{redact_url(t->request.url), why, {}});
    }
    active_.clear();
  }

  asio::io_context& io_;
  CURLM* multi_ = nullptr;
  std::thread worker_;
  std::mutex mutex_;
  std::deque<std::unique_ptr<Transfer>> incoming_;  // guarded by mutex_
  bool stopping_ = false;                           // guarded by mutex_
  std::uint64_t cancel_generation_ = 0;             // guarded by mutex_
  std::list<std::unique_ptr<Transfer>> active_;     // worker thread only
};

class HttpView final : public HttpClient {
 public:
  HttpView(HttpClient& base, asio::io_context& io) : base_(base), io_(io), pending_(std::make_shared<Pending>()) {}

  void fetch(HttpRequest request, std::function<void(Result<HttpResponse>)> done) override {
    std::uint64_t id = ++next_id_;
    pending_->emplace(id, Waiting{redact_url(request.url), std::move(done)});
    // The state, not the view: a late completion may arrive after the view is gone.
    base_.fetch(std::move(request), [pending = pending_, id](Result<HttpResponse> r) {
      auto it = pending->find(id);
      if (it == pending->end()) return;  // cancelled: its done already ran
      auto done = std::move(it->second.done);
      pending->erase(it);
      done(std::move(r));
    });
  }

  void cancel_all() override {
    Pending cancelled;
    cancelled.swap(*pending_);
    // Posted, as the client does: a plugin's cancel() must not re-enter its own callbacks.
    for (auto& [id, w] : cancelled)
      asio::post(io_, [w = std::move(w)]() mutable { w.done(Error{w.url, "cancelled", {}}); });
  }

 private:
  struct Waiting {
    std::string url;  // redacted, for the error
    std::function<void(Result<HttpResponse>)> done;
  };
  using Pending = std::map<std::uint64_t, Waiting>;
  HttpClient& base_;
  asio::io_context& io_;
  std::shared_ptr<Pending> pending_;
  std::uint64_t next_id_ = 0;
};

}  // namespace

std::unique_ptr<HttpClient> make_http_client(asio::io_context& io) {
  return std::make_unique<CurlHttpClient>(io);
}

std::unique_ptr<HttpClient> make_http_view(HttpClient& base, asio::io_context& io) {
  return std::make_unique<HttpView>(base, io);
}

}  // namespace campus
