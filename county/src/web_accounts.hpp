// Who may look at the dashboard, and who may act: the accounts file and the login sessions.
//
// The accounts file (dashboard.accounts, written by `campus-county passwd`), one account a line:
//   user:role:pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX
// role "viewer" (reads every page) or "operator" (also records case steps). The hash is
// PBKDF2-HMAC-SHA256 (OpenSSL) over the password with a random 16-byte salt; the password itself
// is never stored or logged. Lines starting with '#' and empty lines are skipped.
#pragma once
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "campus/error.hpp"

namespace campus::county::web {

enum class Role { viewer, operator_ };
const char* role_name(Role r);
std::optional<Role> parse_role(const std::string& s);

struct Account {
  std::string user;
  Role role = Role::viewer;
  std::string hash;  // pbkdf2-sha256$...
};

inline constexpr int kDefaultIterations = 600000;  // OWASP's figure for PBKDF2-HMAC-SHA256

// The accounts of the file; a bad line is an Error (file:line, what, fix) and is skipped.
struct AccountsLoad {
  std::vector<Account> accounts;
  Errors errors;
};
AccountsLoad load_accounts(const std::filesystem::path& file);

// "pbkdf2-sha256$ITER$SALT$HASH" for `password` with a fresh random salt.
std::string hash_password(const std::string& password, int iterations = kDefaultIterations);
// Whether `password` matches `hash` (constant-time comparison of the derived keys).
bool verify_password(const std::string& password, const std::string& hash);

// Adds or replaces `user` in the file (created 0640 with its directory's group when absent;
// written to a temporary file and renamed over it, so a crash leaves the old file or the new one).
Status set_account(const std::filesystem::path& file, const std::string& user, Role role, const std::string& password,
                   int iterations = kDefaultIterations);
// A user name: 1-64 of a-z A-Z 0-9 . _ - (it is a field of the file and shows in logs).
std::optional<std::string> user_name_problem(const std::string& user);

// Login sessions, in memory (a collector restart logs everyone out). Tokens are 32 random
// bytes, hex; a session ends `lifetime` after login or at logout.
struct Session {
  std::string user;
  Role role = Role::viewer;
  std::chrono::steady_clock::time_point expires;
};
class Sessions {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Sessions(std::chrono::milliseconds lifetime) : lifetime_(lifetime) {}
  std::string open(const std::string& user, Role role, Clock::time_point now);
  // The live session of `token`; an expired one is removed and nullopt returned.
  std::optional<Session> find(const std::string& token, Clock::time_point now);
  void close(const std::string& token);
  // Ends every session of a user (the account was removed or its role changed).
  void close_user(const std::string& user);
  void set_lifetime(std::chrono::milliseconds lifetime) { lifetime_ = lifetime; }
  std::size_t size() const { return sessions_.size(); }

 private:
  std::chrono::milliseconds lifetime_;
  std::map<std::string, Session> sessions_;
};

}  // namespace campus::county::web
