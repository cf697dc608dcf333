// ONVIF device service (SOAP 1.2 over HTTP): GetSystemDateAndTime without credentials for the
// clock drift, then GetDeviceInformation with a WS-Security UsernameToken (PasswordDigest,
// created corrected by the drift), falling back to HTTP Digest when the device asks for it.
#pragma once
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "campus/error.hpp"
#include "campus/http.hpp"

namespace campus::recording {

using WallClock = std::chrono::system_clock;

// Base64(SHA1(nonce bytes + created + password)), ONVIF Core spec 5.12.2 / WSS UsernameToken.
std::string wsse_password_digest(const std::string& nonce_raw, const std::string& created, const std::string& password);
// "2026-11-28T21:50:00Z" (UTC, whole seconds).
std::string format_utc(WallClock::time_point t);

std::string soap_get_system_date_and_time();
// With a UsernameToken header when username is not empty.
std::string soap_get_device_information(const std::string& username, const std::string& password,
                                        const std::string& nonce_raw, const std::string& created);

struct SoapFault {
  std::string code;     // "env:Sender"
  std::string subcode;  // "ter:NotAuthorized"
  std::string reason;
  std::string message() const;
  bool not_authorized() const;
};

// Parses a SOAP body: malformed XML -> Error; a Fault -> fault set; else ok.
struct SoapReply {
  std::string error;  // non-empty: not usable XML / not SOAP
  std::optional<SoapFault> fault;
};
SoapReply check_soap(const std::string& body);

// The device's UTC clock from a GetSystemDateAndTimeResponse. Error text when absent/invalid.
std::optional<WallClock::time_point> parse_system_date_and_time(const std::string& body, std::string& error);

struct DeviceInformation {
  std::string manufacturer, model, firmware, serial, hardware_id;
};
std::optional<DeviceInformation> parse_device_information(const std::string& body, std::string& error);

struct OnvifResult {
  bool reachable = false;      // the device answered GetSystemDateAndTime with a usable reply
  std::string error;           // why not reachable / clock unknown
  std::optional<double> clock_drift_s;  // device - local, seconds
  std::optional<DeviceInformation> info;
  std::string info_error;      // why no device information (NotAuthorized, fault, ...)
  bool info_unauthorized = false;
  std::string auth_used;       // "ws-security", "http-digest", "none"
};

struct OnvifTarget {
  std::string url;  // http://host:port/onvif/device_service
  std::string username, password;
  std::chrono::milliseconds timeout{5000};  // per request, also bounded by deadline
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  bool verify_tls = true;
  std::optional<std::string> ca_file;
};

// Runs both requests; `done` once with the result (on the io_context, via HttpClient).
void probe_onvif(HttpClient& http, const OnvifTarget& target, std::function<void(OnvifResult)> done);

}  // namespace campus::recording
