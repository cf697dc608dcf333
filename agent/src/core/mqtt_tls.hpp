// Why a TLS connection to the broker failed, in words an operator can act on. Paho reports
// every TLS failure as "TCP/TLS connect failure"; this repeats the handshake with OpenSSL
// directly (same CA, client certificate and host check) to find the reason.
#pragma once
#include <chrono>
#include <filesystem>
#include <string>

namespace campus {

struct TlsProbe {
  std::string host;
  unsigned short port = 0;
  std::filesystem::path ca_file;
  std::filesystem::path cert_file;  // empty: no client certificate
  std::filesystem::path key_file;
  bool verify_hostname = true;
  std::chrono::milliseconds timeout{5000};
};

// Blocking (bounded by probe.timeout): call it off the io_context. Returns "" when the
// handshake succeeds, else one sentence naming the cause and the fix.
std::string diagnose_tls(const TlsProbe& probe);

// The subject CN of a PEM certificate file ("" when unreadable): the user name Mosquitto's
// use_identity_as_username gives this agent.
std::string certificate_cn(const std::filesystem::path& cert_file);

// Makes OpenSSL skip its atexit cleanup (OPENSSL_INIT_NO_ATEXIT); call it first thing in main,
// before anything touches OpenSSL (only the first initialisation of the process decides; later
// calls change nothing, so the MQTT clients call it too, as a fallback for tests).
// Why: Paho C's send and receive threads are detached. MQTTAsync_destroy waits until they say
// "stopped", but each thread's OpenSSL thread-local destructor runs after that, as the thread
// ends. If main has returned meanwhile, OpenSSL's atexit handler has freed what that destructor
// reads, and the process dies in libcrypto at exit (docs/reliability.md, "Incidents behind the
// workarounds"). The memory is the OS's to reclaim at exit anyway; nothing of ours depends on
// that cleanup.
void keep_openssl_until_exit();

// Sets TCP_NODELAY on this process's TCP sockets connected to host:port (Paho C never does,
// and Nagle + delayed ACK add ~40-90 ms to a request/reply). Returns how many were set.
int set_nodelay_on_sockets_to(const std::string& host, unsigned short port);

}  // namespace campus
