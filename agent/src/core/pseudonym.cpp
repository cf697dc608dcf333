// Keyed student pseudonyms: HMAC-SHA256 (OpenSSL EVP_MAC) and the key file.
#include "campus/pseudonym.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>

#include "campus/config_table.hpp"

namespace campus {
namespace {

constexpr std::string_view kPrefix = "p-";
constexpr std::size_t kChars = 16;  // base32 characters: 80 bits
constexpr std::size_t kMinKeyBytes = 16;
constexpr std::size_t kCacheLimit = 200000;  // a county's largest school has far fewer students
constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";

bool hmac_sha256(const std::string& key, std::string_view data, unsigned char out[32]) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!mac) return false;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  std::size_t n = 0;
  bool ok = ctx && EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) == 1 &&
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
            EVP_MAC_final(ctx, out, &n, 32) == 1 && n == 32;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return ok;
}

Result<std::string> create_key_file(const std::filesystem::path& file) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return Error{file.string(), "no random bytes for a new pseudonym key", ""};
  static const char hex[] = "0123456789abcdef";
  std::string text;
  for (unsigned char b : raw) {
    text += hex[b >> 4];
    text += hex[b & 15];
  }
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return Error{file.string(), std::string("cannot create the pseudonym key file: ") + std::strerror(errno),
                 "let the agent's user write the directory, or create the file once with: "
                 "install -m 600 -o campus-agent /dev/null FILE && od -An -tx1 -N32 /dev/urandom | tr -d ' \\n' > FILE"};
  std::string line = text + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(file.c_str());
    return Error{file.string(), "cannot write the new pseudonym key file", "check free space in its directory"};
  }
  return text;
}

}  // namespace

StudentPseudonyms::StudentPseudonyms(std::string key)
    : key_(std::move(key)), cache_(std::make_shared<std::unordered_map<std::string, std::string>>()) {}

StudentPseudonyms StudentPseudonyms::from_key(std::string key) { return StudentPseudonyms(std::move(key)); }

Result<StudentPseudonyms> StudentPseudonyms::open(const std::filesystem::path& key_file, bool create_if_missing,
                                                  bool* created) {
  if (created) *created = false;
  std::error_code ec;
  if (create_if_missing && !std::filesystem::exists(std::filesystem::symlink_status(key_file, ec))) {
    auto made = create_key_file(key_file);
    if (!made) return made.error();
    if (created) *created = true;
    return StudentPseudonyms(std::move(made.value()));
  }
  auto key = read_secret_file(key_file);
  if (!key) return key.error();
  if (key->size() < kMinKeyBytes)
    return Error{key_file.string(), "the pseudonym key is shorter than 16 bytes",
                 "write a long random key into it: od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'"};
  return StudentPseudonyms(std::move(key.value()));
}

std::string StudentPseudonyms::mac_text(std::string_view data, std::size_t base32_chars) const {
  unsigned char mac[32];
  if (!hmac_sha256(key_, data, mac)) throw std::runtime_error("HMAC-SHA256 unavailable in OpenSSL");
  std::string out;
  unsigned bits = 0, value = 0;
  for (std::size_t i = 0; out.size() < base32_chars && i < sizeof mac; ++i) {
    value = (value << 8) | mac[i];
    bits += 8;
    while (bits >= 5 && out.size() < base32_chars) {
      out += kBase32[(value >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

std::string StudentPseudonyms::pseudonym(std::string_view value) const {
  std::string norm(value);
  for (auto& c : norm)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (auto it = cache_->find(norm); it != cache_->end()) return it->second;
  std::string p = std::string(kPrefix) + mac_text(norm, kChars);
  if (cache_->size() >= kCacheLimit) cache_->clear();
  cache_->emplace(std::move(norm), p);
  return p;
}

std::string StudentPseudonyms::fingerprint() const {
  unsigned char mac[32];
  if (!hmac_sha256(key_, "campus-agent student pseudonym key fingerprint", mac))
    throw std::runtime_error("HMAC-SHA256 unavailable in OpenSSL");
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 4; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 15];
  }
  return out;
}

bool StudentPseudonyms::is_pseudonym(std::string_view s) {
  if (s.size() != kPrefix.size() + kChars || s.substr(0, kPrefix.size()) != kPrefix) return false;
  for (char c : s.substr(kPrefix.size()))
    if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) return false;
  return true;
}

}  // namespace campus
