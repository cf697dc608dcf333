// Parsing the room register and switch list: every problem is an Error naming file:line and
// column; a bad room row still yields a Room (marked invalid) when it has an id.
#include "room_register.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include <boost/asio/ip/address.hpp>

namespace campus::fiber {
namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::optional<long> to_number(const std::string& s, long min, long max) {
  long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < min || v > max) return std::nullopt;
  return v;
}

bool is_ip_literal(const std::string& s) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(s, ec);
  return !ec;
}

// "host" or "host:port" or "[v6]:port"; port required when `need_port`.
Result<std::pair<std::string, std::optional<std::uint16_t>>> split_host_port(const std::string& text) {
  std::string host = text;
  std::optional<std::uint16_t> port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) return Error{"", "unbalanced '[' in address \"" + text + "\"", ""};
    host = text.substr(1, close - 1);
    std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Error{"", "expected ':port' after ']' in \"" + text + "\"", ""};
      auto p = to_number(rest.substr(1), 1, 65535);
      if (!p) return Error{"", "bad port in \"" + text + "\"", "a port is 1-65535"};
      port = static_cast<std::uint16_t>(*p);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    auto colon = text.find(':');
    host = text.substr(0, colon);
    auto p = to_number(text.substr(colon + 1), 1, 65535);
    if (!p) return Error{"", "bad port in \"" + text + "\"", "a port is 1-65535"};
    port = static_cast<std::uint16_t>(*p);
  }
  if (!is_ip_literal(host))
    return Error{"", "\"" + host + "\" is not an IP address",
                 "write the address as digits, e.g. 10.20.1.15 (names are not resolved)"};
  return std::pair{host, port};
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const char* to_string(RoomType t) {
  switch (t) {
    case RoomType::Classroom: return "classroom";
    case RoomType::FunctionRoom: return "function_room";
    case RoomType::Office: return "office";
  }
  return "?";
}

std::optional<RoomType> parse_room_type(const std::string& s) {
  std::string l = lower(s);
  if (l == "classroom") return RoomType::Classroom;
  if (l == "function_room") return RoomType::FunctionRoom;
  if (l == "office") return RoomType::Office;
  return std::nullopt;
}

std::string PortRef::text() const { return if_index ? std::to_string(*if_index) : if_name; }

Result<Endpoint> parse_endpoint(const std::string& text) {
  Endpoint e;
  e.text = text;
  std::string rest = text;
  std::optional<Endpoint::Kind> forced;
  if (rest.rfind("icmp:", 0) == 0) { forced = Endpoint::Kind::Icmp; rest = rest.substr(5); }
  else if (rest.rfind("tcp:", 0) == 0) { forced = Endpoint::Kind::Tcp; rest = rest.substr(4); }
  auto hp = split_host_port(rest);
  if (!hp) return hp.error();
  e.host = hp->first;
  if (hp->second) e.port = *hp->second;
  e.kind = forced.value_or(hp->second ? Endpoint::Kind::Tcp : Endpoint::Kind::Icmp);
  if (e.kind == Endpoint::Kind::Tcp && !hp->second)
    return Error{"", "tcp endpoint \"" + text + "\" has no port", "write tcp:ADDRESS:PORT"};
  if (e.kind == Endpoint::Kind::Icmp && hp->second)
    return Error{"", "icmp endpoint \"" + text + "\" has a port", "drop the port, or write tcp:ADDRESS:PORT"};
  return e;
}

Registers parse_registers(const CsvTable& rooms, const CsvTable& switches,
                          const std::set<std::string>& profiles, const std::string& default_profile,
                          const std::filesystem::path& base_dir) {
  Registers out;
  out.errors.insert(out.errors.end(), switches.errors.begin(), switches.errors.end());
  out.errors.insert(out.errors.end(), rooms.errors.begin(), rooms.errors.end());

  auto file_path = [&](const std::string& s) -> std::filesystem::path {
    std::filesystem::path p(s);
    return p.is_absolute() ? p : base_dir / p;
  };

  std::map<std::string, std::size_t> switch_index;
  for (const auto& row : switches.rows) {
    Switch sw;
    sw.id = row.get("id");
    sw.where = row.where();
    auto bad = [&](const std::string& column, std::string what, std::string fix = {}) {
      out.errors.push_back({row.where(column), what, std::move(fix)});
      if (sw.invalid.empty()) sw.invalid = row.where(column) + ": " + what;
    };
    if (sw.id.empty()) { out.errors.push_back({row.where("id"), "empty switch id", "give every switch an id"}); continue; }
    if (switch_index.count(sw.id)) {
      out.errors.push_back({row.where("id"), "duplicate switch id \"" + sw.id + "\" (first at " +
                                                 out.switches[switch_index[sw.id]].where + ")",
                            "give every switch its own id"});
      continue;
    }
    std::string address = row.get("address");
    auto hp = split_host_port(address);
    if (address.empty()) bad("address", "empty address", "write the switch's management IP, e.g. 10.20.0.2");
    else if (!hp) bad("address", hp.error().what, hp.error().fix);
    else { sw.host = hp->first; sw.port = hp->second.value_or(161); }
    sw.profile = row.get("profile");
    if (sw.profile.empty()) sw.profile = default_profile;
    if (!profiles.count(sw.profile)) {
      std::string known;
      for (const auto& p : profiles) known += (known.empty() ? "" : ", ") + p;
      bad("profile", "unknown vendor profile \"" + sw.profile + "\"", "one of: " + known);
    }
    auto& c = sw.credentials;
    std::string version = row.get("snmp_version");
    if (version.empty() || version == "2c" || version == "v2c" || version == "2") c.version = "2c";
    else if (version == "3" || version == "v3") c.version = "3";
    else bad("snmp_version", "unsupported SNMP version \"" + version + "\"", "2c or 3");
    if (!row.get("community_file").empty()) c.community_file = file_path(row.get("community_file"));
    if (c.version == "3") {
      c.user = row.get("user");
      if (c.user.empty()) bad("user", "SNMPv3 needs a user name");
      c.auth_protocol = row.get("auth_protocol");
      c.priv_protocol = row.get("priv_protocol");
      static const std::set<std::string> auths = {"", "MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"};
      static const std::set<std::string> privs = {"", "DES", "AES", "AES-128"};
      if (!auths.count(c.auth_protocol)) bad("auth_protocol", "unknown auth protocol \"" + c.auth_protocol + "\"", "MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512");
      if (!privs.count(c.priv_protocol)) bad("priv_protocol", "unknown privacy protocol \"" + c.priv_protocol + "\"", "DES or AES");
      if (!row.get("auth_key_file").empty()) c.auth_key_file = file_path(row.get("auth_key_file"));
      if (!row.get("priv_key_file").empty()) c.priv_key_file = file_path(row.get("priv_key_file"));
      if (!c.auth_protocol.empty() && !c.auth_key_file) bad("auth_key_file", "auth_protocol is set but auth_key_file is empty");
      if (!c.priv_protocol.empty() && !c.priv_key_file) bad("priv_key_file", "priv_protocol is set but priv_key_file is empty");
      if (!c.priv_protocol.empty() && c.auth_protocol.empty()) bad("priv_protocol", "privacy without authentication is not allowed by SNMPv3", "set auth_protocol too");
    }
    switch_index[sw.id] = out.switches.size();
    out.switches.push_back(std::move(sw));
  }
  // Switch rows the CSV reader could not read: rooms on them are unknown with that reason
  // (their error is already in out.errors, from switches.errors).
  keep_bad_rows(switches, "", out.switches, switch_index);

  std::map<std::string, std::size_t> room_index;
  for (const auto& row : rooms.rows) {
    Room room;
    room.id = row.get("id");
    room.where = row.where();
    auto bad = [&](const std::string& column, std::string what, std::string fix = {}) {
      out.errors.push_back({row.where(column), what, std::move(fix)});
      if (room.invalid.empty()) room.invalid = "bad register row " + row.where(column) + ": " + what;
    };
    if (room.id.empty()) { out.errors.push_back({row.where("id"), "empty room id", "give every room an id"}); continue; }
    if (auto it = room_index.find(room.id); it != room_index.end()) {
      Room& first = out.rooms[it->second];
      std::string what = "duplicate room id \"" + room.id + "\" (also at " + first.where + ")";
      out.errors.push_back({row.where("id"), what, "give every room its own id"});
      if (first.invalid.empty()) first.invalid = "bad register row " + row.where("id") + ": " + what;
      continue;
    }
    room.name = row.get("name");
    room.building = row.get("building");
    room.floor = row.get("floor");
    std::string type = row.get("type");
    room.type = parse_room_type(type);
    if (!room.type) bad("type", "unknown room type \"" + type + "\"", "classroom, function_room or office");

    room.switch_id = row.get("switch");
    std::string port = row.get("port");
    if (!room.switch_id.empty()) {
      auto it = switch_index.find(room.switch_id);
      if (it == switch_index.end()) bad("switch", "unknown switch \"" + room.switch_id + "\"", "add it to the switch list or fix the id");
      if (port.empty()) bad("port", "switch is given but port is empty", "write the ifIndex (e.g. 12) or ifName (e.g. GigabitEthernet1/0/12)");
    } else if (!port.empty()) {
      bad("switch", "port is given but switch is empty", "write the switch id");
    }
    if (!port.empty()) {
      PortRef ref;
      if (all_digits(port)) {
        auto n = to_number(port, 1, 2147483647);
        if (!n) bad("port", "ifIndex \"" + port + "\" out of range", "1-2147483647");
        else ref.if_index = static_cast<int>(*n);
      } else {
        ref.if_name = port;
      }
      room.port = ref;
    }
    std::string endpoint = row.get("endpoint");
    if (!endpoint.empty()) {
      auto e = parse_endpoint(endpoint);
      if (!e) bad("endpoint", e.error().what, e.error().fix);
      else room.endpoint = *e;
    }
    room_index[room.id] = out.rooms.size();
    out.rooms.push_back(std::move(room));
  }
  // Room rows the CSV reader could not read (bad UTF-8, too many cells) but whose id it could:
  // still reported, unknown with the error, so the room does not vanish from the coverage.
  keep_bad_rows(rooms, "bad register row ", out.rooms, room_index);
  return out;
}

}  // namespace campus::fiber
