"""Shared harness for integration tests: real servers on 127.0.0.1, bounded in time, stopped
at the end. Python 3 standard library only (Debian's /usr/bin/python3).

Every test starts its own peers on free ports in its own temporary directory, and
everything started is stopped in tearDown (or at interpreter exit), whatever happened."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

BUILD = os.environ.get("CAMPUS_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.environ.get("CAMPUS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
BIN = os.path.join(BUILD, "bin")
PLUGINS = os.path.join(BUILD, "plugins")
SIM = os.path.join(SOURCE, "tests", "sim")
LOOPBACK = "127.0.0.1"  # the only address any test ever probes

_live = []


def free_port(kind=socket.SOCK_STREAM):
    """A port that was free a moment ago on 127.0.0.1 (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it is truthy; returns its value or raises after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def read_packet(conn):
    """(first byte, body) of one MQTT control packet, or None when the peer closed."""
    head = conn.recv(1)
    if not head:
        return None
    length, shift = 0, 0
    while True:
        b = conn.recv(1)
        if not b:
            return None
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return head[0], body


class Proc:
    """A child process with its output in a log file; stop() is bounded and idempotent."""

    def __init__(self, name, argv, workdir, env=None, stdin=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.p = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  env=full_env, start_new_session=True)
        _live.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for_output(self, text, timeout=10):
        return wait_until(lambda: text in self.output() or (not self.alive() and text in self.output()),
                          timeout, what=f"{self.name} to print {text!r}")

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout. Returns the exit code."""
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.p.wait(5)
        if self in _live:
            _live.remove(self)
        self.log.close()
        return self.p.returncode

    def wait(self, timeout):
        return self.p.wait(timeout)


@atexit.register
def _stop_all():
    for p in list(_live):
        try:
            p.stop(timeout=3)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def drop_root_prefix():
    """Daemons that refuse root (snmpd, mosquitto keep root otherwise) run as nobody in CI."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    return []


def start_listening(name, argv, workdir, port, env=None):
    """Starts a server that listens on 127.0.0.1:port; returns its Proc (with .port) once it
    accepts connections, or fails with what the server printed."""
    proc = Proc(name, argv, workdir, env=env)
    wait_until(lambda: port_open(port) or not proc.alive(), 10, what=f"{name} to listen on {port}")
    if not proc.alive():
        raise AssertionError(f"{name} did not start:\n" + proc.output())
    proc.port = port
    return proc


def start_mosquitto(workdir, port=None, extra_conf="", name="mosquitto"):
    """A plain-TCP Mosquitto on 127.0.0.1 (TLS variants: see the MQTT tests)."""
    port = port or free_port()
    conf = os.path.join(workdir, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} {LOOPBACK}\nallow_anonymous true\npersistence false\n"
                f"log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n{extra_conf}")
    os.chmod(workdir, 0o755)
    os.chmod(conf, 0o644)
    return start_listening(name, ["mosquitto", "-c", conf], workdir, port)


class CountySubscriber:
    """Records every message under campus/v1/# as (topic, retained, payload) via mosquitto_sub."""

    def __init__(self, workdir, port, topic="campus/v1/#", extra_args=(), name="county"):
        self.path = os.path.join(workdir, f"{name}.jsonl")
        # %t topic, %r retained flag, %p payload: one line each, payloads are one-line JSON.
        self.proc = Proc(name, ["mosquitto_sub", "-V", "mqttv5", "-h", LOOPBACK, "-p", str(port),
                                "-q", "1", "-t", topic, "-F", "%r\t%t\t%p", *extra_args], workdir)

    def messages(self):
        out = []
        for line in complete_lines(self.proc.output()):  # a message still being written waits
            parts = line.split("\t", 2)
            if len(parts) != 3:
                continue
            retained, topic, payload = parts
            try:
                body = json.loads(payload)
            except ValueError:
                body = payload
            out.append({"retained": retained == "1", "topic": topic, "payload": body})
        return out

    def stop(self):
        self.proc.stop(3)


def notify_reader(sock, got):
    """Returns drain(): appends every sd_notify datagram waiting on sock to got, returns got."""
    def drain():
        try:
            while True:
                got.append(sock.recv(4096).decode())
        except OSError:
            pass
        return got
    return drain


def notify_socket(address):
    """A datagram socket for sd_notify at `address` (a path, or "\0name" for an abstract one)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(0.2)
    return sock


def agent_bin():
    return os.path.join(BIN, "campus-agent")


def write_file(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class IntegrationTest(unittest.TestCase):
    """Base class: a fresh temporary directory per test, every process stopped afterwards."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix=f"campus-{self.__class__.__name__}-")
        os.chmod(self.dir, 0o755)
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop(5)
        if self._failed():
            self._print_logs()
        if os.environ.get("CAMPUS_KEEP_TMP"):
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _failed(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return result is not None and any(t is self for t, _ in result.errors + result.failures)

    def _print_logs(self, lines=80):
        """The end of every log the failed test's processes wrote (the directory is removed next)."""
        for root, _, files in os.walk(self.dir):
            for name in sorted(files):
                if not name.endswith(".log"):
                    continue
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
                print(f"---- {os.path.relpath(path, self.dir)} (last {len(tail)} lines)", file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)

    def track(self, proc):
        self.procs.append(proc)
        return proc


# ---- county broker with TLS and the shipped ACL (issue 7; MQTT tests may share these) ----
def make_certs(outdir, county, schools):
    """scripts/make-certs: ca.crt, broker.crt/.key, county.crt/.key, SCHOOL.crt/.key."""
    subprocess.run([os.path.join(SOURCE, "scripts", "make-certs"), outdir, "--county", county, *schools],
                   check=True, capture_output=True, timeout=120)
    # Mosquitto drops to its own user before reading the broker's files; the agents refuse a
    # key readable by others.
    os.chmod(outdir, 0o755)
    for name in os.listdir(outdir):
        os.chmod(os.path.join(outdir, name), 0o600 if name.endswith(".key") and not name.startswith("broker") else 0o644)
    return outdir


def start_tls_mosquitto(workdir, certs, port=None, name="mosquitto"):
    """Mosquitto with the county broker's TLS settings (client certificates, CN as user name) and
    the ACL scripts/make-certs wrote beside the certificates from config/county-broker/acl."""
    port = port or free_port()
    acl = os.path.join(certs, "acl")
    conf = os.path.join(workdir, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"per_listener_settings false\nallow_anonymous false\nacl_file {acl}\npersistence false\n"
                f"log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
                f"listener {port} {LOOPBACK}\ncafile {certs}/ca.crt\ncertfile {certs}/broker.crt\n"
                f"keyfile {certs}/broker.key\ntls_version tlsv1.2\nrequire_certificate true\n"
                f"use_identity_as_username true\n")
    os.chmod(workdir, 0o755)
    os.chmod(conf, 0o644)
    return start_listening(name, ["mosquitto", "-c", conf], workdir, port)


def tls_client_args(certs, who):
    """mosquitto_pub/sub/rr arguments to connect as `who` (a school code or the county)."""
    return ["--cafile", os.path.join(certs, "ca.crt"), "--cert", os.path.join(certs, f"{who}.crt"),
            "--key", os.path.join(certs, f"{who}.key")]

# --- recording classrooms (plugins/recording): simulated cameras and recorders -------------
RECORDING_SIM = os.path.join(SIM, "recording")


def _ready_line(proc, timeout=20):
    """Waits for the "READY ..." line a simulator prints and returns its words after READY.
    Only a whole line counts: with PYTHONUNBUFFERED=1 (set on this machine, so in CI) print()
    writes "READY", the port and the newline one by one, and a read between them once saw
    "READY" alone (ci14: IndexError in start_recorder_sim)."""
    def words():
        for line in complete_lines(proc.output()):
            if line.startswith("READY"):
                return line.split()[1:]
        return None
    wait_until(lambda: words() is not None or not proc.alive(), timeout, what=f"{proc.name} to print its READY line")
    found = words()
    if found is None:
        raise AssertionError(f"{proc.name} printed no READY line:\n{proc.output()}")
    return found


def complete_lines(text):
    """The lines of a child's output that its writer has finished (a last line without its
    newline may still be being written)."""
    return text.split("\n")[:-1]


def start_rtsp_camera(workdir, mounts, digest=None, basic=None, name="camera"):
    """GStreamer RTSP server (real H.264) with mounts like ["teacher", "board=audio"]; .port set."""
    argv = ["/usr/bin/python3", os.path.join(RECORDING_SIM, "rtsp_camera.py"), "--port", "0"]
    for m in mounts:
        argv += ["--mount", m]
    if digest:
        argv += ["--digest", digest]
    if basic:
        argv += ["--basic", basic]
    proc = Proc(name, argv, workdir)
    proc.port = int(_ready_line(proc)[0])
    return proc


def start_perl_rtsp_camera(workdir, mounts, name="perl-camera"):
    """Debian's rtsp-server-perl (RTSP::Server), a second RTSP implementation next to
    GStreamer's, with each mount published by tests/sim/recording/perl_rtsp_camera.py; .port set."""
    argv = ["/usr/bin/python3", os.path.join(RECORDING_SIM, "perl_rtsp_camera.py")]
    for m in mounts:
        argv += ["--mount", m]
    proc = Proc(name, argv, workdir)
    proc.port = int(_ready_line(proc)[0])
    return proc


def start_bad_rtsp(workdir, modes, name="bad-rtsp"):
    """Misbehaving RTSP servers (tests/sim/recording/bad_rtsp.py); .ports maps mode -> port."""
    proc = Proc(name, ["/usr/bin/python3", os.path.join(RECORDING_SIM, "bad_rtsp.py"), *modes], workdir)
    proc.ports = {k: int(v) for k, v in (w.split("=") for w in _ready_line(proc))}
    return proc


def start_recorder_sim(workdir, devices, name="recorders"):
    """ONVIF + JSON status of many recorders (recorder_sim.py); devices is the JSON table.
    .port set; .update(devices) rewrites the table while it runs; .url(dev, "status"|"onvif")."""
    path = os.path.join(workdir, f"{name}.json")

    def update(table):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(table, f)
        os.replace(tmp, path)
    update(devices)
    proc = Proc(name, ["/usr/bin/python3", os.path.join(RECORDING_SIM, "recorder_sim.py"), path], workdir)
    proc.port = int(_ready_line(proc)[0])
    proc.update = update
    proc.url = lambda dev, what: (f"http://{LOOPBACK}:{proc.port}/{dev}/api/status" if what == "status"
                                  else f"http://{LOOPBACK}:{proc.port}/{dev}/onvif/device_service")
    return proc


def start_nvr_sim(workdir, devices, name="nvrs"):
    """Hikvision ISAPI and Dahua CGI recorders (tests/sim/recording/nvr_sim.py); devices is the
    JSON table. .port set; .url(dev) is the device's base URL; .stats(dev) what it saw."""
    path = os.path.join(workdir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(devices, f)
    proc = Proc(name, ["/usr/bin/python3", os.path.join(RECORDING_SIM, "nvr_sim.py"), path], workdir)
    proc.port = int(_ready_line(proc)[0])
    proc.url = lambda dev: f"http://{LOOPBACK}:{proc.port}/{dev}"

    def stats(dev):
        with urllib.request.urlopen(f"http://{LOOPBACK}:{proc.port}/_stats/{dev}", timeout=5) as r:
            return json.loads(r.read())
    proc.stats = stats
    return proc


def run_recording_probe(register, *args, timeout=120):
    """Runs build/bin/recording-probe (one recording audit without the daemon); returns the report."""
    out = subprocess.run([os.path.join(BIN, "recording-probe"), "--register", register, *map(str, args)],
                         capture_output=True, timeout=timeout, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])

def attendance_sim(workdir, data_jsonl, token_file, page_size=30, port=None, name="attendance-sim"):
    """The simulated attendance HTTP service (tests/sim/attendance/server.py) on 127.0.0.1;
    the returned Proc has .port. Fault modes: GET /control?mode=500|notjson|hang|ok."""
    port = port or free_port()
    return start_listening(name, [sys.executable, os.path.join(SIM, "attendance", "server.py"), "--port", port,
                                  "--data", data_jsonl, "--token-file", token_file, "--page-size", page_size],
                           workdir, port)

# --- faults (issue 9): reconnect attempts, resource samples, hostile devices ----------------
import re as _re  # noqa: E402


def failed_connect_attempts(agent_log):
    """Failed MQTT connect attempts in an agent log: one line each ("cannot connect to ..." the
    first time a cause is seen, then "connect attempt N failed"); the debug line "next connect
    attempt in" announces an attempt and is not one."""
    return len(_re.findall(r"cannot connect to|connect attempt \d+ failed", agent_log))


def max_failed_attempts(outage_s, reconnect_min_s, reconnect_max_s):
    """The most connect attempts the agent's backoff allows within one outage of outage_s:
    waits double from reconnect_min up to reconnect_max, each jittered in [d/2, d], so the
    shortest possible waits are d/2. Counts the attempt at the start of the outage too."""
    attempts, elapsed, step = 1, 0.0, 0
    while True:
        elapsed += min(reconnect_max_s, reconnect_min_s * 2 ** step) / 2
        step += 1
        if elapsed > outage_s:
            return attempts
        attempts += 1


def proc_resources(pid):
    """(rss_kib, open_fds, threads) of a live process, from /proc."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def sanitizer_build():
    """"tsan", "asan" or "" for the agent binary under test (the sanitizer runtime its code calls
    into), known before it runs: tests that size their work by the machine use it."""
    with open(agent_bin(), "rb") as f:
        data = f.read()
    return "tsan" if b"__tsan_init" in data else "asan" if b"__asan_init" in data else ""


def under_sanitizer(pid):
    """True when the process runs with AddressSanitizer, whose quarantine keeps freed memory
    (up to 256 MiB) on purpose: its RSS grows without a leak, so RSS bounds do not apply."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def start_hostile(workdir, specs, name="hostile"):
    """Hostile devices (tests/sim/hostile.py) for specs like ["rtsp:hang", "onvif:flood"];
    .ports maps each spec to its port on 127.0.0.1."""
    proc = Proc(name, ["/usr/bin/python3", os.path.join(SIM, "hostile.py"), *specs], workdir)
    proc.ports = {k: int(v) for k, v in (w.rsplit("=", 1) for w in _ready_line(proc))}
    return proc
