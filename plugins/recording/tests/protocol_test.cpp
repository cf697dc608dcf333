// RTSP response reading and SDP parsing, including SDPs as real cameras send them.
#include <gtest/gtest.h>

#include "rtsp_message.hpp"
#include "rtsp_probe.hpp"
#include "sdp.hpp"
#include "test_data.hpp"

using namespace campus::recording;
using campus::recording::test::data;

TEST(RtspReader, ReadsResponseWithBodyArrivingInPieces) {
  RtspReader r(4096);
  std::string msg = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://h/x/\r\n"
                    "Content-Length: 5\r\n\r\nv=0\r\n";
  RtspReader::Event ev = RtspReader::Event::NeedMore;
  for (char c : msg) {
    ASSERT_EQ(ev, RtspReader::Event::NeedMore);
    ev = r.feed(std::string_view(&c, 1));
  }
  ASSERT_EQ(ev, RtspReader::Event::Response);
  EXPECT_EQ(r.response().status, 200);
  EXPECT_EQ(r.response().reason, "OK");
  EXPECT_EQ(r.response().cseq(), 2);
  EXPECT_EQ(r.response().header("content-base"), "rtsp://h/x/");
  EXPECT_EQ(r.response().body, "v=0\r\n");
}

TEST(RtspReader, KeepsRepeatedHeadersAndAcceptsBareLf) {
  RtspReader r(4096);
  auto ev = r.feed("RTSP/1.0 401 Unauthorized\nCSeq: 1\nWWW-Authenticate: Digest realm=\"a\", nonce=\"b\"\n"
                   "WWW-Authenticate: Basic realm=\"a\"\n\n");
  ASSERT_EQ(ev, RtspReader::Event::Response);
  EXPECT_EQ(r.response().headers.count("www-authenticate"), 2u);
}

// Cameras as they are: header names in any case, a version in lower case, no reason phrase, a
// header line that is not "name: value" (skipped and listed), no CSeq at all.
TEST(RtspReader, ToleratesOddSpellingsWhereTheMeaningIsClear) {
  RtspReader r(4096);
  auto ev = r.feed("rtsp/1.0 200\r\ncseq:7\r\nCONTENT-LENGTH: 3\r\nX-Junk-Line\r\nsession:  ABCD ; timeout=60\r\n\r\nv=0");
  ASSERT_EQ(ev, RtspReader::Event::Response) << r.error();
  EXPECT_EQ(r.response().status, 200);
  EXPECT_EQ(r.response().reason, "");
  EXPECT_EQ(r.response().cseq(), 7);
  EXPECT_EQ(r.response().body, "v=0");
  EXPECT_EQ(r.response().header("session"), "ABCD ; timeout=60");
  EXPECT_EQ(r.response().skipped_lines, std::vector<std::string>{"X-Junk-Line"});
  RtspReader none(4096);
  ASSERT_EQ(none.feed("RTSP/1.0 404 Not Found\r\n\r\n"), RtspReader::Event::Response);
  EXPECT_FALSE(none.response().cseq()) << "no CSeq: the reply of the one outstanding request";
  EXPECT_EQ(none.response().status, 404);
}

// Found by fuzz_rtsp: a status line with no code used to throw out_of_range (a crash of the
// whole agent, since it escaped the io_context).
TEST(RtspReader, RefusesAStatusLineWithoutACode) {
  for (const char* reply : {"RTSP/1.0 \r\nWWW-Authenticate: x\r\n\r\n", "RTSP/1.0 2\r\n\r\n", "RTSP/1.0 \n\n"}) {
    RtspReader r(4096);
    ASSERT_EQ(r.feed(reply), RtspReader::Event::Error) << reply;
    EXPECT_NE(r.error().find("malformed status line"), std::string::npos) << r.error();
  }
}

TEST(RtspReader, RefusesGarbageAtOnceWithWhatItSaw) {
  RtspReader r(4096);
  ASSERT_EQ(r.feed("HTTP/1.1 200 OK\r\n"), RtspReader::Event::Error);
  EXPECT_EQ(r.error(), "not an RTSP response: starts with \"HTTP/1.1 200 OK\\r\\n\"");
  RtspReader g(4096);
  ASSERT_EQ(g.feed("\x01\x02garbage"), RtspReader::Event::Error);
  EXPECT_NE(g.error().find("\\x01\\x02garbage"), std::string::npos);
}

TEST(RtspReader, RefusesOversizedBodyFromContentLengthBeforeReadingIt) {
  RtspReader r(64 * 1024);
  ASSERT_EQ(r.feed("RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 5000000\r\n\r\nv=0"), RtspReader::Event::Error);
  EXPECT_EQ(r.error(), "response larger than 65536 bytes (Content-Length 5000000)");
}

TEST(RtspReader, RefusesEndlessHeader) {
  RtspReader r(1 << 20);
  std::string line = "RTSP/1.0 200 OK\r\nX: " + std::string(20000, 'a');
  EXPECT_EQ(r.feed(line), RtspReader::Event::Error);
  EXPECT_EQ(r.error(), "response header larger than 16384 bytes");
}

TEST(RtspReader, RefusesMalformedStatusLineAndContentLength) {
  RtspReader a(4096);
  EXPECT_EQ(a.feed("RTSP/1.0 2x0 OK\r\n\r\n"), RtspReader::Event::Error);
  RtspReader b(4096);
  EXPECT_EQ(b.feed("RTSP/1.0 200 OK\r\nContent-Length: ten\r\n\r\n"), RtspReader::Event::Error);
  EXPECT_NE(b.error().find("malformed Content-Length"), std::string::npos);
}

TEST(RtspReader, SkipsInterleavedFramesBetweenResponses) {
  RtspReader r(4096);
  std::string frame = std::string("$\x00\x00\x03", 4) + "abc";
  ASSERT_EQ(r.feed(frame + "RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n"), RtspReader::Event::Frame);
  EXPECT_EQ(r.frame_channel(), 0);
  EXPECT_EQ(r.frame_size(), 3u);
  ASSERT_EQ(r.next(), RtspReader::Event::Response);
  EXPECT_EQ(r.response().cseq(), 5);
}

TEST(RtspReader, DescribesPartialInput) {
  RtspReader r(4096);
  r.feed("RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 100\r\n\r\nv=0");
  EXPECT_TRUE(r.partial_description().starts_with("52 bytes")) << r.partial_description();
}

TEST(RtspUrl, ParsesHostPortPath) {
  auto u = parse_rtsp_url("rtsp://127.0.0.1:8554/cam/1?x=y");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8554");
  EXPECT_EQ(u->path, "/cam/1?x=y");
  EXPECT_EQ(parse_rtsp_url("rtsp://cam")->port, "554");
  EXPECT_EQ(parse_rtsp_url("rtsp://[::1]:9000/a")->host, "::1");
  EXPECT_FALSE(parse_rtsp_url("http://cam/"));
  EXPECT_FALSE(parse_rtsp_url("rtsp://u:p@cam/"));
  EXPECT_FALSE(parse_rtsp_url("rtsp://cam:99999999/"));
}

TEST(Sdp, HikvisionH264WithMetadataTrack) {
  Sdp s;
  std::string err;
  ASSERT_TRUE(parse_sdp(data("hikvision.sdp"), s, err)) << err;
  ASSERT_EQ(s.media.size(), 2u);
  EXPECT_EQ(s.session_name, "Media Presentation");
  EXPECT_EQ(video_codecs(s), std::vector<std::string>{"H264"});
  EXPECT_EQ(s.media[0].control, "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast");
  EXPECT_EQ(s.media[1].codecs.at("107"), "ISAPI.METADATA");
}

TEST(Sdp, DahuaH265WithAudio) {
  Sdp s;
  std::string err;
  ASSERT_TRUE(parse_sdp(data("dahua-h265.sdp"), s, err)) << err;
  EXPECT_EQ(video_codecs(s), std::vector<std::string>{"H265"});
  EXPECT_EQ(s.control, "*");
  EXPECT_EQ(s.media[1].codecs.at("8"), "PCMA");
}

TEST(Sdp, GStreamerServer) {
  Sdp s;
  std::string err;
  ASSERT_TRUE(parse_sdp(data("gstreamer.sdp"), s, err)) << err;
  EXPECT_EQ(video_codecs(s), std::vector<std::string>{"H264"});
  EXPECT_EQ(s.media[0].control, "stream=0");
}

TEST(Sdp, StaticPayloadTypeWithoutRtpmapAndBareLf) {
  Sdp s;
  std::string err;
  ASSERT_TRUE(parse_sdp(data("axis-mjpeg.sdp"), s, err)) << err;
  EXPECT_EQ(video_codecs(s), std::vector<std::string>{"JPEG"});
}

TEST(Sdp, AudioOnlyHasNoVideo) {
  Sdp s;
  std::string err;
  ASSERT_TRUE(parse_sdp(data("audio-only.sdp"), s, err)) << err;
  EXPECT_TRUE(video_codecs(s).empty());
}

TEST(Sdp, RejectsNonSdpAndEmptyMedia) {
  Sdp s;
  std::string err;
  EXPECT_FALSE(parse_sdp("<html>nope</html>", s, err));
  EXPECT_EQ(err, "not SDP: first line is not \"v=0\"");
  EXPECT_FALSE(parse_sdp("v=0\r\ns=x\r\n", s, err));
  EXPECT_EQ(err, "SDP has no media (m=) section");
  EXPECT_FALSE(parse_sdp("", s, err));
}

TEST(Sdp, ToleratesJunkLinesWithWarnings) {
  Sdp s;
  std::string err;
  ASSERT_TRUE(parse_sdp("v=0\r\nthis is junk\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 h264/90000\r\n", s, err));
  EXPECT_EQ(video_codecs(s), std::vector<std::string>{"H264"});
  EXPECT_EQ(s.warnings.size(), 1u);
}

TEST(Sdp, ResolvesControlUrls) {
  EXPECT_EQ(resolve_control("rtsp://h:1/test/", "stream=0"), "rtsp://h:1/test/stream=0");
  EXPECT_EQ(resolve_control("rtsp://h:1/test", "stream=0"), "rtsp://h:1/test/stream=0");
  EXPECT_EQ(resolve_control("rtsp://h/a", "*"), "rtsp://h/a");
  EXPECT_EQ(resolve_control("rtsp://h/a", "rtsp://other/t1"), "rtsp://other/t1");
  EXPECT_EQ(resolve_control("rtsp://h/a?x=1", "trackID=1"), "rtsp://h/a/trackID=1");
}
