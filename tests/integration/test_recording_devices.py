"""Recording classrooms with devices as they are, through the real campus-agent (--dry-run
--json): cameras served by two independent RTSP implementations (GStreamer's gst-rtsp-server
and Debian's rtsp-server-perl, which refuses RTP over TCP) and by the misbehaving simulator's
odd but meaningful replies (461 for TCP, no CSeq, odd header spellings)."""
import json
import os
import subprocess

import harness
from harness import LOOPBACK, PLUGINS, agent_bin, write_file


def rtsp(port, path):
    return f"rtsp://{LOOPBACK}:{port}/{path}"


class DeviceTest(harness.IntegrationTest):
    def audit(self, rows, extra=""):
        """Writes the register and [audits.recording], runs campus-agent --dry-run --json once;
        returns the findings by classroom id."""
        lines = ["id,name,recorder_url,onvif_url,streams,credentials,camera_credentials,min_cameras,recorder_api"]
        lines += [",".join(f'"{c}"' if ";" in c or "," in c else c for c in row) for row in rows]
        register = write_file(os.path.join(self.dir, "classrooms.csv"), "\n".join(lines) + "\n")
        conf = write_file(os.path.join(self.dir, "agent.toml"), f"""
[agent]
county = "zhenkang"
school = "devices-test"
data_dir = "{self.dir}/data"
plugin_dir = "{PLUGINS}"
log_level = "warn"
[mqtt]
enabled = false
[audits.recording]
timeout = "30s"
register = "{register}"
rtsp_timeout = "4s"
http_timeout = "4s"
{extra}
""")
        r = subprocess.run([agent_bin(), "--dry-run", "--json", "--config", conf], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        report = json.loads(r.stdout.strip().splitlines()[-1])
        self.report = report
        return {f["subject"]: f for f in report["findings"]}


class RtspServersAsTheyAre(DeviceTest):
    def setUp(self):
        super().setUp()
        self.gst = self.track(harness.start_rtsp_camera(self.dir, ["teacher", "students"]))
        self.perl = self.track(harness.start_perl_rtsp_camera(self.dir, ["teacher", "students"]))
        self.odd = self.track(harness.start_bad_rtsp(self.dir, ["udp-only", "udp-silent", "no-cseq", "odd-headers"]))

    def streams(self, finding):
        return {s["role"]: s for s in finding["details"]["streams"]}

    def test_both_servers_and_the_odd_replies_with_deep_check(self):
        o = self.odd.ports
        rows = [
            ["GST", "GStreamer", "", rtsp(1, "onvif").replace("rtsp", "http"),
             f"teacher={rtsp(self.gst.port, 'teacher')};students={rtsp(self.gst.port, 'students')}", "", "", "", ""],
            ["PERL", "rtsp-server-perl", "", rtsp(1, "onvif").replace("rtsp", "http"),
             f"teacher={rtsp(self.perl.port, 'teacher')};students={rtsp(self.perl.port, 'students')}", "", "", "", ""],
            ["ODD", "odd replies", "", rtsp(1, "onvif").replace("rtsp", "http"),
             f"teacher={rtsp(o['udp-only'], 'cam')};students={rtsp(o['odd-headers'], 'cam')};"
             f"board={rtsp(o['udp-silent'], 'cam')};wrongpath={rtsp(o['no-cseq'], 'nope')}", "", "", "2", ""],
        ]
        f = self.audit(rows, "deep_check = true")

        gst = self.streams(f["GST"])
        for role in ("teacher", "students"):
            self.assertEqual(gst[role]["state"], "video", gst[role])
            self.assertTrue(gst[role]["rtp_received"])
            self.assertEqual(gst[role]["rtp_transport"], "tcp", "GStreamer serves RTP inside the RTSP connection")

        # rtsp-server-perl answers SETUP for TCP interleaved with 400 (it reads only client_port):
        # the probe asks again for RTP over UDP on 127.0.0.1 and waits for the first packet there.
        perl = self.streams(f["PERL"])
        for role in ("teacher", "students"):
            self.assertEqual(perl[role]["state"], "video", perl[role])
            self.assertTrue(perl[role]["rtp_received"], perl[role])
            self.assertEqual(perl[role]["rtp_transport"], "udp", perl[role])
        self.assertEqual(f["PERL"]["details"]["live_cameras"], 2)

        odd = self.streams(f["ODD"])
        # 461 Unsupported transport for TCP interleaved, RTP over UDP accepted and sent.
        self.assertEqual(odd["teacher"]["state"], "video", odd["teacher"])
        self.assertEqual(odd["teacher"]["rtp_transport"], "udp")
        # Lower-case and upper-case header names, no reason phrase, a line without a colon,
        # a padded Session id, an SDP with bare LF: all read for what they mean.
        self.assertEqual(odd["students"]["state"], "video", odd["students"])
        self.assertEqual(odd["students"]["rtp_transport"], "tcp")
        # UDP accepted but nothing sent: said so, with the port that waited.
        self.assertEqual(odd["board"]["state"], "no_video", odd["board"])
        self.assertRegex(odd["board"]["error"], r"^PLAY: no RTP packet over UDP on port \d+ \(no answer within 4s\)$")
        # A 404 without CSeq on a connection with one request outstanding is that request's
        # 404: the register's path is wrong, not a protocol error.
        self.assertEqual(odd["wrongpath"]["state"], "no_video", odd["wrongpath"])
        self.assertEqual(odd["wrongpath"]["error"], "DESCRIBE answered 404 Not Found: the camera has no stream at this "
                                                    "path (check the stream URL in the register)")
        self.assertEqual(f["ODD"]["details"]["live_cameras"], 2)
