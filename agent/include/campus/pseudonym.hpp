// Keyed pseudonyms for identifiers that must not leave the school (the national student number
// 学籍号, an ID card number used as the student key): HMAC-SHA256 under a per-school secret key.
// The same number always gives the same pseudonym on this school's box, so cases follow the
// student; without the key nobody can compute one from a number, nor a number from one. Shared
// by the attendance plugin (import) and `campusctl --local case find --student` (lookup).
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "campus/error.hpp"
#include "campus/export.hpp"

namespace campus {

// The key file when the attendance table does not name one (pseudonym_key_file): in the data
// directory, which only the agent's user and root read; the package's postinst creates it.
inline constexpr const char* kDefaultStudentKeyFile = "/var/lib/campus-agent/student-pseudonym.key";

class CAMPUS_API StudentPseudonyms {
 public:
  // Reads the key file (the checks of read_secret_file: a regular file, mode 0600, not empty;
  // at least 16 bytes of key). With create_if_missing, a file that does not exist is created
  // (32 random bytes as 64 hex characters, mode 0600, never overwriting: O_EXCL) and *created
  // is set. Errors name the file and the fix.
  static Result<StudentPseudonyms> open(const std::filesystem::path& key_file, bool create_if_missing,
                                        bool* created = nullptr);
  // A key given directly (tests, tools).
  static StudentPseudonyms from_key(std::string key);

  // "p-" + 16 characters of RFC 4648 base32, lower case: the first 80 bits of
  // HMAC-SHA256(key, value with ASCII letters upper-cased). Short enough to read out on the
  // phone, long enough that two students of a county never share one (n^2 / 2^81).
  // Remembers recent values (a term's export repeats each student ~180 times); not thread-safe.
  std::string pseudonym(std::string_view value) const;
  // Eight hex characters naming the key without revealing it (HMAC of a fixed label): stored
  // with the data, so a replaced key is noticed.
  std::string fingerprint() const;
  // Forgets the remembered values (call after an import: no raw number stays in memory).
  void forget() const { cache_->clear(); }

  // True for strings of the form pseudonym() returns.
  static bool is_pseudonym(std::string_view s);

 private:
  explicit StudentPseudonyms(std::string key);
  std::string mac_text(std::string_view data, std::size_t base32_chars) const;
  std::string key_;
  std::shared_ptr<std::unordered_map<std::string, std::string>> cache_;
};

}  // namespace campus
