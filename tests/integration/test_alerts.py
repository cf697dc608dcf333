"""campus-county's alerts: the real collector, fake schools on a real Mosquitto, and group robots
on 127.0.0.1 that speak WeCom's and DingTalk's webhook APIs (tests/sim/robots.py: their request
shapes, errcodes, rate limits, DingTalk's signature) and a generic JSON webhook. Rules fire once
and resolve once on every channel; failed deliveries are retried with backoff; the outbox
survives a restart; a crash between sending and recording repeats that one message once (the
repeat carries the same ids), never more; the history page and /metrics show them."""
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest

from collector import Collector, FakeSchool, collector_bin, collector_config, fiber_summary, start_broker
from harness import LOOPBACK, IntegrationTest, free_port, wait_until, write_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
from robots import Robots  # noqa: E402

WECOM, DING, HOOK = "/cgi-bin/webhook/send", "/robot/send", "/hook"
DING_SECRET = "SECsimulated-dingtalk-secret"
CASE = {"id": "attendance-S7-1", "subject": "S7", "stage": "open", "opened_at": "2026-11-11T10:00:00+08:00",
        "details": {"class": "2-1", "overdue": True, "deadline": "2026-11-18"},
        "steps": [{"at": "2026-11-11T10:00:00+08:00", "action": "opened", "actor": "agent", "note": ""}]}


def coverage(c):
    s = fiber_summary(1.0)
    s["classroom"] = {"rooms": 10, "covered": round(10 * c), "coverage": c}
    return s


def lines_of(message):
    """(alert id, "firing"|"resolved") of each alert a robot or webhook message carries."""
    body = message["body"]
    if message["path"] == HOOK:
        return [(a["alert"], a["state"]) for a in body["alerts"]]
    text = body["markdown"]["content"] if message["path"] == WECOM else body["markdown"]["text"]
    out = []
    for line in text.splitlines():
        m = re.search(r"`#(\d+)`$", line)
        if m:
            out.append((int(m.group(1)), "resolved" if "RESOLVED" in line else "firing"))
    return out


class Alerts(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.robots = Robots(wecom_keys=["wecom-key"], dingtalk_tokens={"ding-token": DING_SECRET})
        self.addCleanup(self.robots.stop)
        self.broker = start_broker(self)
        self.schools = []

    def tearDown(self):
        for s in self.schools:
            s.close()
        super().tearDown()

    def collector(self, channels=("it", "bureau", "noc"), timeout="3s", dashboard=None, **alerts):
        secret = write_file(os.path.join(self.dir, "ding-secret"), DING_SECRET + "\n", mode=0o600)
        wecom_url = write_file(os.path.join(self.dir, "wecom-url"), self.robots.url(WECOM + "?key=wecom-key") + "\n",
                               mode=0o600)
        tables = {"alerts": {"every": "300ms", "offline_after": "2s", "coverage_below": 0.9,
                             "recording_failing_for": "1s", "retry_min": "200ms", "retry_max": "1s",
                             "rate_limit_wait": "1s", "language": "en", **alerts}}
        known = {"it": {"kind": "wecom", "url_file": wecom_url, "timeout": timeout},
                 "bureau": {"kind": "dingtalk", "url": self.robots.url(DING + "?access_token=ding-token"),
                            "secret_file": secret, "timeout": timeout},
                 "noc": {"kind": "webhook", "url": self.robots.url(HOOK), "timeout": timeout}}
        for name in channels:
            tables[f"alerts.channel.{name}"] = known[name]
        if dashboard:
            tables["dashboard"] = dashboard
        conf = collector_config(self.dir, self.broker.port, **tables)
        return Collector(self.dir, conf)

    def school(self, code="school-a"):
        s = FakeSchool(self.broker.port, code)
        self.schools.append(s)
        s.birth(0)
        return s

    def heartbeat(self, school):
        """Health every 0.5 s, as a running agent's keeps a school from looking silent; call
        the returned function to stop it (as an agent going offline stops)."""
        stop = threading.Event()

        def beat():
            while not stop.wait(0.5):
                school.health()
        t = threading.Thread(target=beat, daemon=True)
        t.start()
        self.addCleanup(stop.set)

        def halt():
            stop.set()
            t.join(5)
        return halt

    def seen(self, path):
        """{(alert, transition): number of messages that carried it} on one channel."""
        out = {}
        for m in self.robots.messages(path):
            for key in lines_of(m):
                out[key] = out.get(key, 0) + 1
        return out

    def alert_ids(self, coll):
        return {r["key"]: r["id"] for r in coll.sql("SELECT id, key FROM alert")}

    # ---------------------------------------------------------------------------------------
    def test_each_rule_fires_once_and_resolves_once_on_every_channel(self):
        from test_dashboard import OPERATOR_PW, Client, passwd
        accounts = os.path.join(self.dir, "accounts")
        self.assertEqual(passwd(accounts, "olu", "operator", OPERATOR_PW, 20000).returncode, 0)
        web = free_port()
        coll = self.collector(dashboard={"listen": f"{LOOPBACK}:{web}", "accounts": accounts}).start()
        a = self.school()
        halt = self.heartbeat(a)
        a.report(1, "fiber", coverage(0.5))
        a.report(2, "recording", {"classrooms": 2, "compliant": 1},
                 findings=[{"subject": "R301", "state": "failing", "reason": "no RTSP stream"},
                           {"subject": "R302", "state": "compliant"}])
        a.event(3, "attendance", body={"subject": CASE["id"], "case": CASE, "from": None, "to": "open"})
        keys = ["coverage/school-a/classroom", "recording/school-a/R301", "case/school-a/attendance-S7-1"]
        wait_until(lambda: all(k in self.alert_ids(coll) for k in keys), 30, what="three alerts")
        ids = self.alert_ids(coll)
        for path in (WECOM, DING, HOOK):
            wait_until(lambda: all((ids[k], "firing") in self.seen(path) for k in keys), 30,
                       what=f"the three firings on {path}")
        # The recording classroom fires after recording_failing_for, not at once.
        rec = coll.sql("SELECT since_ms, fired_ms FROM alert WHERE key = 'recording/school-a/R301'")[0]
        self.assertGreaterEqual(rec["fired_ms"] - rec["since_ms"], 1000)

        # Fixed: coverage and the classroom resolve; the case stays overdue.
        a.report(4, "fiber", coverage(1.0))
        a.report(5, "recording", {"classrooms": 2, "compliant": 2}, findings=[])
        for path in (WECOM, DING, HOOK):
            wait_until(lambda: (ids[keys[0]], "resolved") in self.seen(path) and
                       (ids[keys[1]], "resolved") in self.seen(path), 30, what=f"the resolutions on {path}")

        # Offline longer than offline_after: fires; back: resolves.
        halt()
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        a._publish(a.topic("state"), a.envelope("state", {"online": False, "session": a.session, "last_seq": 5,
                                                          "reason": "will"}, ts=now), retain=True)
        wait_until(lambda: "offline/school-a" in self.alert_ids(coll), 30, what="the offline alert")
        row = coll.sql("SELECT a.fired_ms - s.state_at_ms AS after FROM alert a JOIN school s ON s.school = a.school "
                       "WHERE a.key = 'offline/school-a'")[0]
        self.assertGreaterEqual(row["after"], 1900)  # offline_after is 2 s
        off = self.alert_ids(coll)["offline/school-a"]
        wait_until(lambda: (off, "firing") in self.seen(HOOK), 30, what="the offline alert delivered")
        a.birth()
        self.heartbeat(a)
        wait_until(lambda: all((off, "resolved") in self.seen(p) for p in (WECOM, DING, HOOK)), 30,
                   what="the offline alert resolved everywhere")
        time.sleep(1.5)  # several more evaluations: nothing fires or resolves again

        for path in (WECOM, DING, HOOK):
            seen = self.seen(path)
            self.assertTrue(all(n == 1 for n in seen.values()), (path, seen))
            self.assertEqual(sorted(seen), sorted([(ids[k], "firing") for k in keys] +
                                                  [(ids[keys[0]], "resolved"), (ids[keys[1]], "resolved"),
                                                   (off, "firing"), (off, "resolved")]))
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM alert"), 4)
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM alert_delivery WHERE state <> 'delivered'"), 0)
        # DingTalk's requests were signed (the simulator refuses a bad or missing sign).
        for m in self.robots.messages(DING):
            self.assertIn("sign", m["query"])
            self.assertIn("timestamp", m["query"])
        hook = self.robots.messages(HOOK)[0]
        self.assertTrue(hook["headers"]["Idempotency-Key"].startswith("campus-deliveries-"))
        self.assertEqual(hook["body"]["county"], "zhenkang")
        wecom_text = self.robots.messages(WECOM)[0]["body"]["markdown"]["content"]
        self.assertIn("campus alert", wecom_text)
        self.assertIn("fiber coverage of classrooms 50%, below 90%", wecom_text)
        # The robot's key (its password) is never in the log.
        self.assertNotIn("wecom-key", coll.output())

        # The history page and its JSON, and /metrics.
        c = Client(web)
        self.assertEqual(c.login("olu", OPERATOR_PW)[0], 303)
        status, body = c.json("/api/alerts")
        self.assertEqual(status, 200)
        self.assertEqual(body["totals"]["firing"], 1)  # the overdue case
        self.assertEqual({a["key"] for a in body["alerts"]}, set(keys) | {"offline/school-a"})
        self.assertTrue(all(d["state"] == "delivered" for a in body["alerts"] for d in a["deliveries"]))
        status, body = c.json("/api/alerts?state=active")
        self.assertEqual([a["key"] for a in body["alerts"]], [keys[2]])
        status, _, html = c.get("/alerts?lang=en")
        self.assertEqual(status, 200)
        self.assertIn('data-key="recording/school-a/R301"', html)
        self.assertEqual(c.get("/alerts?state=bogus")[0], 400)
        status, _, metrics = c.get("/metrics")
        self.assertIn('campus_county_alerts{state="firing"} 1', metrics)
        self.assertIn('campus_county_alert_deliveries{channel="it",state="delivered"}', metrics)
        self.assertRegex(metrics, r'campus_county_alerts_delivered_total\{channel="noc"\} [1-9]')
        from webdriver import Browser
        from test_dashboard import ARTIFACTS, browser_login
        b = Browser()
        try:
            browser_login(b, f"http://{LOOPBACK}:{web}", "olu", OPERATOR_PW, then="/alerts?lang=zh")
            wait_until(lambda: 'id="alerts"' in b.source(), 10, what="the alerts page")
            self.assertEqual(b.text("#title"), "告警")
            os.makedirs(ARTIFACTS, exist_ok=True)
            b.screenshot(os.path.join(ARTIFACTS, "alerts-zh.png"))
        finally:
            b.close()

    def test_failures_are_retried_with_backoff_until_delivered_once(self):
        coll = self.collector(channels=("it",), rules=["coverage"]).start()
        # System busy twice, the rate limit, a server error: then it gets through, once.
        self.robots.fail(2, "busy")
        self.robots.fail(1, "rate")
        self.robots.fail(1, "http500")
        a = self.school()
        a.report(1, "fiber", coverage(0.5))
        wait_until(lambda: self.robots.messages(WECOM), 30, what="the alert through the failures")
        time.sleep(1)
        self.assertEqual(len(self.robots.messages(WECOM)), 1)
        self.assertEqual([code for _, code in self.robots.answers], [-1, -1, 45009, "http500", 0])
        row = coll.sql("SELECT state, attempts FROM alert_delivery")[0]
        self.assertEqual((row["state"], row["attempts"]), ("delivered", 5))
        out = coll.output()
        self.assertIn("errcode 45009 api freq out of limit", out)
        self.assertIn("HTTP 500", out)
        # A wrong key is the operator's to fix: said with the fix, and retried meanwhile.
        self.robots.wecom_keys = set()
        a.report(2, "fiber", coverage(1.0))
        wait_until(lambda: "invalid webhook url" in coll.output(), 30, what="the wrong key")
        self.assertIn("check url", coll.output())
        self.robots.wecom_keys = {"wecom-key"}
        wait_until(lambda: len(self.robots.messages(WECOM)) == 2, 30, what="the resolution once the key is right")

    def test_the_outbox_survives_a_restart(self):
        coll = self.collector(channels=("noc",), rules=["coverage"]).start()
        self.robots.fail(1000, "http500")
        a = self.school()
        a.report(1, "fiber", coverage(0.5))
        wait_until(lambda: coll.scalar("SELECT COALESCE(MAX(attempts), 0) FROM alert_delivery") >= 2, 30,
                   what="failed attempts")
        coll.stop()
        self.robots.recover()
        coll.start()
        wait_until(lambda: self.robots.messages(HOOK), 30, what="the delivery after the restart")
        time.sleep(1.5)
        self.assertEqual(len(self.robots.messages(HOOK)), 1)
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM alert"), 1)  # not fired again by the new run
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM alert_delivery WHERE state = 'delivered'"), 1)

    def test_a_crash_between_sending_and_recording_repeats_that_message_once(self):
        # The webhook takes the message and holds its answer; the collector dies before it hears.
        coll = self.collector(channels=("noc",), timeout="2s", rules=["coverage"]).start()
        self.robots.hold(8)
        a = self.school()
        a.report(1, "fiber", coverage(0.5))
        wait_until(lambda: self.robots.messages(HOOK), 30, what="the first send")
        coll.kill()
        self.assertEqual(coll.scalar("SELECT state FROM alert_delivery"), "sending")
        coll.start()
        # Claimed again once the dead run's lease (2 x timeout + 2 s) is over, sent once more.
        wait_until(lambda: coll.scalar("SELECT state FROM alert_delivery") == "delivered", 30, what="the redelivery")
        time.sleep(2)
        sent = self.robots.messages(HOOK)
        self.assertEqual(len(sent), 2)
        self.assertEqual(sent[0]["headers"]["Idempotency-Key"], sent[1]["headers"]["Idempotency-Key"])
        self.assertEqual([x["id"] for x in sent[0]["body"]["alerts"]], [x["id"] for x in sent[1]["body"]["alerts"]])
        self.assertEqual([x["attempt"] for x in sent[1]["body"]["alerts"]], [2])
        self.assertEqual(coll.scalar("SELECT attempts FROM alert_delivery"), 2)

    def test_configuration_errors_name_the_key_and_the_fix(self):
        def check(alerts, channel):
            conf = collector_config(self.dir, free_port(), name=f"check{len(os.listdir(self.dir))}",
                                    alerts=alerts, **{"alerts.channel.x": channel})
            r = subprocess.run([collector_bin(), "--check-config", "--config", conf], capture_output=True, text=True,
                               timeout=30)
            return r.returncode, r.stdout + r.stderr
        good = {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}
        self.assertEqual(check({}, good)[0], 0)
        cases = [({"rules": ["offline", "weather"]}, good, 'key alerts.rules: unknown rule "weather"'),
                 ({}, {"kind": "slack", "url": "http://127.0.0.1:9/"}, "key alerts.channel.x.kind"),
                 ({}, {"kind": "wecom"}, "a channel needs url or url_file"),
                 ({}, {"kind": "webhook", "url": "ftp://127.0.0.1/"}, "is not an http(s) URL"),
                 ({}, {"kind": "wecom", "url": "http://127.0.0.1:9/", "secret_file": "/nonexistent"}, "secret_file"),
                 ({"every": "soon"}, good, "key alerts.every"),
                 ({"coverage_below": 1.5}, good, "key alerts.coverage_below"),
                 ({}, dict(good, rules=["gap_lost", "nope"]), 'key alerts.channel.x.rules: unknown rule "nope"'),
                 ({}, dict(good, colour="red"), "alerts.channel.x.colour")]
        for alerts, channel, want in cases:
            code, out = check(alerts, channel)
            self.assertNotEqual(code, 0, (alerts, channel))
            self.assertIn(want, out, (alerts, channel))


if __name__ == "__main__":
    unittest.main()
