// TLS diagnosis for refused broker connections, and TCP_NODELAY for Paho's socket.
#include "core/mqtt_tls.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace campus {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string last_ssl_error() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : buf;
}

bool is_ip(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// Connects with a deadline; -1 and `why` set on failure.
int connect_with_timeout(const std::string& host, unsigned short port, std::chrono::milliseconds timeout,
                         std::string& why) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    why = "cannot resolve " + host + ": " + gai_strerror(rc);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 ? 0 : -1;
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
        errno = err;
        rc = -1;
      }
    }
    if (rc == 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      return fd;
    }
    why = std::string("TCP connect failed: ") + std::strerror(errno);
    ::close(fd);
  }
  return -1;
}

// What the broker's TLS alert says about our client certificate, as a fix ("" if nothing).
std::string client_certificate_hint(const std::string& ssl_error, const std::filesystem::path& cert_file) {
  if (cert_file.empty()) return "; the broker probably requires a client certificate: set mqtt.cert_file and mqtt.key_file";
  if (ssl_error.find("certificate revoked") != std::string::npos)
    return "; the county has revoked this school's certificate " + cert_file.string() +
           " (scripts/make-certs revoke): ask the county for a new certificate and key";
  if (ssl_error.find("certificate expired") != std::string::npos)
    return "; this school's certificate " + cert_file.string() + " has expired: ask the county to renew it";
  return "; the broker rejected our client certificate " + cert_file.string() + " (expired, revoked, or not signed by the county CA?)";
}

}  // namespace

std::string diagnose_tls(const TlsProbe& probe) {
  const std::string where = probe.host + ":" + std::to_string(probe.port);
  std::string why;
  Fd sock{connect_with_timeout(probe.host, probe.port, probe.timeout, why)};
  if (sock.fd < 0) return "cannot reach broker " + where + ": " + why;

  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return "OpenSSL: cannot create a context: " + last_ssl_error();
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), probe.ca_file.c_str(), nullptr) != 1)
    return "cannot load CA file " + probe.ca_file.string() + " (mqtt.ca_file): " + last_ssl_error();
  if (!probe.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), probe.cert_file.c_str()) != 1)
      return "cannot load client certificate " + probe.cert_file.string() + " (mqtt.cert_file): " + last_ssl_error();
    const auto key = probe.key_file.empty() ? probe.cert_file : probe.key_file;
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1)
      return "cannot load client key " + key.string() + " (mqtt.key_file): " + last_ssl_error();
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), sock.fd);
  if (!is_ip(probe.host)) SSL_set_tlsext_host_name(ssl.get(), probe.host.c_str());
  if (probe.verify_hostname) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    if (is_ip(probe.host))
      X509_VERIFY_PARAM_set1_ip_asc(param, probe.host.c_str());
    else
      X509_VERIFY_PARAM_set1_host(param, probe.host.c_str(), 0);
  }
  if (SSL_connect(ssl.get()) != 1) {
    long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      std::string reason = X509_verify_cert_error_string(verify);
      std::string fix;
      switch (verify) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
          fix = "the broker's certificate has expired: renew it (scripts/make-certs)";
          break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
          fix = "the broker's certificate is not valid yet: check this server's clock";
          break;
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
          fix = "the broker's certificate is not issued for '" + probe.host +
                "': use the name in its subjectAltName as mqtt.host";
          break;
        default:
          fix = "the broker's certificate is not signed by " + probe.ca_file.string() +
                ": set mqtt.ca_file to the county CA";
      }
      return "TLS handshake with " + where + " failed: server certificate rejected (" + reason + "); " + fix;
    }
    std::string err = last_ssl_error();
    const std::string hint = err.find("alert") != std::string::npos ? client_certificate_hint(err, probe.cert_file) : "";
    return "TLS handshake with " + where + " failed: " + err + hint;
  }
  // TLS 1.3 reports a refused client certificate only after the handshake: read briefly.
  timeval tv{0, 300000};
  setsockopt(sock.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char byte;
  if (SSL_read(ssl.get(), &byte, 1) <= 0) {
    int e = SSL_get_error(ssl.get(), -1);
    if (e == SSL_ERROR_SSL) {
      std::string err = last_ssl_error();
      return "TLS session with " + where + " refused by the broker: " + err + client_certificate_hint(err, probe.cert_file);
    }
  }
  return "";
}

std::string certificate_cn(const std::filesystem::path& cert_file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(cert_file.c_str(), "r"), BIO_free);
  if (!bio) return "";
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return "";
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn) < 0) return "";
  return cn;
}

int set_nodelay_on_sockets_to(const std::string& host, unsigned short port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return 0;
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return 0;
  int set = 0;
  while (dirent* ent = ::readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(ent->d_name, &end, 10);
    if (end == ent->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      if (ai->ai_addrlen == plen && std::memcmp(ai->ai_addr, &peer, plen) == 0) {
        int one = 1;
        if (setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0) ++set;
        break;
      }
    }
  }
  ::closedir(dir);
  return set;
}

void keep_openssl_until_exit() { OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr); }

}  // namespace campus
