"""Recording classrooms against real peers on 127.0.0.1: GStreamer RTSP cameras (with and
without Digest), simulated recorders (ONVIF WS-Security / HTTP Digest, JSON status), and
misbehaving RTSP servers. Each bad input gives a precise reason, its classroom is reported
noncompliant or unknown, and the rest of the school is still audited."""
import os
import time

import harness
from harness import LOOPBACK, write_file

GOOD_STATUS = {"recording": True, "storage": {"free_percent": 63.5}}


def rtsp(port, path):
    return f"rtsp://{LOOPBACK}:{port}/{path}"


class RecordingAuditTest(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.cam = self.track(harness.start_rtsp_camera(self.dir, ["teacher", "students", "board", "audio=audio"]))
        self.secure_cam = self.track(harness.start_rtsp_camera(self.dir, ["teacher", "students"],
                                                               digest="camuser:cam-pass", name="secure-camera"))
        self.bad = self.track(harness.start_bad_rtsp(
            self.dir, ["silent", "garbage", "close-mid", "unauthorized", "huge-sdp", "wrong-cseq"]))
        write_file(os.path.join(self.dir, "recorder.cred"), "admin:rec-pass\n", 0o600)
        write_file(os.path.join(self.dir, "camera.cred"), "camuser:cam-pass\n", 0o600)
        write_file(os.path.join(self.dir, "wrong.cred"), "admin:nope\n", 0o600)

    def recorders(self, devices):
        return self.track(harness.start_recorder_sim(self.dir, devices))

    def register(self, rows):
        lines = ["id,name,recorder_url,onvif_url,streams,credentials,camera_credentials,min_cameras"]
        lines += [",".join(f'"{c}"' if ";" in c or "," in c else c for c in row) for row in rows]
        return write_file(os.path.join(self.dir, "classrooms.csv"), "\n".join(lines) + "\n")

    def good_streams(self):
        return f"teacher={rtsp(self.cam.port, 'teacher')};students={rtsp(self.cam.port, 'students')}"

    def by_subject(self, report):
        return {f["subject"]: f for f in report["findings"]}

    def test_healthy_classrooms_are_compliant_with_deep_check(self):
        dev = {"user": "admin", "password": "rec-pass", "drift": 1, "status": GOOD_STATUS}
        rec = self.recorders({"R101": dict(dev, onvif_auth="wsse"), "R102": dict(dev, onvif_auth="digest")})
        secure = f"teacher={rtsp(self.secure_cam.port, 'teacher')};students={rtsp(self.secure_cam.port, 'students')}"
        reg = self.register([
            ["R101", "101 录播教室", rec.url("R101", "status"), rec.url("R101", "onvif"),
             self.good_streams() + f";board={rtsp(self.cam.port, 'board')}", "recorder.cred", "", ""],
            ["R102", "102 Digest", rec.url("R102", "status"), rec.url("R102", "onvif"), secure,
             "recorder.cred", "camera.cred", ""],
        ])
        report = harness.run_recording_probe(reg, "--deep", "--rtsp-timeout", "5s")
        self.assertEqual(report["errors"], [])
        f = self.by_subject(report)
        for sid in ("R101", "R102"):
            self.assertEqual(f[sid]["state"], "compliant", f[sid])
            d = f[sid]["details"]
            self.assertTrue(d["compliant"])
            self.assertTrue(all(s["rtp_received"] and s["codecs"] == ["H264"] for s in d["streams"]), d["streams"])
            self.assertEqual(d["onvif"]["model"], "LR-4000 Recorder")
            self.assertEqual(d["onvif"]["serial"], f"SIM-{sid}-0001")
            self.assertLess(abs(d["onvif"]["clock_drift_s"] - 1), 1.5)
            self.assertEqual(d["recorder"]["storage_free_percent"], 63.5)
        self.assertEqual(f["R101"]["details"]["live_cameras"], 3)
        self.assertEqual(f["R101"]["details"]["onvif"]["auth"], "ws-security")
        self.assertEqual(f["R102"]["details"]["onvif"]["auth"], "http-digest")
        self.assertEqual({s["auth"] for s in f["R102"]["details"]["streams"]}, {"digest"})
        self.assertEqual(report["summary"]["compliant"], 2)
        self.assertEqual(report["summary"]["compliant_ratio"], 1.0)

    def test_every_bad_input_has_a_precise_reason_and_the_rest_is_audited(self):
        ok = {"user": "admin", "password": "rec-pass", "status": GOOD_STATUS}
        rec = self.recorders({
            "OK": ok,
            "E500": dict(ok, status_code=500, status={"error": "disk controller"}),
            "HTML": dict(ok, status_raw="<html>login required</html>"),
            "MISS": dict(ok, status={"uptime": 12}),
            "LOW": dict(ok, status={"recording": True, "storage": {"free_percent": 8}}),
            "IDLE": dict(ok, status={"recording": "idle", "storage": {"free_percent": 50}}),
            "FAULT": dict(ok, onvif="fault"),
            "BADXML": dict(ok, onvif="malformed"),
            "DRIFT": dict(ok, drift=120),
        })
        good = self.good_streams()
        b = self.bad.ports
        board = lambda url: f"{good};board={url}"  # noqa: E731
        onvif_ok = rec.url("OK", "onvif")
        status_ok = rec.url("OK", "status")
        rows = [
            ["OK", "fine", status_ok, onvif_ok, good, "recorder.cred", "", ""],
            ["SILENT", "", status_ok, onvif_ok, board(rtsp(b["silent"], "x")), "recorder.cred", "", ""],
            ["GARBAGE", "", status_ok, onvif_ok, board(rtsp(b["garbage"], "x")), "recorder.cred", "", ""],
            ["CLOSEMID", "", status_ok, onvif_ok, board(rtsp(b["close-mid"], "x")), "recorder.cred", "", ""],
            ["AUTH401", "", status_ok, onvif_ok, board(rtsp(b["unauthorized"], "x")), "recorder.cred", "", ""],
            ["HUGESDP", "", status_ok, onvif_ok, board(rtsp(b["huge-sdp"], "x")), "recorder.cred", "", ""],
            ["CSEQ", "", status_ok, onvif_ok, board(rtsp(b["wrong-cseq"], "x")), "recorder.cred", "", ""],
            ["AUDIO", "", status_ok, onvif_ok, board(rtsp(self.cam.port, "audio")), "recorder.cred", "", ""],
            ["NOTFOUND", "", status_ok, onvif_ok, board(rtsp(self.cam.port, "nope")), "recorder.cred", "", ""],
            ["REFUSED", "", status_ok, onvif_ok, board(rtsp(harness.free_port(), "x")), "recorder.cred", "", ""],
            ["NOCREDS", "", status_ok, onvif_ok, board(rtsp(self.secure_cam.port, "teacher")), "", "", ""],
            ["FEWCAMS", "", status_ok, onvif_ok, f"teacher={rtsp(self.cam.port, 'teacher')};students={rtsp(b['silent'], 'y')}",
             "recorder.cred", "", ""],
            ["E500", "", rec.url("E500", "status"), onvif_ok, good, "recorder.cred", "", ""],
            ["HTML", "", rec.url("HTML", "status"), onvif_ok, good, "recorder.cred", "", ""],
            ["MISS", "", rec.url("MISS", "status"), onvif_ok, good, "recorder.cred", "", ""],
            ["LOW", "", rec.url("LOW", "status"), onvif_ok, good, "recorder.cred", "", ""],
            ["IDLE", "", rec.url("IDLE", "status"), onvif_ok, good, "recorder.cred", "", ""],
            ["FAULT", "", status_ok, rec.url("FAULT", "onvif"), good, "recorder.cred", "", ""],
            ["BADXML", "", status_ok, rec.url("BADXML", "onvif"), good, "recorder.cred", "", ""],
            ["NOTAUTH", "", status_ok, onvif_ok, good, "wrong.cred", "", ""],
            ["DRIFT", "", status_ok, rec.url("DRIFT", "onvif"), good, "recorder.cred", "", ""],
            ["BADROW", "", "ftp://x/", onvif_ok, good, "recorder.cred", "", ""],
            ["BADCRED", "", status_ok, onvif_ok, good, "missing.cred", "", ""],
        ]
        reg = self.register(rows)
        # Line 25: a name that is not text (bytes neither UTF-8 nor GBK, so the file is read as
        # UTF-8 and only this row is bad).
        with open(reg, "ab") as fh:
            fh.write(f"BADUTF,\xff\xfe,{status_ok},{onvif_ok},\"{good}\",recorder.cred,,\n".encode("latin-1"))
        t0 = time.monotonic()
        report = harness.run_recording_probe(reg, "--rtsp-timeout", "2s", "--http-timeout", "2s",
                                             "--max-rtsp-response", 262144)
        took = time.monotonic() - t0
        # Everything runs concurrently: about one timeout, not the sum of them.
        self.assertLess(took, 6, took)
        f = self.by_subject(report)

        def expect(sid, state, failed, *reason_parts, unknown=None):
            finding = f[sid]
            self.assertEqual(finding["state"], state, finding)
            self.assertEqual(finding["details"]["failed_checks"], failed, finding)
            if unknown is not None:
                self.assertEqual(finding["details"]["unknown_checks"], unknown, finding)
            for part in reason_parts:
                self.assertIn(part, finding["reason"], finding)

        expect("OK", "compliant", [], unknown=[])
        expect("SILENT", "noncompliant", ["stream:board"], "board camera: OPTIONS: no answer within 2s")
        expect("GARBAGE", "noncompliant", ["stream:board"], "board camera: OPTIONS: not an RTSP response: starts with \"\\x16\\x03\\x01 this is not rtsp")
        expect("CLOSEMID", "noncompliant", ["stream:board"], "board camera: DESCRIBE: connection closed mid-response after")
        expect("AUTH401", "unknown", [], "board camera: OPTIONS: credentials rejected (401 after Digest authentication)",
               unknown=["stream:board"])
        expect("HUGESDP", "noncompliant", ["stream:board"], "DESCRIBE: response larger than 262144 bytes (Content-Length 50")
        expect("CSEQ", "noncompliant", ["stream:board"], "OPTIONS: response has CSeq 8, the request had CSeq 1")
        expect("AUDIO", "noncompliant", ["stream:board"], "board camera: SDP has no video track (m=video)")
        expect("NOTFOUND", "noncompliant", ["stream:board"], "board camera: DESCRIBE answered 404 Not Found")
        expect("REFUSED", "noncompliant", ["stream:board"], "board camera: connect: connection refused")
        expect("NOCREDS", "unknown", [], "register gives no credentials", unknown=["stream:board"])
        expect("FEWCAMS", "noncompliant", ["stream:students", "cameras"], "1 of 2 cameras live, the standard requires 2")
        expect("E500", "noncompliant", ["recorder"], "status URL answered HTTP 500", unknown=["recording", "storage"])
        expect("HTML", "noncompliant", ["recorder"], "status reply is not JSON (starts with \"<html>login required")
        expect("MISS", "unknown", [], "field recording missing in the recorder status",
               "field storage.free_percent (or storage.free_bytes and storage.total_bytes) missing", unknown=["recording", "storage"])
        expect("LOW", "noncompliant", ["storage"], "storage free 8.0% is below 15.0%")
        expect("IDLE", "noncompliant", ["recording"], "recorder reports it is not recording")
        # A SOAP fault means the device is up but would not say its time: clock unknown.
        expect("FAULT", "unknown", [], "clock unknown: GetSystemDateAndTime: SOAP fault ter:ActionNotSupported: internal device error",
               unknown=["clock"])
        expect("BADXML", "noncompliant", ["recorder"], "GetSystemDateAndTime: HTTP 200, malformed XML")
        expect("DRIFT", "noncompliant", ["clock"], "exceeds 5s")
        drift = f["DRIFT"]["details"]["onvif"]
        self.assertGreater(drift["clock_drift_s"], 115)
        # The simulator refuses WS-Security tokens whose created is more than 5 s off its own
        # clock: GetDeviceInformation succeeds only because created is corrected by the drift.
        self.assertEqual(drift.get("model"), "LR-4000 Recorder", drift)
        self.assertNotIn("info_error", drift)
        self.assertEqual(drift["auth"], "ws-security")
        # WS-Security with the wrong password: the device answers (clock known) but says
        # NotAuthorized, so it could not be checked with the register's credentials.
        expect("NOTAUTH", "unknown", [], "ONVIF " + onvif_ok + " refused the credentials in "
               + os.path.join(self.dir, "wrong.cred") + " (GetDeviceInformation: SOAP fault ter:NotAuthorized",
               "write the device's ONVIF user and password into", unknown=["onvif_credentials"])
        self.assertIn("ter:NotAuthorized", f["NOTAUTH"]["details"]["onvif"]["info_error"])
        # Bad register rows: named by file:line and column, the classroom reported unknown with
        # the error (where, what, fix) as the reason, the rest audited.
        expect("BADROW", "unknown", [], f"bad register row {reg}:23 column recorder_url: "
               "\"ftp://x/\" must start with http:// or https:// (fix: ", unknown=["register"])
        expect("BADCRED", "unknown", [], f"bad register row {reg}:24 column credentials: "
               + os.path.join(self.dir, "missing.cred"), "(fix: ", unknown=["register"])
        expect("BADUTF", "unknown", [], f"bad register row {reg}:25 column name: not valid UTF-8 text (fix: ",
               unknown=["register"])
        errors = "\n".join(report["errors"])
        self.assertIn("classrooms.csv:23 column recorder_url: \"ftp://x/\" must start with http:// or https://", errors)
        self.assertIn("classrooms.csv:24 column credentials:", errors)
        self.assertIn("classrooms.csv:25 column name: not valid UTF-8 text", errors)
        s = report["summary"]
        self.assertEqual(s["classrooms"], 24)
        self.assertEqual(s["register_errors"], 3)
        self.assertEqual(s["compliant"] + s["noncompliant"] + s["unknown"], 24)

    def test_cameras_by_host_name_are_resolved(self):
        # Cameras given by IP address skip the resolver (Asio would keep a thread for it for the
        # daemon's whole life, docs/performance.md "Footprint"); a host name still works.
        # Only "localhost" (from /etc/hosts): no DNS query ever leaves the machine.
        rec = self.recorders({"R1": {"user": "admin", "password": "rec-pass", "status": GOOD_STATUS}})
        by_name = ";".join(f"{m}=rtsp://localhost:{self.cam.port}/{m}" for m in ("teacher", "students"))
        reg = self.register([["R1", "", rec.url("R1", "status"), rec.url("R1", "onvif"), by_name,
                              "recorder.cred", "", ""]])
        f = self.by_subject(harness.run_recording_probe(reg, "--rtsp-timeout", "5s"))["R1"]
        self.assertEqual(f["state"], "compliant", f)
        self.assertEqual(f["details"]["live_cameras"], 2, f)

    def test_wrong_camera_password_is_unknown_not_broken(self):
        rec = self.recorders({"R1": {"user": "admin", "password": "rec-pass", "status": GOOD_STATUS}})
        write_file(os.path.join(self.dir, "badcam.cred"), "camuser:wrong\n", 0o600)
        reg = self.register([["R1", "", rec.url("R1", "status"), rec.url("R1", "onvif"),
                              f"teacher={rtsp(self.secure_cam.port, 'teacher')};students={rtsp(self.secure_cam.port, 'students')}",
                              "recorder.cred", "badcam.cred", ""]])
        report = harness.run_recording_probe(reg)
        f = self.by_subject(report)["R1"]
        self.assertEqual(f["state"], "unknown", f)
        self.assertIn("DESCRIBE: credentials rejected (401 after Digest authentication)", f["reason"])
        self.assertEqual(f["details"]["checks"]["cameras"]["status"], "unknown")

    def test_audit_deadline_bounds_a_school_of_silent_cameras(self):
        rec = self.recorders({"R1": {"user": "admin", "password": "rec-pass", "status": GOOD_STATUS}})
        silent = rtsp(self.bad.ports["silent"], "x")
        rows = [[f"S{i}", "", rec.url("R1", "status"), rec.url("R1", "onvif"),
                 f"teacher={silent};students={silent};board={silent}", "recorder.cred", "", ""] for i in range(50)]
        reg = self.register(rows)
        t0 = time.monotonic()
        report = harness.run_recording_probe(reg, "--rtsp-timeout", "30s", "--deadline", "1500ms")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(report["summary"]["noncompliant"], 50)
        self.assertIn("OPTIONS: no answer before the audit deadline", report["findings"][0]["reason"])
