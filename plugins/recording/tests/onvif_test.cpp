// ONVIF SOAP replies (bodies as devices send them) and the small XML reader.
#include <gtest/gtest.h>

#include "onvif.hpp"
#include "xml.hpp"

using namespace campus::recording;

namespace {
const char* kTimeReply = R"(<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<SOAP-ENV:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>
<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>
<tt:TimeZone><tt:TZ>CST-8:00:00</tt:TZ></tt:TimeZone>
<tt:UTCDateTime><tt:Time><tt:Hour>7</tt:Hour><tt:Minute>50</tt:Minute><tt:Second>45</tt:Second></tt:Time>
<tt:Date><tt:Year>2010</tt:Year><tt:Month>9</tt:Month><tt:Day>16</tt:Day></tt:Date></tt:UTCDateTime>
<tt:LocalDateTime><tt:Time><tt:Hour>15</tt:Hour><tt:Minute>50</tt:Minute><tt:Second>45</tt:Second></tt:Time>
<tt:Date><tt:Year>2010</tt:Year><tt:Month>9</tt:Month><tt:Day>16</tt:Day></tt:Date></tt:LocalDateTime>
</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>)";

const char* kInfoReply = R"(<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<env:Body><tds:GetDeviceInformationResponse><tds:Manufacturer>HIKVISION</tds:Manufacturer>
<tds:Model>DS-2CD2T47G2-L</tds:Model><tds:FirmwareVersion>V5.7.3 build 220112</tds:FirmwareVersion>
<tds:SerialNumber>DS-2CD2T47G2-L20220301AAWRJ12345678</tds:SerialNumber><tds:HardwareId>88</tds:HardwareId>
</tds:GetDeviceInformationResponse></env:Body></env:Envelope>)";

const char* kNotAuthorized = R"(<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error">
<env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value>
</env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason>
</env:Fault></env:Body></env:Envelope>)";
}  // namespace

TEST(Onvif, ParsesUtcDateTime) {
  auto soap = check_soap(kTimeReply);
  EXPECT_TRUE(soap.error.empty()) << soap.error;
  EXPECT_FALSE(soap.fault);
  std::string err;
  auto t = parse_system_date_and_time(kTimeReply, err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(format_utc(*t), "2010-09-16T07:50:45Z");
}

TEST(Onvif, ParsesDeviceInformation) {
  std::string err;
  auto d = parse_device_information(kInfoReply, err);
  ASSERT_TRUE(d) << err;
  EXPECT_EQ(d->manufacturer, "HIKVISION");
  EXPECT_EQ(d->model, "DS-2CD2T47G2-L");
  EXPECT_EQ(d->firmware, "V5.7.3 build 220112");
  EXPECT_EQ(d->serial, "DS-2CD2T47G2-L20220301AAWRJ12345678");
}

TEST(Onvif, RecognizesNotAuthorizedFault) {
  auto soap = check_soap(kNotAuthorized);
  ASSERT_TRUE(soap.fault);
  EXPECT_TRUE(soap.fault->not_authorized());
  EXPECT_EQ(soap.fault->message(), "SOAP fault ter:NotAuthorized: Sender not Authorized");
}

TEST(Onvif, RejectsMalformedXmlAndNonSoap) {
  EXPECT_EQ(check_soap("<a><b></a>").error, "malformed XML: </a> closes <b>");
  EXPECT_EQ(check_soap("<a>").error, "malformed XML: <a> is never closed");
  EXPECT_EQ(check_soap("<html><body/></html>").error, "not a SOAP envelope");
  EXPECT_EQ(check_soap("").error, "empty reply");
}

TEST(Onvif, MissingTimeFieldsAreAnError) {
  std::string err;
  EXPECT_FALSE(parse_system_date_and_time("<Envelope><Body><UTCDateTime><Date><Year>2020</Year></Date></UTCDateTime></Body></Envelope>", err));
  EXPECT_EQ(err, "UTCDateTime without Date or Time");
}

TEST(Onvif, AYearBeyondTheClockIsInvalidNotAnOverflow) {
  // Found by fuzz_onvif: year 8092 overflowed the nanosecond clock (undefined behaviour).
  std::string reply = kTimeReply, err;
  reply.replace(reply.find("<tt:Year>2010"), 13, "<tt:Year>8092");
  EXPECT_FALSE(parse_system_date_and_time(reply, err));
  EXPECT_EQ(err, "UTCDateTime has missing or invalid fields");
}

TEST(Xml, TextDecodesEntitiesAndCdata) {
  EXPECT_EQ(xml_text("<a><x:b>1 &lt; 2 &amp; 3</x:b></a>", "b"), "1 < 2 & 3");
  EXPECT_EQ(xml_text("<a><b><![CDATA[<raw>]]></b></a>", "b"), "<raw>");
  EXPECT_FALSE(xml_text("<a/>", "b"));
  EXPECT_EQ(xml_check("<a x=\"1>2\"><!-- c --><b/></a>"), "");
}
