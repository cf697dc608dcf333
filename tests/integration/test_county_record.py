"""campusctl on the county database (campus-county's record): status, cases, history, gaps and
the HTML report with its monthly plan-and-actual line, read from a database the real collector
filled from fake schools with a known history of three months; the report rendered in headless
Chromium."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from collector import KnownCounty, ctl
from harness import write_file


def chromium(*args, timeout=120):
    profile = tempfile.mkdtemp(prefix="campus-chromium-")
    try:
        return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class CountyRecord(KnownCounty):
    def test_status_from_the_database_lists_the_register_and_says_how_old_each_figure_is(self):
        r = ctl("status", "--json", db=self.coll.db)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        rows = {s["school"]: s for s in j["schools"]}
        self.assertEqual(sorted(rows), ["school-a", "school-b", "school-c"])
        self.assertEqual(rows["school-a"]["name"], "南伞中心小学")
        self.assertEqual(rows["school-a"]["targets"]["digital_campus"], True)
        self.assertEqual(rows["school-b"]["fiber"]["classroom"], 1.0)
        self.assertEqual(rows["school-c"]["targets"]["digital_campus"], None)
        self.assertEqual(rows["school-b"]["as_of"]["reports"]["fiber"], "2026-12-01T10:00:00+08:00")
        self.assertEqual(rows["school-a"]["as_of"]["oldest_report"], "2026-11-10T10:00:00+08:00")
        self.assertEqual(j["summary"]["targets"]["digital_campus"]["met"], 2)
        self.assertTrue(j["collector"]["ingest"]["connected"])
        human = ctl("status", db=self.coll.db).stdout
        self.assertRegex(human, r"school-a\s+南伞中心小学\s+yes")
        self.assertIn("REPORTS AS OF", human)
        self.assertRegex(human, r"collector: status \d+ s old, connected")

    def test_the_shipped_campusctl_toml_is_read_as_it_is(self):
        # config/campusctl.toml beside the files it names (relative to it), reading the record:
        # nothing in it reaches for the broker it names.
        d = tempfile.mkdtemp(dir=self.tmp)
        src = os.path.join(os.environ.get("CAMPUS_SOURCE_DIR", "../.."), "config", "campusctl.toml")
        shutil.copy(src, d)
        for f in ("ca.crt", "county.crt", "county.key"):
            write_file(os.path.join(d, f), "")
        r = ctl("status", "--json", db=self.coll.db, config=os.path.join(d, "campusctl.toml"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["schools"]), 3)

    def test_cases_history_and_gaps(self):
        cases = json.loads(ctl("cases", "--all", "--json", db=self.coll.db).stdout)["cases"]
        self.assertEqual([c["id"] for c in cases], ["attendance-S7-1"])
        self.assertEqual(cases[0]["school"], "school-b")
        self.assertTrue(cases[0]["overdue"])
        h = json.loads(ctl("history", "school-b", "--json", "--since", "2026-10-01", db=self.coll.db).stdout)
        self.assertEqual([d["day"] for d in h["days"]], ["2026-10-11", "2026-11-11", "2026-12-01"])
        self.assertEqual([d["digital_campus"] for d in h["days"]], [False, False, True])
        self.assertEqual(h["states"][0]["online"], True)
        self.assertEqual(len(h["case_steps"]), 1)
        self.assertGreaterEqual(len(h["events"]), 3)
        only_nov = json.loads(ctl("history", "school-b", "--json", "--since", "2026-11-15", db=self.coll.db).stdout)
        self.assertEqual([d["day"] for d in only_nov["days"]], ["2026-12-01"])
        self.assertIn("coverage and targets by day", ctl("history", "school-b", db=self.coll.db).stdout)
        g = json.loads(ctl("gaps", "--json", db=self.coll.db).stdout)
        self.assertEqual((g["open"], g["filled"], g["lost"]), (0, 1, 0))
        self.assertEqual(g["gaps"][0]["school"], "school-b")
        self.assertRegex(ctl("gaps", db=self.coll.db).stdout, r"school-b\s+bbbbbbbb\s+\d+\.\.\d+\s+filled\s+jump")
        bad = ctl("history", "school-b", "--since", "last week", db=self.coll.db)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--since", bad.stderr)
        missing = ctl("status", db=os.path.join(self.tmp, "nowhere.db"))
        self.assertEqual(missing.returncode, 1)
        self.assertIn("no such database", missing.stderr)

    def test_the_report_draws_the_monthly_plan_and_actual_line_in_chromium(self):
        out = os.path.join(self.tmp, "report.html")
        r = ctl("report", "--html", out, "--year", "2026", "--json", db=self.coll.db)
        self.assertEqual(r.returncode, 0, r.stderr)
        monthly = json.loads(r.stdout)["monthly"]
        self.assertEqual([m["month"] for m in monthly], ["2026-10", "2026-11", "2026-12"])
        # Of 3 register schools: October a (1/3), November a (b still has a case), December a and b.
        self.assertEqual([m["digital_campus"]["met"] for m in monthly], [1, 1, 2])
        self.assertEqual([m["digital_campus"]["unknown"] for m in monthly], [1, 1, 1])
        dom = chromium("--dump-dom", "file://" + out)
        self.assertEqual(dom.returncode, 0, dom.stderr)
        points = re.findall(r'<circle class="actual" data-month="([\d-]+)" data-share="([\d.]+)"', dom.stdout)
        self.assertEqual([(m, round(float(v), 3)) for m, v in points],
                         [("2026-10", 0.333), ("2026-11", 0.333), ("2026-12", 0.667)])
        self.assertRegex(dom.stdout, r'<polyline class="plan"[^>]+points="[\d, ]+"')
        self.assertRegex(dom.stdout, r'<polyline class="actual"[^>]+points="\d+,\d+ \d+,\d+ \d+,\d+"')
        data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', dom.stdout, re.S)
                          .group(1).replace("<\\/", "</"))
        self.assertEqual(len(data["monthly"]), 3)
        png = os.path.join(self.tmp, "report.png")
        shot = chromium(f"--screenshot={png}", "--window-size=1100,1600", "file://" + out)
        self.assertEqual(shot.returncode, 0, shot.stderr)
        self.assertGreater(os.path.getsize(png), 10000)
        zh = os.path.join(self.tmp, "report-zh.html")
        self.assertEqual(ctl("report", "--html", zh, "--lang", "zh", db=self.coll.db).returncode, 0)
        with open(zh, encoding="utf-8") as f:
            self.assertIn("数字校园占比（逐月", f.read())


if __name__ == "__main__":
    unittest.main()
