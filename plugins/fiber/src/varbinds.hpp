// A switch's SNMP answers (net-snmp varbind lists, already BER-decoded by net-snmp) turned into
// our rows: interface table walk -> ports, entAliasMappingTable -> ifIndex-to-entity map,
// optical power and threshold GETs -> dBm through the vendor profile. Pure functions with no
// session or I/O, so switch_poller.cpp and the fuzzer (tests/fuzz/varbind_fuzz.cpp) run the same code on
// whatever a switch may send: wrong types, short or foreign OIDs, exceptions, huge values.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>

#include "switch_poller.hpp"

namespace campus::fiber {

using Oid = std::vector<oid>;

// "1.3.6.1" -> {1,3,6,1}; empty arcs are skipped.
Oid parse_oid(const std::string& s);

extern const Oid kSysUpTimeColumn;           // 1.3.6.1.2.1.1.3 (GETNEXT gives sysUpTime.0)
extern const Oid kEntAliasMappingIdentifier;  // 1.3.6.1.2.1.47.1.3.2.1.2

enum class IfField { Admin, Oper, LastChange, Name, HighSpeed, Alias };

// One column of the interface walk and how far it has got.
struct WalkColumn {
  Oid base;
  Oid cur;
  IfField field;
  bool done = false;
};

// The six interface columns (ifAdminStatus, ifOperStatus, ifLastChange, ifName, ifHighSpeed,
// ifAlias), none walked yet.
std::vector<WalkColumn> interface_columns();

// One GETBULK answer of the walk. `in_request` are the indexes of `columns` that were asked
// (in order, repeated per row); `with_uptime` when the first varbind answers sysUpTime. Marks
// a column done when it left its subtree, did not advance, or hit an exception; stores the
// values in status.ports (by ifIndex) and status.sys_uptime.
void apply_walk(const netsnmp_variable_list* vars, bool with_uptime, const std::vector<std::size_t>& in_request,
                std::vector<WalkColumn>& columns, SwitchStatus& status);

// One GETBULK answer of entAliasMappingIdentifier from `cursor` on: adds ifIndex -> entity
// mappings and moves the cursor. True while the table goes on (ask again from the cursor).
bool apply_alias(const netsnmp_variable_list* vars, Oid& cursor, std::map<int, long>& ent_of_if);

// The answer to one optical GET of `batch` (ifIndexes, in request order; each port's varbinds
// are the profile's reading_columns(), then its precision varbind when the profile has
// precision_oid). Sets rx_dbm or rx_note, tx_dbm or tx_note, and the module's alarm windows
// or their notes, for what the profile reads.
void apply_optics(long errstat, const netsnmp_variable_list* vars, const std::vector<int>& batch,
                  const VendorProfile& profile, std::map<int, PortStatus>& ports);

}  // namespace campus::fiber
