#include "core/systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace campus::systemd {
namespace {

// The sd_notify(3) protocol by hand: one datagram to the AF_UNIX socket in $NOTIFY_SOCKET
// ("/path", or "@name" in the abstract namespace). libsystemd did the same, and brought six
// shared libraries (libsystemd, gcrypt, gpg-error, lzma, lz4, cap: ~0.9 MiB of the daemon's
// RSS, docs/performance.md "Footprint") into a process that never uses anything else of them.
void notify(const std::string& message) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@')) return;
  sockaddr_un addr{};
  std::size_t len = std::strlen(path);
  if (len >= sizeof(addr.sun_path)) return;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path, len);
  // An abstract name has no terminating NUL in its length; a path does.
  if (path[0] == '@') addr.sun_path[0] = '\0';
  else ++len;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
}

}  // namespace

void ready(const std::string& s) { notify("READY=1\nSTATUS=" + s); }
void status(const std::string& s) { notify("STATUS=" + s); }
void reloading() { notify("RELOADING=1"); }
void stopping() { notify("STOPPING=1"); }
void watchdog() { notify("WATCHDOG=1"); }

// As sd_watchdog_enabled(3): WATCHDOG_USEC, for this process only when WATCHDOG_PID is set.
std::optional<Millis> watchdog_period() {
  const char* usec_text = std::getenv("WATCHDOG_USEC");
  if (!usec_text || !*usec_text) return std::nullopt;
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid && *pid) {
    char* end = nullptr;
    errno = 0;
    long long p = std::strtoll(pid, &end, 10);
    if (errno || *end || p != static_cast<long long>(::getpid())) return std::nullopt;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long usec = std::strtoull(usec_text, &end, 10);
  if (errno || *end || usec == 0) return std::nullopt;
  return Millis(static_cast<std::int64_t>(usec / 2000));
}

}  // namespace campus::systemd
