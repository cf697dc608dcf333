// One MQTT 5 client connection on the io_context (see mqtt_session.hpp).
#include "mqtt_session.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>

#include "core/backoff.hpp"

namespace campus::county::mqtt {

namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

struct Session::Connection {
  Connection(asio::io_context& io, std::size_t max_packet)
      : ctx(ssl::context::tls_client), framer(max_packet), ping(io) {}
  // The stream is made once the context is configured: OpenSSL copies the certificate and key
  // into each connection when it is created.
  void open(asio::io_context& io) { stream.emplace(io, ctx); }
  ssl::context ctx;
  std::optional<ssl::stream<tcp::socket>> stream;
  bool tls = false;
  Framer framer;
  SteadyClock::time_point last_rx = SteadyClock::now(), last_tx = SteadyClock::now();
  std::chrono::seconds keep_alive{30};
  bool closed = false, established = false;
  std::uint64_t generation = 0;
  std::deque<std::string> out;
  bool writing = false;
  asio::steady_timer ping;

  tcp::socket& socket() { return stream->next_layer(); }
  void close() {
    closed = true;
    ping.cancel();
    if (!stream) return;
    boost::system::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }
};

namespace {

asio::awaitable<std::size_t> read_some(ssl::stream<tcp::socket>& s, bool tls, asio::mutable_buffer b,
                                       boost::system::error_code& ec) {
  if (tls) co_return co_await s.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
  co_return co_await s.next_layer().async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
}

std::string tls_error(const boost::system::error_code& ec) {
  std::string m = ec.message();
  if (ec.category() == asio::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
    m = buf;
  }
  return m;
}

}  // namespace

Session::Session(asio::io_context& io, SessionOptions options, Handlers handlers, std::shared_ptr<spdlog::logger> log)
    : io_(io), options_(std::move(options)), handlers_(std::move(handlers)), log_(std::move(log)), wake_(io),
      rng_(std::random_device{}()) {}

Session::~Session() = default;

void Session::start() {
  if (running_) return;
  running_ = true;
  asio::co_spawn(io_, [self = shared_from_this()]() { return self->run(); }, asio::detached);
}

void Session::stop(std::function<void()> done) {
  stopping_ = true;
  stopped_ = std::move(done);
  wake_.cancel();
  if (!running_) {
    if (stopped_) asio::post(io_, std::exchange(stopped_, nullptr));
    return;
  }
  if (conn_ && !conn_->closed) {
    if (connected_) {
      // A normal DISCONNECT keeps the session (Session Expiry from CONNECT) and discards no will.
      send(encode(Disconnect{}));
      auto c = conn_;
      auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(2));
      t->async_wait([self = shared_from_this(), c, t](const boost::system::error_code&) {
        if (!c->closed) self->close_connection("stopped");
      });
    } else {
      close_connection("stopped");
    }
  }
}

asio::awaitable<void> Session::run() {
  int step = 0;
  while (!stopping_) {
    const std::uint64_t before = connects_;
    std::string why = co_await connect_once();
    if (stopping_) break;
    if (connects_ != before) step = 0;  // it had connected: start the backoff over
    if (!why.empty() && why != last_error_) log_->warn("mqtt {}: {}", options_.name, why);
    else if (!why.empty()) log_->debug("mqtt {}: {}", options_.name, why);
    if (!why.empty()) last_error_ = why;
    std::uniform_real_distribution<double> u(0, 1);
    wake_.expires_after(backoff_delay(options_.reconnect_min, options_.reconnect_max, step++, u(rng_)));
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  running_ = false;
  if (stopped_) asio::post(io_, std::exchange(stopped_, nullptr));
}

// Connects, logs in, subscribes and reads until the connection ends. Returns why it could not
// connect, or "" after a connection that was established (its end is reported through
// on_disconnected).
asio::awaitable<std::string> Session::connect_once() {
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  auto c = std::make_shared<Connection>(io_, options_.max_packet);
  c->tls = options_.tls;
  if (c->tls) {
    auto& ctx = c->ctx;
    boost::system::error_code ec;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                    ec);
    ctx.set_verify_mode(ssl::verify_peer);
    ctx.load_verify_file(options_.ca_file.string(), ec);
    if (ec) co_return "cannot read the CA file " + options_.ca_file.string() + ": " + tls_error(ec);
    if (!options_.cert_file.empty()) {
      ctx.use_certificate_chain_file(options_.cert_file.string(), ec);
      if (ec) co_return "cannot read the certificate " + options_.cert_file.string() + ": " + tls_error(ec);
      ctx.use_private_key_file((options_.key_file.empty() ? options_.cert_file : options_.key_file).string(),
                               ssl::context::pem, ec);
      if (ec) co_return "cannot read the key " + options_.key_file.string() + ": " + tls_error(ec);
    }
  }
  c->open(io_);
  if (c->tls) {
    if (options_.verify_hostname) c->stream->set_verify_callback(ssl::host_name_verification(options_.host));
    boost::system::error_code not_ip;
    asio::ip::make_address(options_.host, not_ip);
    if (not_ip) SSL_set_tlsext_host_name(c->stream->native_handle(), options_.host.c_str());
  }
  conn_ = c;
  // The deadline for everything up to the CONNACK: closing the socket ends whatever waits.
  asio::steady_timer deadline(io_, options_.connect_timeout);
  bool timed_out = false;
  deadline.async_wait([c, &timed_out](const boost::system::error_code& ec) {
    if (ec) return;
    timed_out = true;
    c->close();
  });
  auto fail = [&](const std::string& what) -> std::string {
    deadline.cancel();
    c->close();
    if (timed_out) return "cannot connect to " + where + ": no answer within " + format_duration(options_.connect_timeout);
    return "cannot connect to " + where + ": " + what;
  };

  boost::system::error_code ec;
  tcp::resolver resolver(io_);
  auto endpoints = co_await resolver.async_resolve(options_.host, std::to_string(options_.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail("cannot resolve " + options_.host + ": " + ec.message());
  co_await asio::async_connect(c->socket(), endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec || c->closed) co_return fail(ec ? ec.message() : "closed");
  c->socket().set_option(tcp::no_delay(true), ec);
  if (c->tls) {
    co_await c->stream->async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || c->closed) co_return fail("TLS handshake failed: " + (ec ? tls_error(ec) : std::string("closed")));
  }
  Connect req;
  req.client_id = options_.client_id;
  req.clean_start = options_.clean_start;
  req.keep_alive_s = options_.keep_alive_s;
  req.username = options_.username;
  req.password = options_.password;
  req.properties.session_expiry = options_.session_expiry_s;
  req.properties.receive_maximum = options_.receive_maximum;
  req.properties.maximum_packet_size = static_cast<std::uint32_t>(std::min<std::size_t>(options_.max_packet, 268'435'455));
  send(encode(req));

  std::array<char, 65536> buf;
  std::optional<Connack> connack;
  while (!connack) {
    std::size_t n = co_await read_some(*c->stream, c->tls, asio::buffer(buf), ec);
    if (ec || c->closed) co_return fail(ec ? (c->tls ? tls_error(ec) : ec.message()) + " before CONNACK" : "closed");
    c->framer.feed(buf.data(), n);
    auto p = c->framer.next();
    if (!p.ok()) co_return fail(p.error().message());
    if (!*p) continue;
    if ((*p)->type() != PacketType::Connack)
      co_return fail(std::string("the broker sent ") + packet_name((*p)->type()) + " before CONNACK");
    auto a = decode_connack(**p);
    if (!a.ok()) co_return fail(a.error().message());
    connack = std::move(a.value());
  }
  deadline.cancel();
  if (connack->reason >= 0x80) {
    c->close();
    std::string why = "the broker refused the connection: " + reason_text(connack->reason);
    if (connack->properties.reason_string) why += " (" + *connack->properties.reason_string + ")";
    if (connack->reason == 0x86 || connack->reason == 0x87)
      why += "; check the certificate/user the county issued and the broker's ACL";
    co_return why;
  }

  c->generation = ++generation_;
  c->established = true;
  ++connects_;
  connected_ = true;
  last_error_.clear();
  if (connack->properties.server_keep_alive) c->keep_alive = std::chrono::seconds(*connack->properties.server_keep_alive);
  else c->keep_alive = std::chrono::seconds(options_.keep_alive_s);
  ConnectionInfo info;
  info.session_present = connack->session_present;
  info.broker_receive_maximum = connack->properties.receive_maximum.value_or(65535);
  info.generation = c->generation;
  log_->info("mqtt {}: connected to {} as {} (session {}, receive maximum {})", options_.name, where,
             options_.client_id, info.session_present ? "resumed" : "new", info.broker_receive_maximum);
  if (!options_.subscriptions.empty()) {
    Subscribe s;
    s.packet_id = next_packet_id();
    s.subscriptions = options_.subscriptions;
    pending_subscribe_ = s.packet_id;
    send(encode(s));
  }
  auto pending_info = std::make_shared<ConnectionInfo>(info);
  if (options_.subscriptions.empty() && handlers_.on_connected) handlers_.on_connected(info);
  if (c->keep_alive.count() > 0)
    asio::co_spawn(io_, [self = shared_from_this(), c]() { return self->keep_alive(c); }, asio::detached);

  // Packets after the CONNACK: the rest of the buffer first, then the socket.
  bool subscribed = options_.subscriptions.empty();
  for (;;) {
    for (;;) {
      auto p = c->framer.next();
      if (!p.ok()) {
        close_connection(p.error().message());
        break;
      }
      if (!*p) break;
      const RawPacket& raw = **p;
      switch (raw.type()) {
        case PacketType::Publish: {
          auto m = decode_publish(raw);
          if (!m.ok()) {
            close_connection(m.error().message());
            break;
          }
          if (m->qos > 1) {
            close_connection("the broker sent a QoS 2 message on a QoS 1 subscription");
            break;
          }
          if (handlers_.on_message) handlers_.on_message(Delivery{std::move(m.value()), c->generation});
          break;
        }
        case PacketType::Puback: {
          auto a = decode_puback(raw);
          if (!a.ok()) {
            close_connection(a.error().message());
            break;
          }
          auto it = pending_publishes_.find(a->packet_id);
          if (it != pending_publishes_.end()) {
            auto done = std::move(it->second);
            pending_publishes_.erase(it);
            done(a->reason < 0x80, a->reason < 0x80 ? std::string() : reason_text(a->reason));
          }
          break;
        }
        case PacketType::Suback: {
          auto s = decode_suback(raw);
          if (!s.ok()) {
            close_connection(s.error().message());
            break;
          }
          if (pending_subscribe_ && s->packet_id == *pending_subscribe_) {
            pending_subscribe_.reset();
            for (std::size_t i = 0; i < s->reasons.size() && i < options_.subscriptions.size(); ++i)
              if (s->reasons[i] >= 0x80)
                log_->error("mqtt {}: the broker refused the subscription {}: {}", options_.name,
                            options_.subscriptions[i].filter, reason_text(s->reasons[i]));
            if (!subscribed) {
              subscribed = true;
              if (handlers_.on_connected) handlers_.on_connected(*pending_info);
            }
          }
          break;
        }
        case PacketType::Pingresp:
          break;
        case PacketType::Disconnect: {
          auto d = decode_disconnect(raw);
          std::string why = "the broker closed the session: " + (d.ok() ? reason_text(d->reason) : d.error().message());
          if (d.ok() && d->properties.reason_string) why += " (" + *d->properties.reason_string + ")";
          if (d.ok() && d->reason == 0x8E)
            why += "; another client connected with the client id " + options_.client_id +
                   ": every collector needs its own mqtt.client_id";
          close_connection(why);
          break;
        }
        default:
          close_connection(std::string("the broker sent an unexpected ") + packet_name(raw.type()));
      }
      if (c->closed) break;
    }
    if (c->closed) break;
    while (paused_ && !c->closed) {
      resume_ = std::make_unique<asio::steady_timer>(io_, std::chrono::hours(24));
      boost::system::error_code wait_ec;
      co_await resume_->async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
      c->last_rx = SteadyClock::now();  // the broker's silence while paused is ours
    }
    if (c->closed) break;
    std::size_t n = co_await read_some(*c->stream, c->tls, asio::buffer(buf), ec);
    if (ec || c->closed) {
      if (!c->closed) close_connection(ec == asio::error::eof ? "the broker closed the connection" : ec.message());
      break;
    }
    c->last_rx = SteadyClock::now();
    c->framer.feed(buf.data(), n);
  }
  co_return std::string();
}

asio::awaitable<void> Session::keep_alive(std::shared_ptr<Connection> c) {
  // PINGREQ when we sent nothing for half the keep-alive; a broker silent for 1.5 x keep-alive
  // is gone (3.1.2.10).
  const auto half = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(500), c->keep_alive / 2);
  while (!c->closed) {
    c->ping.expires_after(half);
    boost::system::error_code ec;
    co_await c->ping.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (c->closed) break;
    const auto now = SteadyClock::now();
    if (paused_) c->last_rx = now;  // nothing is read while paused: the broker's answers wait
    if (now - c->last_rx > c->keep_alive * 3 / 2) {
      close_connection("no packet from the broker for " + std::to_string(c->keep_alive.count() * 3 / 2) + " s");
      break;
    }
    if (now - c->last_tx >= half) send(pingreq());
  }
}

void Session::send(const std::string& bytes) {
  if (!conn_ || conn_->closed) return;
  conn_->out.push_back(bytes);
  write_next();
}

void Session::write_next() {
  auto c = conn_;
  if (!c || c->closed || c->writing || c->out.empty()) return;
  c->writing = true;
  c->last_tx = SteadyClock::now();
  auto handler = [self = shared_from_this(), c](const boost::system::error_code& ec, std::size_t) {
    c->writing = false;
    if (c->closed) return;
    c->out.pop_front();
    if (ec) {
      self->close_connection("write failed: " + ec.message());
      return;
    }
    if (self->stopping_ && c->out.empty() && self->connected_) {
      self->close_connection("stopped");  // the DISCONNECT went out
      return;
    }
    self->write_next();
  };
  if (c->tls) asio::async_write(*c->stream, asio::buffer(c->out.front()), handler);
  else asio::async_write(c->socket(), asio::buffer(c->out.front()), handler);
}

void Session::close_connection(const std::string& why) {
  auto c = conn_;
  if (!c || c->closed) return;
  c->close();
  if (resume_) resume_->cancel();
  const bool was = c->established && connected_;
  connected_ = false;
  auto pending = std::move(pending_publishes_);
  pending_publishes_.clear();
  pending_subscribe_.reset();
  for (auto& [id, done] : pending) done(false, "the connection was lost before the PUBACK");
  if (was) {
    if (why != "stopped") log_->warn("mqtt {}: connection lost: {}", options_.name, why);
    last_error_ = why;
    if (handlers_.on_disconnected) handlers_.on_disconnected(why);
  }
}

void Session::pause() { paused_ = true; }

void Session::resume() {
  paused_ = false;
  if (resume_) resume_->cancel();
}

void Session::ack(std::uint64_t generation, std::uint16_t packet_id) {
  if (!connected_ || generation != generation_ || packet_id == 0) return;
  send(encode(Puback{packet_id, 0}));
}

void Session::publish(Publish message, std::function<void(bool, const std::string&)> done) {
  if (!connected_) {
    asio::post(io_, [done = std::move(done)] { done(false, "not connected"); });
    return;
  }
  message.qos = 1;
  message.packet_id = next_packet_id();
  pending_publishes_[message.packet_id] = std::move(done);
  send(encode(message));
}

std::uint16_t Session::next_packet_id() {
  for (int i = 0; i < 65536; ++i) {
    if (++packet_id_ == 0) packet_id_ = 1;
    if (!pending_publishes_.count(packet_id_) && pending_subscribe_ != packet_id_) return packet_id_;
  }
  return packet_id_;
}

}  // namespace campus::county::mqtt
