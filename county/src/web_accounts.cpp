// Accounts, password hashes and sessions (see web_accounts.hpp).
#include "web_accounts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace campus::county::web {
namespace {

constexpr const char* kScheme = "pbkdf2-sha256";
constexpr int kMinIterations = 1000, kMaxIterations = 100000000;

std::string to_hex(const unsigned char* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

std::optional<std::string> from_hex(const std::string& h) {
  if (h.size() % 2) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < h.size(); i += 2) {
    auto v = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    int hi = v(h[i]), lo = v(h[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string random_hex(std::size_t bytes) {
  std::string b(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("RAND_bytes failed");  // the system has no entropy: a bug, not an input
  return to_hex(reinterpret_cast<const unsigned char*>(b.data()), bytes);
}

std::string derive(const std::string& password, const std::string& salt, int iterations, std::size_t len) {
  std::string key(len, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations,
                    EVP_sha256(), static_cast<int>(len), reinterpret_cast<unsigned char*>(key.data()));
  return key;
}

struct Parsed {
  int iterations = 0;
  std::string salt, key;
};

// "pbkdf2-sha256$ITER$SALT$HASH"; nullopt with `why` when it is not one.
std::optional<Parsed> parse_hash(const std::string& h, std::string* why) {
  std::vector<std::string> parts;
  std::stringstream ss(h);
  for (std::string p; std::getline(ss, p, '$');) parts.push_back(p);
  auto fail = [&](const char* w) {
    if (why) *why = w;
    return std::nullopt;
  };
  if (parts.size() != 4 || parts[0] != kScheme) return fail("the hash is not pbkdf2-sha256$ITERATIONS$SALT$HASH");
  Parsed p;
  try {
    std::size_t used = 0;
    p.iterations = std::stoi(parts[1], &used);
    if (used != parts[1].size()) return fail("the iteration count is not a number");
  } catch (const std::exception&) {
    return fail("the iteration count is not a number");
  }
  if (p.iterations < kMinIterations || p.iterations > kMaxIterations) return fail("the iteration count is out of range");
  auto salt = from_hex(parts[2]);
  auto key = from_hex(parts[3]);
  if (!salt || salt->size() < 8) return fail("the salt is not hex of at least 8 bytes");
  if (!key || key->size() != 32) return fail("the hash is not 32 bytes of hex");
  p.salt = *salt;
  p.key = *key;
  return p;
}

}  // namespace

const char* role_name(Role r) { return r == Role::operator_ ? "operator" : "viewer"; }

std::optional<Role> parse_role(const std::string& s) {
  if (s == "viewer") return Role::viewer;
  if (s == "operator") return Role::operator_;
  return std::nullopt;
}

std::optional<std::string> user_name_problem(const std::string& user) {
  if (user.empty() || user.size() > 64) return "a user name is 1 to 64 characters";
  for (char c : user)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return "a user name has only letters, digits, '.', '_' and '-'";
  return std::nullopt;
}

std::string hash_password(const std::string& password, int iterations) {
  const std::string salt_hex = random_hex(16);
  const std::string key = derive(password, *from_hex(salt_hex), iterations, 32);
  return std::string(kScheme) + "$" + std::to_string(iterations) + "$" + salt_hex + "$" +
         to_hex(reinterpret_cast<const unsigned char*>(key.data()), key.size());
}

bool verify_password(const std::string& password, const std::string& hash) {
  auto p = parse_hash(hash, nullptr);
  if (!p) return false;
  const std::string key = derive(password, p->salt, p->iterations, p->key.size());
  return CRYPTO_memcmp(key.data(), p->key.data(), key.size()) == 0;
}

AccountsLoad load_accounts(const std::filesystem::path& file) {
  AccountsLoad out;
  std::ifstream in(file);
  if (!in) {
    out.errors.push_back({file.string(), "cannot read the accounts file: " + std::string(std::strerror(errno)),
                          "create it with: campus-county passwd --accounts " + file.string() + " USER --role viewer"});
    return out;
  }
  std::string line;
  int n = 0;
  std::map<std::string, int> seen;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::string where = file.string() + ":" + std::to_string(n);
    const std::size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) {
      out.errors.push_back({where, "not user:role:hash", "write the line with campus-county passwd"});
      continue;
    }
    Account acc;
    acc.user = line.substr(0, a);
    const std::string role = line.substr(a + 1, b - a - 1);
    acc.hash = line.substr(b + 1);
    std::string why;
    if (auto bad = user_name_problem(acc.user)) {
      out.errors.push_back({where, *bad, "write the line with campus-county passwd"});
    } else if (auto r = parse_role(role); !r) {
      out.errors.push_back({where + " user " + acc.user, "role \"" + role + "\" is neither viewer nor operator",
                            "campus-county passwd --role viewer|operator"});
    } else if (!parse_hash(acc.hash, &why)) {
      out.errors.push_back({where + " user " + acc.user, why, "set the password again with campus-county passwd"});
    } else if (auto [at, added] = seen.emplace(acc.user, n); !added) {
      out.errors.push_back({where + " user " + acc.user, "listed twice (first on line " + std::to_string(at->second) + ")",
                            "keep one line per user"});
    } else {
      acc.role = *r;
      out.accounts.push_back(std::move(acc));
    }
  }
  return out;
}

Status set_account(const std::filesystem::path& file, const std::string& user, Role role, const std::string& password,
                   int iterations) {
  if (auto bad = user_name_problem(user)) return Error{"user " + user, *bad, ""};
  if (iterations < kMinIterations || iterations > kMaxIterations)
    return Error{"--iterations", "must be between " + std::to_string(kMinIterations) + " and " +
                                     std::to_string(kMaxIterations), ""};
  std::vector<std::string> lines;
  bool replaced = false;
  const std::string entry = user + ":" + role_name(role) + ":" + hash_password(password, iterations);
  struct stat st {};
  const bool exists = ::stat(file.c_str(), &st) == 0;
  if (exists) {
    std::ifstream in(file);
    if (!in) return Error{file.string(), "cannot read: " + std::string(std::strerror(errno)), ""};
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(user + ":", 0) == 0) {
        if (!replaced) lines.push_back(entry);
        replaced = true;
        continue;
      }
      lines.push_back(line);
    }
  }
  if (!replaced) lines.push_back(entry);
  const std::filesystem::path tmp = file.string() + ".tmp";
  const mode_t mode = exists ? (st.st_mode & 07777) : 0640;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error{tmp.string(), "cannot write: " + std::string(std::strerror(errno)), "run as root or the file's owner"};
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  bool ok = ::fchmod(fd, mode) == 0;
  // The owner and group stay; a new file takes its directory's group (/etc/campus-county is
  // root:campus-county), so the collector can read what root wrote.
  struct stat dir {};
  const std::filesystem::path parent = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  if (ok && exists) ok = ::fchown(fd, st.st_uid, st.st_gid) == 0 || errno == EPERM;
  else if (ok && ::stat(parent.c_str(), &dir) == 0) ok = ::fchown(fd, static_cast<uid_t>(-1), dir.st_gid) == 0 || errno == EPERM;
  for (std::size_t off = 0; ok && off < text.size();) {
    ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) off += static_cast<std::size_t>(w);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) {
    const int e = ok ? errno : saved;
    ::unlink(tmp.c_str());
    return Error{file.string(), "cannot write: " + std::string(std::strerror(e)), ""};
  }
  return {};
}

std::string Sessions::open(const std::string& user, Role role, Clock::time_point now) {
  std::string token = random_hex(32);
  sessions_[token] = Session{user, role, now + lifetime_};
  // Expired sessions go at each login, so the map cannot grow without bound.
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = it->second.expires <= now ? sessions_.erase(it) : std::next(it);
  return token;
}

std::optional<Session> Sessions::find(const std::string& token, Clock::time_point now) {
  auto it = sessions_.find(token);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires <= now) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void Sessions::close(const std::string& token) { sessions_.erase(token); }

void Sessions::close_user(const std::string& user) {
  std::erase_if(sessions_, [&](const auto& kv) { return kv.second.user == user; });
}

}  // namespace campus::county::web
