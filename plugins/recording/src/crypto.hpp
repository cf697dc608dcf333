// Digests and encodings the recording probes need (RTSP/HTTP digest auth, WS-Security), on
// OpenSSL's EVP interface.
#pragma once
#include <string>
#include <string_view>

namespace campus::recording {

std::string base64_encode(std::string_view bytes);
// Empty optional-like behaviour: returns false on malformed input.
bool base64_decode(std::string_view text, std::string& out);
std::string md5_hex(std::string_view data);
std::string sha256_hex(std::string_view data);
std::string sha1_raw(std::string_view data);  // 20 raw bytes
std::string random_bytes(std::size_t n);
std::string random_hex(std::size_t n_bytes);

}  // namespace campus::recording
