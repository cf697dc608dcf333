// ONVIF device service probe: SOAP bodies, WS-Security digest, reply parsing.
#include "onvif.hpp"

#include <algorithm>
#include <ctime>
#include <memory>

#include "crypto.hpp"
#include "rtsp_message.hpp"
#include "xml.hpp"

namespace campus::recording {
namespace {

constexpr const char* kEnvelopeStart =
    R"(<?xml version="1.0" encoding="UTF-8"?>)"
    R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" )"
    R"(xmlns:tds="http://www.onvif.org/ver10/device/wsdl">)";

std::string security_header(const std::string& username, const std::string& password, const std::string& nonce_raw,
                            const std::string& created) {
  return R"(<s:Header><wsse:Security s:mustUnderstand="1" )"
         R"(xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" )"
         R"(xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">)"
         "<wsse:UsernameToken><wsse:Username>" + xml_escape(username) + "</wsse:Username>"
         R"(<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">)" +
         wsse_password_digest(nonce_raw, created, password) + "</wsse:Password>"
         R"(<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">)" +
         base64_encode(nonce_raw) + "</wsse:Nonce><wsu:Created>" + created +
         "</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>";
}

int to_int(const std::optional<std::string>& s, bool& ok) {
  if (!s || s->empty()) { ok = false; return 0; }
  try {
    std::size_t used = 0;
    int v = std::stoi(*s, &used);
    if (used != s->size()) ok = false;
    return v;
  } catch (...) {
    ok = false;
    return 0;
  }
}

HttpRequest soap_request(const OnvifTarget& t, std::string body, const char* action) {
  HttpRequest r;
  r.method = "POST";
  r.url = t.url;
  r.body = std::move(body);
  r.headers = {{"Content-Type", std::string("application/soap+xml; charset=utf-8; action=\"") + action + "\""}};
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t.deadline - std::chrono::steady_clock::now());
  r.timeout = std::max(std::chrono::milliseconds(1), std::min(t.timeout, left));
  r.max_response_bytes = 256 * 1024;
  r.verify_tls = t.verify_tls;
  if (t.ca_file) r.ca_file = *t.ca_file;
  return r;
}

}  // namespace

std::string wsse_password_digest(const std::string& nonce_raw, const std::string& created, const std::string& password) {
  return base64_encode(sha1_raw(nonce_raw + created + password));
}

std::string format_utc(WallClock::time_point t) {
  std::time_t tt = WallClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string soap_get_system_date_and_time() {
  return std::string(kEnvelopeStart) + "<s:Body><tds:GetSystemDateAndTime/></s:Body></s:Envelope>";
}

std::string soap_get_device_information(const std::string& username, const std::string& password,
                                        const std::string& nonce_raw, const std::string& created) {
  std::string header = username.empty() ? std::string() : security_header(username, password, nonce_raw, created);
  return std::string(kEnvelopeStart) + header + "<s:Body><tds:GetDeviceInformation/></s:Body></s:Envelope>";
}

std::string SoapFault::message() const {
  std::string m = "SOAP fault";
  if (!subcode.empty()) m += " " + subcode;
  else if (!code.empty()) m += " " + code;
  if (!reason.empty()) m += ": " + reason;
  return m;
}

bool SoapFault::not_authorized() const {
  return subcode.find("NotAuthorized") != std::string::npos || code.find("NotAuthorized") != std::string::npos;
}

SoapReply check_soap(const std::string& body) {
  SoapReply r;
  if (body.empty()) {
    r.error = "empty reply";
    return r;
  }
  if (auto why = xml_check(body); !why.empty()) {
    r.error = "malformed XML: " + why;
    return r;
  }
  if (!xml_find(body, "Envelope") || !xml_find(body, "Body")) {
    r.error = "not a SOAP envelope";
    return r;
  }
  if (auto fault = xml_find(body, "Fault")) {
    SoapFault f;
    if (auto code = xml_find(fault->inner, "Code")) {
      f.code = xml_text(code->inner, "Value").value_or("");
      if (auto sub = xml_find(code->inner, "Subcode")) {
        // The innermost Subcode/Value is the most specific (ter:NotAuthorized).
        std::string_view in = sub->inner;
        while (auto deeper = xml_find(in, "Subcode")) in = deeper->inner;
        f.subcode = xml_text(in, "Value").value_or("");
      }
    }
    if (auto reason = xml_find(fault->inner, "Reason")) f.reason = xml_text(reason->inner, "Text").value_or("");
    f.code = printable(f.code, 80);
    f.subcode = printable(f.subcode, 80);
    f.reason = printable(f.reason, 200);
    r.fault = f;
  }
  return r;
}

std::optional<WallClock::time_point> parse_system_date_and_time(const std::string& body, std::string& error) {
  auto utc = xml_find(body, "UTCDateTime");
  if (!utc) {
    error = "GetSystemDateAndTime reply without UTCDateTime";
    return std::nullopt;
  }
  auto date = xml_find(utc->inner, "Date");
  auto time = xml_find(utc->inner, "Time");
  if (!date || !time) {
    error = "UTCDateTime without Date or Time";
    return std::nullopt;
  }
  bool ok = true;
  std::tm tm{};
  tm.tm_year = to_int(xml_text(date->inner, "Year"), ok) - 1900;
  tm.tm_mon = to_int(xml_text(date->inner, "Month"), ok) - 1;
  tm.tm_mday = to_int(xml_text(date->inner, "Day"), ok);
  tm.tm_hour = to_int(xml_text(time->inner, "Hour"), ok);
  tm.tm_min = to_int(xml_text(time->inner, "Minute"), ok);
  tm.tm_sec = to_int(xml_text(time->inner, "Second"), ok);
  if (!ok || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 70 || tm.tm_year > 2200 - 1900) {
    // Years past 2200 overflowed the nanosecond clock (found by fuzz_onvif: year 8092).
    error = "UTCDateTime has missing or invalid fields";
    return std::nullopt;
  }
  return WallClock::from_time_t(timegm(&tm));
}

std::optional<DeviceInformation> parse_device_information(const std::string& body, std::string& error) {
  auto resp = xml_find(body, "GetDeviceInformationResponse");
  if (!resp) {
    error = "reply is not a GetDeviceInformationResponse";
    return std::nullopt;
  }
  DeviceInformation d;
  // Device strings go into reports: keep them short and valid UTF-8.
  auto field = [&](const char* name) { return printable(xml_text(resp->inner, name).value_or(""), 120); };
  d.manufacturer = field("Manufacturer");
  d.model = field("Model");
  d.firmware = field("FirmwareVersion");
  d.serial = field("SerialNumber");
  d.hardware_id = field("HardwareId");
  return d;
}

namespace {

struct OnvifRun : std::enable_shared_from_this<OnvifRun> {
  HttpClient& http;
  OnvifTarget target;
  std::function<void(OnvifResult)> done;
  OnvifResult result;
  WallClock::duration drift{0};

  OnvifRun(HttpClient& h, OnvifTarget t, std::function<void(OnvifResult)> d)
      : http(h), target(std::move(t)), done(std::move(d)) {}

  void start() {
    auto sent = WallClock::now();
    http.fetch(soap_request(target, soap_get_system_date_and_time(), "http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime"),
               [self = shared_from_this(), sent](Result<HttpResponse> r) { self->on_time(std::move(r), sent); });
  }

  void on_time(Result<HttpResponse> r, WallClock::time_point sent) {
    if (!r.ok()) {
      result.error = r.error().what;
      return finish();
    }
    auto soap = check_soap(r->body);
    if (!soap.error.empty()) {
      result.error = "GetSystemDateAndTime: HTTP " + std::to_string(r->status) + ", " + soap.error;
      return finish();
    }
    if (soap.fault) {
      result.reachable = true;  // it speaks SOAP: the device is up
      result.error = "GetSystemDateAndTime: " + soap.fault->message();
      return finish();
    }
    std::string why;
    auto device = parse_system_date_and_time(r->body, why);
    result.reachable = true;
    if (!device) {
      result.error = "GetSystemDateAndTime: " + why;
    } else {
      // Compare with the local clock at the middle of the round trip.
      auto local = sent + (WallClock::now() - sent) / 2;
      drift = *device - local;
      result.clock_drift_s = std::chrono::duration<double>(drift).count();
    }
    if (target.username.empty()) {
      result.info_error = "no credentials for GetDeviceInformation";
      return finish();
    }
    ask_info(false);
  }

  void ask_info(bool http_digest) {
    HttpRequest req;
    if (http_digest) {
      req = soap_request(target, soap_get_device_information("", "", "", ""), "http://www.onvif.org/ver10/device/wsdl/GetDeviceInformation");
      req.auth = HttpAuth::Digest;
      req.username = target.username;
      req.password = target.password;
    } else {
      std::string nonce = random_bytes(16);
      std::string created = format_utc(WallClock::now() + std::chrono::duration_cast<WallClock::duration>(drift));
      req = soap_request(target, soap_get_device_information(target.username, target.password, nonce, created),
                         "http://www.onvif.org/ver10/device/wsdl/GetDeviceInformation");
    }
    http.fetch(std::move(req), [self = shared_from_this(), http_digest](Result<HttpResponse> r) {
      self->on_info(std::move(r), http_digest);
    });
  }

  void on_info(Result<HttpResponse> r, bool http_digest) {
    if (!r.ok()) {
      result.info_error = "GetDeviceInformation: " + r.error().what;
      return finish();
    }
    if (r->status == 401) {
      auto challenge = r->headers["www-authenticate"];
      if (!http_digest && challenge.find("Digest") != std::string::npos) return ask_info(true);
      result.info_unauthorized = true;
      result.info_error = std::string("GetDeviceInformation: HTTP 401, credentials rejected") +
                          (http_digest ? " (HTTP Digest)" : " (WS-Security)");
      return finish();
    }
    auto soap = check_soap(r->body);
    if (!soap.error.empty()) {
      result.info_error = "GetDeviceInformation: HTTP " + std::to_string(r->status) + ", " + soap.error;
      return finish();
    }
    if (soap.fault) {
      result.info_unauthorized = soap.fault->not_authorized();
      result.info_error = "GetDeviceInformation: " + soap.fault->message();
      return finish();
    }
    std::string why;
    result.info = parse_device_information(r->body, why);
    if (!result.info) result.info_error = "GetDeviceInformation: " + why;
    result.auth_used = http_digest ? "http-digest" : "ws-security";
    finish();
  }

  void finish() {
    auto d = std::move(done);
    d(std::move(result));
  }
};

}  // namespace

void probe_onvif(HttpClient& http, const OnvifTarget& target, std::function<void(OnvifResult)> done) {
  std::make_shared<OnvifRun>(http, target, std::move(done))->start();
}

}  // namespace campus::recording
