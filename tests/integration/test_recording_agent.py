"""The recording plugin inside the real campus-agent: --check-config speaks the plugin's key
names, --dry-run --json prints the recording report of the demo school, and --once turns a
classroom's change of state into an event."""
import json
import os
import sqlite3
import subprocess

import harness
from harness import PLUGINS, LOOPBACK, agent_bin, write_file


def run(*args, timeout=120):
    return subprocess.run([agent_bin(), *args], capture_output=True, text=True, timeout=timeout)


class RecordingInAgent(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.data = os.path.join(self.dir, "data")
        self.cam = self.track(harness.start_rtsp_camera(self.dir, ["r1-teacher", "r1-students", "r2-teacher", "r2-students"],
                                                        digest="camera:cam-pass"))
        self.rec = self.track(harness.start_recorder_sim(self.dir, {
            rid: {"user": "admin", "password": "rec-pass",
                  "status": {"recording": True, "storage": {"free_percent": 50}}} for rid in ("R1", "R2")}))
        write_file(os.path.join(self.dir, "rec.cred"), "admin:rec-pass\n", 0o600)
        write_file(os.path.join(self.dir, "cam.cred"), "camera:cam-pass\n", 0o600)
        rows = ["id,name,recorder_url,onvif_url,streams,credentials,camera_credentials"]
        for rid in ("R1", "R2"):
            p = self.cam.port
            streams = f"teacher=rtsp://{LOOPBACK}:{p}/{rid.lower()}-teacher;students=rtsp://{LOOPBACK}:{p}/{rid.lower()}-students"
            rows.append(f'{rid},教室 {rid},{self.rec.url(rid, "status")},{self.rec.url(rid, "onvif")},"{streams}",rec.cred,cam.cred')
        rows.append("BAD,,,,teacher=rtsp://x/1,,")
        self.register = write_file(os.path.join(self.dir, "classrooms.csv"), "\n".join(rows) + "\n")

    def config(self, extra=""):
        return write_file(os.path.join(self.dir, "agent.toml"), f"""
[agent]
county = "zhenkang"
school = "rec-test"
data_dir = "{self.data}"
plugin_dir = "{PLUGINS}"

[mqtt]
enabled = false

[audits.recording]
interval = "1h"
jitter = "0s"
first_delay = "0s"
timeout = "30s"
register = "{self.register}"
rtsp_timeout = "3s"
http_timeout = "3s"
{extra}
""")

    def test_check_config_names_bad_plugin_keys(self):
        conf = self.config('min_free_percent = 150\nstatus_free_percent_path = "a..b"\nrtsp_timout = "1s"\n'
                           'max_clock_drift = "soon"\n')
        r = run("--check-config", "--config", conf)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        self.assertIn("audits.recording.min_free_percent", out)
        self.assertIn("audits.recording.status_free_percent_path", out)
        self.assertIn("empty key in JSON path \"a..b\"", out)
        self.assertIn("audits.recording.rtsp_timout", out)
        self.assertIn("audits.recording.max_clock_drift", out)
        # The register is required and must exist.
        with open(conf) as f:
            text = f.read()
        write_file(conf, text.replace(f'register = "{self.register}"', 'register = "nowhere.csv"'))
        r = run("--check-config", "--config", conf)
        self.assertIn("nowhere.csv does not exist", r.stdout + r.stderr)
        write_file(conf, text.replace(f'register = "{self.register}"', ''))
        r = run("--check-config", "--config", conf)
        self.assertIn("the key register is required but missing", r.stdout + r.stderr)

    def test_dry_run_json_reports_every_classroom(self):
        r = run("--dry-run", "--json", "--config", self.config("deep_check = true"))
        self.assertEqual(r.returncode, 0, r.stderr)
        line = next(json.loads(l) for l in r.stdout.splitlines() if l.startswith("{"))
        self.assertEqual(line["audit"], "recording")
        states = {f["subject"]: f["state"] for f in line["findings"]}
        # The bad row is still reported: unknown, its register error as the reason.
        self.assertEqual(states, {"R1": "compliant", "R2": "compliant", "BAD": "unknown"}, line)
        bad = next(f for f in line["findings"] if f["subject"] == "BAD")
        self.assertIn(f"bad register row {self.register}:4 column recorder_url: classroom BAD has neither", bad["reason"])
        self.assertEqual(line["summary"]["compliant_ratio"], round(2 / 3, 4))
        self.assertEqual(line["summary"]["register_errors"], 1)
        self.assertTrue(any("classrooms.csv:4" in e for e in map(str, line["errors"])), line["errors"])

    def test_classroom_losing_storage_becomes_an_event(self):
        conf = self.config()
        self.assertEqual(run("--once", "--config", conf).returncode, 0)
        self.rec.update({"R1": {"user": "admin", "password": "rec-pass",
                                "status": {"recording": True, "storage": {"free_percent": 50}}},
                         "R2": {"user": "admin", "password": "rec-pass",
                                "status": {"recording": True, "storage": {"free_percent": 3}}}})
        r = run("--once", "--config", conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        with sqlite3.connect(os.path.join(self.data, "agent.db")) as c:
            events = [json.loads(p)["body"] for (p,) in c.execute("select payload from outbox where kind = 'event'")]
        self.assertEqual(len(events), 1, events)
        e = events[0]
        self.assertEqual((e["subject"], e["from"], e["to"]), ("R2", "compliant", "noncompliant"))
        self.assertIn("storage free 3.0% is below 15.0%", json.dumps(e, ensure_ascii=False))
