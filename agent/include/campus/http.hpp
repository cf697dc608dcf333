// HTTP(S) for plugins (ONVIF SOAP, recorder status, attendance API) through libcurl's multi
// interface on one dedicated thread, so the io_context never blocks. Completions are posted
// back to the io_context the client was made with.
#pragma once
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "campus/asio.hpp"
#include "campus/error.hpp"
#include "campus/export.hpp"
#include "campus/units.hpp"

namespace campus {

enum class HttpAuth { None, Basic, Digest, Any };

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Millis timeout{5000};                         // whole transfer, connect included
  std::size_t max_response_bytes = 8u << 20;   // larger bodies are cut off with an Error
  bool verify_tls = true;
  std::optional<std::filesystem::path> ca_file;
  HttpAuth auth = HttpAuth::None;
  std::string username;
  std::string password;  // never logged
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased; repeated ones joined by ", "
  Millis elapsed{0};
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Starts a transfer. `done` runs exactly once on the io_context: a response (any HTTP status)
  // or an Error naming the URL and the cause (timeout, refused, TLS, too large).
  virtual void fetch(HttpRequest request, std::function<void(Result<HttpResponse>)> done) = 0;
  // Cancels every transfer in flight; their `done` get an Error "cancelled".
  virtual void cancel_all() = 0;
};

// The libcurl implementation. REQUIRES: io outlives the client.
CAMPUS_API std::unique_ptr<HttpClient> make_http_client(asio::io_context& io);

// One audit's share of a client: transfers go through `base`, but cancel_all() ends only
// the transfers started through this view (their `done` gets "cancelled" at once; the
// transfer itself ends by its own timeout or size cap, and its result is dropped), so an audit
// cancelled at its deadline does not abort the other audits' transfers. Use it on the
// io_context thread only; completions run on io. REQUIRES: base and io outlive the view.
CAMPUS_API std::unique_ptr<HttpClient> make_http_view(HttpClient& base, asio::io_context& io);

}  // namespace campus
