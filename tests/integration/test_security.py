"""Security proofs with the real campus-agent binary (docs/reliability.md):

1. Secrets never leave the agent: the demo school (tests/sim/*/demo.py) with every kind of
   secret file set to a distinctive random value - the MQTT client key and password, SNMPv2c
   communities (one right, one wrong), SNMPv3 auth and privacy keys, RTSP camera and recorder
   (ONVIF + status) credentials, the attendance API's bearer token - audited through the county
   broker (mTLS, shipped ACL); then the agent's whole log (debug level), every message the
   county received and the `config` reply are searched for each value.
2. No national ID number is stored or published: attendance imported from the GBK spool CSV
   and the HTTP API, both carrying an id_card column (and one row whose student number is an
   ID number, imported as a pseudonym since this school keys by 学籍号), then the SQLite files' raw bytes (db, -wal) and every county message are
   searched for every ID number of the input.
3. No national student number (学籍号, G + 18 characters) is: the school keys students by it in
   an .xlsx export and a CSV export (pseudonymize_students = true), so every one is imported as
   a pseudonym; each 学籍号 (and its 18 characters without the G) is searched in the same raw
   bytes, the log and every county message, and the school's pseudonym key is searched like the
   other secrets.

test_attendance checks the dry-run output and the store's decoded rows for ID numbers and
names; test_county checks that `config` shows the key file as "(secret file, not shown)".
This test is the whole-agent version of both: raw bytes, every message, every secret kind."""
import datetime
import glob
import json
import os
import re
import secrets
import subprocess
import sys
import uuid

import openpyxl

import harness
from county import COUNTY, county_subscriber, make_certs, start_county_broker, tls_args
from harness import LOOPBACK, PLUGINS, SIM, IntegrationTest, Proc, agent_bin, attendance_sim, wait_until, write_file

sys.path.insert(0, SIM)
import school as demo_school  # noqa: E402  (loads tests/sim/<audit>/demo.py)

SCHOOL = "sec-school"
ID_RE = re.compile(rb"(?<![0-9])[1-9][0-9]{16}[0-9X](?![0-9])")


def secret_value(kind):
    """Distinctive and random: found in a log only if that very secret leaked."""
    return f"{kind}-{secrets.token_hex(12)}"


def write_secret(path, text):
    return write_file(path, text + "\n", mode=0o600)


def leaks(secret, haystacks):
    """The names of the haystacks (name -> bytes) that contain `secret`."""
    needle = secret.encode()
    return [name for name, data in haystacks.items() if needle in data]


class Security(IntegrationTest):
    @classmethod
    def setUpClass(cls):
        cls.fiber_demo = demo_school.load("fiber")
        cls.recording_demo = demo_school.load("recording")
        cls.attendance_demo = demo_school.load("attendance")
        import snmpsim  # on the path once the fiber demo is loaded
        cls.snmpsim = snmpsim

    def setUp(self):
        super().setUp()
        self.secrets = {}

    # ---- the demo school with random secrets ------------------------------------------------
    def simulator_dir(self, name):
        """A directory for one audit's simulators, readable by the processes they start (0755)."""
        work = os.path.join(self.dir, name)
        os.makedirs(work)
        os.chmod(work, 0o755)
        return work

    def fiber(self):
        work = self.simulator_dir("fiber")
        table = self.fiber_demo.start(work)
        self.addCleanup(self.fiber_demo._stop_all)
        # Three more switches, each with its own secrets: v2c with a random community, v2c where
        # the agent has a wrong one (the error path must not echo it), v3 with auth + privacy.
        s = self.secrets
        s["snmp community"] = secret_value("community")
        s["snmp wrong community"] = secret_value("wrongcommunity")
        s["snmpv3 auth key"] = secret_value("v3auth")
        s["snmpv3 priv key"] = secret_value("v3priv")
        port = self.snmpsim.port
        sims = self.snmpsim.start_switches(work, {
            "sec-v2": {"community": s["snmp community"], "ports": [port(1, alias="S01")]},
            "sec-wrong": {"community": secret_value("unused"), "ports": [port(1, alias="S02")]},
            "sec-v3": {"community": secret_value("unused"), "v3_user": ("campus-sec", s["snmpv3 auth key"],
                                                                         s["snmpv3 priv key"]),
                       "ports": [port(1, alias="S03")]}})
        for sim in sims.values():
            self.addCleanup(sim.stop)
        files = {k: write_secret(os.path.join(work, f"{k.replace(' ', '-')}.secret"), v) for k, v in s.items()}
        switches = os.path.join(work, "switches.csv")
        with open(switches) as f:
            rows = [line.rstrip("\n").split(",") for line in f if line.strip()][1:]
        out = ["id,address,profile,snmp_version,community_file,user,auth_protocol,auth_key_file,priv_protocol,"
               "priv_key_file"]
        out += [",".join(r + [""] * 7) for r in rows]
        out.append(f"sec-v2,127.0.0.1:{sims['sec-v2'].port},generic,2c,{files['snmp community']},,,,,")
        out.append(f"sec-wrong,127.0.0.1:{sims['sec-wrong'].port},generic,2c,{files['snmp wrong community']},,,,,")
        out.append(f"sec-v3,127.0.0.1:{sims['sec-v3'].port},generic,3,,campus-sec,SHA,{files['snmpv3 auth key']},"
                   f"AES,{files['snmpv3 priv key']}")
        write_file(switches, "\n".join(out) + "\n")
        with open(os.path.join(work, "rooms.csv"), "a", encoding="utf-8") as f:
            for i, sw in enumerate(("sec-v2", "sec-wrong", "sec-v3"), start=1):
                f.write(f"S0{i},安全测试{i},classroom,实验楼,1,{sw},1,\n")
        return table

    def recording(self):
        work = self.simulator_dir("recording")
        d = self.recording_demo
        d.CAMERA_PASS = self.secrets["rtsp camera password"] = secret_value("campass")
        d.RECORDER_PASS = self.secrets["recorder/onvif password"] = secret_value("recpass")
        before = list(harness._live)
        table = d.start(work)
        for proc in [p for p in harness._live if p not in before]:  # cameras, recorders: stopped with the test
            self.addCleanup(proc.stop, 5)
        return table

    def attendance(self):
        work = self.simulator_dir("attendance")
        d = self.attendance_demo
        d.prepare(work, students=120)
        self.secrets["attendance bearer token"] = secret_value("bearer")
        token = write_secret(os.path.join(work, "token"), self.secrets["attendance bearer token"])
        # One more export whose student number is itself an ID number: refused, never echoed.
        self.planted_id = "11010120100101123" + "X"
        write_file(os.path.join(work, "spool", "extra.csv"),
                   "student_id,class,grade,date,status,leave_approved,id_card\n"
                   f"{self.planted_id},1-1,1,2026-11-02,absent,no,{self.planted_id}\n")
        # Two more exports keyed by 学籍号, as a school's system writes them: an .xlsx (openpyxl)
        # and a UTF-8 CSV; three days absent for each of the first students (cases open).
        self.xuejihao = [f"G5301022011020{i:04d}{'X' if i % 5 == 0 else i % 10}" for i in range(1, 31)]
        days = [d for d in self.attendance_demo.data.school_days(
            self.attendance_demo.data.CALENDAR_ROWS,
            until=self.attendance_demo.school_today() - datetime.timedelta(days=1))][-3:]
        rows = [[sid, "9-1", 9, day, "旷课" if i < 3 else "出勤", "否", f"学生{i}"]
                for day in days for i, sid in enumerate(self.xuejihao)]
        wb = openpyxl.Workbook()
        wb.active.append(["学籍号", "class", "grade", "date", "status", "leave_approved", "name"])
        for r in rows[: len(rows) // 2]:
            wb.active.append(r)
        wb.save(os.path.join(work, "spool", "xuejihao.xlsx"))
        with open(os.path.join(work, "spool", "xuejihao.csv"), "w", encoding="utf-8") as f:
            f.write("学籍号,class,grade,date,status,leave_approved,name\n")
            f.writelines(",".join(str(x) for x in r) + "\n" for r in rows[len(rows) // 2:])
        key = os.path.join(work, "student-pseudonym.key")
        self.secrets["student pseudonym key"] = secret_value("pseudonymkey")
        write_secret(key, self.secrets["student pseudonym key"])
        sim = self.track(attendance_sim(work, os.path.join(work, "records.jsonl"), token, page_size=40))
        ids = set()
        for path in (os.path.join(work, "records.jsonl"), os.path.join(work, "spool", "term-export.csv"),
                     os.path.join(work, "spool", "extra.csv")):
            with open(path, "rb") as f:
                ids |= set(ID_RE.findall(f.read()))
        self.national_ids = ids
        table = d.toml_table(work, sim.port)
        return table.replace("publish_names = false\n", "publish_names = false\npseudonymize_students = true\n"
                             f'pseudonym_key_file = "{key}"\n[audits.attendance.csv_fields]\nstudent_id = "学籍号"\n', 1)

    # ---- the agent and the county -------------------------------------------------------------
    def start(self):
        self.certs = make_certs(self.dir, [SCHOOL])
        self.broker = self.track(start_county_broker(self.dir, self.certs, persistence=False))
        self.county = county_subscriber(self.dir, self.broker.port, self.certs)
        self.addCleanup(self.county.stop)
        with open(os.path.join(self.certs, f"{SCHOOL}.key")) as f:
            key_lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith("-----")]
        # Two lines from the middle of the PEM body stand for the whole key.
        self.secrets["mqtt client key (PEM line)"] = key_lines[len(key_lines) // 2]
        self.secrets["mqtt client key (PEM line 2)"] = key_lines[1]
        self.secrets["mqtt password"] = secret_value("mqttpass")
        password = write_secret(os.path.join(self.dir, "mqtt-password"), self.secrets["mqtt password"])
        tables = [self.fiber(), self.recording(), self.attendance()]
        self.data = os.path.join(self.dir, "data")
        conf = write_file(os.path.join(self.dir, "agent.toml"), f"""
[agent]
county = "{COUNTY}"
school = "{SCHOOL}"
timezone = "+08:00"
data_dir = "{self.data}"
plugin_dir = "{PLUGINS}"
log_level = "debug"

[mqtt]
host = "{LOOPBACK}"
port = {self.broker.port}
ca_file = "{self.certs}/ca.crt"
cert_file = "{self.certs}/{SCHOOL}.crt"
key_file = "{self.certs}/{SCHOOL}.key"
username = "{SCHOOL}"
password_file = "{password}"
reconnect_min = "100ms"
reconnect_max = "1s"
health_interval = "1s"

""" + "\n".join(tables))
        self.agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        self.agent.wait_for_output("mqtt: connected to", timeout=60)

    def request(self, payload, timeout=240):
        """One county request through the broker (mosquitto_rr as the county); the reply body."""
        topic = f"campus/v1/{COUNTY}/{SCHOOL}/cmd"
        reply = f"campus/v1/{COUNTY}/{SCHOOL}/reply/sec-{uuid.uuid4().hex[:8]}"
        r = subprocess.run(["mosquitto_rr", "-V", "mqttv5", "-h", LOOPBACK, "-p", str(self.broker.port),
                            *tls_args(self.certs, "county"), "-t", topic, "-e", reply, "-q", "1",
                            "-W", str(timeout), "-m", json.dumps(payload)],
                           capture_output=True, text=True, timeout=timeout + 10)
        self.assertEqual(r.returncode, 0, f"no reply to {payload}: {r.stderr}\n{self.agent.output()[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])["body"]

    def haystacks(self):
        out = {"agent log": self.agent.output().encode()}
        for i, m in enumerate(self.county.messages()):
            out[f"county message {i} on {m['topic']}"] = json.dumps(m["payload"], ensure_ascii=False).encode()
        # The raw subscriber log too: payloads exactly as the broker delivered them.
        with open(self.county.proc.log_path, "rb") as f:
            out["county subscriber output"] = f.read()
        return out

    def test_no_secret_in_logs_messages_or_config_and_no_national_id_stored_or_published(self):
        self.start()
        audited = self.request({"cmd": "audit"})
        self.assertIn("audits", audited.get("result", {}), audited)
        self.assertEqual(set(audited["result"]["audits"]), {"fiber", "recording", "attendance"})
        config = self.request({"cmd": "config"})
        self.assertTrue(config["ok"], config)
        # The secrets were really used: the right community and the v3 keys got answers, the
        # wrong community did not, the recorder and cameras let the agent in, the API too.
        report = self.request({"cmd": "report", "audit": "fiber"})["result"]["report"]
        rooms = {f["subject"]: f for f in report["body"]["findings"]} if "body" in report else \
            {f["subject"]: f for f in report["findings"]}
        self.assertEqual(rooms["S01"]["state"], "covered", rooms["S01"])
        self.assertEqual(rooms["S03"]["state"], "covered", rooms["S03"])
        self.assertEqual(rooms["S02"]["state"], "unknown", rooms["S02"])
        wait_until(lambda: any(m["payload"].get("kind") == "reply" and m["payload"]["body"].get("cmd") == "config"
                               for m in self.county.messages() if isinstance(m["payload"], dict)), 30,
                   what="the config reply at the county subscriber")

        hay = self.haystacks()
        hay["config reply"] = json.dumps(config, ensure_ascii=False).encode()
        self.assertGreater(len(hay), 10, "the county should have received states, reports, events, replies")
        self.assertIn(b"sec-school", hay["agent log"])
        for kind, value in self.secrets.items():
            self.assertGreaterEqual(len(value), 16, kind)
            self.assertEqual(leaks(value, hay), [], f"the {kind} leaked")

        # National ID numbers: in no county message, and not in the SQLite files' bytes.
        self.assertIn(self.planted_id.encode(), self.national_ids)
        self.assertGreater(len(self.national_ids), 100)
        files = {}
        for path in glob.glob(os.path.join(self.data, "agent.db*")):
            with open(path, "rb") as f:
                files[os.path.basename(path)] = f.read()
        self.assertIn("agent.db", files)
        self.assertIn("agent.db-wal", files)  # the agent still runs: recent pages are in the WAL
        for nid in self.national_ids:
            self.assertEqual(leaks(nid.decode(), hay), [], f"national ID number {nid} published or logged")
            self.assertEqual(leaks(nid.decode(), files), [], f"national ID number {nid} stored")
        # 学籍号: imported (the cases opened under pseudonyms), yet in no message, log or file.
        report = self.request({"cmd": "report", "audit": "attendance"})["result"]["report"]
        summary = report.get("body", report).get("summary", {})
        self.assertEqual(summary["student_key"]["pseudonyms"], True, summary)
        self.assertGreaterEqual(len([c for c in summary["open_cases"] if c["class"] == "9-1"]), 3, summary)
        for sid in self.xuejihao:
            for needle in (sid, sid[1:]):
                self.assertEqual(leaks(needle, hay), [], f"学籍号 {sid} published or logged")
                self.assertEqual(leaks(needle, files), [], f"学籍号 {sid} stored")
        self.assertEqual(self.agent.stop(), 0)
        for path in glob.glob(os.path.join(self.data, "agent.db*")):
            with open(path, "rb") as f:
                data = f.read()
            for nid in self.national_ids:
                self.assertNotIn(nid, data, f"national ID number {nid} in {path} after shutdown")
            for sid in self.xuejihao:
                self.assertNotIn(sid[1:].encode(), data, f"学籍号 {sid} in {path} after shutdown")

    def test_the_search_would_find_a_planted_secret(self):
        """The proof's own check: the same search finds a value where it is."""
        value = secret_value("planted")
        self.assertEqual(leaks(value, {"a": f"log line with {value} in it".encode(), "b": b"clean"}), ["a"])
        self.assertEqual(ID_RE.findall(b"id 11010120100101123X, 530912345678901234; seq 12345678"),
                         [b"11010120100101123X", b"530912345678901234"])


if __name__ == "__main__":
    import unittest
    unittest.main()
