// The test PostgreSQL server (county_test_support.hpp): tests/postgres-server in a temporary
// directory, on a free port of 127.0.0.1.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "county_test_support.hpp"

namespace campus::county::test {
namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string script() { return std::string(CAMPUS_SOURCE_DIR) + "/tests/postgres-server"; }

}  // namespace

PostgresServer& PostgresServer::get() {
  static PostgresServer server = [] {
    PostgresServer s;
    s.dir = std::filesystem::temp_directory_path() / ("county-pg-" + std::to_string(::getpid()));
    const std::string cmd = script() + " start " + s.dir.string() + " " + std::to_string(free_port());
    std::FILE* p = ::popen(cmd.c_str(), "r");
    std::array<char, 512> buf{};
    while (p && std::fgets(buf.data(), buf.size(), p)) s.url += buf.data();
    const int rc = p ? ::pclose(p) : -1;
    while (!s.url.empty() && (s.url.back() == '\n' || s.url.back() == ' ')) s.url.pop_back();
    if (rc != 0 || s.url.empty()) throw std::runtime_error("could not start the test PostgreSQL: " + cmd);
    std::ifstream pw(s.dir / "password");
    std::getline(pw, s.password);
    return s;
  }();
  return server;
}

PostgresServer::~PostgresServer() {
  if (dir.empty()) return;
  const std::string cmd = script() + " stop " + dir.string();
  (void)std::system(cmd.c_str());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace campus::county::test
