// Dahua HTTP CGI replies the recording audit reads: "key=value" lines (CRLF), errors as
// "Error\r\n<what>\r\n". Each call is one pure parser, fuzzed by tests/fuzz/dahua_fuzz.cpp.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "campus/error.hpp"
#include "recorder_api.hpp"

namespace campus::recording::dahua {

// The calls, GET with HTTP Digest, relative to the recorder's base URL.
inline constexpr std::string_view kSystemInfo = "/cgi-bin/magicBox.cgi?action=getSystemInfo";
inline constexpr std::string_view kStorage = "/cgi-bin/storageDevice.cgi?action=getDeviceAllInfo";
inline constexpr std::string_view kTime = "/cgi-bin/global.cgi?action=getCurrentTime";
inline constexpr std::string_view kRecordMode = "/cgi-bin/configManager.cgi?action=getConfig&name=RecordMode";

// "key=value" lines in order (keys and values trimmed); lines without '=' are skipped.
std::vector<std::pair<std::string, std::string>> parse_lines(std::string_view body);
// getSystemInfo: deviceType, serialNumber (+ softwareVersion when the model adds it).
Result<RecorderIdentity> parse_system_info(std::string_view body);
// getDeviceAllInfo: list.info[N].Name / .State and its .Detail[M].TotalBytes / .UsedBytes /
// .IsError. A disk is healthy when State is Success and no partition has IsError=true.
Result<std::vector<RecorderDisk>> parse_storage(std::string_view body);
// getCurrentTime: "result=2024-05-01 18:00:00", the recorder's local time without a zone, read
// at `utc_offset_minutes` (the audit's recorder_utc_offset).
Result<double> parse_time(std::string_view body, int utc_offset_minutes);
// RecordMode: table.RecordMode[N].Mode = 0 (automatic: by schedule), 1 (manual: always),
// 2 (stopped) for channel N+1. It is the configured mode, not a live recording flag.
Result<std::vector<RecorderChannel>> parse_record_mode(std::string_view body);
// An error body "Error\r\nBad Request!\r\n": its text ("Bad Request!"); nullopt otherwise.
std::optional<std::string> error_body(std::string_view body);
// A body saying the account is locked ("User Locked! ..." after too many wrong passwords): the
// sentence; nullopt otherwise.
std::optional<std::string> account_lock(std::string_view body);

}  // namespace campus::recording::dahua
