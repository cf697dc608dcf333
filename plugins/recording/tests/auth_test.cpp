// Digest authentication against the RFC examples, WS-Security against the ONVIF vector.
#include <gtest/gtest.h>

#include "crypto.hpp"
#include "digest_auth.hpp"
#include "onvif.hpp"

using namespace campus::recording;

TEST(DigestAuth, Rfc2617SectionThreePointFiveExample) {
  auto cs = parse_challenges(
      "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", "
      "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].scheme, "digest");
  DigestInput in{"Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b", 1};
  EXPECT_EQ(digest_response(cs[0], in), "6629fae49393a05397450978507c4ef1");
  auto header = digest_authorization(cs[0], in);
  ASSERT_TRUE(header);
  EXPECT_NE(header->find("response=\"6629fae49393a05397450978507c4ef1\""), std::string::npos);
  EXPECT_NE(header->find("qop=auth, nc=00000001, cnonce=\"0a4f113b\""), std::string::npos);
  EXPECT_NE(header->find("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""), std::string::npos);
}

TEST(DigestAuth, Rfc7616SectionThreePointNineMd5AndSha256) {
  const char* common =
      "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", "
      "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
  auto cs = parse_challenges(std::string("Digest ") + common + ", algorithm=SHA-256, Digest " + common + ", algorithm=MD5");
  ASSERT_EQ(cs.size(), 2u);
  DigestInput in{"Mufasa", "Circle of Life", "GET", "/dir/index.html", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", 1};
  EXPECT_EQ(digest_response(cs[0], in), "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  EXPECT_EQ(digest_response(cs[1], in), "8ca523f5e9506fed4657c9700eebdbec");
}

TEST(DigestAuth, WithoutQopUsesRfc2069Form) {
  // As many cameras send it: no qop. response = MD5(HA1:nonce:HA2)
  auto cs = parse_challenges("Digest realm=\"IP Camera\", nonce=\"abc\"");
  DigestInput in{"admin", "12345", "DESCRIBE", "rtsp://10.0.0.2:554/Streaming/Channels/101", "", 1};
  std::string ha1 = md5_hex("admin:IP Camera:12345");
  std::string ha2 = md5_hex("DESCRIBE:rtsp://10.0.0.2:554/Streaming/Channels/101");
  EXPECT_EQ(digest_response(cs[0], in), md5_hex(ha1 + ":abc:" + ha2));
  EXPECT_EQ(digest_authorization(cs[0], in)->find("qop"), std::string::npos);
}

TEST(DigestAuth, RefusesUnsupportedAlgorithmOrQop) {
  EXPECT_FALSE(digest_response(parse_challenges("Digest realm=a, nonce=b, algorithm=SHA-512-256")[0], {}));
  EXPECT_FALSE(digest_response(parse_challenges("Digest realm=a, nonce=b, qop=\"auth-int\"")[0], {}));
}

TEST(DigestAuth, ParsesBasicAndDigestInOneHeader) {
  auto cs = parse_challenges("Basic realm=\"x\", Digest realm=\"y\", nonce=\"n,1\", stale=TRUE");
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(cs[0].scheme, "basic");
  EXPECT_EQ(cs[0].param("realm"), "x");
  EXPECT_EQ(cs[1].param("nonce"), "n,1");
  EXPECT_EQ(cs[1].param("stale"), "TRUE");
}

TEST(BasicAuth, Rfc7617Example) {
  EXPECT_EQ(basic_authorization("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

TEST(WsSecurity, OnvifProgrammersGuideVector) {
  std::string nonce;
  ASSERT_TRUE(base64_decode("LKqI6G/AikKCQrN0zqZFlg==", nonce));
  EXPECT_EQ(nonce.size(), 16u);
  EXPECT_EQ(wsse_password_digest(nonce, "2010-09-16T07:50:45Z", "userpassword"), "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
}

TEST(WsSecurity, EnvelopeCarriesTokenNonceAndCreated) {
  std::string nonce(16, '\x01');
  auto body = soap_get_device_information("admin", "pw", nonce, "2026-01-01T00:00:00Z");
  EXPECT_NE(body.find("<wsse:Username>admin</wsse:Username>"), std::string::npos);
  EXPECT_NE(body.find(wsse_password_digest(nonce, "2026-01-01T00:00:00Z", "pw")), std::string::npos);
  EXPECT_NE(body.find(base64_encode(nonce)), std::string::npos);
  EXPECT_NE(body.find("<wsu:Created>2026-01-01T00:00:00Z</wsu:Created>"), std::string::npos);
  EXPECT_EQ(body.find(">pw<"), std::string::npos);
}

TEST(Base64, RoundTrips) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    std::string back;
    ASSERT_TRUE(base64_decode(base64_encode(s), back));
    EXPECT_EQ(back, s);
  }
  std::string out;
  EXPECT_FALSE(base64_decode("abc", out));
}
