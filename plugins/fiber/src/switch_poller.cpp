// net-snmp single-session API driven by one poll() loop on a worker thread. Each switch is a
// small state machine: walk the interface columns (GETBULK), then, when its vendor profile
// knows where optical power lives, map ports to entity indexes (if needed) and GET the power.
#include "switch_poller.hpp"

#include "varbinds.hpp"

#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/library/large_fd_set.h>

namespace campus::fiber {
namespace {

using Clock = std::chrono::steady_clock;

std::string describe(Millis d) { return format_duration(d); }

// Names the USM report counters an agent sends back for SNMPv3 failures.
std::string report_reason(const netsnmp_pdu* pdu) {
  if (!pdu->variables) return "SNMPv3 report";
  static const std::pair<const char*, const char*> names[] = {
      {"1.3.6.1.6.3.15.1.1.1", "unsupported security level"},
      {"1.3.6.1.6.3.15.1.1.2", "not in time window"},
      {"1.3.6.1.6.3.15.1.1.3", "unknown SNMPv3 user"},
      {"1.3.6.1.6.3.15.1.1.4", "unknown engine id"},
      {"1.3.6.1.6.3.15.1.1.5", "authentication failed (wrong auth key or protocol)"},
      {"1.3.6.1.6.3.15.1.1.6", "decryption failed (wrong privacy key or protocol)"}};
  for (auto& [o, what] : names) {
    Oid id = parse_oid(o);
    if (pdu->variables->name_length >= id.size() && std::equal(id.begin(), id.end(), pdu->variables->name)) return what;
  }
  return "SNMPv3 report";
}

class SwitchJob {
 public:
  SwitchJob(SnmpTarget t, const PollOptions& o) : target(std::move(t)), opts(o) { status.id = target.id; }
  ~SwitchJob() { close(); }

  SnmpTarget target;
  PollOptions opts;
  SwitchStatus status;
  void* sess = nullptr;
  bool done = false;
  Clock::time_point started;

  bool open();
  void close() {
    if (!sess) return;
    // net-snmp keeps SNMPv3 users (with their keys) in a process-wide list keyed by engine ID
    // and name, and reuses them for later sessions: a corrected key file would be ignored
    // until restart. Forget the user with the session.
    if (target.version == "3") {
      netsnmp_session* ss = snmp_sess_session(sess);
      if (ss && ss->securityEngineIDLen > 0 && ss->securityName) {
        if (usmUser* u = usm_get_user(ss->securityEngineID, ss->securityEngineIDLen, ss->securityName)) {
          usm_remove_user(u);
          usm_free_user(u);
        }
      }
    }
    snmp_sess_close(sess);
    sess = nullptr;
  }
  int socket() const {
    if (!sess) return -1;
    auto* t = snmp_sess_transport(sess);
    return t ? t->sock : -1;
  }
  void fail(std::string why) {
    status.error = std::move(why);
    finish();
  }
  void finish() {
    done = true;
    status.elapsed = std::chrono::duration_cast<Millis>(Clock::now() - started);
  }
  void begin() {
    if (phase == Phase::Discover) return send_discovery();
    columns = interface_columns();
    phase = Phase::Walk;
    send_walk(true);
  }
  int on_response(int op, int reqid, netsnmp_pdu* pdu);

 private:
  enum class Phase { Discover, Walk, Alias, Rx } phase = Phase::Walk;
  void send_discovery() {
    // noAuthNoPriv GET from the empty user: the agent answers usmStatsUnknownEngineIDs with
    // its engine ID. The empty user must exist in the USM user list.
    if (!usm_get_user(nullptr, 0, const_cast<char*>(""))) {
      usmUser* u = usm_create_user();
      u->name = strdup("");
      u->secName = strdup("");
      u->authProtocol = snmp_duplicate_objid(usmNoAuthProtocol, OID_LENGTH(usmNoAuthProtocol));
      u->authProtocolLen = OID_LENGTH(usmNoAuthProtocol);
      u->privProtocol = snmp_duplicate_objid(usmNoPrivProtocol, OID_LENGTH(usmNoPrivProtocol));
      u->privProtocolLen = OID_LENGTH(usmNoPrivProtocol);
      usm_add_user(u);
    }
    netsnmp_pdu* pdu = snmp_pdu_create(SNMP_MSG_GET);
    pdu->version = SNMP_VERSION_3;
    pdu->securityName = strdup("");
    pdu->securityNameLen = 0;
    pdu->securityLevel = SNMP_SEC_LEVEL_NOAUTH;
    pdu->securityModel = SNMP_SEC_MODEL_USM;
    send(pdu);
  }
  void discovered(const netsnmp_pdu* report) {
    netsnmp_session* ss = snmp_sess_session(sess);
    if (ss->securityEngineIDLen == 0) {
      ss->securityEngineID = static_cast<u_char*>(netsnmp_memdup(report->securityEngineID, report->securityEngineIDLen));
      ss->securityEngineIDLen = report->securityEngineIDLen;
    }
    if (ss->contextEngineIDLen == 0) {
      ss->contextEngineID = static_cast<u_char*>(netsnmp_memdup(report->securityEngineID, report->securityEngineIDLen));
      ss->contextEngineIDLen = report->securityEngineIDLen;
    }
    if (create_user_from_session(ss) != SNMPERR_SUCCESS) return fail("could not set up the SNMPv3 user for this switch");
    phase = Phase::Walk;
    begin();
  }
  std::vector<WalkColumn> columns;
  int pending_reqid = 0;  // net-snmp may deliver one answer twice (SEC_ERROR, then RECEIVED)
  std::vector<std::size_t> in_request;  // column indexes in the last GETBULK
  bool request_has_uptime = false;
  Oid alias_cur;
  std::map<int, long> ent_of_if;  // ifIndex -> entPhysicalIndex
  std::vector<int> rx_ports;      // ifIndexes whose power is still to be read
  std::vector<int> rx_batch;

  bool send(netsnmp_pdu* pdu) {
    ++status.requests;
    pending_reqid = snmp_sess_async_send(sess, pdu, nullptr, nullptr);
    if (pending_reqid == 0) {
      int liberr = 0, syserr = 0;
      char* msg = nullptr;
      snmp_sess_error(sess, &liberr, &syserr, &msg);
      snmp_free_pdu(pdu);
      fail(std::string("could not send to the switch: ") + (msg ? msg : "unknown error"));
      free(msg);
      return false;
    }
    return true;
  }
  void send_walk(bool first);
  void handle_walk(netsnmp_pdu* pdu);
  void start_optical();
  void send_alias();
  void handle_alias(netsnmp_pdu* pdu);
  void send_optics();
  void handle_optics(netsnmp_pdu* pdu);
  Oid rx_instance(int if_index, const std::string& column) const {
    Oid o = parse_oid(column);
    if (target.profile.index == VendorProfile::Index::IfIndex) o.push_back(static_cast<oid>(if_index));
    else o.push_back(static_cast<oid>(ent_of_if.at(if_index)));
    return o;
  }
  std::string no_answer() const {
    return "no answer from " + target.host + ":" + std::to_string(target.port) + " after " +
           std::to_string(opts.retries + 1) + " tries of " + describe(opts.timeout) +
           (target.version == "2c" ? " (switch unreachable, SNMP off, or wrong community)"
                                   : " (switch unreachable or SNMP off)");
  }
};

int response_callback(int op, netsnmp_session*, int reqid, netsnmp_pdu* pdu, void* magic) {
  return static_cast<SwitchJob*>(magic)->on_response(op, reqid, pdu);
}

bool SwitchJob::open() {
  netsnmp_session s;
  snmp_sess_init(&s);
  bool v6 = target.host.find(':') != std::string::npos;
  std::string peer = (v6 ? "udp6:[" + target.host + "]" : "udp:" + target.host) + ":" + std::to_string(target.port);
  s.peername = peer.data();
  s.timeout = static_cast<long>(opts.timeout.count()) * 1000;
  s.retries = opts.retries;
  s.callback = response_callback;
  s.callback_magic = this;
  if (target.version == "3") {
    s.version = SNMP_VERSION_3;
    s.securityName = target.user.data();
    s.securityNameLen = target.user.size();
    s.securityLevel = SNMP_SEC_LEVEL_NOAUTH;
    const oid* auth = nullptr;
    std::size_t auth_len = 10;
    if (target.auth_protocol == "MD5") auth = usmHMACMD5AuthProtocol;
    else if (target.auth_protocol == "SHA") auth = usmHMACSHA1AuthProtocol;
    else if (target.auth_protocol == "SHA-224") auth = usmHMAC128SHA224AuthProtocol;
    else if (target.auth_protocol == "SHA-256") auth = usmHMAC192SHA256AuthProtocol;
    else if (target.auth_protocol == "SHA-384") auth = usmHMAC256SHA384AuthProtocol;
    else if (target.auth_protocol == "SHA-512") auth = usmHMAC384SHA512AuthProtocol;
    if (auth) {
      s.securityLevel = SNMP_SEC_LEVEL_AUTHNOPRIV;
      s.securityAuthProto = snmp_duplicate_objid(auth, auth_len);
      s.securityAuthProtoLen = auth_len;
      s.securityAuthKeyLen = USM_AUTH_KU_LEN;
      if (generate_Ku(s.securityAuthProto, s.securityAuthProtoLen,
                      reinterpret_cast<const u_char*>(target.auth_key.data()), target.auth_key.size(),
                      s.securityAuthKey, &s.securityAuthKeyLen) != SNMPERR_SUCCESS) {
        status.error = "could not derive the SNMPv3 auth key (at least 8 characters)";
        return false;
      }
      if (!target.priv_protocol.empty()) {
        const oid* priv = target.priv_protocol == "DES" ? usmDESPrivProtocol : usmAESPrivProtocol;
        s.securityLevel = SNMP_SEC_LEVEL_AUTHPRIV;
        s.securityPrivProto = snmp_duplicate_objid(priv, 10);
        s.securityPrivProtoLen = 10;
        s.securityPrivKeyLen = USM_PRIV_KU_LEN;
        if (generate_Ku(s.securityAuthProto, s.securityAuthProtoLen,
                        reinterpret_cast<const u_char*>(target.priv_key.data()), target.priv_key.size(),
                        s.securityPrivKey, &s.securityPrivKeyLen) != SNMPERR_SUCCESS) {
          status.error = "could not derive the SNMPv3 privacy key (at least 8 characters)";
          return false;
        }
      }
    }
  } else {
    s.version = SNMP_VERSION_2c;
    s.community = reinterpret_cast<u_char*>(target.community.data());
    s.community_len = target.community.size();
  }
  sess = snmp_sess_open(&s);
  if (s.securityAuthProto) free(s.securityAuthProto);
  if (s.securityPrivProto) free(s.securityPrivProto);
  if (!sess) {
    int liberr = 0, syserr = 0;
    char* msg = nullptr;
    snmp_error(&s, &liberr, &syserr, &msg);
    status.error = std::string("could not open an SNMP session to ") + peer + ": " + (msg ? msg : "unknown error");
    free(msg);
    return false;
  }
  if (target.version == "3") {
    // net-snmp's engine-ID probe is a blocking round trip inside the first send, which would
    // serialise dead v3 switches. Probe asynchronously ourselves instead (RFC 3414 4.).
    snmp_sess_session(sess)->flags |= SNMP_FLAGS_DONT_PROBE;
    phase = Phase::Discover;
  }
  return true;
}

void SwitchJob::send_walk(bool first) {
  netsnmp_pdu* pdu = snmp_pdu_create(SNMP_MSG_GETBULK);
  request_has_uptime = first;
  pdu->non_repeaters = first ? 1 : 0;
  pdu->max_repetitions = opts.bulk_rows;
  if (first) snmp_add_null_var(pdu, kSysUpTimeColumn.data(), kSysUpTimeColumn.size());
  in_request.clear();
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].done) continue;
    in_request.push_back(i);
    snmp_add_null_var(pdu, columns[i].cur.data(), columns[i].cur.size());
  }
  send(pdu);
}

void SwitchJob::handle_walk(netsnmp_pdu* pdu) {
  status.answered = true;
  apply_walk(pdu->variables, request_has_uptime, in_request, columns, status);
  if (std::any_of(columns.begin(), columns.end(), [](const WalkColumn& c) { return !c.done; })) {
    if (status.requests > 10000) return fail("the switch's interface table does not end (agent bug?)");
    send_walk(false);
  } else {
    start_optical();
  }
}

void SwitchJob::start_optical() {
  if (!target.profile.reads_optics()) return finish();
  for (const auto& ref : target.wanted)
    if (auto idx = resolve_port(ref, status.ports)) rx_ports.push_back(*idx);
  std::sort(rx_ports.begin(), rx_ports.end());
  rx_ports.erase(std::unique(rx_ports.begin(), rx_ports.end()), rx_ports.end());
  if (rx_ports.empty()) return finish();
  if (target.profile.index == VendorProfile::Index::EntAliasMapping) {
    phase = Phase::Alias;
    alias_cur = kEntAliasMappingIdentifier;
    return send_alias();
  }
  phase = Phase::Rx;
  send_optics();
}

void SwitchJob::send_alias() {
  netsnmp_pdu* pdu = snmp_pdu_create(SNMP_MSG_GETBULK);
  pdu->non_repeaters = 0;
  pdu->max_repetitions = opts.bulk_rows * 4;
  snmp_add_null_var(pdu, alias_cur.data(), alias_cur.size());
  send(pdu);
}

void SwitchJob::handle_alias(netsnmp_pdu* pdu) {
  bool more = apply_alias(pdu->variables, alias_cur, ent_of_if);
  if (more && status.requests < 10000) return send_alias();
  std::vector<int> mapped;
  for (int idx : rx_ports) {
    if (ent_of_if.count(idx)) mapped.push_back(idx);
    else status.ports[idx].no_optics("port has no entity in entAliasMappingTable: optical power not known", target.profile);
  }
  rx_ports = std::move(mapped);
  if (rx_ports.empty()) return finish();
  phase = Phase::Rx;
  send_optics();
}

void SwitchJob::send_optics() {
  const std::vector<ReadingColumn> columns = target.profile.reading_columns();
  const bool with_precision = !target.profile.precision_oid.empty();
  const std::size_t per_port = columns.size() + (with_precision ? 1 : 0);
  std::size_t n = std::max<std::size_t>(1, static_cast<std::size_t>(opts.max_varbinds) / per_port);
  rx_batch.assign(rx_ports.begin(), rx_ports.begin() + std::min(n, rx_ports.size()));
  rx_ports.erase(rx_ports.begin(), rx_ports.begin() + rx_batch.size());
  netsnmp_pdu* pdu = snmp_pdu_create(SNMP_MSG_GET);
  for (int idx : rx_batch) {
    for (const auto& c : columns) {
      Oid o = rx_instance(idx, c.oid);
      snmp_add_null_var(pdu, o.data(), o.size());
    }
    if (with_precision) {
      Oid p = rx_instance(idx, target.profile.precision_oid);
      snmp_add_null_var(pdu, p.data(), p.size());
    }
  }
  send(pdu);
}

void SwitchJob::handle_optics(netsnmp_pdu* pdu) {
  apply_optics(pdu->errstat, pdu->variables, rx_batch, target.profile, status.ports);
  if (!rx_ports.empty()) return send_optics();
  finish();
}

int SwitchJob::on_response(int op, int reqid, netsnmp_pdu* pdu) {
  // Reports for failed authentication cannot carry our request id: take SEC_ERROR as is.
  if (done || (op != NETSNMP_CALLBACK_OP_SEC_ERROR && reqid != pending_reqid)) return 1;
  if (phase == Phase::Discover) {
    if (op == NETSNMP_CALLBACK_OP_TIMED_OUT) {
      fail(no_answer());
    } else if (pdu && pdu->securityEngineIDLen > 0) {
      discovered(pdu);
    } else if (op == NETSNMP_CALLBACK_OP_RESEND || op == NETSNMP_CALLBACK_OP_CONNECT) {
      return 1;
    } else {
      fail("the switch did not tell its SNMPv3 engine ID (callback op " + std::to_string(op) + ")");
    }
    return 1;
  }
  if (op == NETSNMP_CALLBACK_OP_TIMED_OUT) {
    if (phase == Phase::Walk) {
      fail(status.answered ? "the switch stopped answering during the interface walk: " + no_answer() : no_answer());
    } else {
      std::vector<int> left = rx_batch;
      left.insert(left.end(), rx_ports.begin(), rx_ports.end());
      for (int idx : left) status.ports[idx].no_optics("no answer when reading optical power", target.profile);
      finish();
    }
    return 1;
  }
  if (op == NETSNMP_CALLBACK_OP_RESEND || op == NETSNMP_CALLBACK_OP_CONNECT) return 1;  // informational
  if (op == NETSNMP_CALLBACK_OP_SEC_ERROR) {
    // SNMPv3: the agent's report (wrong key, unknown user) or a local USM failure.
    if (pdu && pdu->command == SNMP_MSG_REPORT) fail(report_reason(pdu));
    else fail("SNMPv3 security error (wrong auth/priv key or protocol?)");
    return 1;
  }
  if (op != NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE) {
    fail(op == NETSNMP_CALLBACK_OP_SEND_FAILED ? "could not send to the switch"
                                               : "SNMP transport error (callback op " + std::to_string(op) + ")");
    return 1;
  }
  if (pdu->command == SNMP_MSG_REPORT) {
    fail(report_reason(pdu));
    return 1;
  }
  if (phase == Phase::Walk && pdu->errstat != SNMP_ERR_NOERROR) {
    fail(std::string("the switch answered with an error: ") + snmp_errstring(pdu->errstat));
    return 1;
  }
  switch (phase) {
    case Phase::Discover: break;
    case Phase::Walk: handle_walk(pdu); break;
    case Phase::Alias: handle_alias(pdu); break;
    case Phase::Rx: handle_optics(pdu); break;
  }
  return 1;
}

}  // namespace

void init_netsnmp() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Numeric OIDs only: no MIB files are read (Debian ships none), no snmp.conf, no state.
    setenv("MIBS", "", 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
    netsnmp_ds_set_int(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_MIB_WARNINGS, 0);
    init_snmp("campus-fiber");
  });
}

std::optional<int> resolve_port(const PortRef& ref, const std::map<int, PortStatus>& ports) {
  if (ref.if_index) {
    if (ports.count(*ref.if_index)) return *ref.if_index;
    return std::nullopt;
  }
  for (const auto& [idx, p] : ports)
    if (p.name && *p.name == ref.if_name) return idx;
  // Spreadsheets change case ("gigabitethernet1/0/1"); accept it when unambiguous.
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  std::optional<int> found;
  for (const auto& [idx, p] : ports) {
    if (p.name && lower(*p.name) == lower(ref.if_name)) {
      if (found) return std::nullopt;
      found = idx;
    }
  }
  return found;
}

SwitchPoller::~SwitchPoller() {
  cancelled_ = true;
  if (worker_.joinable()) worker_.join();
}

void SwitchPoller::start(std::vector<SnmpTarget> targets, PollOptions options,
                         std::function<void(std::vector<SwitchStatus>)> done) {
  init_netsnmp();
  work_.emplace(io_.get_executor());
  worker_ = std::thread([this, targets = std::move(targets), options, done = std::move(done)]() mutable {
    run(std::move(targets), options, std::move(done));
  });
}

void SwitchPoller::run(std::vector<SnmpTarget> targets, PollOptions options,
                       std::function<void(std::vector<SwitchStatus>)> done) {
  // Debian's net-snmp is built without NETSNMP_REENTRANT: its USM user list and request ids
  // are unguarded globals. One poll at a time per process (a reload can overlap two runs).
  static std::mutex netsnmp_mutex;
  std::unique_lock lock(netsnmp_mutex);
  std::vector<std::unique_ptr<SwitchJob>> jobs;
  jobs.reserve(targets.size());
  for (auto& t : targets) {
    auto job = std::make_unique<SwitchJob>(std::move(t), options);
    job->started = Clock::now();
    if (!job->open()) job->finish();
    else job->begin();
    jobs.push_back(std::move(job));
  }
  std::vector<pollfd> fds;
  std::vector<SwitchJob*> owners;
  for (;;) {
    fds.clear();
    owners.clear();
    for (auto& j : jobs) {
      if (j->done) { j->close(); continue; }
      fds.push_back({j->socket(), POLLIN, 0});
      owners.push_back(j.get());
    }
    if (owners.empty()) break;
    if (cancelled_ || Clock::now() >= options.deadline) {
      for (auto* j : owners) j->fail(cancelled_ ? "cancelled" : "audit deadline passed before the switch answered");
      continue;
    }
    int n = ::poll(fds.data(), fds.size(), 10);
    if (n > 0) {
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
        netsnmp_large_fd_set set;
        netsnmp_large_fd_set_init(&set, fds[i].fd + 1);
        NETSNMP_LARGE_FD_SET(fds[i].fd, &set);
        snmp_sess_read2(owners[i]->sess, &set);
        netsnmp_large_fd_set_cleanup(&set);
      }
    }
    // Retransmits and timeouts (each session keeps its own clock).
    for (auto* j : owners)
      if (!j->done && j->sess) snmp_sess_timeout(j->sess);
  }
  std::vector<SwitchStatus> out;
  out.reserve(jobs.size());
  for (auto& j : jobs) out.push_back(std::move(j->status));
  jobs.clear();
  lock.unlock();
  asio::post(io_, [self = shared_from_this(), out = std::move(out), done = std::move(done)]() mutable {
    if (self->worker_.joinable()) self->worker_.join();
    self->work_.reset();
    done(std::move(out));
  });
}

}  // namespace campus::fiber
