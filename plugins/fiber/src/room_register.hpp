// The school's room register and switch list (CSV) turned into rooms and switches to audit.
// A bad row never stops the audit: it becomes an Error with file:line and column, and the
// room it names is still reported (as unknown, with the reason).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "campus/csv.hpp"
#include "campus/error.hpp"

namespace campus::fiber {

enum class RoomType { Classroom, FunctionRoom, Office };
inline constexpr RoomType kRoomTypes[] = {RoomType::Classroom, RoomType::FunctionRoom, RoomType::Office};
const char* to_string(RoomType t);
std::optional<RoomType> parse_room_type(const std::string& s);

// How a room's port is named on its switch: a number is an ifIndex, anything else an ifName.
struct PortRef {
  std::optional<int> if_index;
  std::string if_name;
  std::string text() const;  // as written in the register
};

// A device in the room that should answer: "icmp:10.1.2.3", "tcp:10.1.2.3:80",
// "10.1.2.3" (ICMP) or "10.1.2.3:80" (TCP). Addresses are literals (IPv6 in brackets).
struct Endpoint {
  enum class Kind { Icmp, Tcp };
  Kind kind = Kind::Icmp;
  std::string host;
  std::uint16_t port = 0;
  std::string text;
};
Result<Endpoint> parse_endpoint(const std::string& text);

struct Room {
  std::string id;
  std::string name;
  std::optional<RoomType> type;  // nullopt only when the row is invalid
  std::string building;
  std::string floor;
  std::string switch_id;          // empty: no switch port in the register
  std::optional<PortRef> port;
  std::optional<Endpoint> endpoint;
  std::string invalid;            // non-empty: the row is bad; the room is reported unknown
  std::string where;              // "rooms.csv:7"
  bool planned() const { return !switch_id.empty() || endpoint.has_value(); }
};

struct SnmpCredentials {
  std::string version = "2c";  // "2c" or "3"
  std::optional<std::filesystem::path> community_file;  // v2c; default from the config
  std::string user;                                      // v3
  std::string auth_protocol;                             // v3: SHA, SHA-256, SHA-512, MD5 or empty
  std::optional<std::filesystem::path> auth_key_file;
  std::string priv_protocol;                             // v3: AES, DES or empty
  std::optional<std::filesystem::path> priv_key_file;
};

struct Switch {
  std::string id;
  std::string host;
  std::uint16_t port = 161;
  std::string profile;  // vendor profile name
  SnmpCredentials credentials;
  std::string invalid;  // non-empty: rooms on this switch are reported unknown
  std::string where;
};

struct Registers {
  std::vector<Room> rooms;
  std::vector<Switch> switches;
  Errors errors;
};

// Room register columns: id, name, type, building, floor, switch, port, endpoint.
// Switch list columns: id, address, profile, and optional snmp_version, community_file,
// user, auth_protocol, auth_key_file, priv_protocol, priv_key_file. Relative file paths
// are resolved against `base_dir` (the switch list's directory).
// `profiles`: known vendor profile names; `default_profile` when the column is empty.
Registers parse_registers(const CsvTable& rooms, const CsvTable& switches,
                          const std::set<std::string>& profiles, const std::string& default_profile,
                          const std::filesystem::path& base_dir);

inline const std::vector<std::string> kRoomColumns = {"id", "name", "type"};
inline const std::vector<std::string> kSwitchColumns = {"id", "address"};

}  // namespace campus::fiber
