// Hikvision ISAPI replies the recording audit reads (XML in the namespace
// http://www.hikvision.com/ver20/XMLSchema, or the std-cgi one of OEM firmware; elements are
// read by local name). Each call is one pure parser, fuzzed by tests/fuzz/hikvision_fuzz.cpp.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campus/error.hpp"
#include "recorder_api.hpp"

namespace campus::recording::hikvision {

// The calls, GET with HTTP Digest, relative to the recorder's base URL.
inline constexpr std::string_view kDeviceInfo = "/ISAPI/System/deviceInfo";        // <DeviceInfo>
inline constexpr std::string_view kStorage = "/ISAPI/ContentMgmt/Storage";         // <storage><hddList><hdd>
inline constexpr std::string_view kTime = "/ISAPI/System/time";                    // <Time><localTime>
inline constexpr std::string_view kWorkingStatus = "/ISAPI/System/workingstatus";  // <WorkingStatus><ChanStatus>

// <DeviceInfo>: model, serialNumber, firmwareVersion (+ firmwareReleasedDate).
Result<RecorderIdentity> parse_device_info(std::string_view xml);
// <storage>: every <hdd> (id, hddName, status, capacity and freeSpace in MB) and <nas>. A disk
// is healthy when its status is ok, idle or sleeping (spun down, still usable).
Result<std::vector<RecorderDisk>> parse_storage(std::string_view xml);
// <Time><localTime>2024-05-01T18:00:00+08:00</localTime>: the device clock in seconds since the
// epoch. A localTime without an offset is read at `utc_offset_minutes`.
Result<double> parse_time(std::string_view xml, int utc_offset_minutes);
// <WorkingStatus>: every <ChanStatus> (chanNo, online 0/1, record 0/1).
Result<std::vector<RecorderChannel>> parse_working_status(std::string_view xml);
// A 401 body <userCheck> with <lockStatus>lock</lockStatus>: the lock as a sentence ("locked,
// unlocks in 1737 s"); nullopt when the body does not report a lock.
std::optional<std::string> account_lock(std::string_view body);
// An error body <ResponseStatus>: "statusString (subStatusCode)"; nullopt when it is not one.
std::optional<std::string> response_status(std::string_view body);

}  // namespace campus::recording::hikvision
