// Durations ("90s", "15m", "1h30m", "500ms", "2d"), sizes ("256MiB", "10MB", "4096"), and text
// cut to a bound for messages.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "campus/error.hpp"
#include "campus/export.hpp"

namespace campus {

using Millis = std::chrono::milliseconds;

// Accepts one or more <number><unit> parts, units ms, s, m, h, d. Rejects negatives, empty,
// unknown units and overflow; the Error's `what` says what was expected (where is left empty).
CAMPUS_API Result<Millis> parse_duration(std::string_view text);
// "1h30m", "90s", "250ms": the shortest exact spelling, for logs and `config` replies.
CAMPUS_API std::string format_duration(Millis d);

// Accepts a plain byte count or <number><unit> with B, KB, MB, GB (10^3) and KiB, MiB, GiB (2^10).
CAMPUS_API Result<std::uint64_t> parse_size(std::string_view text);
CAMPUS_API std::string format_size(std::uint64_t bytes);

// At most `n` bytes of valid UTF-8 `s`, never cutting a character in two.
CAMPUS_API std::string utf8_prefix(std::string_view s, std::size_t n);

}  // namespace campus
