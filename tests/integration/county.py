"""County-side helpers for the MQTT tests: certificates (scripts/make-certs), the shipped county
broker config (config/county-broker/) on a free port, a TLS county subscriber, JSON Schema
validation of every envelope (docs/schemas/), and the delivery analysis (gaps, order, copies).
Debian's python3-jsonschema is the only dependency beyond the standard library."""
import json
import os
import re
import subprocess
import threading
import time

from harness import (LOOPBACK, SOURCE, PLUGINS, CountySubscriber, free_port, port_open, start_listening, wait_until,
                     write_file)

COUNTY = "zhenkang"
SCHEMA_DIR = os.path.join(SOURCE, "docs", "schemas")
KINDS = ("state", "report", "event", "health", "reply")


def make_certs(workdir, schools, *extra, county=COUNTY, name="certs"):
    """Runs scripts/make-certs into workdir/NAME (certificates, CRL and the broker's ACL);
    returns that directory."""
    out = os.path.join(workdir, name)
    subprocess.run([os.path.join(SOURCE, "scripts", "make-certs"), out, "--county", county, *extra, *schools],
                   check=True, capture_output=True)
    return out


def start_county_broker(workdir, certs, port=None, broker_cert="broker", name="broker", persistence=True,
                        bind_client_ids=False):
    """Mosquitto the way docs/county.md installs it: a main file like Debian's stock
    /etc/mosquitto/mosquitto.conf (persistence, persistence_location, log_dest, include_dir) and
    the shipped config/county-broker/mosquitto.conf as the drop-in in its conf.d, with the
    certificate, CRL and ACL paths pointing at `certs` (make-certs writes all three there) and
    the port rewritten for a test directory (nothing else changed). bind_client_ids turns on the
    shipped, commented-out use_username_as_clientid line."""
    return start_shared_broker(workdir, {COUNTY: (certs, port or free_port())}, broker_cert=broker_cert, name=name,
                               persistence=persistence, bind_client_ids=bind_client_ids)


def county_listener_conf(conf, certs, port, broker_cert="broker"):
    """The shipped drop-in with its listener block pointed at one county's certificate
    directory (as scripts/make-certs writes it) and at port on 127.0.0.1."""
    conf = re.sub(r"(?m)^listener 8883$", f"listener {port} {LOOPBACK}", conf)
    conf = re.sub(r"(?m)^cafile .*$", f"cafile {certs}/ca.crt", conf)
    conf = re.sub(r"(?m)^certfile .*$", f"certfile {certs}/{broker_cert}.crt", conf)
    conf = re.sub(r"(?m)^keyfile .*$", f"keyfile {certs}/{broker_cert}.key", conf)
    conf = re.sub(r"(?m)^crlfile .*$", f"crlfile {certs}/crl.pem", conf)
    return re.sub(r"(?m)^acl_file .*$", f"acl_file {certs}/acl", conf)


def start_shared_broker(workdir, counties, broker_cert="broker", name="broker", persistence=True,
                        bind_client_ids=False):
    """One Mosquitto for several counties as docs/county.md describes it: the shipped drop-in,
    its listener block once per county. `counties` maps a county code to (certs dir, port); the
    returned Proc has .port (the first county's) and .ports (code -> port)."""
    with open(os.path.join(SOURCE, "config", "county-broker", "mosquitto.conf")) as f:
        shipped = f.read()
    if bind_client_ids:
        shipped, n = re.subn(r"(?m)^#use_username_as_clientid true$", "use_username_as_clientid true", shipped)
        assert n == 1, "the shipped drop-in has the commented use_username_as_clientid line"
    marker = "# The county's listener.\n"
    assert shipped.count(marker) == 1, "the shipped drop-in has one listener block"
    common, listener = shipped.split(marker)
    conf = common + "".join(marker + county_listener_conf(listener, certs, port, broker_cert)
                            for certs, port in counties.values())
    pdir = os.path.join(workdir, "broker-db")  # shared by restarts on the same port
    os.makedirs(pdir, exist_ok=True)
    os.chmod(pdir, 0o777)
    on = "true" if persistence else "false"
    conf = re.sub(r"(?m)^persistence true$", f"persistence {on}", conf)
    confd = os.path.join(workdir, f"{name}.conf.d")
    write_file(os.path.join(confd, "campus.conf"), conf)
    os.chmod(confd, 0o755)
    # Debian's stock file with the test's paths (its pid_file is left out: no /run/mosquitto here).
    # Its log file is line-buffered; stdout redirected to a file would be block-buffered, stderr
    # is not: the tests read the broker's log lines as they happen.
    path = write_file(os.path.join(workdir, f"{name}.conf"),
                      f"persistence {on}\npersistence_location {pdir}/\nlog_dest stderr\ninclude_dir {confd}\n")
    os.chmod(workdir, 0o755)
    ports = {code: port for code, (_, port) in counties.items()}
    proc = start_listening(name, ["mosquitto", "-c", path], workdir, next(iter(ports.values())))
    for port in ports.values():
        wait_until(lambda: port_open(port) or not proc.alive(), 10, what=f"{name} to listen on {port}")
    proc.ports = ports
    return proc


def hand_made_certificate(certs, cn, name):
    """NAME.crt/.key in `certs`: a client certificate with this CN signed by the county CA with
    the openssl CLI directly, as a CA operator's slip would make it (make-certs refuses such
    names). A '/' in the CN is escaped for -subj."""
    key, csr, crt = (os.path.join(certs, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
    ext = write_file(os.path.join(certs, f"{name}.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    env = dict(os.environ, OPENSSL_CONF="/dev/null")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, env=env, timeout=30)  # noqa: E731
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-subj", "/O=campus/CN=" + cn.replace("/", "\\/"), "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(certs, "ca.crt"), "-CAkey",
        os.path.join(certs, "ca.key"), "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30",
        "-extfile", ext, "-out", crt)
    os.remove(csr)
    os.remove(ext)
    os.chmod(key, 0o600)
    os.chmod(crt, 0o644)
    return name


def tls_args(certs, user):
    """mosquitto_sub/pub arguments to log in as `user` (a school code or the county)."""
    return ["--cafile", os.path.join(certs, "ca.crt"), "--cert", os.path.join(certs, f"{user}.crt"),
            "--key", os.path.join(certs, f"{user}.key")]


def county_subscriber(workdir, port, certs, name="county", topic=f"campus/v1/{COUNTY}/#", persistent=True):
    """The county account (reads everything) recording every envelope. With persistent=True its
    broker session survives broker restarts, so nothing published meanwhile is missed."""
    extra = tls_args(certs, "county")
    if persistent:
        extra += ["-c", "-i", f"county-{name}"]
    sub = CountySubscriber(workdir, port, topic=topic, extra_args=extra, name=name)
    time.sleep(0.5)  # subscribed before anything is published
    return sub


def agent_config(workdir, school, port, certs, audits=("t",), mqtt_extra="", interval="1s", findings=None,
                 county=COUNTY, name="agent"):
    """NAME.toml (data in NAME-data/ unless NAME is "agent") for the real daemon with mTLS to the
    county broker and test audits."""
    data = os.path.join(workdir, "data" if name == "agent" else f"{name}-data")
    lines = [f"""
[agent]
county = "{county}"
school = "{school}"
data_dir = "{data}"
plugin_dir = "{PLUGINS}"
log_level = "debug"

[mqtt]
host = "127.0.0.1"
port = {port}
ca_file = "{certs}/ca.crt"
cert_file = "{certs}/{school}.crt"
key_file = "{certs}/{school}.key"
keep_alive = "2s"
reconnect_min = "200ms"
reconnect_max = "2s"
connect_timeout = "3s"
health_interval = "1s"
{mqtt_extra}
"""]
    findings = findings or {}
    for a in audits:
        f = findings.get(a) or os.path.join(workdir, f"findings-{a}.json")
        if not os.path.exists(f):
            write_findings(f, 0)
        lines.append(f"""
[audits.{a}]
plugin = "testaudit"
findings_file = "{f}"
interval = "{interval}"
jitter = "0s"
first_delay = "0s"
""")
    return write_file(os.path.join(workdir, f"{name}.toml"), "".join(lines))


def write_findings(path, generation, rooms=5):
    """Every room flips state with each generation: each audit run after a rewrite yields one
    report and `rooms` events. Written atomically (the plugin re-reads it every run)."""
    # Three states, not two: with a flip period of half the audit interval, two states would
    # alias (each run sees the generation advanced by 2, the same state) and make no events.
    state = ("covered", "down", "degraded")[generation % 3]
    doc = {"summary": {"rooms": rooms, "generation": generation},
           "findings": [{"subject": f"room-{i}", "state": state, "reason": "" if state == "covered" else "link down"}
                        for i in range(rooms)]}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


class FindingsFlipper:
    """Rewrites the findings files every `period` seconds in a thread, so audits keep producing events."""

    def __init__(self, paths, period=0.4):
        self.paths, self.period = paths, period
        self.stop_event = threading.Event()
        self.generation = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.wait(self.period):
            self.generation += 1
            for p in self.paths:
                try:
                    write_findings(p, self.generation)
                except FileNotFoundError:  # the test ended and removed its directory
                    return

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)


_validators = {}


def validator(kind):
    if kind not in _validators:
        import jsonschema  # python3-jsonschema (Debian)
        with open(os.path.join(SCHEMA_DIR, f"{kind}.json")) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        _validators[kind] = jsonschema.Draft202012Validator(schema)
    return _validators[kind]


def schema_errors(envelope):
    """[] when the envelope is valid against docs/schemas/<kind>.json, else the messages."""
    if not isinstance(envelope, dict) or envelope.get("kind") not in KINDS:
        return [f"not an envelope of a known kind: {str(envelope)[:200]}"]
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator(envelope["kind"]).iter_errors(envelope)]


def reply_body_errors(body):
    """[] when `body` is a valid reply body (the `body` of docs/schemas/reply.json: what campusctl
    --json prints for a single-school request), else the messages."""
    import jsonschema
    schema = validator("reply").schema["properties"]["body"]
    return [f"{'/'.join(map(str, e.path))}: {e.message}"
            for e in jsonschema.Draft202012Validator(schema).iter_errors(body)]


def arrivals_around(messages, topic, later, earlier, width=4):
    """Lines showing what the county got around a disorder: from `width` messages before the
    first arrival of seq `later` on `topic` to `width` after the first arrival of `earlier`
    (at most 40 lines), each with its index, topic tail, kind and seq, or `garbled`."""
    def first(seq):
        return next((i for i, m in enumerate(messages) if m["topic"] == topic and isinstance(m["payload"], dict)
                     and m["payload"].get("seq") == seq), len(messages) - 1)
    lo, hi = max(0, first(later) - width), min(len(messages), first(earlier) + width + 1)
    lines = []
    for i in range(lo, min(hi, lo + 40)):
        m, p = messages[i], messages[i]["payload"]
        what = f"{p.get('kind')} seq {p.get('seq')}" if isinstance(p, dict) else f"garbled {str(p)[:40]!r}"
        lines.append(f"  #{i} {m['topic'].split('/', 3)[-1]}: {what}")
    return "\n".join(lines)


def delivery_report(messages):
    """Analyses report/event envelopes as the county would: returns a dict with
    seqs (set), last (max seq), gaps (missing seqs in 1..last), copies (extra deliveries),
    id_conflicts (a seq seen with two ids or payloads), disorder (a topic going back to a seq
    it had not seen before)."""
    by_seq = {}
    copies = 0
    conflicts = []
    disorder = []
    last_on_topic = {}
    for m in messages:
        env = m["payload"]
        if not isinstance(env, dict) or env.get("kind") not in ("report", "event"):
            continue
        seq = env["seq"]
        key = (env["id"], json.dumps(env, sort_keys=True))
        if seq in by_seq:
            copies += 1
            if by_seq[seq] != key:
                conflicts.append(seq)
        else:
            prev = last_on_topic.get(m["topic"], 0)
            if seq < prev:
                disorder.append((m["topic"], prev, seq))
            by_seq[seq] = key
        last_on_topic[m["topic"]] = max(last_on_topic.get(m["topic"], 0), seq)
    last = max(by_seq) if by_seq else 0
    gaps = [s for s in range(1, last + 1) if s not in by_seq]
    return {"seqs": set(by_seq), "last": last, "gaps": gaps, "copies": copies, "id_conflicts": conflicts,
            "disorder": disorder}


def states(messages, school):
    """The state envelopes of one school, in arrival order."""
    t = f"campus/v1/{COUNTY}/{school}/state"
    return [m for m in messages if m["topic"] == t and isinstance(m["payload"], dict)]


def sqlite_scalar(db, sql):
    r = subprocess.run(["sqlite3", db, sql], capture_output=True, text=True, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else "ERROR: " + r.stderr.strip()
