// Basic and Digest authorization for the RTSP client.
#include "digest_auth.hpp"

#include <cctype>
#include <cstdio>

#include "crypto.hpp"

namespace campus::recording {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void skip_space(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) ++i;
}

std::string token(std::string_view s, std::size_t& i) {
  std::size_t b = i;
  while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '=' && s[i] != ',') ++i;
  return std::string(s.substr(b, i - b));
}

std::string quoted_or_token(std::string_view s, std::size_t& i) {
  if (i < s.size() && s[i] == '"') {
    std::string v;
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      v.push_back(s[i]);
    }
    if (i < s.size()) ++i;
    return v;
  }
  std::size_t b = i;
  while (i < s.size() && s[i] != ',' && s[i] != ' ') ++i;
  return std::string(s.substr(b, i - b));
}

}  // namespace

std::vector<AuthChallenge> parse_challenges(std::string_view s) {
  std::vector<AuthChallenge> out;
  std::size_t i = 0;
  while (true) {
    skip_space(s, i);
    if (i >= s.size()) break;
    std::size_t mark = i;
    std::string name = token(s, i);
    std::size_t after_name = i;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i < s.size() && s[i] == '=' && !out.empty()) {
      // name=value of the current challenge (token68 forms are not used by RTSP devices)
      ++i;
      while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
      out.back().params[lower(name)] = quoted_or_token(s, i);
    } else {
      i = after_name;
      if (name.empty()) {
        i = mark + 1;
        continue;
      }
      out.push_back(AuthChallenge{lower(name), {}});
    }
  }
  return out;
}

std::optional<std::string> digest_response(const AuthChallenge& c, const DigestInput& in) {
  std::string algorithm = lower(c.param("algorithm"));
  bool sess = algorithm.ends_with("-sess");
  if (sess) algorithm.resize(algorithm.size() - 5);
  std::string (*h)(std::string_view);
  if (algorithm.empty() || algorithm == "md5") h = md5_hex;
  else if (algorithm == "sha-256") h = sha256_hex;
  else return std::nullopt;

  std::string nonce = c.param("nonce");
  std::string ha1 = h(in.username + ":" + c.param("realm") + ":" + in.password);
  if (sess) ha1 = h(ha1 + ":" + nonce + ":" + in.cnonce);
  std::string ha2 = h(in.method + ":" + in.uri);

  std::string qop_offer = c.param("qop");
  if (qop_offer.empty()) return h(ha1 + ":" + nonce + ":" + ha2);
  bool has_auth = false;
  std::size_t i = 0;
  while (i <= qop_offer.size()) {
    std::size_t j = qop_offer.find(',', i);
    if (j == std::string::npos) j = qop_offer.size();
    std::string q = qop_offer.substr(i, j - i);
    while (!q.empty() && q.front() == ' ') q.erase(0, 1);
    while (!q.empty() && q.back() == ' ') q.pop_back();
    if (q == "auth") has_auth = true;
    i = j + 1;
  }
  if (!has_auth) return std::nullopt;
  char nc[16];
  std::snprintf(nc, sizeof nc, "%08x", in.nc);
  return h(ha1 + ":" + nonce + ":" + nc + ":" + in.cnonce + ":auth:" + ha2);
}

std::optional<std::string> digest_authorization(const AuthChallenge& c, const DigestInput& in) {
  auto response = digest_response(c, in);
  if (!response) return std::nullopt;
  std::string v = "Digest username=\"" + in.username + "\", realm=\"" + c.param("realm") + "\", nonce=\"" +
                  c.param("nonce") + "\", uri=\"" + in.uri + "\", response=\"" + *response + "\"";
  if (!c.param("algorithm").empty()) v += ", algorithm=" + c.param("algorithm");
  if (!c.param("opaque").empty()) v += ", opaque=\"" + c.param("opaque") + "\"";
  if (!c.param("qop").empty()) {
    char nc[16];
    std::snprintf(nc, sizeof nc, "%08x", in.nc);
    v += ", qop=auth, nc=" + std::string(nc) + ", cnonce=\"" + in.cnonce + "\"";
  }
  return v;
}

std::string basic_authorization(const std::string& username, const std::string& password) {
  return "Basic " + base64_encode(username + ":" + password);
}

}  // namespace campus::recording
