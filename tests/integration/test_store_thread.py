"""The io_context never waits for the disk (docs/architecture.md "Threads"): the real agent,
committing a 60,000-student attendance report again and again (a school's whole roll, one
finding per student, about 4 MB of report), answers a county `ping` sent while such a report is
being stored within 200 ms at the 99th percentile of 50 pings (the windows from the agent's log:
the report handed to the store .. "stored"; the plugin's own work before it runs on the io
thread and is not the store's), keeps publishing its health and running its fiber audit, and a
SIGTERM that arrives while such a report is being stored ends the process within the stop bound
(systemd's TimeoutStopSec is 20 s; the agent's own bound on waiting for commits is 10 s).

The county side is Debian's python3-paho-mqtt (MQTT 5, TLS with the county's certificate): it
sends each ping with a Response Topic and Correlation Data and times the reply."""
import datetime
import json
import math
import os
import re
import signal
import threading
import time
import uuid

from harness import LOOPBACK, IntegrationTest, Proc, agent_bin, sanitizer_build, wait_until, write_file
from county import COUNTY, agent_config, make_certs, start_county_broker, write_findings

SCHOOL = "nansan"
STUDENTS = 60000


def roll(path, generation):
    """A 60,000-student report: every student a finding; a few hundred change state with each
    generation (absences come and go), so every commit writes events as well as the report."""
    findings = []
    for i in range(STUDENTS):
        absent = (i % 200) == (generation % 200)
        findings.append({"subject": f"S{i:06d}", "state": "absent_run" if absent else "ok",
                         "reason": "3 school days unexcused" if absent else "",
                         "details": {"class": f"{1 + i % 6}-{1 + (i // 6) % 8}"}})
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"summary": {"students": STUDENTS, "generation": generation}, "findings": findings}, f)
    os.replace(tmp, path)


class County:
    """The county's requester: pings over MQTT 5 and the time to each reply."""

    def __init__(self, port, certs):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        self.mqtt, self.Properties, self.PacketTypes = mqtt, Properties, PacketTypes
        self.reply_topic = f"campus/v1/{COUNTY}/all/reply/storetest"
        self.lock = threading.Lock()
        self.sent = {}     # corr -> monotonic time sent
        self.latency = {}  # corr -> seconds to the reply
        self.bodies = {}   # corr -> the reply's body
        self.c = mqtt.Client(client_id="county-storetest", protocol=mqtt.MQTTv5)
        self.c.tls_set(ca_certs=f"{certs}/ca.crt", certfile=f"{certs}/county.crt", keyfile=f"{certs}/county.key")
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a, **k: subscribed.set()
        connected = threading.Event()
        self.c.on_connect = lambda *a, **k: connected.set()
        self.c.connect(LOOPBACK, port, keepalive=30)
        self.c.loop_start()
        assert connected.wait(10), "the county could not connect"
        self.c.subscribe(f"campus/v1/{COUNTY}/+/reply/storetest", qos=1)
        assert subscribed.wait(10), "the county could not subscribe"

    def _on_message(self, client, userdata, msg):
        now = time.monotonic()
        corr = getattr(msg.properties, "CorrelationData", b"").decode()
        with self.lock:
            if corr in self.sent and corr not in self.latency:
                self.latency[corr] = now - self.sent[corr]
                try:
                    self.bodies[corr] = json.loads(msg.payload)["body"]
                except (ValueError, KeyError):
                    self.bodies[corr] = None

    def ping(self, request=None):
        """Sends one ping (or `request`); returns (its correlation, the wall time it was sent)."""
        corr = uuid.uuid4().hex
        props = self.Properties(self.PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = corr.encode()
        with self.lock:
            self.sent[corr] = time.monotonic()
            wall = time.time()
        self.c.publish(f"campus/v1/{COUNTY}/{SCHOOL}/cmd", json.dumps(request or {"cmd": "ping"}), qos=1,
                       properties=props)
        return corr, wall

    def request(self, request):
        corr, _ = self.ping(request)
        wait_until(lambda: corr in self.bodies, 15, what=f"the reply to {request}")
        return self.bodies[corr]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


LOG_TIME = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) "


def commit_windows(log):
    """(start, end) wall times of each attendance commit: from the mark logged just before the
    report goes to the store to the line saying it was stored."""
    def wall(stamp):
        return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    windows, start = [], None
    for line in log.splitlines():
        m = re.match(LOG_TIME, line)
        if not m:
            continue
        if "audit attendance: testaudit: roll handed to the store" in line:
            start = wall(m.group(1))
        elif "audit attendance: report seq" in line and start is not None:
            windows.append((start, wall(m.group(1))))
            start = None
    return windows


def percentile(values, p):
    """Nearest rank: of 50 values, p99 is the largest."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


class StoreThread(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.certs = make_certs(self.dir, [SCHOOL])
        self.broker = self.track(start_county_broker(self.dir, self.certs))
        self.findings = os.path.join(self.dir, "roll.json")
        roll(self.findings, 0)
        write_findings(os.path.join(self.dir, "fiber.json"), 0)
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("attendance", "fiber"),
                            interval="1s", findings={"attendance": self.findings,
                                                     "fiber": os.path.join(self.dir, "fiber.json")})
        # The attendance audit logs an input error just before it hands its report to the store:
        # the test's mark for "a commit starts now".
        with open(conf) as f:
            text = f.read()
        text = text.replace(f'findings_file = "{self.findings}"',
                            f'findings_file = "{self.findings}"\ninput_error = "roll handed to the store"\n'
                            f'timeout = "60s"')
        self.conf = write_file(conf, text)

    def start_agent(self):
        agent = self.track(Proc("agent", [agent_bin(), "--config", self.conf], self.dir))
        wait_until(lambda: "connected to" in agent.output() or not agent.alive(), 30, what="the agent to connect")
        self.assertTrue(agent.alive(), agent.output())
        return agent

    def stored_rolls(self, agent):
        return agent.output().count("audit attendance: report seq")

    def test_ping_is_answered_within_200ms_while_the_agent_stores_60000_students(self):
        agent = self.start_agent()
        # The first roll is stored (60,000 new subjects), so the ones measured are steady commits.
        wait_until(lambda: self.stored_rolls(agent) >= 1 or not agent.alive(), 120, what="the first roll stored")
        county = County(self.broker.port, self.certs)
        try:
            generation, sent, inside = 1, [], []
            deadline = time.monotonic() + 60
            # A ping every 20 ms until 50 of them were sent while a roll was being stored.
            while len(inside) < 50 and time.monotonic() < deadline:
                if len(sent) % 25 == 0:
                    generation += 1
                    roll(self.findings, generation)
                sent.append(county.ping())
                time.sleep(0.02)
                windows = commit_windows(agent.output())
                inside = [c for c, t in sent if any(a <= t <= b for a, b in windows)]
            self.assertGreaterEqual(len(inside), 50, f"only {len(inside)} pings fell in {len(windows)} commits")
            inside = inside[:50]
            wait_until(lambda: all(c in county.latency for c, _ in sent), 30, what="a reply to every ping")
            lat = [county.latency[c] * 1000 for c in inside]
            every = [county.latency[c] * 1000 for c, _ in sent]
        finally:
            county.close()
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        print(f"\nping sent during 60,000-student commits: p50 {p50:.1f} ms, p99 {p99:.1f} ms (50 pings in "
              f"{len(windows)} commits); every ping of the run: p50 {percentile(every, 50):.1f} ms, "
              f"p99 {percentile(every, 99):.1f} ms, max {max(every):.1f} ms ({len(every)} pings)")
        if sanitizer_build():
            return  # a sanitizer build is 5-20x slower: every ping answered is its bar
        self.assertLess(p99, 200, f"ping latencies (ms): {sorted(round(x) for x in lat)}")
        self.assertTrue(agent.alive())

    def test_sigterm_while_a_roll_is_being_stored_exits_within_the_stop_bound(self):
        agent = self.start_agent()
        wait_until(lambda: self.stored_rolls(agent) >= 1 or not agent.alive(), 120, what="the first roll stored")
        roll(self.findings, 7)
        marks = agent.output().count("roll handed to the store")
        wait_until(lambda: agent.output().count("roll handed to the store") > marks, 30, what="the next roll's commit")
        t0 = time.monotonic()
        os.kill(agent.pid, signal.SIGTERM)
        wait_until(lambda: not agent.alive(), 30, what="the agent to exit after SIGTERM")
        took = time.monotonic() - t0
        print(f"\nSIGTERM during a 60,000-student commit: exited after {took:.2f} s")
        out = agent.output()
        self.assertIn("SIGTERM: stopping", out)
        self.assertIn("stopped", out)
        self.assertLess(took, 15 if not sanitizer_build() else 30)


class StoreErrors(IntegrationTest):
    """A store that cannot be read is never answered as "nothing there": the running agent's
    database is damaged under it (the cases and reports tables' root pages pointed past the end
    of the file, as a bad sector or a bad write would leave them: SQLite then says "database disk
    image is malformed"); `cases`, `report` and `status` reply store_error with the file and
    SQLite's error, `ping` still answers, the agent keeps running."""

    def test_cases_report_and_status_say_store_error_when_the_store_cannot_be_read(self):
        import sqlite3
        certs = make_certs(self.dir, [SCHOOL])
        broker = self.track(start_county_broker(self.dir, certs))
        findings = os.path.join(self.dir, "attendance.json")
        write_file(findings, json.dumps({"summary": {"open": 1}, "case_actions": [
            {"kind": "open", "subject": "S000001", "details": {"class": "3-2"}}]}))
        conf = agent_config(self.dir, SCHOOL, broker.port, certs, audits=("attendance",), interval="1h",
                            findings={"attendance": findings})
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: "audit attendance: report seq" in agent.output() or not agent.alive(), 30,
                   what="the first report stored")
        wait_until(lambda: "connected to" in agent.output(), 30, what="the agent to connect")
        county = County(broker.port, certs)
        try:
            body = county.request({"cmd": "cases"})
            self.assertTrue(body["ok"], body)
            self.assertEqual(body["result"]["count"], 1)
            self.assertTrue(county.request({"cmd": "report", "audit": "attendance"})["ok"])

            db = sqlite3.connect(os.path.join(self.dir, "data", "agent.db"), timeout=10)
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            version = db.execute("PRAGMA schema_version").fetchone()[0]
            db.execute("PRAGMA writable_schema = ON")
            db.execute("UPDATE sqlite_master SET rootpage = ? WHERE name IN ('cases', 'reports')", (pages + 1000,))
            db.execute(f"PRAGMA schema_version = {version + 1}")
            db.commit()
            db.close()

            for request in ({"cmd": "cases"}, {"cmd": "report", "audit": "attendance"}, {"cmd": "status"}):
                body = county.request(request)
                self.assertFalse(body["ok"], (request, body))
                self.assertEqual(body["error"]["code"], "store_error", (request, body))
                self.assertIn("agent.db", body["error"]["message"])
                self.assertIn("malformed", body["error"]["message"])
            self.assertTrue(county.request({"cmd": "ping"})["ok"])
            self.assertTrue(agent.alive(), agent.output())
        finally:
            county.close()
