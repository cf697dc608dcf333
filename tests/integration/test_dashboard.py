"""campus-county's dashboard: the real collector, its database filled from fake schools with a
known history of three months (collector.seed_known_history), accounts made by `campus-county
passwd`; every endpoint over real HTTP, the pages in headless Chromium driven by chromedriver
(login, the monthly plan line, the schools table, the Chinese page), screenshots kept in
$CAMPUS_BUILD_DIR/test-artifacts/dashboard-{sqlite,postgres}/. Authentication refusals and bad input on every
endpoint, each a precise 4xx that changes nothing."""
import glob
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import unittest
import urllib.parse

from collector import (ENGINE, Collector, KnownCounty, collector_bin, collector_config, fiber_summary, start_broker,
                       start_insecure_agent)
from harness import LOOPBACK, IntegrationTest, free_port, wait_until, write_file

VIEWER_PW = "viewer-pass-1234"
OPERATOR_PW = "operator-pass-5678"
# One directory per engine: both runs may go at once.
ARTIFACTS = os.path.join(os.environ.get("CAMPUS_BUILD_DIR", "build"), "test-artifacts", f"dashboard-{ENGINE}")


def passwd(accounts, user, role, password, iterations=None):
    args = [collector_bin(), "passwd", "--accounts", accounts, user, "--role", role]
    if iterations:
        args += ["--iterations", str(iterations)]
    return subprocess.run(args, input=password + "\n", capture_output=True, text=True, timeout=60)


def browser_login(b, base, user, password, then="/plan?lang=en"):
    """Logs the Chromium of `b` in through the login form and waits until it has left it."""
    b.get(base + then)
    wait_until(lambda: 'id="login"' in b.source(), 10, what="the login page")
    b.type("#user", user)
    b.type("#password", password)
    b.click("#submit")
    wait_until(lambda: 'id="login"' not in b.source() and 'id="content"' in b.source(), 10, what="the page after login")


class Client:
    """One browser-like HTTP client: keeps the session cookie it is given."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read().decode("utf-8", "replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";")[0]
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def json(self, path):
        status, _, body = self.get(path)
        return status, json.loads(body)

    def login(self, user, password):
        return self.request("POST", "/login", {"user": user, "password": password, "next": "/schools"})


class Dashboard(KnownCounty):
    @classmethod
    def sections(cls):
        cls.accounts = os.path.join(cls.tmp, "accounts")
        for user, role, password, iterations in (("ana", "viewer", VIEWER_PW, None),  # the default 600,000
                                                 ("olu", "operator", OPERATOR_PW, 20000),
                                                 ("lee", "viewer", "lee-pass-0000", 20000)):  # locked out by a test
            r = passwd(cls.accounts, user, role, password, iterations)
            assert r.returncode == 0, r.stderr
        cls.port = free_port()
        return {"dashboard": {"listen": f"{LOOPBACK}:{cls.port}", "accounts": cls.accounts,
                              "session_lifetime": "1h", "language": "zh"}}

    def viewer(self):
        c = Client(self.port)
        status, headers, _ = c.login("ana", VIEWER_PW)
        self.assertEqual(status, 303)
        self.assertEqual(headers["location"], "/schools")
        self.assertIn("HttpOnly", headers["set-cookie"])
        self.assertIn("SameSite=Strict", headers["set-cookie"])
        return c

    def reload(self, **dashboard):
        with open(self.conf) as f:
            text = f.read()
        for k, v in dashboard.items():
            text = re.sub(rf'^{k} = .*$', f'{k} = "{v}"', text, flags=re.M)
        write_file(self.conf, text)
        n = self.coll.output().count("reload applied")
        self.coll.reload()
        wait_until(lambda: self.coll.output().count("reload applied") > n, 10, what="the reload")

    # ---- what the pages show ----
    def test_the_json_behind_each_page_holds_the_databases_numbers(self):
        c = self.viewer()
        status, me = c.json("/api/me")
        self.assertEqual((status, me["user"], me["role"]), (200, "ana", "viewer"))
        status, j = c.json("/api/schools")
        self.assertEqual(status, 200)
        rows = {r["school"]: r for r in j["schools"]}
        self.assertEqual(sorted(rows), ["school-a", "school-b", "school-c"])
        self.assertEqual(rows["school-a"]["targets"]["digital_campus"], True)
        self.assertEqual(rows["school-b"]["targets"]["digital_campus"], True)  # its December report
        self.assertIsNone(rows["school-c"]["targets"]["digital_campus"])      # never reported: unknown
        self.assertEqual(rows["school-a"]["fiber"]["classroom"], 1.0)
        self.assertEqual(rows["school-b"]["cases"]["open"], 0)
        self.assertEqual(rows["school-b"]["gaps"]["open"], 0)
        self.assertEqual(rows["school-a"]["display_name"], "南伞中心小学")
        self.assertEqual(j["summary"]["targets"]["digital_campus"]["met"], 2)
        self.assertEqual(j["county"], "镇康县")

        status, plan = c.json("/api/plan")
        self.assertEqual(status, 200)
        self.assertEqual([m["month"] for m in plan["monthly"]], ["2026-10", "2026-11", "2026-12"])
        self.assertEqual([m["digital_campus"]["met"] for m in plan["monthly"]], [1, 1, 2])
        self.assertEqual([m["digital_campus"]["unknown"] for m in plan["monthly"]], [1, 1, 1])

        status, cases = c.json("/api/cases?state=all")
        self.assertEqual(status, 200)
        self.assertEqual([k["id"] for k in cases["cases"]], ["attendance-S7-1"])
        self.assertEqual(cases["cases"][0]["overdue"], True)

        status, q = c.json("/api/quality")
        self.assertEqual(status, 200)
        self.assertEqual((q["gaps_open"], q["gaps_lost"], q["quarantined"]), (0, 0, 0))
        self.assertEqual(q["gaps"], [])  # the one gap was filled

    def test_a_schools_page_has_its_history_rooms_cases_states_and_gaps(self):
        c = self.viewer()
        status, j = c.json("/api/school?code=school-a")
        self.assertEqual(status, 200)
        self.assertEqual(j["school"]["display_name"], "南伞中心小学")
        self.assertEqual([(r["subject"], r["state"]) for r in j["rooms_needing_attention"]], [("R203", "degraded")])
        self.assertEqual(j["recording_failing"], [])
        self.assertEqual([d["day"] for d in j["days"]], ["2026-10-10", "2026-11-10"])
        self.assertEqual([s["online"] for s in j["states"]], [True])
        status, b = c.json("/api/school?code=school-b")
        self.assertEqual([k["id"] for k in b["cases"]], ["attendance-S7-1"])
        self.assertEqual([(g["state"], g["from_seq"], g["to_seq"]) for g in b["gaps"]], [("filled", 11, 11)])
        self.assertEqual([d["fiber"]["classroom"] for d in b["days"]], [0.8, 0.9, 1.0])
        status, page = c.get("/school?code=school-b&lang=en")[::2]
        self.assertEqual(status, 200)
        points = re.findall(r'<circle class="point" data-series="Classrooms" data-label="([\d-]+)" data-value="([\d.]+)"', page)
        self.assertEqual([(d, float(v)) for d, v in points], [("2026-10-11", 0.8), ("2026-11-11", 0.9), ("2026-12-01", 1.0)])
        self.assertIn('<tr data-case="attendance-S7-1">', page)
        self.assertIn('<tr data-state="filled">', page)
        status, page = c.get("/school?code=school-a")[::2]
        self.assertIn('<tr data-subject="R203">', page)
        self.assertIn("link at 100 Mb/s", page)
        self.assertNotIn("R204", page)
        # A school the county does not know, and no code at all.
        status, e = c.json("/api/school?code=school-z")
        self.assertEqual((status, e["error"]["where"]), (404, "school school-z"))
        status, e = c.json("/api/school")
        self.assertEqual((status, e["error"]["where"], e["error"]["what"]), (400, "query parameter code", "missing"))
        # A never-seen school of the register has a page that says so.
        status, cj = c.json("/api/school?code=school-c")
        self.assertEqual((status, cj["school"]["online"], cj["days"]), (200, None, []))

    def test_the_schools_table_sorts_and_filters(self):
        c = self.viewer()
        _, j = c.json("/api/schools?sort=classroom&order=desc")
        # school-a 100%, school-b 100% (December), school-c unknown: unknown last in either order.
        self.assertEqual([r["school"] for r in j["schools"]][-1], "school-c")
        _, j = c.json("/api/schools?sort=classroom&order=asc")
        self.assertEqual([r["school"] for r in j["schools"]][-1], "school-c")
        _, j = c.json("/api/schools?sort=school&order=desc")
        self.assertEqual([r["school"] for r in j["schools"]], ["school-c", "school-b", "school-a"])
        _, j = c.json("/api/schools?q=" + urllib.parse.quote("勐捧"))
        self.assertEqual([r["school"] for r in j["schools"]], ["school-b"])
        _, j = c.json("/api/schools?online=unknown")
        self.assertEqual([r["school"] for r in j["schools"]], ["school-c"])
        _, j = c.json("/api/schools?lang=en&q=Nansan")
        self.assertEqual([(r["school"], r["display_name"]) for r in j["schools"]], [("school-a", "Nansan Central Primary")])

    def test_metrics_are_prometheus_text_without_a_login(self):
        status, headers, body = Client(self.port).get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        samples = {}
        for line in body.splitlines():
            if line.startswith("#"):
                self.assertRegex(line, r"^# (HELP|TYPE) campus_county_[a-z_]+ ")
                continue
            m = re.fullmatch(r'(campus_county_[a-z_]+(?:\{[a-z]+="[a-z]+"\})?) (-?[0-9.e+]+)', line)
            self.assertIsNotNone(m, line)
            samples[m.group(1)] = float(m.group(2))
        self.assertEqual(samples['campus_county_gaps{state="filled"}'], 1)
        self.assertEqual(samples['campus_county_gaps{state="open"}'], 0)
        self.assertEqual(samples["campus_county_quarantined"], 0)
        self.assertEqual(samples['campus_county_broker_connected{session="ingest"}'], 1)
        self.assertEqual(samples["campus_county_database_up"], 1)
        self.assertEqual(samples['campus_county_schools{state="online"}'] +
                         samples['campus_county_schools{state="offline"}'], 2)
        self.assertGreaterEqual(samples["campus_county_messages_committed_total"], self.messages)
        self.assertEqual(Client(self.port).get("/metrics?x=1")[0], 400)

    def test_pages_asked_for_at_once_share_one_render_until_the_next_change(self):
        import threading

        def pages(how):
            body = Client(self.port).get("/metrics")[2]
            return int(re.search(rf'campus_county_dashboard_pages_total{{how="{how}"}} (\d+)', body).group(1))
        c = self.viewer()
        c.get("/api/plan")  # rendered: later requests share it
        rendered, shared = pages("rendered"), pages("shared")
        bodies = []
        threads = [threading.Thread(target=lambda: bodies.append(c.json("/api/plan")[1])) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(bodies), 10)
        self.assertTrue(all(b == bodies[0] for b in bodies))
        # Ten requests within the 2 s a render is shared: at most one more render (the clock).
        self.assertLessEqual(pages("rendered") - rendered, 1)
        self.assertGreaterEqual(pages("shared") - shared, 9)
        time.sleep(2.1)  # past its age: rendered again
        c.json("/api/plan")
        self.assertGreater(pages("rendered"), rendered)

    # ---- who may look ----
    def test_refusals_wrong_password_no_session_ended_session_and_too_many_failures(self):
        c = Client(self.port)
        status, _, body = c.login("ana", "not-her-password")
        self.assertEqual(status, 401)
        self.assertIn("用户名或密码错误", body)  # the configured language: Chinese
        status, _, body = c.login("nobody", VIEWER_PW)
        self.assertEqual(status, 401)
        self.assertNotIn("campus_session", c.cookies)
        # No session: the JSON says so, a page sends the browser to the login.
        status, j = c.json("/api/schools")
        self.assertEqual(status, 401)
        self.assertEqual(j["error"]["what"], "not logged in")
        status, headers, _ = c.get("/cases")
        self.assertEqual((status, headers["location"]), (303, "/login?next=/cases"))
        # A forged cookie is no session.
        c.cookies["campus_session"] = "0" * 64
        status, j = c.json("/api/schools")
        self.assertEqual((status, j["error"]["what"]), (401, "the session has ended"))
        # Logout ends the session at once.
        v = self.viewer()
        token = v.cookies["campus_session"]
        self.assertEqual(v.request("POST", "/logout")[0], 303)
        v.cookies["campus_session"] = token
        self.assertEqual(v.json("/api/schools")[0], 401)
        # Five wrong passwords for one user: refused for 15 minutes even with the right one.
        for _ in range(5):
            self.assertEqual(Client(self.port).login("lee", "guess")[0], 401)
        status, _, body = Client(self.port).login("lee", "lee-pass-0000")
        self.assertEqual(status, 429)
        self.assertIn("15", body)
        # Passwords never reach the log.
        out = self.coll.output()
        for secret in (VIEWER_PW, OPERATOR_PW, "lee-pass-0000", "not-her-password", "guess"):
            self.assertNotIn(secret, out)
        self.assertIn("login refused for user ana from 127.0.0.1: wrong user name or password", out)
        self.assertIn("login refused for user lee from 127.0.0.1: 5 failed attempts in 15 minutes", out)

    def test_a_session_past_its_lifetime_is_refused_and_reload_rereads_the_accounts(self):
        self.reload(session_lifetime="2s")
        try:
            c = self.viewer()
            self.assertEqual(c.json("/api/me")[0], 200)
            time.sleep(2.5)
            status, j = c.json("/api/me")
            self.assertEqual((status, j["error"]["what"]), (401, "the session has ended"))
        finally:
            self.reload(session_lifetime="1h")
        # A new account works after SIGHUP; a changed password ends the user's sessions.
        r = passwd(self.accounts, "kim", "viewer", "kim-pass-000000", iterations=20000)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("kim (viewer) written to", r.stdout)
        self.assertEqual(Client(self.port).login("kim", "kim-pass-000000")[0], 401)  # not read yet
        self.reload()
        k = Client(self.port)
        self.assertEqual(k.login("kim", "kim-pass-000000")[0], 303)
        self.assertEqual(k.json("/api/me")[0], 200)
        self.assertEqual(passwd(self.accounts, "kim", "viewer", "kim-pass-111111", iterations=20000).returncode, 0)
        self.reload()
        self.assertEqual(k.json("/api/me")[0], 401)

    def test_passwd_refuses_bad_input_and_the_accounts_file_is_not_world_readable(self):
        self.assertEqual(os.stat(self.accounts).st_mode & 0o777, 0o640)
        r = passwd(self.accounts, "bad:name", "viewer", "long-enough-pass")
        self.assertEqual(r.returncode, 1)
        self.assertIn("letters, digits", r.stderr)
        r = passwd(self.accounts, "short", "viewer", "abc")
        self.assertEqual(r.returncode, 1)
        self.assertIn("at least 10", r.stderr)
        r = passwd(self.accounts, "x", "admin", "long-enough-pass")
        self.assertNotEqual(r.returncode, 0)
        with open(self.accounts) as f:
            text = f.read()
        self.assertNotIn("bad:name", text)
        self.assertNotIn(VIEWER_PW, text)
        self.assertRegex(text, re.compile(r"^ana:viewer:pbkdf2-sha256\$600000\$[0-9a-f]{32}\$[0-9a-f]{64}$", re.M))

    # ---- bad input ----
    def raw(self, data):
        with socket.create_connection((LOOPBACK, self.port), timeout=10) as s:
            s.sendall(data)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    head, _, rest = out.partition(b"\r\n\r\n")
                    m = re.search(rb"Content-Length: (\d+)", head)
                    if m and len(rest) >= int(m.group(1)):
                        break
        return out.decode("utf-8", "replace")

    def test_bad_input_on_every_endpoint_gets_a_precise_4xx_and_changes_nothing(self):
        before = self.coll.scalar("SELECT COUNT(*) FROM message")
        c = self.viewer()
        cases = [
            ("GET", "/api/schools?sort=bogus", 400, "query parameter sort"),
            ("GET", "/api/schools?order=sideways", 400, "query parameter order"),
            ("GET", "/api/schools?limit=5", 400, "is not one this page takes"),
            ("GET", "/api/schools?q=a&q=b", 400, "given twice"),
            ("GET", "/api/schools?q=%zz", 400, "a '%' not followed by two hex digits"),
            ("GET", "/api/schools?q=%ff", 400, "not UTF-8"),
            ("GET", "/api/cases?state=maybe", 400, "query parameter state"),
            ("GET", "/api/plan?year=2025", 400, "is not one this page takes"),
            ("GET", "/api/quality?" + "&".join(f"p{i}=1" for i in range(40)), 400, "more than 32 parameters"),
            ("GET", "/api/schools?q=" + "a" * 2000, 400, "more than 1024"),
            ("GET", "/api/schools?q=" + "a" * 5000, 414, "more than 4096"),
            ("GET", "/api/nothing", 404, "no such page"),
            ("GET", "/static/%2e%2e/%2e%2e/etc/passwd", 400, "segment"),
            ("GET", "/%2e%2e%2fetc%2fpasswd", 400, "segment"),
            ("GET", "/schools%00.html", 400, "NUL"),
            ("GET", "/a\\..\\b", 400, "backslash"),
            ("POST", "/api/schools", 405, "is not allowed"),
            ("DELETE", "/api/cases", 405, "is not allowed"),
        ]
        for method, path, status, text in cases:
            with self.subTest(path=path[:60]):
                got, headers, body = c.request(method, path)
                self.assertEqual(got, status, body[:300])
                self.assertIn(text, body)
        # The raw request line with "..": refused before anything is looked up.
        out = self.raw(b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertTrue(out.startswith("HTTP/1.1 400"), out[:200])
        self.assertNotIn("root:", out)
        # Too much header, too much body, not a form, another site's form.
        out = self.raw(b"GET /plan HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        self.assertTrue(out.startswith("HTTP/1.1 431"), out[:200])
        out = self.raw(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                       b"Content-Length: 20000\r\n\r\n" + b"a" * 20000)
        self.assertTrue(out.startswith("HTTP/1.1 413"), out[:200])
        out = self.raw(b"GARBAGE\r\n\r\n")
        self.assertTrue(out.startswith("HTTP/1.1 400"), out[:200])
        got, _, body = Client(self.port).request("POST", "/login", body='{"user":"ana"}',
                                                 headers={"Content-Type": "application/json"})
        self.assertEqual(got, 415)
        got, _, body = Client(self.port).request("POST", "/login", {"user": "ana", "password": VIEWER_PW},
                                                 headers={"Origin": "http://evil.example"})
        self.assertEqual(got, 403)
        self.assertIn("is not this dashboard", body)
        # A login form's "next" never leads off the site.
        got, headers, _ = Client(self.port).request("POST", "/login", {"user": "ana", "password": VIEWER_PW,
                                                                       "next": "//evil.example/x"})
        self.assertEqual((got, headers["location"]), (303, "/plan"))
        # Nothing changed, and the dashboard still answers.
        self.assertEqual(self.coll.scalar("SELECT COUNT(*) FROM message"), before)
        self.assertEqual(c.json("/api/me")[0], 200)
        self.assertTrue(self.coll.proc.alive())

    # ---- the pages in a real browser ----
    def test_pages_in_chromium_login_plan_line_schools_and_chinese(self):
        from webdriver import Browser
        b = Browser()
        try:
            base = f"http://{LOOPBACK}:{self.port}"
            b.get(base + "/plan?lang=en")
            self.assertIn("/login?next=/plan", b.url())
            b.type("#user", "olu")
            b.type("#password", OPERATOR_PW)
            b.click("#submit")
            # A click that navigates may return before the new page is there: wait for its content.
            wait_until(lambda: 'class="actual" data-month' in b.source(), 10, what="the plan page after login")
            self.assertTrue(b.url().endswith("/plan"), b.url())
            dom = b.source()
            points = re.findall(r'<circle class="actual" data-month="([\d-]+)" data-share="([\d.]+)"', dom)
            self.assertEqual([(m, round(float(v), 3)) for m, v in points],
                             [("2026-10", 0.333), ("2026-11", 0.333), ("2026-12", 0.667)])
            self.assertRegex(dom, r'<polyline class="plan"[^>]+points="[\d, ]+"')
            self.assertIn("1 of 3 schools have no digital-campus figure", b.text("#unknown"))
            b.screenshot(os.path.join(ARTIFACTS, "plan-en.png"))

            b.get(base + "/schools?sort=school&order=desc")
            rows = re.findall(r'<tr data-school="([a-z-]+)">', b.source())
            self.assertEqual(rows, ["school-c", "school-b", "school-a"])
            self.assertIn("3 schools", b.text("#count"))
            b.screenshot(os.path.join(ARTIFACTS, "schools-en.png"))

            b.click('tr[data-school="school-b"] a')  # the drill-down
            wait_until(lambda: 'id="chart-coverage"' in b.source(), 10, what="school-b's page")
            self.assertEqual(b.text("#title"), "Mengpeng Middle")
            self.assertEqual(len(re.findall(r'<circle class="point"', b.source())), 9)  # 3 days, 3 room types
            b.screenshot(os.path.join(ARTIFACTS, "school-en.png"))
            b.get(base + "/schools")
            b.click("#lang-switch")  # to Chinese, kept in a cookie
            wait_until(lambda: "南伞中心小学" in b.source(), 10, what="the language switch")
            self.assertIn("lang=zh", b.url())
            self.assertEqual(b.text("#title"), "学校")
            self.assertIn("南伞中心小学", b.source())
            b.get(base + "/cases")
            self.assertEqual(b.text("#title"), "控辍案件")
            self.assertIn("attendance-S7-1", b.source())
            b.screenshot(os.path.join(ARTIFACTS, "cases-zh.png"))
            b.get(base + "/quality")
            self.assertEqual(b.text("#gaps-open"), "0")
            b.screenshot(os.path.join(ARTIFACTS, "quality-zh.png"))
            for name in ("plan-en", "schools-en", "school-en", "cases-zh", "quality-zh"):
                self.assertGreater(os.path.getsize(os.path.join(ARTIFACTS, name + ".png")), 10000)
            b.click("#logout")
            wait_until(lambda: 'id="login"' in b.source(), 10, what="the logout")
            b.get(base + "/schools")
            self.assertIn("/login", b.url())
        finally:
            b.close()


class DashboardLive(KnownCounty):
    """Pages refresh their figures within seconds of a commit, without a reload (/api/live)."""

    @classmethod
    def sections(cls):
        cls.accounts = os.path.join(cls.tmp, "accounts")
        assert passwd(cls.accounts, "ana", "viewer", VIEWER_PW, iterations=20000).returncode == 0
        cls.port = free_port()
        return {"dashboard": {"listen": f"{LOOPBACK}:{cls.port}", "accounts": cls.accounts}}

    def next_report(self, coverage, ts):
        seq = max(self.a.sent) + 1
        self.a.report(seq, "fiber", fiber_summary(coverage), ts=ts)
        return seq

    def test_the_quality_page_lists_the_audits_a_schools_health_says_fail(self):
        c = Client(self.port)
        self.assertEqual(c.login("ana", VIEWER_PW)[0], 303)
        self.assertEqual(c.json("/api/quality")[1]["audit_errors"], [])
        self.b._publish(self.b.topic("health"), self.b.envelope("health", {
            "version": "0.1.0", "outbox": {"depth": 0, "last_seq": max(self.b.sent), "oldest_unsent_age_s": None},
            "mqtt": {"session": 1}, "store": {"id": self.b.store, "created": "x", "recovered": None},
            "audits": {"fiber": {"ok": True, "runs": 9, "errors": 0},
                       "recording": {"ok": False, "runs": 9, "errors": 3, "last_run": "2026-12-01T10:00:00+08:00",
                                     "error": "recorder 10.0.0.9: connection refused"}}}), retain=True)
        wait_until(lambda: c.json("/api/quality")[1]["audit_errors"], 20, what="the failing audit")
        errors = c.json("/api/quality")[1]["audit_errors"]
        self.assertEqual([(e["school"], e["audit"], e["error"], e["errors"]) for e in errors],
                         [("school-b", "recording", "recorder 10.0.0.9: connection refused", 3)])
        self.assertIn("recorder 10.0.0.9: connection refused", c.get("/quality?lang=en")[2])

    def test_the_event_stream_says_which_schools_changed(self):
        c = Client(self.port)
        self.assertEqual(c.json("/api/live")[0], 401)
        self.assertEqual(c.login("ana", VIEWER_PW)[0], 303)
        with socket.create_connection((LOOPBACK, self.port), timeout=20) as s:
            s.sendall(f"GET /api/live HTTP/1.1\r\nHost: x\r\nCookie: campus_session={c.cookies['campus_session']}"
                      "\r\n\r\n".encode())
            got = b""
            while b"retry: 3000" not in got:
                got += s.recv(4096)
            self.assertIn(b"Content-Type: text/event-stream", got)
            self.next_report(0.7, "2026-12-02T09:00:00+08:00")
            while b"event: commit" not in got:
                got += s.recv(4096)
            while not got.endswith(b"\n\n"):
                got += s.recv(4096)
            data = json.loads(got.split(b"event: commit\ndata: ")[1].split(b"\n")[0])
            self.assertEqual(data["schools"], ["school-a"])

    def test_a_page_shows_a_new_commit_within_seconds_without_a_reload(self):
        from webdriver import Browser
        b = Browser()
        try:
            base = f"http://{LOOPBACK}:{self.port}"
            browser_login(b, base, "ana", VIEWER_PW)
            b.get(base + "/schools")
            wait_until(lambda: 'data-live="open"' in b.source(), 10, what="the live stream to open")
            row = lambda: re.search(r'<tr data-school="school-a">(.*?)</tr>', b.source(), re.S).group(1)  # noqa: E731
            self.assertNotIn("25%", row())
            t0 = time.monotonic()
            self.next_report(0.25, "2026-12-02T10:00:00+08:00")
            wait_until(lambda: "25%" in row(), 10, what="the new coverage on the page")
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, 5)
            self.assertRegex(b.source(), r'<body[^>]* data-refreshed="[1-9]')  # the same document: no reload
            b.screenshot(os.path.join(ARTIFACTS, "schools-live.png"))
            print(f"live update: {elapsed:.2f} s from publish to the page", file=sys.stderr)
        finally:
            b.close()


class DashboardCaseSteps(IntegrationTest):
    """An operator records a case step on the page; it goes to the real agent as `case.update`,
    shows as pending, and is confirmed when the agent's event reaches the county database."""

    def county_with_a_case(self, subject, overdue):
        """A broker, the collector with its dashboard (ana viewer, olu operator), and the real
        agent of school-a with one open case: (dashboard port, collector, operator Client, case)."""
        broker = start_broker(self, persistent=False)
        accounts = os.path.join(self.dir, "accounts")
        for user, role, pw in (("ana", "viewer", VIEWER_PW), ("olu", "operator", OPERATOR_PW)):
            self.assertEqual(passwd(accounts, user, role, pw, iterations=20000).returncode, 0)
        port = free_port()
        conf = collector_config(self.dir, broker.port, dashboard={"listen": f"{LOOPBACK}:{port}", "accounts": accounts})
        coll = Collector(self.dir, conf).start()
        self.addCleanup(coll.stop)
        findings = write_file(os.path.join(self.dir, "attendance.json"), json.dumps({
            "summary": {"open": 1, "overdue": int(overdue)},
            "case_actions": [{"kind": "open", "subject": subject, "details": {"class": "2-1", "overdue": overdue}}]}))
        start_insecure_agent(self, broker.port, "school-a", interval="1h", findings={"attendance": findings})
        op = Client(port)
        self.assertEqual(op.login("olu", OPERATOR_PW)[0], 303)
        cases = wait_until(lambda: op.json("/api/cases")[1]["cases"], 30, what="the agent's case in the county database")
        return port, coll, op, cases[0]

    def test_an_operator_records_a_step_the_real_agent_confirms_and_a_viewer_may_not(self):
        port, coll, op, case = self.county_with_a_case("S9001", True)
        self.assertEqual((case["subject"], case["stage"], case["pending"]), ("S9001", "open", []))

        # A viewer is refused, and nothing is sent.
        viewer = Client(port)
        self.assertEqual(viewer.login("ana", VIEWER_PW)[0], 303)
        form = {"school": "school-a", "case": case["id"], "action": "contacted", "note": "called the parents"}
        status, _, body = viewer.request("POST", "/api/cases/step", form)
        self.assertEqual(status, 403, body)
        self.assertIn("user ana is a viewer", body)
        agent_logs = glob.glob(os.path.join(self.dir, "**", "agent-*.log"), recursive=True)
        self.assertTrue(agent_logs)
        for p in agent_logs:
            with open(p) as f:
                self.assertNotIn("case.update", f.read())
        # Bad steps: precise 400s.
        for bad, text in [(dict(form, action="hugged"), "form field action"), (dict(form, school=""), "form field school"),
                          ({**form, "action": "note", "note": ""}, "a note step needs its text"),
                          (dict(form, extra="1"), "form field extra")]:
            status, _, body = op.request("POST", "/api/cases/step", bad)
            self.assertEqual(status, 400, body)
            self.assertIn(text, body)

        # The operator's step: pending, then accepted by the school, then confirmed by its event.
        t0 = time.monotonic()
        status, _, body = op.request("POST", "/api/cases/step", form)
        self.assertEqual(status, 202, body)
        step = json.loads(body)["case_step"]
        self.assertEqual((step["state"], step["by"], step["action"]), ("sent", "olu", "contacted"))

        def confirmed():
            k = next(k for k in op.json("/api/cases")[1]["cases"] if k["id"] == case["id"])
            return k if k["stage"] == "contacted" and not k["pending"] else None
        k = wait_until(confirmed, 30, what="the step confirmed by the agent's event")
        print(f"case step: {time.monotonic() - t0:.2f} s from the operator's click to the confirmed step",
              file=sys.stderr)
        self.assertEqual((k["steps"][-1]["action"], k["steps"][-1]["actor"], k["steps"][-1]["note"]),
                         ("contacted", "county:olu", "called the parents"))
        self.assertIn("dashboard: olu asks school-a to record contacted on case " + case["id"], coll.output())

        self.assertNotIn('class="step"', viewer.get("/cases")[2])  # no form for a viewer

        # The same through the page in Chromium: the operator's form, then the page refreshes itself.
        from webdriver import Browser
        b = Browser()
        try:
            base = f"http://{LOOPBACK}:{port}"
            browser_login(b, base, "olu", OPERATOR_PW)
            b.get(base + "/cases")
            wait_until(lambda: 'data-live="open"' in b.source() and 'form class="step"' in b.source(), 10,
                       what="the cases page with the operator's form")
            b.click('form.step option[value="visited"]')
            b.type('form.step input[name="note"]', "home visit 家访")
            b.click("form.step button")
            row = lambda: re.search(rf'<tr data-case="{case["id"]}">(.*?)</tr>', b.source(), re.S).group(1)  # noqa: E731
            wait_until(lambda: "visited (county:olu" in row(), 20, what="the visited step on the page")
            b.screenshot(os.path.join(ARTIFACTS, "case-step-en.png"))
        finally:
            b.close()
        k = next(k for k in op.json("/api/cases")[1]["cases"] if k["id"] == case["id"])
        self.assertEqual((k["stage"], k["steps"][-1]["note"]), ("visited", "home visit 家访"))

    def test_a_refused_step_shows_the_schools_reason(self):
        port, coll, op, case = self.county_with_a_case("S9002", False)
        form = {"school": "school-a", "case": case["id"], "action": "returned"}
        self.assertEqual(op.request("POST", "/api/cases/step", form)[0], 202)
        wait_until(lambda: op.json("/api/cases?state=all")[1]["cases"][0]["stage"] == "closed", 30, what="closed")
        # A step on a closed case: the school answers case_closed, the page says so.
        self.assertEqual(op.request("POST", "/api/cases/step", dict(form, action="note", note="late"))[0], 202)
        k = wait_until(lambda: next((k for k in op.json("/api/cases?state=all")[1]["cases"]
                                     if any(p["state"] == "refused" for p in k["pending"])), None), 30,
                       what="the refusal")
        refused = [p for p in k["pending"] if p["state"] == "refused"][0]
        self.assertTrue(refused["error"].startswith("case_closed: "), refused)


class DashboardTlsAndConfig(IntegrationTest):
    """HTTPS with a configured certificate, and the configuration errors of [dashboard]."""

    def check_config(self, dashboard):
        conf = collector_config(self.dir, free_port(), name=f"check{len(os.listdir(self.dir))}", dashboard=dashboard)
        return subprocess.run([collector_bin(), "--check-config", "--config", conf], capture_output=True, text=True,
                              timeout=30)

    def test_https_with_the_configured_certificate_and_secure_cookies(self):
        cert, key = os.path.join(self.dir, "web.crt"), os.path.join(self.dir, "web.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o600)
        accounts = os.path.join(self.dir, "accounts")
        self.assertEqual(passwd(accounts, "ana", "viewer", VIEWER_PW, iterations=20000).returncode, 0)
        broker = start_broker(self, persistent=False)
        port = free_port()
        conf = collector_config(self.dir, broker.port, dashboard={
            "listen": f"{LOOPBACK}:{port}", "accounts": accounts, "tls_cert": cert, "tls_key": key})
        coll = Collector(self.dir, conf).start()
        self.addCleanup(coll.stop)
        self.assertIn(f"dashboard: listening on https://127.0.0.1:{port}", coll.output())
        tls = ssl.create_default_context(cafile=cert)

        def https(method, path, body=None, cookie=None):
            c = http.client.HTTPSConnection(LOOPBACK, port, timeout=30, context=tls)
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
            if cookie:
                headers["Cookie"] = cookie
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            out = (r.status, r.getheader("Set-Cookie"), r.read().decode())
            c.close()
            return out

        status, cookie, _ = https("POST", "/login", urllib.parse.urlencode({"user": "ana", "password": VIEWER_PW}))
        self.assertEqual(status, 303)
        self.assertIn("; Secure", cookie)
        status, _, body = https("GET", "/api/me", cookie=cookie.split(";")[0])
        self.assertEqual((status, json.loads(body)["user"]), (200, "ana"))
        # Plain HTTP to the TLS port gets no page (the handshake fails), and the dashboard goes on.
        with self.assertRaises((http.client.HTTPException, OSError)):
            Client(port).get("/api/me")
        self.assertEqual(https("GET", "/metrics")[0], 200)

    def test_configuration_errors_of_the_dashboard(self):
        for dashboard, key, text in [
                ({"listen": "localhost:8480"}, "key dashboard.listen", "expected ADDRESS:PORT with an IP address"),
                ({"listen": "127.0.0.1:99999"}, "key dashboard.listen", "expected ADDRESS:PORT"),
                ({"listen": "127.0.0.1"}, "key dashboard.listen", "expected ADDRESS:PORT"),
                ({"listen": "0.0.0.0:8480"}, "key dashboard.listen", "passwords would cross the network in clear"),
                ({"listen": "127.0.0.1:8480", "tls_cert": "/nonexistent.crt"}, "key dashboard.tls_cert", ""),
                ({"listen": "127.0.0.1:8480", "session_lifetime": "forever"}, "key dashboard.session_lifetime", ""),
                ({"listen": "127.0.0.1:8480", "language": "fr"}, "key dashboard.language", "zh"),
                ({"listen": "127.0.0.1:8480", "colour": "red"}, "dashboard.colour", "")]:
            with self.subTest(dashboard=dashboard):
                r = self.check_config(dashboard)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(key, r.stderr)
                self.assertIn(text, r.stderr)
        r = self.check_config({"listen": "127.0.0.1:8480", "accounts": "/nonexistent"})
        self.assertEqual(r.returncode, 0, r.stderr)  # accounts may come later: nobody can log in until then
        self.assertIn('"listen": "127.0.0.1:8480"', r.stdout)


if __name__ == "__main__":
    unittest.main()
