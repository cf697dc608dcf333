"""County requests and replies (issue 7) against the real campus-agent binary and a real
Mosquitto with TLS, client certificates and the shipped ACL: every command, the broadcast to
`all` answered by 3 agents, every bad request's error code, duplicate requests, case.update
through its stages with the events, and campusctl (status, cases, case update, resend, audit,
watch, --json, report --html rendered in headless Chromium)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

from county import reply_body_errors, schema_errors
from harness import (BIN, LOOPBACK, PLUGINS, Proc, agent_bin, complete_lines, make_certs, start_tls_mosquitto,
                     tls_client_args, wait_until, write_file)

COUNTY = "zhenkang"
SCHOOLS = ["school-a", "school-b", "school-c"]


def fiber_summary(cls, fn, off):
    def part(covered, rooms):
        return {"rooms": rooms, "covered": covered, "degraded": 0, "down": rooms - covered, "not_planned": 0,
                "unknown": 0, "coverage": covered / rooms}
    c, f, o = part(*cls), part(*fn), part(*off)
    rooms = cls[1] + fn[1] + off[1]
    covered = cls[0] + fn[0] + off[0]
    return {"classroom": c, "function_room": f, "office": o,
            "overall": {"rooms": rooms, "covered": covered, "coverage": covered / rooms}}


# The three simulated schools: school-a meets every target; school-b has a room without fiber, a
# non-compliant recording classroom and two open cases (one overdue); school-c one open case.
STATES = {
    "school-a": {"fiber": fiber_summary((10, 10), (4, 4), (3, 3)),
                 "recording": {"classrooms": 5, "compliant": 5, "compliant_ratio": 1.0},
                 "attendance": {"open": 0, "overdue": 0}, "cases": []},
    "school-b": {"fiber": fiber_summary((9, 10), (4, 4), (2, 2)),
                 "recording": {"classrooms": 4, "compliant": 3, "compliant_ratio": 0.75},
                 "attendance": {"open": 2, "overdue": 1},
                 "cases": [{"kind": "open", "subject": "S2001", "details": {"class": "3-2", "overdue": True}},
                           {"kind": "open", "subject": "S2002", "details": {"class": "5-1", "overdue": False}}]},
    "school-c": {"fiber": fiber_summary((6, 6), (2, 2), (1, 1)),
                 "recording": {"classrooms": 2, "compliant": 2, "compliant_ratio": 1.0},
                 "attendance": {"open": 1, "overdue": 0},
                 "cases": [{"kind": "open", "subject": "S3001", "details": {"class": "1-1", "overdue": False}}]},
}


def agent_config(tmp, certs, port, school, recording_delay="0s"):
    data = os.path.join(tmp, school, "data")
    audits = ""
    for audit in ("fiber", "recording", "attendance"):
        delay = recording_delay if audit == "recording" else "0s"
        audits += (f'\n[audits.{audit}]\nplugin = "testaudit"\nfindings_file = "{tmp}/{school}/{audit}.json"\n'
                   f'interval = "1h"\njitter = "0s"\nfirst_delay = "0s"\ntimeout = "30s"\ndelay = "{delay}"\n')
    return f"""
[agent]
county = "{COUNTY}"
school = "{school}"
data_dir = "{data}"
plugin_dir = "{PLUGINS}"

[mqtt]
host = "{LOOPBACK}"
port = {port}
ca_file = "{certs}/ca.crt"
cert_file = "{certs}/{school}.crt"
key_file = "{certs}/{school}.key"
reconnect_min = "100ms"
reconnect_max = "1s"
health_interval = "1s"
{audits}"""


def write_findings(tmp, school, with_cases):
    st = STATES[school]
    write_file(os.path.join(tmp, school, "fiber.json"), json.dumps({"summary": st["fiber"], "findings": [
        {"subject": "R101", "state": "covered"},
        {"subject": "R102", "state": "covered" if school != "school-b" else "down", "reason": "link down"}]}))
    write_file(os.path.join(tmp, school, "recording.json"), json.dumps({"summary": st["recording"]}))
    write_file(os.path.join(tmp, school, "attendance.json"), json.dumps({
        "summary": st["attendance"], "case_actions": st["cases"] if with_cases else []}))


class Replies:
    """Every reply to requester `name` from any school: mosquitto_sub as the county."""

    def __init__(self, tmp, certs, port, name):
        self.name = name
        self.path = os.path.join(tmp, f"replies-{name}.log")
        self.proc = Proc(f"replies-{name}", ["mosquitto_sub", "-V", "mqttv5", "-h", LOOPBACK, "-p", str(port),
                                             *tls_client_args(certs, "county"), "-q", "1",
                                             "-t", f"campus/v1/{COUNTY}/+/reply/{name}",
                                             "-F", "%t\t%D\t%p"], tmp)

    def all(self):
        out = []
        for line in complete_lines(self.proc.output()):
            parts = line.split("\t", 2)
            if len(parts) == 3:
                try:
                    out.append({"topic": parts[0], "corr": parts[1], "env": json.loads(parts[2])})
                except ValueError:
                    pass
        return out

    def for_corr(self, corr):
        return [r for r in self.all() if r["corr"] == corr]


class CountyFixture(unittest.TestCase):
    """One broker, three agents per class (starting them is the slow part); a class may run fewer
    (`schools`)."""
    schools = SCHOOLS

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="campus-county-")
        os.chmod(cls.tmp, 0o755)
        cls.certs = make_certs(os.path.join(cls.tmp, "certs"), COUNTY, SCHOOLS)
        cls.broker = start_tls_mosquitto(cls.tmp, cls.certs)
        cls.port = cls.broker.port
        cls.events = Proc("county-all", ["mosquitto_sub", "-V", "mqttv5", "-h", LOOPBACK, "-p", str(cls.port),
                                         *tls_client_args(cls.certs, "county"), "-q", "1", "-t",
                                         f"campus/v1/{COUNTY}/#", "-F", "%r\t%t\t%p"], cls.tmp)
        cls.replies = Replies(cls.tmp, cls.certs, cls.port, "t1")
        cls.agents = {}
        # Started together: each agent is its own process, so they connect in parallel.
        for s in cls.schools:
            write_findings(cls.tmp, s, with_cases=True)
            conf = write_file(os.path.join(cls.tmp, s, "agent.toml"),
                              agent_config(cls.tmp, cls.certs, cls.port, s,
                                           recording_delay="3s" if s == "school-c" else "0s"))
            cls.agents[s] = Proc(f"agent-{s}", [agent_bin(), "--config", conf], cls.tmp)
        for s in cls.schools:
            wait_until(lambda s=s: "connected to" in cls.agents[s].output() or not cls.agents[s].alive(), 30,
                       what=f"{s} to connect")
            wait_until(lambda s=s: cls.agents[s].output().count("stored with") >= 3 or not cls.agents[s].alive(), 30,
                       what=f"{s} to store its first reports")
            assert cls.agents[s].alive(), cls.agents[s].output()
            write_findings(cls.tmp, s, with_cases=False)  # cases stay open; later runs open none
        # Subscriptions of the agents are in place once they are connected; give SUBACKs a moment.
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        for p in [*cls.agents.values(), cls.replies.proc, cls.events, cls.broker]:
            p.stop(5)
        if os.environ.get("CAMPUS_KEEP_TMP"):
            print(f"kept {cls.tmp}")
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----
    def publish(self, topic, payload, response_topic=None, corr=None, file=None):
        args = ["mosquitto_pub", "-V", "mqttv5", "-h", LOOPBACK, "-p", str(self.port),
                *tls_client_args(self.certs, "county"), "-q", "1", "-t", topic]
        if response_topic:
            args += ["-D", "publish", "response-topic", response_topic]
        if corr:
            args += ["-D", "publish", "correlation-data", corr]
        args += ["-f", file] if file else ["-m", payload]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)

    def request(self, school, payload, timeout=15, expect=1, to=None):
        """Sends payload (dict or raw str) to school's cmd (or `all`) and returns the reply bodies."""
        corr = uuid.uuid4().hex
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self.publish(f"campus/v1/{COUNTY}/{school}/cmd", text,
                     response_topic=to or f"campus/v1/{COUNTY}/all/reply/t1", corr=corr)
        got = wait_until(lambda: len(self.replies.for_corr(corr)) >= expect and self.replies.for_corr(corr), timeout,
                         what=f"{expect} reply(ies) to {text[:60]}")
        for r in got:
            self.assertEqual(r["env"]["kind"], "reply")
            self.assertEqual(r["env"]["v"], 1)
            self.assertTrue(r["topic"].endswith("/reply/t1"))
            self.assertEqual(r["topic"], f"campus/v1/{COUNTY}/{r['env']['school']}/reply/t1")
            self.assertEqual(schema_errors(r["env"]), [], r["env"])  # docs/schemas/reply.json
        return [r["env"]["body"] for r in got] if expect > 1 else got[0]["env"]["body"]

    def assertError(self, body, code):
        self.assertFalse(body["ok"], body)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertTrue(body["error"]["message"])

    def county_messages(self):
        out = []
        for line in complete_lines(self.events.output()):
            parts = line.split("\t", 2)
            if len(parts) == 3:
                try:
                    out.append({"retained": parts[0] == "1", "topic": parts[1], "env": json.loads(parts[2])})
                except ValueError:
                    pass
        return out

    def case_events(self, school, case_id):
        """Bodies of the case's stage-change events the county received (not resent copies)."""
        out = []
        for m in self.county_messages():
            if m["topic"] == f"campus/v1/{COUNTY}/{school}/event/attendance" and not m["env"].get("resent"):
                b = m["env"]["body"]
                if json.dumps(b).find(case_id) >= 0:
                    out.append(b)
        return [b for b in out if b.get("from") is not None]

    def local_ctl(self, school, *args, before=True):
        """campusctl --local on `school`'s box, reading its agent's database; with before=False the
        global options follow the subcommand's own arguments."""
        opts = ["--local", "--agent-config", os.path.join(self.tmp, school, "agent.toml")]
        argv = [*opts, *args] if before else [*args, *opts]
        return subprocess.run([os.path.join(BIN, "campusctl"), *argv], capture_output=True, text=True, timeout=30)

    def ctl_config(self):
        """campusctl.toml for the county account (written once per class)."""
        conf = os.path.join(self.tmp, "campusctl.toml")
        if not os.path.exists(conf):
            write_file(conf, f'[county]\ncode = "{COUNTY}"\n\n[mqtt]\nhost = "{LOOPBACK}"\nport = {self.port}\n'
                             f'ca_file = "{self.certs}/ca.crt"\ncert_file = "{self.certs}/county.crt"\n'
                             f'key_file = "{self.certs}/county.key"\n')
        return conf

    def ctl_argv(self, *args):
        # campusctl waits 5 s per school by default; a sanitizer build on a busy 2-core CI
        # machine can need longer, so the tests give every school 30 s unless they set it.
        if "--timeout" not in args and "audit" not in args:
            args = ("--timeout", "30s", *args)
        return [os.path.join(BIN, "campusctl"), "--config", self.ctl_config(), *args]

    def ctl(self, *args, timeout=90):
        return subprocess.run(self.ctl_argv(*args), capture_output=True, text=True, timeout=timeout)



class CountyRequests(CountyFixture):
    # ---- every command ----
    def test_ping(self):
        body = self.request("school-a", {"cmd": "ping"})
        self.assertTrue(body["ok"], body)
        self.assertRegex(body["result"]["version"], r"^campus-agent/\d+\.\d+\.\d+$")
        self.assertGreaterEqual(body["result"]["uptime_s"], 0)
        self.assertEqual(body["result"]["school"], "school-a")

    def test_status(self):
        body = self.request("school-b", {"cmd": "status"})
        self.assertTrue(body["ok"], body)
        r = body["result"]
        self.assertTrue(r["state"]["online"])
        self.assertEqual(r["audits"]["fiber"]["summary"]["classroom"]["coverage"], 0.9)
        self.assertEqual(r["audits"]["recording"]["summary"]["compliant"], 3)
        open_cases = self.request("school-b", {"cmd": "cases"})["result"]["cases"]
        self.assertEqual(r["cases"]["open"], len(open_cases))
        self.assertEqual(r["cases"]["overdue"], len([c for c in open_cases if c["details"]["overdue"]]))
        self.assertIn("outbox", r["health"])
        self.assertIn("mqtt", r["health"])

    def test_config_is_redacted(self):
        body = self.request("school-a", {"cmd": "config"})
        self.assertTrue(body["ok"], body)
        self.assertEqual(body["result"]["agent"]["school"], "school-a")
        self.assertEqual(body["result"]["mqtt"]["key_file"], "(secret file, not shown)")
        self.assertNotIn("PRIVATE KEY", json.dumps(body))

    def test_report_returns_the_stored_report(self):
        body = self.request("school-b", {"cmd": "report", "audit": "fiber"})
        self.assertTrue(body["ok"], body)
        self.assertEqual(body["result"]["report"]["summary"]["function_room"]["coverage"], 1.0)
        subjects = {f["subject"]: f["state"] for f in body["result"]["report"]["findings"]}
        self.assertEqual(subjects["R102"], "down")
        self.assertError(self.request("school-b", {"cmd": "report", "audit": "nosuch"}), "unknown_audit")
        self.assertError(self.request("school-b", {"cmd": "report"}), "missing_argument")

    def test_cases(self):
        body = self.request("school-b", {"cmd": "cases", "state": "open"})
        self.assertTrue(body["ok"], body)
        subjects = sorted(c["subject"] for c in body["result"]["cases"])
        self.assertIn("S2002", subjects)
        self.assertEqual(body["result"]["count"], len(body["result"]["cases"]))
        body = self.request("school-a", {"cmd": "cases", "state": "all", "since": "2020-01-01T00:00:00+08:00"})
        self.assertEqual(body["result"]["cases"], [])
        self.assertError(self.request("school-a", {"cmd": "cases", "state": "maybe"}), "bad_argument")
        self.assertError(self.request("school-a", {"cmd": "cases", "since": "yesterday"}), "bad_argument")

    def test_audit_replies_with_the_fresh_committed_report_and_publishes_it(self):
        before = [m for m in self.county_messages() if m["topic"].endswith("school-a/report/fiber")]
        body = self.request("school-a", {"cmd": "audit", "audit": "fiber"})
        self.assertTrue(body["ok"], body)
        r = body["result"]
        self.assertEqual(r["audit"], "fiber")
        self.assertEqual(r["report"]["seq"], r["seq"])
        self.assertEqual(r["report"]["kind"], "report")
        self.assertEqual(r["report"]["body"]["summary"]["classroom"]["coverage"], 1.0)
        wait_until(lambda: any(m["env"].get("seq") == r["seq"] for m in self.county_messages()
                               if m["topic"].endswith("school-a/report/fiber")), 10, what="the fresh report")
        self.assertGreater(len([m for m in self.county_messages() if m["topic"].endswith("school-a/report/fiber")]),
                           len(before))
        self.assertError(self.request("school-a", {"cmd": "audit", "audit": "nosuch"}), "unknown_audit")

    def test_audit_of_everything(self):
        body = self.request("school-a", {"cmd": "audit"})
        self.assertTrue(body["ok"], body)
        self.assertEqual(sorted(body["result"]["audits"]), ["attendance", "fiber", "recording"])
        self.assertTrue(all(a["ok"] for a in body["result"]["audits"].values()))

    def test_a_slow_audit_does_not_block_ping(self):
        # school-c's recording audit takes 3 s.
        corr = uuid.uuid4().hex
        self.publish(f"campus/v1/{COUNTY}/school-c/cmd", json.dumps({"cmd": "audit", "audit": "recording"}),
                     response_topic=f"campus/v1/{COUNTY}/all/reply/t1", corr=corr)
        ping = self.request("school-c", {"cmd": "ping"})
        self.assertTrue(ping["ok"])
        self.assertEqual(self.replies.for_corr(corr), [], "the audit answered before the ping")
        wait_until(lambda: self.replies.for_corr(corr), 15, what="the slow audit's reply")
        self.assertTrue(self.replies.for_corr(corr)[0]["env"]["body"]["ok"])

    def test_resend_republishes_with_resent_flag_and_names_what_is_not_held(self):
        body = self.request("school-b", {"cmd": "resend", "from_seq": 1, "to_seq": 3})
        self.assertTrue(body["ok"], body)
        self.assertEqual(body["result"]["resent"], 3)
        self.assertEqual(body["result"]["missing"], [])
        resent = wait_until(lambda: [m for m in self.county_messages()
                                     if m["topic"].startswith(f"campus/v1/{COUNTY}/school-b/")
                                     and m["env"].get("resent") is True], 10, what="resent copies")
        self.assertEqual(sorted(m["env"]["seq"] for m in resent)[:3], [1, 2, 3])
        self.assertTrue(all(not m["retained"] for m in resent))
        for m in resent:
            self.assertEqual(schema_errors(m["env"]), [], m["env"])
        last = body["result"]["last_seq"]
        body = self.request("school-b", {"cmd": "resend", "from_seq": last, "to_seq": last + 5})
        self.assertEqual(body["result"]["not_yet_produced"], [last + 1, last + 5])
        self.assertError(self.request("school-b", {"cmd": "resend", "from_seq": 5, "to_seq": 2}), "bad_argument")
        self.assertError(self.request("school-b", {"cmd": "resend", "from_seq": "1", "to_seq": 2}), "bad_argument")
        self.assertError(self.request("school-b", {"cmd": "resend", "from_seq": 1}), "missing_argument")
        self.assertError(self.request("school-b", {"cmd": "resend", "from_seq": 1, "to_seq": 100000}),
                         "range_too_large")

    # ---- broadcast ----
    def test_broadcast_to_all_is_answered_by_every_school_in_its_own_subtree(self):
        bodies = self.request("all", {"cmd": "ping"}, expect=3)
        self.assertEqual(sorted(b["result"]["school"] for b in bodies), SCHOOLS)

    # ---- bad requests ----
    def test_bad_requests_get_precise_errors(self):
        self.assertError(self.request("school-a", "this is not json"), "not_json")
        self.assertError(self.request("school-a", "[1,2]"), "bad_request")
        self.assertError(self.request("school-a", {"nocmd": 1}), "missing_argument")
        self.assertError(self.request("school-a", {"cmd": 7}), "bad_argument")
        self.assertError(self.request("school-a", {"cmd": "reboot"}), "unknown_command")
        self.assertError(self.request("school-a", {"cmd": "ping", "extra": 1}), "unknown_argument")
        self.assertError(self.request("school-a", {"cmd": "case.update", "case": "x", "action": "flew", "by": "me"}),
                         "bad_argument")
        big = os.path.join(self.tmp, "big.json")
        write_file(big, json.dumps({"cmd": "ping", "pad": "x" * (65 * 1024)}))
        corr = uuid.uuid4().hex
        self.publish(f"campus/v1/{COUNTY}/school-a/cmd", None, response_topic=f"campus/v1/{COUNTY}/all/reply/t1",
                     corr=corr, file=big)
        got = wait_until(lambda: self.replies.for_corr(corr), 10, what="the reply to a 65 KiB request")
        self.assertError(got[0]["env"]["body"], "payload_too_large")
        self.assertTrue(self.agents["school-a"].alive())

    def test_response_topic_outside_the_subtree_gets_no_reply_and_a_log_line(self):
        corr = uuid.uuid4().hex
        self.publish(f"campus/v1/{COUNTY}/school-a/cmd", json.dumps({"cmd": "ping"}),
                     response_topic=f"campus/v1/{COUNTY}/school-b/reply/t1", corr=corr)
        wait_until(lambda: "is not campus/v1/zhenkang/school-a/reply/<requester>" in self.agents["school-a"].output(),
                   10, what="the log line")
        time.sleep(0.5)
        self.assertEqual(self.replies.for_corr(corr), [])

    def test_without_response_topic_only_read_only_commands_run(self):
        self.publish(f"campus/v1/{COUNTY}/school-c/cmd", json.dumps({"cmd": "ping"}))
        wait_until(lambda: 'request "ping" on campus/v1/zhenkang/school-c/cmd has no Response Topic: executed'
                   in self.agents["school-c"].output(), 10, what="the executed log line")
        case_id = self.request("school-c", {"cmd": "cases"})["result"]["cases"][0]["id"]
        self.publish(f"campus/v1/{COUNTY}/school-c/cmd",
                     json.dumps({"cmd": "case.update", "case": case_id, "action": "contacted", "by": "x"}))
        wait_until(lambda: 'request "case.update" on campus/v1/zhenkang/school-c/cmd has no Response Topic: not executed'
                   in self.agents["school-c"].output(), 10, what="the refused log line")
        cases = self.request("school-c", {"cmd": "cases"})["result"]["cases"]
        self.assertEqual(cases[0]["stage"], "open")

    # ---- duplicates ----
    def test_duplicate_request_runs_once_and_is_answered_twice_with_the_same_result(self):
        corr = uuid.uuid4().hex
        payload = json.dumps({"cmd": "audit", "audit": "attendance"})
        before = len([m for m in self.county_messages() if m["topic"].endswith("school-a/report/attendance")])
        for _ in range(2):
            self.publish(f"campus/v1/{COUNTY}/school-a/cmd", payload,
                         response_topic=f"campus/v1/{COUNTY}/all/reply/t1", corr=corr)
        got = wait_until(lambda: len(self.replies.for_corr(corr)) >= 2 and self.replies.for_corr(corr), 15,
                         what="two replies")
        self.assertEqual(got[0]["env"], got[1]["env"])
        self.assertTrue(got[0]["env"]["body"]["ok"])
        time.sleep(1)
        after = len([m for m in self.county_messages() if m["topic"].endswith("school-a/report/attendance")])
        self.assertEqual(after - before, 1, "the audit ran twice")
        self.assertEqual(self.agents["school-a"].output().count("is a duplicate"), 1)

    # ---- case.update ----
    def test_case_update_through_its_stages_publishes_events(self):
        cases = self.request("school-b", {"cmd": "cases"})["result"]["cases"]
        case = next(c for c in cases if c["subject"] == "S2001")
        steps = [("contacted", "contacted"), ("visited", "visited"), ("returned", "closed")]
        for action, stage in steps:
            body = self.request("school-b", {"cmd": "case.update", "case": case["id"], "action": action,
                                             "note": f"{action} 家长", "by": "li.wei"})
            self.assertTrue(body["ok"], body)
            self.assertEqual(body["result"]["stage"], stage)
            self.assertEqual(body["result"]["steps"][-1]["actor"], "county:li.wei")
        self.assertEqual(body["result"]["outcome"], "returned")
        events = wait_until(lambda: len(self.case_events("school-b", case["id"])) >= 3
                            and self.case_events("school-b", case["id"]), 10, what="3 case events")
        self.assertEqual([(e["from"], e["to"]) for e in events[-3:]],
                         [("open", "contacted"), ("contacted", "visited"), ("visited", "closed")])
        self.assertError(self.request("school-b", {"cmd": "case.update", "case": case["id"], "action": "note",
                                                   "note": "late", "by": "li.wei"}), "case_closed")
        self.assertError(self.request("school-b", {"cmd": "case.update", "case": "attendance-nobody-1",
                                                   "action": "contacted", "by": "li.wei"}), "unknown_case")
        self.assertError(self.request("school-b", {"cmd": "case.update", "case": case["id"], "action": "note",
                                                   "by": "li.wei"}), "missing_argument")
        self.assertError(self.request("school-b", {"cmd": "case.update", "case": case["id"], "action": "visited"}),
                         "missing_argument")



STATUS_SCHEMA = {
    "type": "object", "required": ["schools", "summary"],
    "properties": {
        "schools": {"type": "array", "items": {
            "type": "object",
            "required": ["school", "online", "last_seen", "answer", "version", "backlog", "fiber", "recording",
                         "cases", "targets"],
            "properties": {
                "school": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"},
                "online": {"type": ["boolean", "null"]},
                "last_seen": {"type": ["string", "null"]},
                "answer": {"type": "string"},
                "version": {"type": ["string", "null"]},
                "backlog": {"type": ["integer", "null"], "minimum": 0},
                "fiber": {"type": "object", "required": ["classroom", "function_room", "office", "overall"],
                          "additionalProperties": {"type": ["number", "null"], "minimum": 0, "maximum": 1}},
                "recording": {"type": "object", "required": ["compliant", "total"],
                              "additionalProperties": {"type": ["integer", "null"], "minimum": 0}},
                "cases": {"type": "object", "required": ["open", "overdue"],
                          "additionalProperties": {"type": ["integer", "null"], "minimum": 0}},
                "targets": {"type": "object",
                            "required": ["fiber", "recording", "attendance", "digital_campus"],
                            "additionalProperties": {"type": ["boolean", "null"]}}}}},
        "summary": {"type": "object", "required": ["schools", "year", "targets"]}}}


def table(text):
    """Rows of a campusctl table (header included) keyed by their first cell."""
    lines = [l.split() for l in text.splitlines() if l.strip()]
    return {cells[0]: cells for cells in lines}


def chromium(*args, timeout=120):
    profile = tempfile.mkdtemp(prefix="campus-chromium-")
    try:
        return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--no-first-run", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Campusctl(CountyFixture):
    """campusctl as the county against the three simulated schools."""

    def test_status_all_shows_every_school(self):
        r = self.ctl("status", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3/3 school(s) answered", r.stderr)
        rows = table(r.stdout)
        self.assertEqual(rows["SCHOOL"][:2], ["SCHOOL", "ONLINE"])
        a, b, c = rows["school-a"], rows["school-b"], rows["school-c"]
        # SCHOOL ONLINE LAST-SEEN ANSWERED CLASS FUNC OFFICE RECORDING OPEN/OVERDUE BACKLOG VERSION
        self.assertEqual(a[1], "yes")
        self.assertRegex(a[2], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(a[3:10], ["yes", "100%", "100%", "100%", "5/5", "0/0", "0"])
        self.assertEqual(b[3:9], ["yes", "90%", "100%", "100%", "3/4", "2/1"])
        self.assertEqual(c[3:9], ["yes", "100%", "100%", "100%", "2/2", "1/0"])
        self.assertRegex(a[10], r"^campus-agent/")

    def test_status_of_one_school_and_a_school_that_never_answers(self):
        r = self.ctl("status", "school-b")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(table(r.stdout)), ["SCHOOL", "school-b"])
        conf = os.path.join(self.tmp, "campusctl-d.toml")
        self.ctl("ping", "school-a")  # writes campusctl.toml
        with open(os.path.join(self.tmp, "campusctl.toml")) as f:
            write_file(conf, f.read().replace('code = "zhenkang"', 'code = "zhenkang"\nschools = ["school-d"]'))
        r = subprocess.run([os.path.join(BIN, "campusctl"), "--config", conf, "--timeout", "2s", "status", "--all"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 3, r.stderr)
        rows = table(r.stdout)
        self.assertEqual(rows["school-d"][1:4], ["?", "never", "timeout"])
        self.assertEqual(rows["school-a"][3], "yes")
        self.assertIn("3/4 school(s) answered, 1 did not within 2s", r.stderr)

    def test_status_json_is_schema_valid(self):
        import jsonschema
        r = self.ctl("--json", "status", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, STATUS_SCHEMA)
        by = {s["school"]: s for s in doc["schools"]}
        self.assertEqual(by["school-b"]["fiber"]["classroom"], 0.9)
        self.assertEqual(by["school-a"]["targets"]["digital_campus"], True)
        self.assertEqual(by["school-b"]["targets"]["digital_campus"], False)
        self.assertEqual(doc["summary"]["targets"]["digital_campus"]["met"], 1)

    def test_ping_audit_resend_config(self):
        r = self.ctl("ping", "school-a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^school-a: campus-agent/\S+, up \d+ s")
        r = self.ctl("audit", "school-a", "fiber")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"school-a fiber: report seq \d+ stored, \d+ event\(s\)")
        self.assertIn("classroom.coverage=1", r.stdout)
        r = self.ctl("resend", "school-a", "1", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("school-a: resent 3 of 3 held message(s) in seq 1..3", r.stdout)
        r = self.ctl("--json", "config", "school-a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["result"]["agent"]["school"], "school-a")
        r = self.ctl("audit", "school-a", "nosuch")
        self.assertEqual(r.returncode, 1)
        self.assertIn("unknown_audit", r.stderr)

    def test_global_options_before_or_after_the_subcommand(self):
        """--json, --timeout, --config (and --local, see SchoolBox) work on either side of the
        subcommand; the JSON of ping, audit and resend is a schema-valid reply body."""
        def run(where, *cmd):
            opts = ["--json", "--timeout", "60s", "--config", self.ctl_config()]
            argv = [*opts, *cmd] if where == "before" else [*cmd, *opts]
            r = subprocess.run([os.path.join(BIN, "campusctl"), *argv], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, f"campusctl {' '.join(argv)}: {r.stderr}")
            return json.loads(r.stdout)

        for where in ("before", "after"):
            with self.subTest(where=where):
                body = run(where, "ping", "school-a")
                self.assertEqual(reply_body_errors(body), [])
                self.assertEqual(body["result"]["school"], "school-a")
                body = run(where, "audit", "school-a", "fiber")
                self.assertEqual(reply_body_errors(body), [])
                self.assertEqual(schema_errors(body["result"]["report"]), [])  # the published report envelope
                self.assertEqual(body["result"]["audit"], "fiber")
                body = run(where, "resend", "school-a", "1", "2")
                self.assertEqual(reply_body_errors(body), [])
                self.assertEqual((body["result"]["resent"], body["result"]["missing"]), (2, []))
                out = os.path.join(self.tmp, f"report-json-{where}.html")
                doc = run(where, "report", "--html", out, "--year", "2024")
                import jsonschema
                jsonschema.validate(doc, STATUS_SCHEMA)
                self.assertEqual(doc["file"], out)
                self.assertEqual(doc["summary"]["targets"]["digital_campus"]["met"], 1)
        missing = os.path.join(self.tmp, "nosuch.toml")
        r = subprocess.run([os.path.join(BIN, "campusctl"), "ping", "school-a", "--config", missing],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{missing}: no such file (fix: pass the county's campusctl.toml with --config", r.stderr)

    def test_report_compares_with_the_plan_of_the_chosen_year(self):
        # The plan: 20% / 60% / 100% of schools are digital campuses in 2023 / 2024 / 2025
        # (2024 is in test_html_report_renders_in_chromium_with_charts_and_numbers).
        for year, plan, share, on_track in ((2023, "20%", 0.2, True), (2025, "100%", 1.0, False)):
            with self.subTest(year=year):
                out = os.path.join(self.tmp, f"report-{year}.html")
                r = self.ctl("report", "--html", out, "--year", str(year))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(f"wrote {out}: 3 school(s), digital campus 33% (plan {year}: {plan})", r.stdout)
                with open(out, encoding="utf-8") as f:
                    html = f.read()
                row = html.split('<tr data-target="digital_campus">')[1].split("</tr>")[0]
                self.assertIn(f"<td>1/3</td><td>33%</td><td>{plan}</td>", row)
                r = self.ctl("--json", "report", "--html", out, "--year", str(year))
                self.assertEqual(r.returncode, 0, r.stderr)
                target = json.loads(r.stdout)["summary"]["targets"]["digital_campus"]
                self.assertEqual((target["plan"], target["on_track"]), (share, on_track))

    def test_cases_and_case_update(self):
        r = self.ctl("cases", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split() for l in r.stdout.splitlines()[1:] if l.strip()]
        self.assertEqual(sorted((x[0], x[2], x[3]) for x in rows),
                         [("school-b", "S2001", "open"), ("school-b", "S2002", "open"), ("school-c", "S3001", "open")])
        overdue = {x[2]: x[5] for x in rows}
        self.assertEqual(overdue["S2001"], "yes")
        r = self.ctl("--json", "cases", "school-c")
        self.assertEqual(r.returncode, 0, r.stderr)
        case_id = json.loads(r.stdout)["cases"][0]["id"]
        r = self.ctl("case", "update", "school-c", case_id, "--action", "contacted", "--note", "called the mother",
                     "--by", "wang")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), f"case {case_id} on school-c: stage contacted, 2 step(s)")
        r = self.ctl("--json", "case", "update", "school-c", case_id, "--action", "visited", "--by", "wang")
        self.assertEqual(r.returncode, 0, r.stderr)
        body = json.loads(r.stdout)
        self.assertEqual((body["result"]["stage"], len(body["result"]["steps"])), ("visited", 3))
        # Backwards is refused; the case stays open (other tests count it).
        r = self.ctl("case", "update", "school-c", case_id, "--action", "contacted", "--by", "wang")
        self.assertEqual(r.returncode, 1)
        self.assertIn("case_update_refused", r.stderr)

    def test_local_mode_reads_the_schools_database(self):
        r = self.local_ctl("school-b", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        row = table(r.stdout)["school-b"]
        self.assertEqual(row[3:8], ["local", "90%", "100%", "100%", "3/4"])
        r = self.local_ctl("school-b", "--json", "cases")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("S2002", [c["subject"] for c in json.loads(r.stdout)["cases"]])

    def test_watch_shows_the_county_live(self):
        watch = Proc("watch", self.ctl_argv("watch", "--for", "60s"), self.tmp)
        self.addCleanup(watch.stop, 5)
        watch.wait_for_output("campusctl watch: zhenkang, 3 school(s)", 20)
        wait_until(lambda: all(s in watch.output() for s in SCHOOLS), 10, what="every school in the watch")
        # A change while it watches: school-a's room R102 loses its fiber (the summary stays, so the
        # other tests' numbers do not move), and an audit publishes the event.
        path = os.path.join(self.tmp, "school-a", "fiber.json")
        with open(path) as f:
            original = f.read()
        doc = json.loads(original)
        doc["findings"][1].update(state="down", reason="patch cord pulled")
        write_file(path, json.dumps(doc))
        self.addCleanup(lambda: (write_file(path, original), self.request("school-a", {"cmd": "audit", "audit": "fiber"})))
        self.assertNotIn("patch cord pulled", watch.output())
        self.assertTrue(self.request("school-a", {"cmd": "audit", "audit": "fiber"})["ok"])
        wait_until(lambda: re.search(r"(?m)^recent events:\n(  .*\n)*  \S+  school-a  fiber  R102: covered -> down "
                                     r"\(patch cord pulled\)$", watch.output()), 20, what="the event in the watch")
        self.assertTrue(watch.alive(), watch.output())

    def test_html_report_renders_in_chromium_with_charts_and_numbers(self):
        for lang in ("en", "zh"):
            out = os.path.join(self.tmp, f"report-{lang}.html")
            r = self.ctl("report", "--html", out, "--lang", lang, "--year", "2024")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"wrote {out}: 3 school(s), digital campus 33% (plan 2024: 60%)", r.stdout)
            with open(out, encoding="utf-8") as f:
                html = f.read()
            self.assertNotRegex(html, r"(src|href)=\"(https?:)?//")  # self-contained
            dom = chromium("--dump-dom", "file://" + out)
            self.assertEqual(dom.returncode, 0, dom.stderr)
            d = dom.stdout
            for chart in ("chart-targets", "chart-plan", "chart-fiber", "chart-recording", "chart-cases"):
                self.assertIn(f'id="{chart}"', d)
            self.assertGreaterEqual(d.count("<rect class=\"bar\""), 20)
            self.assertIn('<tr data-target="digital_campus">', d)
            row = d.split('<tr data-target="digital_campus">')[1].split("</tr>")[0]
            self.assertIn("<td>1/3</td><td>33%</td><td>60%</td>", row)
            row = d.split('<tr data-target="fiber">')[1].split("</tr>")[0]
            self.assertIn("<td>2/3</td><td>67%</td><td>100%</td>", row)
            row = d.split('<tr data-school="school-b">')[1].split("</tr>")[0]
            self.assertIn("<td>90%</td><td>100%</td><td>100%</td><td>3/4</td><td>2</td><td>1</td>", row)
            if lang == "zh":
                self.assertIn("数字校园", d)
                self.assertIn("光纤全覆盖", d)
            else:
                self.assertIn("Fiber coverage by room type", d)
            png = os.path.join(self.tmp, f"report-{lang}.png")
            shot = chromium(f"--screenshot={png}", "--window-size=1100,1800", "file://" + out)
            self.assertEqual(shot.returncode, 0, shot.stderr)
            self.assertGreater(os.path.getsize(png), 20000)


class SchoolBox(CountyFixture):
    """One school with open cases: campusctl --local on the school's own server next to its
    running agent, and the agent's command subscriptions after a broker restart."""
    schools = ["school-b"]

    def db_snapshot(self):
        """mtime, size and hash of agent.db and of its write-ahead log (where a write would land
        first); the -shm index is not data and changes with every reader."""
        out = []
        for name in ("agent.db", "agent.db-wal"):
            path = os.path.join(self.tmp, "school-b", "data", name)
            if os.path.exists(path):
                st = os.stat(path)
                with open(path, "rb") as f:
                    out.append((name, st.st_mtime_ns, st.st_size, hashlib.sha256(f.read()).hexdigest()))
        return out

    def test_local_case_update_is_recorded_and_reaches_the_county(self):
        r = self.local_ctl("school-b", "--json", "cases")
        self.assertEqual(r.returncode, 0, r.stderr)
        case = next(c for c in json.loads(r.stdout)["cases"] if c["subject"] == "S2001")
        self.assertEqual(case["stage"], "open")
        r = self.local_ctl("school-b", "case", "update", case["id"], "--action", "contacted",
                           "--note", "phoned the father", "--by", "zhao")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(),
                         f"case {case['id']}: stage contacted; the agent delivers the event with its next messages")
        r = self.local_ctl("school-b", "cases", "--json", before=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = next(c for c in json.loads(r.stdout)["cases"] if c["id"] == case["id"])
        self.assertEqual(got["stage"], "contacted")
        step = got["steps"][-1]
        self.assertEqual((step["action"], step["actor"], step["note"]), ("contacted", "school:zhao", "phoned the father"))
        # campusctl appended the event to the agent's outbox; the agent sends it with its next commit.
        self.assertTrue(self.request("school-b", {"cmd": "audit", "audit": "fiber"})["ok"])
        events = wait_until(lambda: self.case_events("school-b", case["id"]), 15, what="the case event at the county")
        self.assertEqual((events[-1]["from"], events[-1]["to"]), ("open", "contacted"))
        self.assertEqual(events[-1]["case"]["steps"][-1]["actor"], "school:zhao")
        env = next(m["env"] for m in self.county_messages() if m["env"].get("body") == events[-1])
        self.assertEqual(schema_errors(env), [])

    def test_local_status_leaves_the_database_unchanged(self):
        # The agent is idle (audits run hourly); wait out its last delivery bookkeeping.
        def still():
            first = self.db_snapshot()
            time.sleep(0.5)
            return first == self.db_snapshot() and first
        before = wait_until(still, 20, what="the agent's database to be still")
        for opts_before in (True, False):
            r = self.local_ctl("school-b", "status", before=opts_before)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(table(r.stdout)["school-b"][3], "local")
        self.assertEqual(self.db_snapshot(), before)

    def test_requests_are_answered_after_a_broker_restart(self):
        # The broker keeps nothing (persistence false): the restarted one has no session for the
        # agent, so its command subscriptions exist only if it subscribes again on connect.
        agent = self.agents["school-b"]
        connects = agent.output().count("mqtt: connected to")
        self.broker.stop(5)
        type(self).broker = start_tls_mosquitto(self.tmp, self.certs, port=self.port)
        wait_until(lambda: agent.output().count("mqtt: connected to") > connects, 30, what="the agent to reconnect")

        def answered():  # the SUBACK may follow the connect by a moment: ask until answered, bounded
            r = self.ctl("--timeout", "5s", "ping", "school-b")
            return r.returncode == 0 and r

        r = wait_until(answered, 45, interval=0.5, what="an answer to ping after the broker restart")
        self.assertRegex(r.stdout, r"^school-b: campus-agent/\S+, up \d+ s")


if __name__ == "__main__":
    unittest.main()
