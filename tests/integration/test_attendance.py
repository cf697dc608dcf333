"""The attendance audit end to end: the real campus-agent binary and plugin, the simulated
attendance HTTP service (tests/sim/attendance/server.py) and a spool directory, with the demo's
planted cases; and exports as schools' systems write them (Exports): .xlsx workbooks written by
openpyxl and saved by LibreOffice, their own status words, students keyed by 学籍号 (replaced by
pseudonyms, found again with campusctl), GB18030 CSV. Everything on 127.0.0.1."""
import datetime as dt
import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openpyxl

from harness import BIN, PLUGINS, SIM, IntegrationTest, agent_bin, attendance_sim, write_file

sys.path.insert(0, os.path.join(SIM, "attendance"))
import attendance_data  # noqa: E402
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


# ---- exports as they come out of a school's system -------------------------------------------

# Students keyed by 学籍号: G + an 18-character ID number (fictitious).
XUEJIHAO = [f"G5301022010010{i:04d}{'X' if i % 7 == 0 else i % 10}" for i in range(1, 41)]
HEADER = ["学籍号", "班级", "年级", "日期", "考勤状态", "请假审批", "姓名"]
# The school's own word for sick leave reported by the family, mapped in the config below.
SCHOOL_TABLE_EXTRA = """pseudonymize_students = true
pseudonym_key_file = "{key}"
xlsx_sheet = "考勤"

[audits.attendance.status_words]
"病休" = "leave"

[audits.attendance.csv_fields]
student_id = "学籍号"
class = "班级"
grade = "年级"
date = "日期"
status = "考勤状态"
leave_approved = "请假审批"
name = "姓名"
"""


def school_days_before(today, n):
    days = attendance_data.school_days(attendance_data.CALENDAR_ROWS, until=today - dt.timedelta(days=1))
    return days[-n:]


class Exports(IntegrationTest):
    """An export keyed by 学籍号, with 病假/事假/早退/旷课/公假 and a word of the school's own,
    as an .xlsx written by openpyxl: imported through the real agent without editing it."""

    def setUp(self):
        super().setUp()
        self.att = os.path.join(self.dir, "attendance")
        self.spool = os.path.join(self.att, "spool")
        os.makedirs(self.spool)
        write_file(os.path.join(self.att, "calendar.csv"), attendance_data.calendar_csv())
        self.key = os.path.join(self.att, "student-pseudonym.key")  # made by the agent's first run
        self.data = os.path.join(self.dir, "data")
        self.today = demo.school_today()
        self.days = school_days_before(self.today, 6)
        table = f"""[audits.attendance]
calendar = "{self.att}/calendar.csv"
spool_dir = "{self.spool}"
publish_names = true
""" + SCHOOL_TABLE_EXTRA.format(key=self.key)
        self.conf = write_file(os.path.join(self.dir, "agent.toml"), agent_toml(self.data, table))

    def rows(self):
        """Six school days for 40 students. Planted: student 0 truant the last 3 days (a case),
        1 on sick leave nobody approved for 3 days (a case), 2 on approved sick leave and 3 on
        official leave (no case), 4 left early (no case), 5 on the school's own 病休 unapproved
        (a case); everyone else present."""
        plan = {0: ("旷课", "否"), 1: ("病假", "否"), 2: ("病假", "是"), 3: ("公假", ""), 4: ("早退", "否"),
                5: ("病休", "否")}
        out = []
        for k, day in enumerate(self.days):
            for i, sid in enumerate(XUEJIHAO):
                status, approved = plan[i] if i in plan and k >= 3 else ("出勤" if i % 2 else "正常", "")
                name = "刘㐀" if i == 9 else f"学生{i}"
                out.append([sid, "三年级二班", 3, day, status, approved, name])
        return out

    def write_xlsx(self, path, rows, sheet="考勤"):
        wb = openpyxl.Workbook()
        notes = wb.active
        notes.title = "说明"  # the data is on the second sheet: xlsx_sheet names it
        notes.append(["本表由学校考勤系统导出"])
        ws = wb.create_sheet(sheet)
        ws.append(HEADER)
        for r in rows:
            ws.append(r)  # dates as date cells (serials with a date style), grade as a number
        wb.save(path)
        return path

    def agent(self, *args):
        return subprocess.run([agent_bin(), "--config", self.conf, *args], capture_output=True, text=True, timeout=120)

    def campusctl(self, *args):
        return subprocess.run([os.path.join(BIN, "campusctl"), "--local", "--agent-config", self.conf, *args],
                              capture_output=True, text=True, timeout=30)

    def store_bytes(self):
        out = b""
        for path in glob.glob(os.path.join(self.data, "agent.db*")):
            with open(path, "rb") as f:
                out += f.read()
        return out

    def assert_no_xuejihao(self, blob, what):
        if isinstance(blob, str):
            blob = blob.encode()
        for sid in XUEJIHAO:
            self.assertNotIn(sid[1:].encode(), blob, f"a 学籍号 in {what}")

    def cases(self):
        with sqlite3.connect(os.path.join(self.data, "agent.db")) as c:
            return c.execute("select id, subject, stage, details from cases where audit = 'attendance'").fetchall()

    def test_an_xlsx_keyed_by_xuejihao_with_the_schools_words_imports_as_it_comes(self):
        self.write_xlsx(os.path.join(self.spool, "考勤导出.xlsx"), self.rows())
        r = self.agent("--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("created the student pseudonym key", r.stderr)
        self.assertEqual(os.stat(self.key).st_mode & 0o777, 0o600)
        self.assertTrue(os.path.exists(os.path.join(self.spool, "done", "考勤导出.xlsx")), r.stderr)
        cases = self.cases()
        subjects = {s for _, s, _, _ in cases}
        self.assertEqual(len(cases), 3, cases)
        for s in subjects:
            self.assertRegex(s, r"^p-[a-z2-7]{16}$")
        # campusctl finds each planted student's case from the real number, on this box.
        for i in (0, 1, 5):
            found = self.campusctl("case", "find", "--student", XUEJIHAO[i], "--json")
            self.assertEqual(found.returncode, 0, found.stderr)
            body = json.loads(found.stdout)
            self.assertIn(body["subject"], subjects)
            self.assertEqual(len(body["cases"]), 1, body)
            self.assertEqual(body["cases"][0]["stage"], "open")
        for i in (2, 3, 4, 6):
            body = json.loads(self.campusctl("case", "find", "--student", XUEJIHAO[i], "--json").stdout)
            self.assertEqual(body["cases"], [], f"student {i} must have no case")
        human = self.campusctl("case", "find", "--student", XUEJIHAO[0].lower())  # typed in lower case
        self.assertIn("student key on this box: p-", human.stdout)
        self.assertIn("open", human.stdout)
        # Without --local there is no key: campusctl says so instead of asking the county.
        county = subprocess.run([os.path.join(BIN, "campusctl"), "case", "find", "--student", XUEJIHAO[0]],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(county.returncode, 2)
        self.assertIn("--local", county.stderr)
        # The numbers are nowhere: not in the database's bytes (db and WAL), not in the outbox
        # (what the county would get), not in the agent's output.
        self.assert_no_xuejihao(self.store_bytes(), "the store")
        self.assert_no_xuejihao(r.stdout + r.stderr, "the agent's log")
        with sqlite3.connect(os.path.join(self.data, "agent.db")) as c:
            report = json.loads(c.execute("select body from reports where audit = 'attendance' order by seq desc")
                                .fetchone()[0])
        s = report.get("summary", report)
        self.assertEqual(s["imports"]["rows_imported"], len(XUEJIHAO) * 6)
        self.assertEqual(s["student_key"]["pseudonyms"], True)
        self.assertRegex(s["student_key"]["key"], r"^[0-9a-f]{8}$")

    def test_an_unknown_word_rejects_the_rows_and_names_the_key_that_maps_it(self):
        rows = self.rows()
        rows[7][4] = "病退"  # nobody mapped it
        self.write_xlsx(os.path.join(self.spool, "a.xlsx"), rows)
        self.write_xlsx(os.path.join(self.spool, "b.xlsx"), rows[:3], sheet="Sheet1")  # no 考勤 sheet
        r = self.agent("--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        rejected = os.path.join(self.spool, "rejected")
        with open(os.path.join(rejected, "a.xlsx.error"), encoding="utf-8") as f:
            err = f.read()
        self.assertIn("a.xlsx[考勤]:9 column 考勤状态: unknown status \"病退\"", err)
        self.assertIn("[audits.attendance.status_words]: \"病退\" = ", err)
        with open(os.path.join(rejected, "b.xlsx.error"), encoding="utf-8") as f:
            self.assertIn("no sheet \"考勤\" (sheets: \"说明\", \"Sheet1\")", f.read())
        self.assertEqual(len(self.cases()), 3, "the good rows of the half-bad file count at once")
        self.assert_no_xuejihao(err, "a .error file")

    def test_a_workbook_saved_by_libreoffice(self):
        soffice = shutil.which("soffice")
        self.assertIsNotNone(soffice, "LibreOffice is missing: scripts/install-deps installs libreoffice-calc-nogui")
        src = self.write_xlsx(os.path.join(self.dir, "from-openpyxl.xlsx"), self.rows())
        out = os.path.join(self.dir, "lo")
        t0 = time.monotonic()
        r = subprocess.run([soffice, f"-env:UserInstallation=file://{self.dir}/lo-profile", "--headless",
                            "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", out, src],
                           capture_output=True, text=True, timeout=180)
        print(f"\nLibreOffice saved the workbook in {time.monotonic() - t0:.1f} s", flush=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        shutil.copy(os.path.join(out, "from-openpyxl.xlsx"), os.path.join(self.spool, "saved-by-libreoffice.xlsx"))
        report = json.loads(self.agent("--dry-run", "--json").stdout.splitlines()[0])
        s = report["summary"]
        self.assertEqual(s["imports"]["files_imported"], ["saved-by-libreoffice.xlsx"], json.dumps(report)[:3000])
        self.assertEqual(s["imports"]["rows_imported"], len(XUEJIHAO) * 6)
        self.assertEqual(len(s["open_cases"]), 3)

    def test_a_gb18030_csv_with_characters_outside_gbk(self):
        path = os.path.join(self.spool, "export.csv")
        with open(path, "w", encoding="gb18030", newline="") as f:
            f.write(",".join(HEADER) + "\n")
            for r in self.rows():
                f.write(",".join(str(x) if not isinstance(x, dt.date) else x.isoformat() for x in r) + "\n")
        with open(path, "rb") as f:
            raw = f.read()
        self.assertIn("刘㐀".encode("gb18030"), raw)
        self.assertEqual(len("㐀".encode("gb18030")), 4)
        r = self.agent("--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.spool, "done", "export.csv")), r.stderr)
        with sqlite3.connect(os.path.join(self.data, "agent.db")) as c:
            names = [json.loads(v).get("name") for (v,) in
                     c.execute("select value from records where plugin = 'attendance' and key like 'p-%'")]
        self.assertIn("刘㐀", names)
        self.assertEqual(len(self.cases()), 3)


if __name__ == "__main__":
    import unittest
    unittest.main()
