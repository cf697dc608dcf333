// The RTSP client: a C++20 coroutine per stream on the io_context; a timer racing it closes
// the socket, which fails the pending read/write and ends the coroutine.
#include "rtsp_probe.hpp"

#include <array>
#include <variant>

#include "crypto.hpp"
#include "digest_auth.hpp"
#include "rtsp_message.hpp"
#include "sdp.hpp"
#include "campus/units.hpp"

namespace campus::recording {
namespace {

using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using Clock = std::chrono::steady_clock;

struct ProbeState final : RtspProbe, std::enable_shared_from_this<ProbeState> {
  ProbeState(asio::io_context& io, RtspOptions o)
      : socket(io), rtp(io), rtcp(io), timer(io), resolver(io), options(std::move(o)),
        reader(options.max_response_bytes) {}

  void cancel() override {
    cancelled = true;
    close();
  }
  void close() {
    boost::system::error_code ignored;
    socket.close(ignored);
    rtp.close(ignored);
    rtcp.close(ignored);
    resolver.cancel();
  }

  tcp::socket socket;
  udp::socket rtp, rtcp;  // RTP over UDP, when the camera refuses TCP interleaved
  unsigned short rtp_port = 0;
  asio::steady_timer timer;
  tcp::resolver resolver;
  RtspOptions options;
  RtspReader reader;
  std::string url;
  std::optional<Credentials> credentials;
  bool timed_out = false;
  bool cut_by_deadline = false;  // the audit deadline came before the probe's own timeout
  bool cancelled = false;
  long cseq = 0;
  std::optional<AuthChallenge> challenge;  // the accepted challenge, reused for later requests
  bool basic = false;
  unsigned nc = 0;
  std::string cnonce = random_hex(8);
  std::string session;
  StreamResult result;
  Clock::time_point started;
  Millis budget{0};
};

// An RTSP exchange failed: the reason to report and whether it is an authentication problem.
struct Failure {
  Failure(std::string w, StreamResult::Outcome o = StreamResult::Outcome::Failed) : what(std::move(w)), outcome(o) {}
  std::string what;
  StreamResult::Outcome outcome;
};

using Reply = std::variant<RtspResponse, Failure>;

std::string no_answer(const ProbeState& st) {
  return st.cut_by_deadline ? std::string("no answer before the audit deadline")
                            : "no answer within " + format_duration(st.options.timeout);
}

std::string describe_ec(ProbeState& st, const boost::system::error_code& ec, const std::string& doing) {
  if (st.cancelled) return "cancelled";
  if (st.timed_out) return doing + ": " + no_answer(st);
  if (ec == asio::error::connection_refused) return doing + ": connection refused";
  if (ec == asio::error::eof || ec == asio::error::connection_reset) return doing + ": connection closed by the camera";
  return doing + ": " + ec.message();
}

std::string authorization(ProbeState& st, const std::string& method, const std::string& uri) {
  if (!st.credentials) return {};
  if (st.basic) return basic_authorization(st.credentials->username, st.credentials->password);
  if (!st.challenge) return {};
  DigestInput in{st.credentials->username, st.credentials->password, method, uri, st.cnonce, ++st.nc};
  return digest_authorization(*st.challenge, in).value_or("");
}

asio::awaitable<Reply> read_reply(std::shared_ptr<ProbeState> st, const std::string& method, long want_cseq,
                                  bool until_rtp = false) {
  std::vector<char> buf(16384);
  RtspReader::Event ev = st->reader.next();
  for (;;) {
    while (ev == RtspReader::Event::Frame) {
      if (until_rtp && st->reader.frame_channel() % 2 == 0) {
        st->result.rtp_received = true;
        co_return RtspResponse{};
      }
      ev = st->reader.next();
    }
    if (ev == RtspReader::Event::Error) co_return Failure{method + ": " + st->reader.error()};
    if (ev == RtspReader::Event::Response && until_rtp) {
      ev = st->reader.next();  // a server message while we wait for media: not ours to judge
      continue;
    }
    if (ev == RtspReader::Event::Response) {
      const RtspResponse& r = st->reader.response();
      // One request is outstanding at a time (we never pipeline), so a reply without a CSeq
      // (or with one that is not a number) can only be that request's reply.
      auto got = r.cseq();
      if (got && *got != want_cseq) {
        // A response to an earlier request would be acceptable only if we had pipelined; we never do.
        co_return Failure{method + ": response has CSeq " + std::to_string(*got) + ", the request had CSeq " +
                          std::to_string(want_cseq)};
      }
      co_return r;
    }
    boost::system::error_code ec;
    std::size_t n = co_await st->socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::eof && !st->timed_out && !st->cancelled) {
        if (st->reader.buffered() == 0) co_return Failure{method + ": connection closed by the camera before any response"};
        co_return Failure{method + ": connection closed mid-response after " + st->reader.partial_description()};
      }
      std::string what = describe_ec(*st, ec, method);
      if (st->timed_out && st->reader.buffered() > 0) what += " (incomplete: got " + st->reader.partial_description() + ")";
      if (st->timed_out && until_rtp) what = method + ": no RTP packet (" + no_answer(*st) + ")";
      co_return Failure{what};
    }
    ev = st->reader.feed(std::string_view(buf.data(), n));
  }
}

// Sends one request and reads its reply; answers a 401 once with credentials.
asio::awaitable<Reply> exchange(std::shared_ptr<ProbeState> st, const std::string& method, const std::string& uri,
                                std::vector<std::string> extra) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    long cseq = ++st->cseq;
    std::string req = method + " " + uri + " RTSP/1.0\r\nCSeq: " + std::to_string(cseq) +
                      "\r\nUser-Agent: " + st->options.user_agent + "\r\n";
    if (auto a = authorization(*st, method, uri); !a.empty()) req += "Authorization: " + a + "\r\n";
    if (!st->session.empty()) req += "Session: " + st->session + "\r\n";
    for (const auto& h : extra) req += h + "\r\n";
    req += "\r\n";
    boost::system::error_code ec;
    co_await asio::async_write(st->socket, asio::buffer(req), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Failure{describe_ec(*st, ec, method)};
    Reply reply = co_await read_reply(st, method, cseq);
    if (std::holds_alternative<Failure>(reply)) co_return reply;
    auto& r = std::get<RtspResponse>(reply);
    st->result.status = r.status;
    if (r.status != 401) co_return reply;

    if (!st->credentials)
      co_return Failure{method + ": the camera requires authentication (401) and the register gives no credentials",
                        StreamResult::Outcome::AuthFailed};
    bool had_auth = st->basic || st->challenge.has_value();
    std::optional<AuthChallenge> digest, basic;
    for (auto [it, end] = r.headers.equal_range("www-authenticate"); it != end; ++it)
      for (auto& c : parse_challenges(it->second)) {
        if (c.scheme == "digest" && !digest && digest_response(c, DigestInput{"u", "p", "M", "/", "c", 1})) digest = c;
        if (c.scheme == "basic" && !basic) basic = c;
      }
    bool stale = digest && (digest->param("stale") == "true" || digest->param("stale") == "TRUE");
    if (had_auth && !stale)
      co_return Failure{method + ": credentials rejected (401 after " + std::string(st->basic ? "Basic" : "Digest") +
                            " authentication)",
                        StreamResult::Outcome::AuthFailed};
    if (digest) {
      st->challenge = digest;
      st->basic = false;
      st->nc = 0;
      st->result.auth = "digest";
    } else if (basic) {
      st->basic = true;
      st->result.auth = "basic";
    } else {
      co_return Failure{method + ": 401 without a supported WWW-Authenticate challenge (Basic, Digest MD5/SHA-256)",
                        StreamResult::Outcome::AuthFailed};
    }
  }
  co_return Failure{method + ": authentication did not settle after 3 attempts", StreamResult::Outcome::AuthFailed};
}

// "12345678;timeout=60" -> "12345678" (trimmed: some cameras put a space before the ';').
std::string session_id(const std::string& header) {
  std::string id = header.substr(0, header.find(';'));
  while (!id.empty() && (id.back() == ' ' || id.back() == '\t')) id.pop_back();
  return id;
}

// SETUP answers that mean "not over TCP interleaved": 461 Unsupported Transport (RFC 2326
// 11.4.16) and, from servers that only parse client_port, 400 Bad Request or 501.
bool refuses_tcp(int status) { return status == 461 || status == 400 || status == 501; }

// Binds an RTP port (even) and the RTCP port above it on the local address of the RTSP
// connection (the address the camera can send to). The RTP port, or nullopt and `why`.
std::optional<unsigned short> open_udp_pair(ProbeState& st, std::string& why) {
  boost::system::error_code ec;
  auto local = st.socket.local_endpoint(ec);
  if (ec) {
    why = "the RTSP connection has no local address: " + ec.message();
    return std::nullopt;
  }
  const auto protocol = local.address().is_v6() ? udp::v6() : udp::v4();
  for (int attempt = 0; attempt < 32; ++attempt) {
    boost::system::error_code ignored;
    st.rtp.close(ignored);
    st.rtcp.close(ignored);
    st.rtp.open(protocol, ec);
    if (!ec) st.rtp.bind(udp::endpoint(local.address(), 0), ec);
    if (ec) {
      why = "cannot bind a UDP socket on " + local.address().to_string() + ": " + ec.message();
      return std::nullopt;
    }
    unsigned short port = st.rtp.local_endpoint(ec).port();
    if (ec || port % 2 != 0 || port == 65535) continue;  // RTP takes the even port (RFC 3550 11)
    st.rtcp.open(protocol, ec);
    if (!ec) st.rtcp.bind(udp::endpoint(local.address(), static_cast<unsigned short>(port + 1)), ec);
    if (!ec) return port;
  }
  why = "no free even/odd UDP port pair on " + local.address().to_string() + " after 32 tries";
  return std::nullopt;
}

// Waits for the first RTP packet (version 2, at least the 12-byte header) from the camera's
// address on our RTP port. Empty when one came (result.rtp_received), else why not.
asio::awaitable<std::string> first_udp_rtp(std::shared_ptr<ProbeState> st) {
  boost::system::error_code ec;
  const auto camera = st->socket.remote_endpoint(ec).address();
  std::array<unsigned char, 2048> buf{};
  for (int datagrams = 0; datagrams < 1000; ++datagrams) {
    udp::endpoint from;
    std::size_t n =
        co_await st->rtp.async_receive_from(asio::buffer(buf), from, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return st->cancelled ? std::string("cancelled") : st->timed_out ? no_answer(*st) : ec.message();
    if (from.address() != camera) continue;  // not the camera's: ignored
    if (n >= 12 && (buf[0] & 0xC0) == 0x80) {
      st->result.rtp_received = true;
      co_return std::string();
    }
  }
  co_return std::string("1000 datagrams arrived and none was RTP");
}

asio::awaitable<void> run(std::shared_ptr<ProbeState> st, RtspUrl u) {
  auto fail = [st](const Failure& f) {
    st->result.outcome = f.outcome;
    st->result.error = f.what;
  };
  boost::system::error_code ec;
  // A camera given by IP address (the usual case) is not resolved: Asio runs async_resolve on
  // a thread of its own that then lives as long as the daemon (one thread more, for nothing).
  tcp::resolver::results_type endpoints;
  auto address = asio::ip::make_address(u.host, ec);
  if (!ec && std::stoul(u.port) <= 65535) {
    endpoints = tcp::resolver::results_type::create(
        tcp::endpoint(address, static_cast<unsigned short>(std::stoul(u.port))), u.host, u.port);
  } else {
    ec.clear();
    endpoints = co_await st->resolver.async_resolve(u.host, u.port, asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec) {
    fail({st->timed_out || st->cancelled ? describe_ec(*st, ec, "resolve") : "cannot resolve " + u.host + ": " + ec.message()});
    co_return;
  }
  co_await asio::async_connect(st->socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    fail({describe_ec(*st, ec, "connect")});
    co_return;
  }
  st->socket.set_option(tcp::no_delay(true), ec);

  Reply options = co_await exchange(st, "OPTIONS", st->url, std::vector<std::string>());
  if (auto* f = std::get_if<Failure>(&options)) {
    fail(*f);
    co_return;
  }
  std::vector<std::string> accept{std::string("Accept: application/sdp")};
  Reply described = co_await exchange(st, "DESCRIBE", st->url, std::move(accept));
  if (auto* f = std::get_if<Failure>(&described)) {
    fail(*f);
    co_return;
  }
  auto& d = std::get<RtspResponse>(described);
  if (d.status == 404) {
    fail({"DESCRIBE answered 404 " + printable(d.reason) +
              ": the camera has no stream at this path (check the stream URL in the register)",
          StreamResult::Outcome::NoVideo});
    co_return;
  }
  if (d.status != 200) {
    fail({"DESCRIBE answered " + std::to_string(d.status) + " " + printable(d.reason), StreamResult::Outcome::NoVideo});
    co_return;
  }
  Sdp sdp;
  std::string why;
  if (!parse_sdp(d.body, sdp, why)) {
    fail({"DESCRIBE: " + why, StreamResult::Outcome::NoVideo});
    co_return;
  }
  st->result.video_codecs = video_codecs(sdp);
  st->result.video_tracks = static_cast<int>(st->result.video_codecs.size());
  const SdpMedia* usable = nullptr;
  for (const auto& m : sdp.media) {
    if (m.type != "video" || m.formats.empty()) continue;
    auto it = m.codecs.find(m.formats.front());
    if (it == m.codecs.end()) continue;
    for (const auto& k : st->options.codecs)
      if (k == it->second && !usable) usable = &m;
  }
  if (st->result.video_tracks == 0) {
    fail({"SDP has no video track (m=video)", StreamResult::Outcome::NoVideo});
    co_return;
  }
  if (!usable) {
    std::string list, known;
    for (const auto& c : st->result.video_codecs) list += (list.empty() ? "" : ", ") + c;
    for (const auto& c : st->options.codecs) known += (known.empty() ? "" : ", ") + c;
    fail({"no video track in a known codec (found " + list + "; known: " + known + ")", StreamResult::Outcome::NoVideo});
    co_return;
  }
  if (!st->options.deep_check) {
    st->result.outcome = StreamResult::Outcome::Video;
    co_return;
  }

  std::string base = d.header("content-base");
  if (base.empty()) base = d.header("content-location");
  if (base.empty()) base = st->url;
  // Media controls are relative to the session control (when it is a URL) or to the base.
  std::string session_base = sdp.control.empty() || sdp.control == "*" ? base : resolve_control(base, sdp.control);
  std::string track = resolve_control(session_base, usable->control);
  std::vector<std::string> transport{std::string("Transport: RTP/AVP/TCP;unicast;interleaved=0-1")};
  Reply setup = co_await exchange(st, "SETUP", track, std::move(transport));
  if (auto* f = std::get_if<Failure>(&setup)) {
    fail(*f);
    co_return;
  }
  st->result.rtp_transport = "tcp";
  if (refuses_tcp(std::get<RtspResponse>(setup).status)) {
    // The camera does not send RTP inside the RTSP connection: ask for RTP over UDP to a port
    // pair of ours on the address this connection leaves from.
    const RtspResponse& refused = std::get<RtspResponse>(setup);
    std::string over_tcp = "RTP over TCP answered " + std::to_string(refused.status) + " " + printable(refused.reason);
    std::string why;
    auto port = open_udp_pair(*st, why);
    if (port) st->rtp_port = *port;
    if (!port) {
      fail({"SETUP: " + over_tcp + ", and no UDP port pair for RTP could be opened here: " + why});
      co_return;
    }
    std::vector<std::string> udp_transport{"Transport: RTP/AVP;unicast;client_port=" + std::to_string(*port) + "-" +
                                           std::to_string(*port + 1)};
    setup = co_await exchange(st, "SETUP", track, std::move(udp_transport));
    if (auto* f = std::get_if<Failure>(&setup)) {
      fail({f->what + " (RTP over UDP, after " + over_tcp + ")", f->outcome});
      co_return;
    }
    st->result.rtp_transport = "udp";
    const RtspResponse& again = std::get<RtspResponse>(setup);
    if (again.status != 200) {
      fail({"SETUP: " + over_tcp + ", and RTP over UDP answered " + std::to_string(again.status) + " " +
                printable(again.reason),
            StreamResult::Outcome::NoVideo});
      co_return;
    }
  }
  auto& s = std::get<RtspResponse>(setup);
  if (s.status != 200) {
    fail({"SETUP answered " + std::to_string(s.status) + " " + printable(s.reason), StreamResult::Outcome::NoVideo});
    co_return;
  }
  st->session = session_id(s.header("session"));
  const std::string& play_uri = session_base;
  std::vector<std::string> range{std::string("Range: npt=0.000-")};
  Reply play = co_await exchange(st, "PLAY", play_uri, std::move(range));
  if (auto* f = std::get_if<Failure>(&play)) {
    fail(*f);
    co_return;
  }
  if (std::get<RtspResponse>(play).status != 200) {
    fail({"PLAY answered " + std::to_string(std::get<RtspResponse>(play).status), StreamResult::Outcome::NoVideo});
    co_return;
  }
  if (st->result.rtp_transport == "udp") {
    std::string why = co_await first_udp_rtp(st);
    if (!st->result.rtp_received) {
      fail({"PLAY: no RTP packet over UDP on port " + std::to_string(st->rtp_port) + " (" + why + ")",
            StreamResult::Outcome::NoVideo});
      co_return;
    }
  } else {
    Reply rtp = co_await read_reply(st, "PLAY", -1, /*until_rtp=*/true);
    if (!st->result.rtp_received) {
      auto* f = std::get_if<Failure>(&rtp);
      fail({f ? f->what : "PLAY: no RTP packet", StreamResult::Outcome::NoVideo});
      co_return;
    }
  }
  // TEARDOWN politely; the answer does not matter.
  std::string teardown = "TEARDOWN " + play_uri + " RTSP/1.0\r\nCSeq: " + std::to_string(++st->cseq) +
                         "\r\nSession: " + st->session + "\r\n";
  if (auto a = authorization(*st, "TEARDOWN", play_uri); !a.empty()) teardown += "Authorization: " + a + "\r\n";
  teardown += "\r\n";
  co_await asio::async_write(st->socket, asio::buffer(teardown), asio::redirect_error(asio::use_awaitable, ec));
  st->result.outcome = StreamResult::Outcome::Video;
}

}  // namespace

std::string to_string(StreamResult::Outcome o) {
  switch (o) {
    case StreamResult::Outcome::Video: return "video";
    case StreamResult::Outcome::NoVideo: return "no_video";
    case StreamResult::Outcome::Failed: return "failed";
    case StreamResult::Outcome::AuthFailed: return "auth_failed";
  }
  return "failed";
}

std::optional<RtspUrl> parse_rtsp_url(const std::string& url) {
  if (!url.starts_with("rtsp://")) return std::nullopt;
  std::string rest = url.substr(7);
  auto slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  RtspUrl u;
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      u.port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty() || u.port.empty() || u.port.size() > 5 ||
      u.port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return u;
}

std::shared_ptr<RtspProbe> probe_rtsp(asio::io_context& io, const std::string& url,
                                      const std::optional<Credentials>& credentials, const RtspOptions& options,
                                      std::chrono::steady_clock::time_point deadline,
                                      std::function<void(StreamResult)> done) {
  auto st = std::make_shared<ProbeState>(io, options);
  st->url = url;
  st->credentials = credentials;
  st->result.auth = "none";
  st->started = Clock::now();
  auto until = std::min(deadline, st->started + options.timeout);
  st->budget = std::chrono::duration_cast<Millis>(until - st->started);
  st->cut_by_deadline = deadline < st->started + options.timeout;
  auto u = parse_rtsp_url(url);
  if (!u) {
    st->result.error = "not an rtsp://host[:port]/path URL";
    asio::post(io, [done = std::move(done), r = st->result] { done(r); });
    return st;
  }
  if (st->budget <= Millis(0)) {
    st->result.error = "audit deadline reached before the probe started";
    asio::post(io, [done = std::move(done), r = st->result] { done(r); });
    return st;
  }
  st->timer.expires_at(until);
  st->timer.async_wait([w = std::weak_ptr<ProbeState>(st)](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto s = w.lock()) {
      s->timed_out = true;
      s->close();
    }
  });
  asio::co_spawn(io, run(st, *u), [st, done = std::move(done)](std::exception_ptr e) mutable {
    st->timer.cancel();
    boost::system::error_code ignored;
    st->socket.close(ignored);
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        st->result.outcome = StreamResult::Outcome::Failed;
        st->result.error = std::string("internal error: ") + ex.what();
      }
    }
    st->result.elapsed = std::chrono::duration_cast<Millis>(Clock::now() - st->started);
    if (st->result.outcome == StreamResult::Outcome::Video) st->result.error.clear();
    done(std::move(st->result));
  });
  return st;
}

}  // namespace campus::recording
