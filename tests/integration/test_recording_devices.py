"""Recording classrooms with devices as they are, through the real campus-agent (--dry-run
--json): cameras served by two independent RTSP implementations (GStreamer's gst-rtsp-server
and Debian's rtsp-server-perl, which refuses RTP over TCP) and by the misbehaving simulator's
odd but meaningful replies (461 for TCP, no CSeq, odd header spellings); Hikvision ISAPI and
Dahua CGI recorders (tests/sim/recording/nvr_sim.py) with their error replies."""
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


GIB = 1024 ** 3


def hik(**over):
    dev = {"vendor": "hikvision", "user": "admin", "password": "rec-pass", "drift": 0,
           "disks": [{"status": "ok", "capacity_mb": 3815447, "free_mb": 1907723}],
           "channels": [{"online": 1, "record": 1}, {"online": 1, "record": 1}]}
    dev.update(over)
    return dev


def dh(**over):
    dev = {"vendor": "dahua", "user": "admin", "password": "rec-pass", "drift": 0,
           "disks": [{"state": "Success", "total": 4000 * GIB, "used": 1000 * GIB}], "modes": [0, 1]}
    dev.update(over)
    return dev


class VendorRecorders(DeviceTest):
    """Hikvision ISAPI and Dahua CGI recorders, selected per row by recorder_api, next to a JSON one."""

    def setUp(self):
        super().setUp()
        self.cam = self.track(harness.start_rtsp_camera(self.dir, ["teacher", "students"]))
        write_file(os.path.join(self.dir, "rec.cred"), "admin:rec-pass\n", 0o600)
        write_file(os.path.join(self.dir, "wrong.cred"), "admin:not-it\n", 0o600)
        self.streams = f"teacher={rtsp(self.cam.port, 'teacher')};students={rtsp(self.cam.port, 'students')}"

    def test_hikvision_and_dahua_recorders_with_their_errors(self):
        nvr = self.track(harness.start_nvr_sim(self.dir, {
            "H-OK": hik(stale_once=True),
            "H-HDD": hik(disks=[{"status": "ok", "capacity_mb": 3815447, "free_mb": 1907723},
                                {"status": "error", "capacity_mb": 3815447, "free_mb": 0}]),
            "H-IDLE": hik(channels=[{"online": 1, "record": 1}, {"online": 1, "record": 0}, {"online": 0, "record": 0}]),
            "H-LOCKED": hik(locked=True, unlock_s=1737),
            "H-WRONG": hik(lock_after=5),
            "H-DRIFT": hik(drift=90),
            "D-OK": dh(stale_once=True),
            "D-FULL": dh(disks=[{"state": "Success", "total": 4000 * GIB, "used": 3900 * GIB}]),
            "D-HDD": dh(disks=[{"state": "Error", "total": 2000 * GIB, "used": 0, "error": True},
                               {"state": "Success", "total": 4000 * GIB, "used": 1000 * GIB}]),
            "D-STOP": dh(modes=[0, 2, 2]),
            "D-LOCKED": dh(locked=True),
        }))
        rows = [[sid, sid, nvr.url(sid), "", self.streams, cred, "", "", api] for sid, api, cred in [
            ("H-OK", "hikvision", "rec.cred"), ("H-HDD", "hikvision", "rec.cred"), ("H-IDLE", "hikvision", "rec.cred"),
            ("H-LOCKED", "hikvision", "rec.cred"), ("H-WRONG", "hikvision", "wrong.cred"),
            ("H-DRIFT", "hikvision", "rec.cred"), ("H-NOCRED", "hikvision", ""),
            ("D-OK", "dahua", "rec.cred"), ("D-FULL", "dahua", "rec.cred"), ("D-HDD", "dahua", "rec.cred"),
            ("D-STOP", "dahua", "rec.cred"), ("D-LOCKED", "dahua", "rec.cred"),
            ("D-ASHIK", "hikvision", "rec.cred")]]
        rows[6][2] = nvr.url("H-OK")   # a Hikvision recorder without credentials in the register
        rows[12][2] = nvr.url("D-OK")  # a Dahua recorder asked as Hikvision: the wrong recorder_api
        f = self.audit(rows)

        def check(sid, name):
            return f[sid]["details"]["checks"].get(name, {})

        ok = f["H-OK"]
        self.assertEqual(ok["state"], "compliant", ok)
        rec = ok["details"]["recorder"]
        self.assertEqual((rec["api"], rec["model"]), ("hikvision", "DS-7608NI-K2"))
        self.assertEqual(rec["storage_free_percent"], 50.0)
        self.assertEqual([c["recording"] for c in rec["channels"]], [True, True])
        self.assertLess(abs(rec["clock_drift_s"]), 2, "the ISAPI clock is the clock check without ONVIF")
        # 401 with stale="TRUE" and a new nonce, once: answered again with the new nonce.
        self.assertEqual(nvr.stats("H-OK")["stale_sent"], 1)

        self.assertEqual(f["H-HDD"]["state"], "noncompliant")
        self.assertEqual(check("H-HDD", "storage")["reason"], "disk 2 reports status \"error\"")
        self.assertEqual(f["H-IDLE"]["state"], "noncompliant")
        self.assertEqual(check("H-IDLE", "recording")["reason"], "recorder: channel 2 is not recording")
        self.assertEqual(f["H-DRIFT"]["state"], "noncompliant")
        self.assertRegex(check("H-DRIFT", "clock")["reason"], r"^clock drift (89|90|91)\.\ds exceeds 5s$")

        locked = f["H-LOCKED"]
        self.assertEqual(locked["state"], "unknown", locked)
        self.assertEqual(check("H-LOCKED", "recorder")["status"], "pass")
        self.assertTrue(locked["reason"].startswith("recorder " + nvr.url("H-LOCKED") + "/ISAPI/System/deviceInfo: the "
                                                    "recorder has locked the account"), locked["reason"])
        self.assertEqual(check("H-LOCKED", "storage")["reason"], "not checked: the recorder refused the credentials")
        self.assertIn("the recorder has locked the account \"admin\" (locked, unlocks in 1737 s)",
                      check("H-LOCKED", "recorder_credentials")["reason"])
        self.assertIn("then wait until the recorder unlocks the account", check("H-LOCKED", "recorder_credentials")["reason"])
        wrong = f["H-WRONG"]
        self.assertEqual(wrong["state"], "unknown", wrong)
        self.assertIn("the recorder refused user \"admin\" (HTTP 401 after Digest): write the recorder's user and password "
                      "into " + os.path.join(self.dir, "wrong.cred"), check("H-WRONG", "recorder_credentials")["reason"])
        # One wrong answer per audit, not one per call: the lock-out is not brought closer.
        self.assertEqual(nvr.stats("H-WRONG")["wrong"], 1)
        self.assertIn("the recorder requires credentials (HTTP 401) and the register gives none",
                      check("H-NOCRED", "recorder_credentials")["reason"])

        dok = f["D-OK"]
        self.assertEqual(dok["state"], "compliant", dok)
        self.assertEqual(dok["details"]["recorder"]["model"], "DHI-NVR4208-8P-4KS2")
        self.assertEqual(dok["details"]["recorder"]["storage_free_percent"], 75.0)
        self.assertEqual(nvr.stats("D-OK")["stale_sent"], 1)
        self.assertEqual(check("D-FULL", "storage")["reason"], "storage free 2.5% is below 15.0%")
        self.assertEqual(check("D-HDD", "storage")["reason"], "disk /dev/sda reports status \"Error, partition error\"")
        self.assertEqual(check("D-STOP", "recording")["reason"], "recorder: channels 2 and 3 are not recording")
        self.assertIn("the recorder has locked the account \"admin\" (User Locked! Please try again after 30 minutes.)",
                      check("D-LOCKED", "recorder_credentials")["reason"])

        ashik = f["D-ASHIK"]
        self.assertEqual(ashik["state"], "noncompliant", ashik)
        self.assertIn("/D-OK/ISAPI/System/deviceInfo: HTTP 400 (check that recorder_url is the recorder's base address "
                      "and recorder_api is right)", check("D-ASHIK", "recorder")["reason"])
