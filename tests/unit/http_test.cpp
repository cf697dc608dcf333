// HttpClient against a real HTTP(S) server on 127.0.0.1: Debian's python3 http.server, started
// as a child with a small handler (written to a temp dir), stopped at the end of each test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "campus/http.hpp"

using namespace campus;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const char* kServer = R"PY(
import hashlib, http.server, os, ssl, sys, threading, time
USER, PASS, REALM, NONCE = "admin", "s3cret", "campus-test", "7c1e2a9f"

def md5(s): return hashlib.md5(s.encode()).hexdigest()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def do_HEAD(self): self.do_GET()
    def do_PUT(self): self.do_POST()
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.reply(200, (self.command + " " + self.headers.get("Content-Type", "") + " ").encode() + body)
    def do_GET(self):
        p = self.path
        if p == "/hello":
            self.reply(200, b"hello", [("X-Mixed-Case", "Yes"), ("Content-Type", "text/plain"),
                                       ("WWW-Authenticate", 'Digest realm="r", nonce="n1"'),
                                       ("WWW-Authenticate", 'Basic realm="r"')])
        elif p.startswith("/big/"):
            n = int(p[5:])
            self.reply(200, b"x" * n)
        elif p.startswith("/chunked/"):
            n = int(p[9:])
            self.send_response(200); self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            sent = 0
            while sent < n:
                c = min(65536, n - sent)
                try:
                    self.wfile.write(b"%x\r\n" % c + b"y" * c + b"\r\n")
                except OSError:
                    return
                sent += c
            self.wfile.write(b"0\r\n\r\n")
        elif p == "/slow":
            time.sleep(5); self.reply(200, b"late")
        elif p == "/status/503":
            self.reply(503, b"busy")
        elif p == "/basic":
            import base64
            want = "Basic " + base64.b64encode(f"{USER}:{PASS}".encode()).decode()
            if self.headers.get("Authorization") == want: self.reply(200, b"basic ok")
            else: self.reply(401, b"no", [("WWW-Authenticate", f'Basic realm="{REALM}"')])
        elif p == "/digest":
            a = self.headers.get("Authorization", "")
            if a.startswith("Digest "):
                f = {}
                for part in a[7:].split(","):
                    k, _, v = part.strip().partition("=")
                    f[k] = v.strip('"')
                ha1 = md5(f"{USER}:{REALM}:{PASS}"); ha2 = md5(f"GET:{f.get('uri')}")
                want = md5(f"{ha1}:{NONCE}:{f.get('nc')}:{f.get('cnonce')}:auth:{ha2}")
                if f.get("username") == USER and f.get("response") == want:
                    self.reply(200, b"digest ok"); return
            self.reply(401, b"no", [("WWW-Authenticate", f'Digest realm="{REALM}", qop="auth", nonce="{NONCE}", algorithm=MD5')])
        else:
            self.reply(404, b"not found")

class Srv(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops SYNs under the concurrency test
srv = Srv(("127.0.0.1", 0), H)
srv.daemon_threads = True
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
threading.Timer(120, lambda: os._exit(0)).start()  # bounded even if the test crashes
print("READY", srv.server_address[1], flush=True)
srv.serve_forever()
)PY";

class Server {
 public:
  explicit Server(bool tls = false) {
    dir_ = fs::temp_directory_path() / ("campus-http-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter_++));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "server.py") << kServer;
    std::vector<std::string> argv{"/usr/bin/python3", (dir_ / "server.py").string()};
    if (tls) {
      std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                        "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
                        (dir_ / "key.pem").string() + " -out " + (dir_ / "cert.pem").string() +
                        " >/dev/null 2>&1";
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed");
      argv.push_back((dir_ / "cert.pem").string());
      argv.push_back((dir_ / "key.pem").string());
    }
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* out = ::fdopen(fds[0], "r");
    char line[128] = {};
    if (!std::fgets(line, sizeof line, out) || std::sscanf(line, "READY %d", &port_) != 1) {
      std::fclose(out);
      throw std::runtime_error("test HTTP server did not start");
    }
    std::fclose(out);
  }
  ~Server() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    fs::remove_all(dir_);
  }
  std::string url(const std::string& path, bool tls = false) const {
    return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  fs::path ca() const { return dir_ / "cert.pem"; }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Runs the io_context until `n` completions arrived (or 20 s passed: a test failure).
std::vector<Result<HttpResponse>> fetch_all(std::vector<HttpRequest> requests,
                                            std::function<void(HttpClient&)> after_start = {}) {
  asio::io_context io;
  auto client = make_http_client(io);
  std::vector<std::optional<Result<HttpResponse>>> results(requests.size());
  size_t pending = requests.size();
  for (size_t i = 0; i < requests.size(); ++i) {
    client->fetch(requests[i], [&, i](Result<HttpResponse> r) {
      EXPECT_FALSE(results[i].has_value()) << "done called twice";
      results[i] = std::move(r);
      if (--pending == 0) io.stop();
    });
  }
  if (after_start) after_start(*client);
  asio::steady_timer guard(io, 20s);
  guard.async_wait([&](auto ec) {
    if (!ec) {
      ADD_FAILURE() << "completions did not arrive in 20s";
      io.stop();
    }
  });
  io.run();
  std::vector<Result<HttpResponse>> out;
  for (auto& r : results) out.push_back(r ? std::move(*r) : Result<HttpResponse>(Error{"", "missing", {}}));
  return out;
}

Result<HttpResponse> fetch_one(HttpRequest r) { return std::move(fetch_all({std::move(r)})[0]); }

HttpRequest get(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  return r;
}

}  // namespace

TEST(HttpClient, FetchesBodyStatusAndLowerCasedHeaders) {
  Server s;
  auto r = fetch_one(get(s.url("/hello")));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->headers["x-mixed-case"], "Yes");
  EXPECT_EQ(r->headers["content-type"], "text/plain");
  // Two challenges (Hikvision sends Digest then Basic): both kept, the Digest one too.
  EXPECT_EQ(r->headers["www-authenticate"], "Digest realm=\"r\", nonce=\"n1\", Basic realm=\"r\"");
}

TEST(HttpClient, NonSuccessStatusIsAResponseNotAnError) {
  Server s;
  auto r = fetch_one(get(s.url("/status/503")));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "busy");
}

TEST(HttpClient, PostsBodyWithHeaders) {
  Server s;
  HttpRequest r = get(s.url("/echo"));
  r.method = "POST";
  r.body = "<soap/>";
  r.headers = {{"Content-Type", "application/soap+xml"}};
  auto res = fetch_one(r);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->body, "POST application/soap+xml <soap/>");
}

TEST(HttpClient, RejectsResponseLargerThanLimitWithContentLength) {
  Server s;
  HttpRequest r = get(s.url("/big/200000"));
  r.max_response_bytes = 1000;
  auto res = fetch_one(r);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().what, "response larger than 1000 bytes");
  EXPECT_EQ(res.error().where, s.url("/big/200000"));
}

TEST(HttpClient, AbortsChunkedResponseLargerThanLimit) {
  Server s;
  HttpRequest r = get(s.url("/chunked/5000000"));
  r.max_response_bytes = 100000;
  auto res = fetch_one(r);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().what, "response larger than 100000 bytes");
}

TEST(HttpClient, AcceptsResponseExactlyAtLimit) {
  Server s;
  HttpRequest r = get(s.url("/big/1000"));
  r.max_response_bytes = 1000;
  auto res = fetch_one(r);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->body.size(), 1000u);
}

TEST(HttpClient, TimesOutSlowServerNamingUrlAndTimeout) {
  Server s;
  HttpRequest r = get(s.url("/slow"));
  r.timeout = 300ms;
  auto t0 = std::chrono::steady_clock::now();
  auto res = fetch_one(r);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().where, s.url("/slow"));
  EXPECT_TRUE(res.error().what.starts_with("timeout after 300ms")) << res.error().what;
  EXPECT_LT(took, 2s);
}

TEST(HttpClient, ReportsConnectionRefused) {
  int port;
  {
    // A port nobody listens on: bind, read the port, close.
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto res = fetch_one(get("http://127.0.0.1:" + std::to_string(port) + "/x"));
  ASSERT_FALSE(res.ok());
  EXPECT_TRUE(res.error().what.starts_with("connection failed")) << res.error().what;
}

TEST(HttpClient, BasicAuth) {
  Server s;
  HttpRequest r = get(s.url("/basic"));
  EXPECT_EQ(fetch_one(r)->status, 401);
  r.auth = HttpAuth::Basic;
  r.username = "admin";
  r.password = "s3cret";
  auto res = fetch_one(r);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "basic ok");
}

TEST(HttpClient, DigestAuthWithQop) {
  Server s;
  HttpRequest r = get(s.url("/digest"));
  r.auth = HttpAuth::Digest;
  r.username = "admin";
  r.password = "s3cret";
  auto res = fetch_one(r);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "digest ok");
  r.password = "wrong";
  EXPECT_EQ(fetch_one(r)->status, 401);
}

TEST(HttpClient, AnyAuthPicksDigest) {
  Server s;
  HttpRequest r = get(s.url("/digest"));
  r.auth = HttpAuth::Any;
  r.username = "admin";
  r.password = "s3cret";
  auto res = fetch_one(r);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->status, 200);
}

TEST(HttpClient, TlsRefusesUntrustedCertificateAndAcceptsGivenCa) {
  Server s(/*tls=*/true);
  HttpRequest r = get(s.url("/hello", true));
  auto untrusted = fetch_one(r);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.error().what.find("TLS"), std::string::npos) << untrusted.error().what;

  r.ca_file = s.ca();
  auto trusted = fetch_one(r);
  ASSERT_TRUE(trusted.ok()) << trusted.error().message();
  EXPECT_EQ(trusted->body, "hello");

  HttpRequest unverified = get(s.url("/hello", true));
  unverified.verify_tls = false;
  EXPECT_TRUE(fetch_one(unverified).ok());
}

TEST(HttpClient, ManyConcurrentRequestsAllComplete) {
  Server s;
  std::vector<HttpRequest> rs;
  for (int i = 0; i < 40; ++i) rs.push_back(get(s.url("/hello")));
  auto res = fetch_all(rs);
  for (auto& r : res) {
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->body, "hello");
  }
}

TEST(HttpClient, SlowRequestsRunConcurrentlyNotInSequence) {
  Server s;
  std::vector<HttpRequest> rs;
  for (int i = 0; i < 10; ++i) {
    rs.push_back(get(s.url("/slow")));
    rs.back().timeout = 500ms;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto res = fetch_all(rs);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  for (auto& r : res) EXPECT_FALSE(r.ok());
}

TEST(HttpClient, CancelAllCompletesEveryTransferWithCancelled) {
  Server s;
  std::vector<HttpRequest> rs(3, get(s.url("/slow")));
  auto t0 = std::chrono::steady_clock::now();
  auto res = fetch_all(rs, [](HttpClient& c) { c.cancel_all(); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  for (auto& r : res) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().what, "cancelled");
  }
}

TEST(HttpClient, CancelAllAbortsTransfersAlreadyRunning) {
  Server s;
  asio::io_context io;
  auto client = make_http_client(io);
  std::optional<Result<HttpResponse>> result;
  client->fetch(get(s.url("/slow")), [&](Result<HttpResponse> r) {
    result = std::move(r);
    io.stop();
  });
  asio::steady_timer later(io, 300ms);
  later.async_wait([&](auto) { client->cancel_all(); });
  auto t0 = std::chrono::steady_clock::now();
  io.run_for(10s);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(result->ok());
  EXPECT_EQ(result->error().what, "cancelled");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(HttpClient, DestructorCancelsInFlightTransfersPromptly) {
  Server s;
  asio::io_context io;
  std::optional<Result<HttpResponse>> result;
  auto t0 = std::chrono::steady_clock::now();
  {
    auto client = make_http_client(io);
    client->fetch(get(s.url("/slow")), [&](Result<HttpResponse> r) { result = std::move(r); });
    io.run_for(200ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  io.restart();
  io.run_for(1s);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(result->ok());
  EXPECT_NE(result->error().what.find("cancelled"), std::string::npos);
}

TEST(HttpClient, ErrorsNeverShowCredentialsInUrl) {
  Server s;
  std::string url = s.url("/slow");
  url.insert(url.find("://") + 3, "user:pw@");
  HttpRequest r = get(url);
  r.timeout = 100ms;
  auto res = fetch_one(r);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().where.find("pw"), std::string::npos) << res.error().where;
}

// The agent gives each audit a view of its one client: an audit cancelled at its deadline
// must not abort another audit's transfers (the attendance plugin's cancel() used to end the
// recording audit's ONVIF and recorder requests through the shared client).
TEST(HttpClient, ViewCancelsOnlyItsOwnTransfers) {
  Server s;
  asio::io_context io;
  auto client = make_http_client(io);
  auto a = make_http_view(*client, io), b = make_http_view(*client, io);
  std::optional<Result<HttpResponse>> ra, rb;
  std::chrono::steady_clock::duration a_took{};
  auto t0 = std::chrono::steady_clock::now();
  a->fetch(get(s.url("/slow")), [&](Result<HttpResponse> r) {
    ra = std::move(r);
    a_took = std::chrono::steady_clock::now() - t0;
  });
  HttpRequest slow = get(s.url("/slow"));
  slow.timeout = 15s;  // the server answers after 5 s
  b->fetch(slow, [&](Result<HttpResponse> r) {
    rb = std::move(r);
    io.stop();
  });
  asio::steady_timer later(io, 300ms);
  later.async_wait([&](auto) {
    a->cancel_all();
    EXPECT_FALSE(ra.has_value()) << "done ran inside cancel_all()";
  });
  io.run_for(15s);
  ASSERT_TRUE(ra.has_value());
  ASSERT_FALSE(ra->ok());
  EXPECT_EQ(ra->error().what, "cancelled");
  EXPECT_EQ(ra->error().where, s.url("/slow"));
  EXPECT_LT(a_took, 3s);
  ASSERT_TRUE(rb.has_value()) << "the other view's transfer was lost";
  ASSERT_TRUE(rb->ok()) << rb->error().message();
  EXPECT_EQ((*rb)->body, "late");
}
