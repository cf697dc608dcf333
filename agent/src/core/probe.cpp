// Reachability probes: TCP connect and ICMP echo, each racing a timer on the io_context.
#include "campus/probe.hpp"

#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include <spdlog/spdlog.h>

namespace campus {
namespace {

using Clock = std::chrono::steady_clock;

Millis since(Clock::time_point t) { return std::chrono::duration_cast<Millis>(Clock::now() - t); }

std::string timeout_reason(Millis timeout) { return "timeout after " + format_duration(timeout); }

// One TCP connect: resolve (when a name), connect, and a timer; the first to finish wins.
struct TcpAttempt : std::enable_shared_from_this<TcpAttempt> {
  TcpAttempt(asio::io_context& io, Millis timeout, std::function<void(ProbeResult)> done)
      : socket(io), timer(io), resolver(io), timeout(timeout), done(std::move(done)) {}
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  asio::ip::tcp::resolver resolver;
  Millis timeout;
  std::function<void(ProbeResult)> done;
  Clock::time_point started = Clock::now();
  bool finished = false;

  void finish(bool ok, std::string reason) {
    if (finished) return;
    finished = true;
    timer.cancel();
    resolver.cancel();
    boost::system::error_code ignored;
    socket.close(ignored);
    ProbeResult r;
    r.reachable = ok;
    r.reason = std::move(reason);
    r.rtt = since(started);
    auto cb = std::move(done);
    cb(std::move(r));
  }

  void start(const std::string& host, std::uint16_t port) {
    auto self = shared_from_this();
    timer.expires_after(timeout);
    timer.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->finish(false, timeout_reason(self->timeout));
    });
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (!ec) return connect(asio::ip::tcp::endpoint(address, port));
    resolver.async_resolve(host, std::to_string(port),
                           [self, host](const boost::system::error_code& ec, asio::ip::tcp::resolver::results_type r) {
                             if (self->finished) return;
                             if (ec || r.empty()) return self->finish(false, "cannot resolve " + host + ": " + ec.message());
                             self->connect(*r.begin());
                           });
  }

  void connect(asio::ip::tcp::endpoint ep) {
    auto self = shared_from_this();
    socket.async_connect(ep, [self](const boost::system::error_code& ec) {
      if (self->finished) return;
      if (!ec) return self->finish(true, "");
      if (ec == asio::error::connection_refused) return self->finish(false, "connection refused");
      self->finish(false, ec.message());
    });
  }
};

// ---- ICMP -----------------------------------------------------------------------------

std::uint16_t checksum(const std::uint8_t* data, std::size_t len) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (len & 1) sum += static_cast<std::uint32_t>(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// Opens the ICMP socket this process may use; says which once in the log.
int open_icmp_socket(int& type, std::string& error) {
  static std::once_flag logged;
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd >= 0) {
    type = SOCK_DGRAM;
    std::call_once(logged, [] { spdlog::info("icmp probes: unprivileged ICMP socket (net.ipv4.ping_group_range allows this group)"); });
    return fd;
  }
  int dgram_errno = errno;
  fd = ::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd >= 0) {
    type = SOCK_RAW;
    std::call_once(logged, [] { spdlog::info("icmp probes: raw ICMP socket (CAP_NET_RAW; ping_group_range does not include this group)"); });
    return fd;
  }
  error = std::string("ICMP not permitted: unprivileged ICMP socket: ") + std::strerror(dgram_errno) +
          ", raw socket: " + std::strerror(errno) +
          " (fix: widen net.ipv4.ping_group_range to the agent's group, or grant CAP_NET_RAW)";
  return -1;
}

// All ICMP probes of one io_context share one socket; replies are matched by source and seq.
class IcmpEngine : public std::enable_shared_from_this<IcmpEngine> {
 public:
  explicit IcmpEngine(asio::io_context& io) : io_(io), socket_(io) {}

  static std::shared_ptr<IcmpEngine> for_io(asio::io_context& io) {
    static std::mutex mu;
    static std::map<asio::io_context*, std::weak_ptr<IcmpEngine>> engines;
    std::lock_guard lock(mu);
    auto& weak = engines[&io];
    if (auto e = weak.lock()) return e;
    auto e = std::make_shared<IcmpEngine>(io);
    weak = e;
    return e;
  }

  void probe(const asio::ip::address_v4& to, Millis timeout, std::function<void(ProbeResult)> done) {
    if (!open_ok()) {
      ProbeResult r;
      r.reason = open_error_;
      return asio::post(io_, [done = std::move(done), r] { done(r); });
    }
    std::uint16_t seq = next_seq_++;
    Key key{to.to_uint(), seq};
    auto p = std::make_shared<Pending>(io_);
    p->done = std::move(done);
    p->started = Clock::now();
    pending_[key] = p;
    auto self = shared_from_this();
    p->timer.expires_after(timeout);
    p->timer.async_wait([self, key, timeout](const boost::system::error_code& ec) {
      if (ec) return;
      self->complete(key, false, timeout_reason(timeout));
    });
    // Echo request: type 8, code 0, checksum, id, seq, 16 bytes of payload.
    auto packet = std::make_shared<std::array<std::uint8_t, 24>>();
    auto& b = *packet;
    b.fill(0);
    b[0] = 8;
    b[4] = static_cast<std::uint8_t>(ident_ >> 8);
    b[5] = static_cast<std::uint8_t>(ident_);
    b[6] = static_cast<std::uint8_t>(seq >> 8);
    b[7] = static_cast<std::uint8_t>(seq);
    std::memcpy(b.data() + 8, "campus-agent-ping", 16);
    std::uint16_t sum = checksum(b.data(), b.size());
    b[2] = static_cast<std::uint8_t>(sum >> 8);
    b[3] = static_cast<std::uint8_t>(sum);
    socket_.async_send_to(asio::buffer(b), asio::ip::icmp::endpoint(to, 0),
                          [self, key, packet](const boost::system::error_code& ec, std::size_t) {
                            if (ec) self->complete(key, false, "send failed: " + ec.message());
                          });
    if (!receiving_) receive();
  }

 private:
  struct Key {
    std::uint32_t addr;
    std::uint16_t seq;
    bool operator<(const Key& o) const { return addr != o.addr ? addr < o.addr : seq < o.seq; }
  };
  struct Pending {
    explicit Pending(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::function<void(ProbeResult)> done;
    Clock::time_point started;
  };

  bool open_ok() {
    if (socket_.is_open()) return true;
    int type = -1;
    int fd = open_icmp_socket(type, open_error_);
    if (fd < 0) return false;
    int rcvbuf = 1 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    raw_ = type == SOCK_RAW;
    boost::system::error_code ec;
    socket_.assign(asio::ip::icmp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      open_error_ = "ICMP socket: " + ec.message();
      return false;
    }
    // Raw sockets see every ICMP packet of the host: our identifier tells ours apart. With
    // an unprivileged socket the kernel sets the identifier and delivers only our replies.
    ident_ = static_cast<std::uint16_t>(::getpid() ^ reinterpret_cast<std::uintptr_t>(this));
    return true;
  }

  void receive() {
    receiving_ = true;
    auto self = shared_from_this();
    socket_.async_receive_from(asio::buffer(buffer_), from_, [self, gen = generation_](const boost::system::error_code& ec, std::size_t n) {
      if (gen != self->generation_) return;  // the socket was closed and reopened since
      self->receiving_ = false;
      if (ec) return;  // closed: every probe already completed
      self->on_packet(n);
      if (!self->pending_.empty()) self->receive();
    });
  }

  void on_packet(std::size_t n) {
    const std::uint8_t* p = buffer_.data();
    if (raw_) {
      if (n < 20) return;
      std::size_t ihl = static_cast<std::size_t>(p[0] & 0x0f) * 4;
      if (n < ihl + 8) return;
      p += ihl;
      n -= ihl;
    }
    if (n < 8 || p[0] != 0 /* echo reply */) return;
    std::uint16_t id = static_cast<std::uint16_t>(p[4] << 8 | p[5]);
    std::uint16_t seq = static_cast<std::uint16_t>(p[6] << 8 | p[7]);
    if (raw_ && id != ident_) return;
    complete(Key{from_.address().to_v4().to_uint(), seq}, true, "");
  }

  void complete(Key key, bool ok, std::string reason) {
    auto it = pending_.find(key);
    if (it == pending_.end()) return;
    auto p = it->second;
    pending_.erase(it);
    p->timer.cancel();
    ProbeResult r;
    r.reachable = ok;
    r.reason = std::move(reason);
    r.rtt = since(p->started);
    if (pending_.empty()) {
      boost::system::error_code ignored;
      socket_.close(ignored);  // ends the receive loop; the next probe reopens
      ++generation_;
      receiving_ = false;
    }
    auto cb = std::move(p->done);
    cb(std::move(r));
  }

  asio::io_context& io_;
  asio::ip::icmp::socket socket_;
  bool raw_ = false;
  bool receiving_ = false;
  unsigned generation_ = 0;
  std::uint16_t ident_ = 0;
  std::uint16_t next_seq_ = 1;
  std::string open_error_;
  std::array<std::uint8_t, 1500> buffer_{};
  asio::ip::icmp::endpoint from_;
  std::map<Key, std::shared_ptr<Pending>> pending_;
};

}  // namespace

void tcp_probe(asio::io_context& io, const std::string& host, std::uint16_t port, Millis timeout,
               std::function<void(ProbeResult)> done) {
  auto attempt = std::make_shared<TcpAttempt>(io, timeout, std::move(done));
  attempt->start(host, port);
}

void icmp_probe(asio::io_context& io, const std::string& host, Millis timeout,
                std::function<void(ProbeResult)> done) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address_v4(host, ec);
  if (ec) {
    ProbeResult r;
    r.reason = "\"" + host + "\" is not an IPv4 address (ICMP probes are IPv4 only)";
    return asio::post(io, [done = std::move(done), r] { done(r); });
  }
  IcmpEngine::for_io(io)->probe(address, timeout, std::move(done));
}

}  // namespace campus
