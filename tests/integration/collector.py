"""The county collector (campus-county) in tests: its config, the real binary, what its database
holds, campusctl on that database, and FakeSchool: a school that speaks the wire contract
(docs/protocol.md) through Debian's python3-paho-mqtt (MQTT 5), for what a real agent never
does on demand (a conflicting copy, seqs out of order, a slow or partial resend answer)."""
import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from county import COUNTY, FindingsFlipper, agent_config, tls_args
from harness import BIN, LOOPBACK, SOURCE, Proc, agent_bin, free_port, start_mosquitto, wait_until, write_file

# The county record's engine for every collector a test starts: "sqlite" (the default) or
# "postgres" (one throwaway PostgreSQL 15 server per test process, tests/postgres-server, and a
# fresh database per collector config). CMake registers the collector tests once per engine.
ENGINE = os.environ.get("CAMPUS_COUNTY_DB", "sqlite")


class PostgresServer:
    """tests/postgres-server on a free port of 127.0.0.1, started at first use, stopped at exit."""
    _server = None

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="county-pg-")
        self.port = free_port()
        self.script = os.path.join(SOURCE, "tests", "postgres-server")
        r = subprocess.run([self.script, "start", self.dir, str(self.port)], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"could not start PostgreSQL: {r.stderr}")
        with open(os.path.join(self.dir, "password")) as f:
            self.password = f.read().strip()
        self.passfile = write_file(os.path.join(self.dir, "pgpass"),
                                   f"{LOOPBACK}:{self.port}:*:county:{self.password}\n", mode=0o600)
        self.databases = 0
        atexit.register(self.stop)

    @classmethod
    def get(cls):
        if cls._server is None:
            cls._server = PostgresServer()
        return cls._server

    def url(self, database):
        return f"postgresql://county@{LOOPBACK}:{self.port}/{database}"

    def psql(self, database, query, timeout=60):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.url(database), "-c", query],
                           capture_output=True, text=True, timeout=timeout, env={**os.environ, "PGPASSFILE": self.passfile})
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr}")
        return r.stdout

    def new_database(self, name):
        self.databases += 1
        db = f"{name.replace('-', '_')}_{self.databases}"
        self.psql("postgres", f"CREATE DATABASE {db}")
        return db

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, down_s=0.0):
        """Stops the server (fast shutdown: every connection is cut), waits, starts it again."""
        subprocess.run([self.script, "stop", self.dir], capture_output=True, timeout=60, check=True)
        time.sleep(down_s)
        subprocess.run([self.script, "start", self.dir, str(self.port)], capture_output=True, timeout=120,
                       check=True)


def collector_bin():
    return os.path.join(BIN, "campus-county")


def _database_table(data, name):
    if ENGINE != "postgres":
        return {"path": os.path.join(data, "county.db")}
    pg = PostgresServer.get()
    database = write_file(os.path.join(data, "database"), pg.new_database(name))
    with open(database) as f:
        url = pg.url(f.read())
    return {"url": url,
            "password_file": write_file(os.path.join(data, "database-password"), pg.password + "\n", mode=0o600)}


def collector_config(workdir, port, certs=None, name="collector", register=None, **sections):
    """county.toml for the collector on 127.0.0.1:port (TLS as the county account when `certs`
    is given, else plain TCP). `sections` override keys: repair={"reorder_grace": "1s"}, ..."""
    data = os.path.join(workdir, f"{name}-data")
    os.makedirs(data, exist_ok=True)
    tables = {
        "county": {"code": COUNTY, "log_level": "debug"},
        "mqtt": {"host": LOOPBACK, "port": port, "keep_alive": "5s", "reconnect_min": "100ms",
                 "reconnect_max": "1s", "connect_timeout": "5s"},
        "database": _database_table(data, name),
        "repair": {"reorder_grace": "2s", "tick": "500ms", "backoff_min": "1s", "backoff_max": "4s",
                   "request_timeout": "20s", "tail_wait_max": "10s"},
        "history": {"status_every": "500ms"},
    }
    if certs:
        tables["mqtt"].update({"ca_file": f"{certs}/ca.crt", "cert_file": f"{certs}/county.crt",
                               "key_file": f"{certs}/county.key"})
    else:
        tables["mqtt"]["insecure"] = True
    if register is not None:
        path = write_file(os.path.join(workdir, f"{name}-register.csv"),
                          "code,name\n" + "".join(f"{s},{s}\n" for s in register))
        tables["county"]["register"] = path
    for table, keys in sections.items():
        tables.setdefault(table, {}).update(keys)
    lines = []
    for table, keys in tables.items():
        lines.append(f"[{table}]")
        for k, v in keys.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return write_file(os.path.join(workdir, f"{name}.toml"), "\n".join(lines))


class Collector:
    """The real campus-county: start, SIGKILL, SIGTERM, SIGHUP, and what its database says."""

    def __init__(self, workdir, config, name="collector", env=None):
        self.workdir, self.config, self.name, self.env = workdir, config, name, env
        data = os.path.join(workdir, f"{name}-data")
        self.database = None  # the PostgreSQL database's name (ENGINE postgres)
        if os.path.exists(os.path.join(data, "database")):
            with open(os.path.join(data, "database")) as f:
                self.database = f.read().strip()
        # What campusctl --db takes: the SQLite file, or the PostgreSQL URL (password via PGPASSFILE).
        self.db = PostgresServer.get().url(self.database) if self.database else os.path.join(data, "county.db")
        self.proc = None
        self.runs = 0

    def start(self, wait_connected=True):
        self.runs += 1
        self.proc = Proc(f"{self.name}-{self.runs}", [collector_bin(), "--config", self.config], self.workdir,
                         env=self.env)
        if wait_connected:
            wait_until(lambda: "mqtt ingest: connected" in self.proc.output() or not self.proc.alive(), 30,
                       what=f"{self.name} to connect")
            assert self.proc.alive(), self.proc.output()
        return self

    def kill(self):
        self.proc.kill(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stop()

    def stop(self, timeout=20):
        return self.proc.stop(timeout) if self.proc else None

    def reload(self):
        self.proc.kill(signal.SIGHUP)

    def output(self):
        return self.proc.output() if self.proc else ""

    def sql(self, query):
        """Rows of a read-only query (sqlite3's own CLI on the live database, or psql)."""
        if self.database:
            out = PostgresServer.get().psql(self.database, f"SELECT COALESCE(json_agg(q), '[]') FROM ({query}) q")
            # bytea (a payload) comes as "\\x<hex>"; the tests read it as the text it holds.
            return [{k: bytes.fromhex(v[2:]).decode() if isinstance(v, str) and v.startswith("\\x") else v
                     for k, v in row.items()} for row in json.loads(out)]
        r = subprocess.run(["sqlite3", "-json", f"file:{self.db}?mode=ro", query], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"sqlite3 failed: {r.stderr}")
        return json.loads(r.stdout) if r.stdout.strip() else []

    def scalar(self, query):
        rows = self.sql(query)
        return next(iter(rows[0].values())) if rows else None

    def seqs(self, school, store=None):
        """The seqs the database holds for a school (its current store, or `store`)."""
        where = f"r.store_id = '{store}'" if store else \
            f"r.id = (SELECT current_series FROM school WHERE school = '{school}')"
        return [r["seq"] for r in self.sql(f"SELECT m.seq FROM message m JOIN series r ON r.id = m.series "
                                           f"WHERE r.school = '{school}' AND {where} ORDER BY m.seq")]

    def gaps(self, school=None):
        q = "SELECT g.*, r.school, r.store_id FROM gap g JOIN series r ON r.id = g.series"
        return self.sql(q + (f" WHERE r.school = '{school}'" if school else "") + " ORDER BY g.id")

    def quarantine(self):
        return self.sql("SELECT topic, school, kind, reason, detail, size FROM quarantine ORDER BY id")

    def requests(self, school=None):
        q = "SELECT * FROM resend_request"
        return self.sql(q + (f" WHERE school = '{school}'" if school else "") + " ORDER BY id")


def ctl(*args, db, timeout=60, config=None):
    """campusctl reading the county database (--db)."""
    argv = [os.path.join(BIN, "campusctl")]
    if config:
        argv += ["--config", config]
    argv += ["--db", db, *args]
    env = {**os.environ, "PGPASSFILE": PostgresServer.get().passfile} if db.startswith("postgresql://") else None
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def agent_store(workdir, acknowledged=False):
    """(store id, last seq) of a real agent's database; with acknowledged, (store id, the highest
    seq the broker acknowledged, last seq). What a stopped agent had not sent yet waits in its
    outbox for its next run: the county cannot have it before then."""
    db = os.path.join(workdir, "data", "agent.db")
    r = subprocess.run(["sqlite3", f"file:{db}?mode=ro", "SELECT value FROM meta WHERE key = 'store_id'; "
                        "SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE sent_at IS NOT NULL; "
                        "SELECT COALESCE(MAX(seq), 0) FROM outbox;"], capture_output=True, text=True, timeout=30)
    lines = r.stdout.split()
    return (lines[0], int(lines[1]), int(lines[2])) if acknowledged else (lines[0], int(lines[2]))


def start_broker(test, port=None, persistent=True, name="mosquitto"):
    """A plain-TCP Mosquitto for the collector's tests, with persistence unless told otherwise."""
    pdir = os.path.join(test.dir, f"{name}-db")
    os.makedirs(pdir, exist_ok=True)
    os.chmod(pdir, 0o777)
    extra = f"persistence true\npersistence_location {pdir}/\nmax_queued_messages 50000\n" if persistent else ""
    return test.track(start_mosquitto(test.dir, port=port or free_port(), name=name, extra_conf=extra))


def start_insecure_agent(test, port, school="school-a", interval="1s", mqtt_extra="", findings=None):
    """The real agent on plain TCP to 127.0.0.1:port: (workdir, Proc, config path). Without
    `findings` its one audit "t" flips its findings every 0.3 s (events keep coming); with
    {audit: file} it runs those audits on those files (testaudit)."""
    wd = os.path.join(test.dir, school)
    os.makedirs(wd, exist_ok=True)
    conf = agent_config(wd, school, port, None, audits=tuple(findings or ("t",)), findings=findings,
                        mqtt_extra="insecure = true\n" + mqtt_extra, interval=interval)
    # agent_config writes TLS keys for certs; an insecure broker needs none of them.
    with open(conf) as f:
        text = "\n".join(l for l in f.read().splitlines() if not l.startswith(("ca_file", "cert_file", "key_file")))
    write_file(conf, text)
    if not findings:
        flipper = FindingsFlipper([os.path.join(wd, "findings-t.json")], period=0.3)
        test.addCleanup(flipper.stop)
    return wd, test.track(Proc(f"agent-{school}", [agent_bin(), "--config", conf], wd)), conf


class FakeSchool:
    """A school on the wire: births, wills, reports and events with seq, health, and answers to
    `resend` from what it "holds". Everything it publishes is QoS 1 and waits for the PUBACK."""

    def __init__(self, port, school, store="a" * 32, certs=None, hold=True, reply_delay=0.0, answer=True):
        import paho.mqtt.client as mqtt  # python3-paho-mqtt (Debian), MQTT 5
        self.mqtt = mqtt
        self.school, self.store = school, store
        self.sent = {}         # seq -> (topic, envelope) as first published
        self.missing = set()   # seqs it answers as no longer held
        self.requests = []     # (monotonic time, request dict) of every resend asked
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold, self.reply_delay, self.answer = hold, reply_delay, answer
        self.lock = threading.Lock()
        self.session = 0
        self.c = mqtt.Client(client_id=f"campus-{COUNTY}-{school}", protocol=mqtt.MQTTv5)
        if certs:
            self.c.tls_set(ca_certs=f"{certs}/ca.crt", certfile=f"{certs}/{school}.crt", keyfile=f"{certs}/{school}.key")
        self.c.on_message = self._on_message
        connected = threading.Event()
        self.c.on_connect = lambda *a, **k: connected.set()
        self.c.connect(LOOPBACK, port, keepalive=30)
        self.c.loop_start()
        if not connected.wait(10):
            raise AssertionError(f"fake school {school} could not connect")
        self.c.subscribe(self.topic("cmd"), qos=1)
        time.sleep(0.2)

    def topic(self, leaf):
        return f"campus/v1/{COUNTY}/{self.school}/{leaf}"

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()

    def _publish(self, topic, payload, retain=False, props=None):
        info = self.c.publish(topic, payload if isinstance(payload, (bytes, str)) else json.dumps(payload), qos=1,
                              retain=retain, properties=props)
        info.wait_for_publish(10)

    def envelope(self, kind, body, seq=None, audit=None, ts="2026-11-28T21:00:00+08:00"):
        e = {"v": 1, "kind": kind, "county": COUNTY, "school": self.school, "ts": ts, "agent": "campus-agent/0.1.0",
             "body": body}
        if seq is not None:
            e.update({"seq": seq, "id": f"{self.school}:{seq}", "audit": audit, "store_id": self.store})
        return e

    def report(self, seq, audit="fiber", summary=None, publish=True, findings=None, **kw):
        env = self.envelope("report", {"summary": summary or {"g": seq}, "findings": findings or []}, seq, audit, **kw)
        return self._seq(seq, self.topic(f"report/{audit}"), env, publish)

    def event(self, seq, audit="fiber", publish=True, body=None):
        env = self.envelope("event", body or {"subject": f"R{seq}", "from": "covered", "to": "down"}, seq, audit)
        return self._seq(seq, self.topic(f"event/{audit}"), env, publish)

    def _seq(self, seq, topic, env, publish):
        with self.lock:
            self.sent.setdefault(seq, (topic, env))
        if publish:
            self._publish(topic, env, retain=topic.split("/")[-2] == "report")
        return env

    def raw(self, leaf, payload):
        self._publish(self.topic(leaf), payload)

    def birth(self, last_seq=None, session=None):
        self.session = session or self.session + 1
        last = max(self.sent) if last_seq is None and self.sent else (last_seq or 0)
        self._publish(self.topic("state"), self.envelope("state", {
            "online": True, "session": self.session, "last_seq": last,
            "store": {"id": self.store, "created": "2026-09-01T00:00:00+00:00", "recovered": None}}), retain=True)

    def offline(self, reason="will", last_seq=None):
        last = max(self.sent) if last_seq is None and self.sent else (last_seq or 0)
        self._publish(self.topic("state"), self.envelope("state", {
            "online": False, "session": self.session, "last_seq": last, "reason": reason}), retain=True)

    def health(self, depth=0, last_seq=None):
        last = max(self.sent) if last_seq is None and self.sent else (last_seq or 0)
        self._publish(self.topic("health"), self.envelope("health", {
            "version": "0.1.0", "outbox": {"depth": depth, "last_seq": last, "oldest_unsent_age_s": None},
            "mqtt": {"session": self.session}, "store": {"id": self.store, "created": "x", "recovered": None}}),
            retain=True)

    def _on_message(self, client, userdata, msg):
        try:
            req = json.loads(msg.payload)
        except ValueError:
            return
        if req.get("cmd") != "resend":
            return
        props = msg.properties
        response = getattr(props, "ResponseTopic", None)
        corr = getattr(props, "CorrelationData", None)
        with self.lock:
            self.requests.append((time.monotonic(), req))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        threading.Thread(target=self._answer, args=(req, response, corr), daemon=True).start()

    def _answer(self, req, response, corr):
        if self.reply_delay:
            time.sleep(self.reply_delay)
        lo, hi = req["from_seq"], req["to_seq"]
        resent, missing = 0, []
        last = max(self.sent) if self.sent else 0
        for s in range(lo, min(hi, last) + 1):
            if s in self.missing or s not in self.sent or not self.hold:
                if missing and missing[-1][1] == s - 1:
                    missing[-1][1] = s
                else:
                    missing.append([s, s])
                continue
            topic, env = self.sent[s]
            copy = dict(env, resent=True)
            self._publish(topic, copy)
            resent += 1
        with self.lock:
            self.in_flight -= 1
        if not self.answer or not response:
            return
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = corr
        body = {"ok": True, "cmd": "resend", "result": {
            "from_seq": lo, "to_seq": hi, "last_seq": last, "held": resent, "resent": resent, "failed": 0,
            "missing": missing, "missing_count": sum(b - a + 1 for a, b in missing),
            "not_yet_produced": [max(lo, last + 1), hi] if hi > last else None}}
        self._publish(response, self.envelope("reply", body), props=props)


# The county register and history the record and dashboard tests read (the real collector fills
# its database from them).
KNOWN_REGISTER = "code,name,name_en\nschool-a,南伞中心小学,Nansan Central Primary\nschool-b,勐捧中学,Mengpeng Middle\nschool-c,未上线小学,\n"


def _part(c):
    return {"rooms": 10, "covered": round(10 * c), "coverage": c}


def fiber_summary(c):
    return {"classroom": _part(c), "function_room": _part(c), "office": _part(c),
            "overall": {"rooms": 30, "covered": round(30 * c), "coverage": c}}


def seed_known_history(port):
    """Publishes three months of a known history to the broker on `port`: (school a, school b,
    the number of messages the collector must end up holding). school-b's last seq but one is
    held back, a hole the collector repairs with `resend`."""
    # A known history: school-a meets every target from October, school-b from December;
    # school-c never reports (unknown, never counted as met).
    a = FakeSchool(port, "school-a")
    b = FakeSchool(port, "school-b", store="b" * 32)
    a.birth(0)
    b.birth(0)
    seq = {"a": 0, "b": 0}

    def day(s, key, ts, cov, compliant, open_cases, rooms=None):
        for audit, summary in (("fiber", fiber_summary(cov)), ("recording", {"classrooms": 4, "compliant": compliant}),
                               ("attendance", {"open": open_cases, "overdue": 0})):
            seq[key] += 1
            s.report(seq[key], audit, summary, ts=ts, findings=rooms if audit == "fiber" else None)
    day(a, "a", "2026-10-10T10:00:00+08:00", 1.0, 4, 0)
    day(b, "b", "2026-10-11T10:00:00+08:00", 0.8, 3, 2)
    # school-a's latest fiber report: one room degraded (still on fiber), one fine.
    day(a, "a", "2026-11-10T10:00:00+08:00", 1.0, 4, 0,
        rooms=[{"subject": "R203", "state": "degraded", "reason": "link at 100 Mb/s, expected 1000 Mb/s"},
               {"subject": "R204", "state": "covered"}])
    day(b, "b", "2026-11-11T10:00:00+08:00", 0.9, 4, 1)
    day(b, "b", "2026-12-01T10:00:00+08:00", 1.0, 4, 0)
    case = {"id": "attendance-S7-1", "subject": "S7", "stage": "open", "opened_at": "2026-11-11T10:00:00+08:00",
            "details": {"class": "2-1", "overdue": True},
            "steps": [{"at": "2026-11-11T10:00:00+08:00", "action": "opened", "actor": "agent", "note": ""}]}
    seq["b"] += 1
    b.event(seq["b"], "attendance", body={"subject": case["id"], "case": case, "from": None, "to": "open"})
    seq["b"] += 2  # a hole of one seq, filled by the school's answer to resend
    b.event(seq["b"] - 1, "fiber", publish=False)
    b.event(seq["b"], "fiber")
    return a, b, seq["a"] + seq["b"]


class KnownCounty(unittest.TestCase):
    """The real collector on its own Mosquitto, its database filled from seed_known_history (the
    register KNOWN_REGISTER, the county named 镇康县); `sections()` adds to its county.toml."""

    @classmethod
    def sections(cls):
        return {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=f"campus-{cls.__name__}-")
        os.chmod(cls.tmp, 0o755)
        cls.broker = start_mosquitto(cls.tmp)
        register = write_file(os.path.join(cls.tmp, "register.csv"), KNOWN_REGISTER)
        sections = {"county": {"name": "镇康县", "register": register}, "repair": {"reorder_grace": "1s"}}
        sections.update(cls.sections())
        cls.conf = collector_config(cls.tmp, cls.broker.port, **sections)
        cls.coll = Collector(cls.tmp, cls.conf).start()
        cls.a, cls.b, cls.messages = seed_known_history(cls.broker.port)
        wait_until(lambda: cls.coll.scalar("SELECT COUNT(*) FROM message") == cls.messages and
                   cls.coll.gaps() and cls.coll.gaps()[0]["state"] == "filled", 60, what="the history and the repair")

    @classmethod
    def tearDownClass(cls):
        cls.a.close()
        cls.b.close()
        cls.coll.stop()
        cls.broker.stop()
        if not os.environ.get("CAMPUS_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)


def mosquitto_pub(port, topic, payload, certs=None, user="county", retain=False):
    args = ["mosquitto_pub", "-V", "mqttv5", "-h", LOOPBACK, "-p", str(port), "-q", "1", "-t", topic, "-s"]
    if certs:
        args += tls_args(certs, user)
    if retain:
        args.append("-r")
    r = subprocess.run(args, input=payload if isinstance(payload, bytes) else payload.encode(), capture_output=True,
                       timeout=20)
    if r.returncode != 0:
        raise AssertionError(f"mosquitto_pub failed: {r.stderr.decode(errors='replace')}")
