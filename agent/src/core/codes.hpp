// County and school codes: topic levels (campus/v1/{county}/{school}/...) and the names the
// county broker knows certificates by (CN). The one place their rules live: the agent's config
// check, campusctl's register and the county collector call these; scripts/make-certs refuses
// the same set (tests/unit/codes_test.cpp runs it against this list).
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace campus {

// A code is 1-64 of a-z, 0-9 and '-' (docs/protocol.md "Topic tree").
inline constexpr std::size_t kMaxCodeLength = 64;

// Words no school may be called, besides its county's own code (see code_problem):
inline constexpr std::array<std::string_view, 7> kReservedSchoolCodes{
    "all",               // campus/v1/{county}/all/cmd is the request to every school of the county
    "county",            // scripts/make-certs writes county.crt/.key: the county account's certificate
    "ca",                // ... ca.crt/.key: the county CA
    "broker",            // ... broker.crt/.key: the broker's server certificate
    "broker-expired",    // ... broker-expired.crt (--expired-broker, for the TLS tests)
    "broker-wronghost",  // ... broker-wronghost.crt (--wrong-host, for the TLS tests)
    "other-ca",          // ... other-ca.crt/.key (--other-ca, for the TLS tests)
};

// nullopt when `code` is 1-64 of a-z, 0-9 and '-'; else one sentence, starting with `noun`
// ("county code", "audit name"), saying what is wrong and how to fix it. For county codes and
// audit names, which have no reserved words.
std::optional<std::string> code_syntax_problem(const std::string& code, const std::string& noun = "code");

// nullopt when `code` is a valid school code in `county`: the syntax above, not one of
// kReservedSchoolCodes and not `county` itself; else one sentence saying what is wrong and how
// to fix it (the code is quoted with anything unprintable escaped).
std::optional<std::string> code_problem(const std::string& code, const std::string& county);

}  // namespace campus
