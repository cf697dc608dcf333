// HTTP-style authentication for RTSP (RFC 2326 reuses RFC 2617): parsing WWW-Authenticate
// challenges and building Basic and Digest (MD5 / SHA-256, with or without qop=auth)
// Authorization headers (RFC 2617, RFC 7616).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace campus::recording {

struct AuthChallenge {
  std::string scheme;                        // lower-cased: "basic", "digest"
  std::map<std::string, std::string> params;  // names lower-cased, values unquoted
  std::string param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

// Parses one WWW-Authenticate header value (may hold several challenges).
std::vector<AuthChallenge> parse_challenges(std::string_view header);

struct DigestInput {
  std::string username, password, method, uri;
  std::string cnonce;   // used only when the challenge offers qop=auth
  unsigned nc = 1;
};

// The "response" value: RFC 2617 / 7616 (algorithm MD5 or SHA-256, optional -sess; qop auth or
// none). Returns nullopt for an algorithm or qop we do not support (e.g. auth-int only).
std::optional<std::string> digest_response(const AuthChallenge& c, const DigestInput& in);
// The complete Authorization header value for a Digest challenge.
std::optional<std::string> digest_authorization(const AuthChallenge& c, const DigestInput& in);
std::string basic_authorization(const std::string& username, const std::string& password);

}  // namespace campus::recording
