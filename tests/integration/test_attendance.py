"""The attendance audit end to end: the real campus-agent binary and plugin, the simulated
attendance HTTP service (tests/sim/attendance/server.py) and a spool directory, with the demo's
planted cases. Everything on 127.0.0.1."""
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness import PLUGINS, SIM, IntegrationTest, agent_bin, attendance_sim, write_file

sys.path.insert(0, os.path.join(SIM, "attendance"))
import demo  # noqa: E402

STUDENTS = 200
# demo_plan: index 5 overdue, 17 closed by return, 42 and 43 new, 120 at risk (ids are index + 1).
OVERDUE, RETURNED, NEW = "20260006", "20260018", {"20260043", "20260044"}


def agent_toml(data_dir, audit_table):
    return f"""
[agent]
county = "zhenkang"
school = "attendance-test"
timezone = "+08:00"
data_dir = "{data_dir}"
plugin_dir = "{PLUGINS}"

[mqtt]
enabled = false

{audit_table}
"""


class Attendance(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.att = os.path.join(self.dir, "attendance")
        os.makedirs(self.att)
        demo.prepare(self.att, students=STUDENTS)
        self.sim = self.track(attendance_sim(self.att, os.path.join(self.att, "records.jsonl"),
                                             os.path.join(self.att, "token"), page_size=50))
        self.data = os.path.join(self.dir, "data")
        self.conf = write_file(os.path.join(self.dir, "agent.toml"),
                               agent_toml(self.data, demo.toml_table(self.att, self.sim.port)))
        with open(os.path.join(self.att, "records.jsonl"), encoding="utf-8") as f:
            sample = [json.loads(line) for line in f][:50]
        self.id_cards = {r["id_card"] for r in sample}
        self.names = {r["name"] for r in sample}

    def agent(self, *args, timeout=120):
        return subprocess.run([agent_bin(), "--config", self.conf, *args], capture_output=True, text=True,
                              timeout=timeout)

    def dry_run(self):
        r = self.agent("--dry-run", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        for line in r.stdout.splitlines():
            j = json.loads(line)
            if j["audit"] == "attendance":
                return j, r.stdout + r.stderr
        self.fail("no attendance line in:\n" + r.stdout)

    def control(self, **q):
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        urllib.request.urlopen(f"http://127.0.0.1:{self.sim.port}/control?{qs}", timeout=5).read()

    def finding(self, report, subject):
        return next(f for f in report["findings"] if f["subject"] == subject)

    def assert_private(self, text):
        for card in self.id_cards:
            self.assertNotIn(card, text, "a national ID number leaked")
        for name in self.names:
            self.assertNotIn(name, text, "a name leaked without publish_names")

    def test_dry_run_reports_the_planted_cases_and_moves_nothing(self):
        report, output = self.dry_run()
        self.assertEqual(report["status"], "ok", output)
        s = report["summary"]
        open_cases = {c["student"]: c for c in s["open_cases"]}
        self.assertEqual(set(open_cases), {OVERDUE} | NEW, json.dumps(s["open_cases"], ensure_ascii=False))
        self.assertTrue(open_cases[OVERDUE]["overdue"])
        self.assertEqual(open_cases[OVERDUE]["run_days"], 8)
        for sid in NEW:
            self.assertFalse(open_cases[sid]["overdue"])
            self.assertEqual(open_cases[sid]["run_days"], 3)
        self.assertEqual(s["overdue"], 1)
        self.assertEqual(s["opened_this_run"], 4)  # the returned student's case opens and closes
        self.assertEqual(s["closed_this_run"], 1)
        self.assertGreaterEqual(s["at_risk"], 1)
        self.assertEqual(s["students"], STUDENTS)
        self.assertEqual(self.finding(report, "source:http")["state"], "ok")
        self.assertEqual(self.finding(report, "source:spool")["state"], "ok")
        self.assertEqual(s["imports"]["files_imported"], ["term-export.csv"])  # GBK, converted
        self.assert_private(output)
        self.assertTrue(os.path.exists(os.path.join(self.att, "spool", "term-export.csv")))

    def test_once_commits_cases_moves_the_export_and_never_duplicates(self):
        for _ in range(2):
            r = self.agent("--once")
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.att, "spool", "done", "term-export.csv")))
        self.assertFalse(os.path.exists(os.path.join(self.att, "spool", "term-export.csv")))
        db = os.path.join(self.data, "agent.db")
        with sqlite3.connect(db) as c:
            cases = c.execute("select subject, stage, outcome, details from cases where audit = 'attendance'").fetchall()
            records = c.execute("select key, value from records where plugin = 'attendance'").fetchall()
            reports = c.execute("select body from reports where audit = 'attendance' order by seq").fetchall()
            outbox = c.execute("select payload from outbox where audit = 'attendance'").fetchall()
        by_subject = {}
        for subject, stage, outcome, _ in cases:
            by_subject.setdefault(subject, []).append((stage, outcome))
        self.assertEqual(by_subject[RETURNED], [("closed", "returned")])
        self.assertEqual(by_subject[OVERDUE], [("open", "")])
        for sid in NEW:
            self.assertEqual(by_subject[sid], [("open", "")])
        self.assertEqual(len(cases), 4, "a second run must not open duplicate cases")
        last = json.loads(reports[-1][0])
        self.assertEqual(last["summary"]["opened_this_run"] if "summary" in last else last["opened_this_run"], 0)
        months = [k for k, _ in records if re.search(r"\|\d{4}-\d{2}$", k)]
        self.assertGreaterEqual(len(months), STUDENTS * 3)  # September .. November
        everything = "\n".join(k + v for k, v in records) + "\n".join(p for (p,) in outbox)
        self.assert_private(everything)

    def test_http_faults_are_reported_unknown_never_healthy(self):
        for mode, words in (("500", "500"), ("notjson", "not JSON")):
            self.control(mode=mode)
            report, _ = self.dry_run()
            f = self.finding(report, "source:http")
            self.assertEqual(f["state"], "unknown", mode)
            self.assertIn(words, f["reason"])
            # The spool's records are still evaluated (the returned student's case is found), and
            # the days only the API holds are data gaps, never assumed present.
            self.assertEqual(report["summary"]["opened_this_run"], 1)
            self.assertGreater(report["summary"]["data_gaps"]["class_days"], 0)
        self.control(mode="hang")
        with open(self.conf) as f:
            write_file(self.conf, f.read().replace('timeout = "5s"', 'timeout = "1s"'))
        t0 = time.monotonic()
        report, _ = self.dry_run()
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(self.finding(report, "source:http")["state"], "unknown")
        self.control(mode="ok")
        report, _ = self.dry_run()
        self.assertEqual(self.finding(report, "source:http")["state"], "ok")

    def test_half_bad_csv_is_rejected_with_lines_after_its_good_rows_count(self):
        bad = ("student_id,class,grade,date,status,leave_approved,id_card\n"
               "S1,9-9,9,2026-11-02,absent,no,110101201001011234\n"
               "S2,9-9,9,2026-11-31,absent,no,110101201001011235\n"
               "S3,9-9,9,2026-11-02,sick,no,110101201001011236\n")
        write_file(os.path.join(self.att, "spool", "z-half.csv"), bad)
        r = self.agent("--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        rejected = os.path.join(self.att, "spool", "rejected")
        self.assertTrue(os.path.exists(os.path.join(rejected, "z-half.csv")))
        with open(os.path.join(rejected, "z-half.csv.error"), encoding="utf-8") as f:
            err = f.read()
        self.assertIn("z-half.csv:3 column date", err)
        self.assertIn("z-half.csv:4 column status", err)
        self.assertNotIn("11010120100101123", err + r.stdout + r.stderr)
        with sqlite3.connect(os.path.join(self.data, "agent.db")) as c:
            self.assertEqual(c.execute("select count(*) from records where plugin = 'attendance' and key = 'S1|2026-11'")
                             .fetchone()[0], 1)

    def test_simulated_service_pages_and_checks_the_token(self):
        base = f"http://127.0.0.1:{self.sim.port}/api/attendance?from=2026-01-01&to=2030-01-01"
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "&page=1", timeout=5)
        self.assertEqual(e.exception.code, 401)
        with open(os.path.join(self.att, "token")) as f:
            token = f.read().strip()
        seen, url, pages = 0, base + "&page=1", 0
        while url:
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            body = json.load(urllib.request.urlopen(req, timeout=5))
            seen += len(body["records"])
            pages += 1
            url = f"http://127.0.0.1:{self.sim.port}{body['next']}" if body["next"] else None
        self.assertEqual(seen, body["total"])
        self.assertGreater(pages, 20)


if __name__ == "__main__":
    import unittest
    unittest.main()
