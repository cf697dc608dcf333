"""Simulated school switches: real Debian snmpd instances on 127.0.0.1, one per switch (or one
instance answering on several ports), serving IF-MIB rows and vendor optical-power OIDs from
`override -rw` lines, so a test can flip a port with snmpset while the agent runs.

Python 3 standard library only. Used by tests/integration/test_fiber*.py, demo.py and the
fiber benchmark."""
import os
import shutil
import signal
import socket
import subprocess
import time

IF_ENTRY = ".1.3.6.1.2.1.2.2.1"
IFX_ENTRY = ".1.3.6.1.2.1.31.1.1.1"
H3C_RX = ".1.3.6.1.4.1.25506.2.70.1.1.1.12"
H3C_TX = ".1.3.6.1.4.1.25506.2.70.1.1.1.9"
HUAWEI_RX = ".1.3.6.1.4.1.2011.5.25.31.1.1.3.1.8"
HUAWEI_TX = ".1.3.6.1.4.1.2011.5.25.31.1.1.3.1.9"
ENT_ALIAS = ".1.3.6.1.2.1.47.1.3.2.1.2"
# RUIJIE-FIBER-MIB ruijieFiberEntry and ZTE-AN-OPTICAL-MODULE-MIB zxAnOpticalModuleInfoEntry
# (the columns are cited in plugins/fiber/profiles/ruijie.toml and zte.toml).
RUIJIE_FIBER = ".1.3.6.1.4.1.4881.1.1.10.2.105.1.1.1"
RUIJIE_INVALID = -10000
ZTE_OPTICAL = ".1.3.6.1.4.1.3902.1082.30.40.2.4.1"
ENT_BASE = 67108864  # Huawei-style entPhysicalIndex = ENT_BASE + ifIndex

UP, DOWN = 1, 2
LOWER_LAYER_DOWN = 7


def port(if_index, name=None, admin=UP, oper=UP, speed=1000, rx_dbm=None, last_change=0, alias="", tx_dbm=None,
         module=True, dom=True, rx_alarm=None, tx_alarm=None, rx_raw=None):
    """One switch port. rx_dbm / tx_dbm: optical receive / transmit power (None: no reading).
    last_change: ifLastChange in TimeTicks; any value > 0 on a freshly started snmpd counts as
    a change within the flap window. For the ruijie and zte vendors: module=False leaves the
    port without a row in the vendor's optical table; dom=False is a module without digital
    diagnostics (ruijie: ruijieFiberDDMSupportStatus false, every value -10000; zte: no row);
    rx_alarm / tx_alarm = (low, high) are the module's alarm thresholds in dBm (ruijie; None:
    -10000); rx_raw is the raw receive value served instead of rx_dbm (a vendor sentinel)."""
    return {"if_index": if_index, "name": name or f"GigabitEthernet1/0/{if_index}", "admin": admin,
            "oper": oper, "speed": speed, "rx_dbm": rx_dbm, "last_change": last_change, "alias": alias,
            "tx_dbm": tx_dbm, "module": module, "dom": dom, "rx_alarm": rx_alarm, "tx_alarm": tx_alarm,
            "rx_raw": rx_raw}


def ruijie_rows(p):
    """RUIJIE-FIBER-MIB rows of one port: values in 0.01 dBm, -10000 where there is none."""
    i = p["if_index"]
    if not p["module"]:
        return []
    hundredths = lambda v: RUIJIE_INVALID if v is None or not p["dom"] else round(v * 100)  # noqa: E731
    rx = p["rx_raw"] if p["rx_raw"] is not None else hundredths(p["rx_dbm"])
    rx_lo, rx_hi = p["rx_alarm"] or (None, None)
    tx_lo, tx_hi = p["tx_alarm"] or (None, None)
    rows = [(15, 1 if p["dom"] else 2), (76, rx), (81, hundredths(p["tx_dbm"])),
            (93, hundredths(rx_lo)), (94, hundredths(rx_hi)), (97, hundredths(tx_lo)), (98, hundredths(tx_hi))]
    return [f"override -rw {RUIJIE_FIBER}.{column}.{i} integer {value}" for column, value in rows]


def zte_rows(p):
    """ZTE-AN-OPTICAL-MODULE-MIB rows of one port: 0.001 dBm; no row without a module or DOM."""
    i = p["if_index"]
    if not p["module"] or not p["dom"]:
        return []
    rows = []
    rx = p["rx_raw"] if p["rx_raw"] is not None else (None if p["rx_dbm"] is None else round(p["rx_dbm"] * 1000))
    if rx is not None:
        rows.append(f"override -rw {ZTE_OPTICAL}.2.{i} integer {rx}")
    if p["tx_dbm"] is not None:
        rows.append(f"override -rw {ZTE_OPTICAL}.3.{i} integer {round(p['tx_dbm'] * 1000)}")
    return rows


def rx_oid(vendor, if_index, column=None):
    """The receive power OID of a port (transmit with column="tx")."""
    if vendor == "h3c":
        return f"{H3C_TX if column == 'tx' else H3C_RX}.{if_index}"
    if vendor == "huawei":
        return f"{HUAWEI_TX if column == 'tx' else HUAWEI_RX}.{ENT_BASE + if_index}"
    return None


def switch_conf(ports, vendor="generic", community="public", v3_user=None):
    """snmpd.conf text for one simulated switch. v3_user: (name, auth_pass, priv_pass) adds an
    SNMPv3 user with SHA authentication and AES privacy."""
    lines = [f"rocommunity {community} 127.0.0.1",
             f"rwcommunity {community}-rw 127.0.0.1",
             "dontLogTCPWrappersConnects yes",
             "sysDescr campus-agent simulated switch"]
    if v3_user:
        name, auth, priv = v3_user
        lines += [f'createUser {name} SHA "{auth}" AES "{priv}"', f"rouser {name} priv"]
    for p in ports:
        i = p["if_index"]
        lines += [f"override -rw {IF_ENTRY}.7.{i} integer {p['admin']}",
                  f"override -rw {IF_ENTRY}.8.{i} integer {p['oper']}",
                  f"override -rw {IF_ENTRY}.9.{i} timeticks {p['last_change']}",
                  f'override -rw {IFX_ENTRY}.1.{i} octet_str "{p["name"]}"',
                  f"override -rw {IFX_ENTRY}.15.{i} unsigned {p['speed']}",
                  f'override -rw {IFX_ENTRY}.18.{i} octet_str "{p["alias"]}"']
        if vendor == "huawei":
            lines.append(f"override {ENT_ALIAS}.{ENT_BASE + i}.0 object_id {IF_ENTRY}.1.{i}")
        if vendor == "ruijie":
            lines += ruijie_rows(p)
        if vendor == "zte":
            lines += zte_rows(p)
        oid = rx_oid(vendor, i)
        if oid and p["rx_dbm"] is not None:
            lines.append(f"override -rw {oid} integer {round(p['rx_dbm'] * 100)}")
        if oid and p["tx_dbm"] is not None:
            lines.append(f"override -rw {rx_oid(vendor, i, 'tx')} integer {round(p['tx_dbm'] * 100)}")
    return "\n".join(lines) + "\n"


def _drop_root():
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    return []


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimSwitch:
    """One snmpd process answering on `port_count` free UDP ports of 127.0.0.1. The ports are
    known for sure after wait_ready(): a port taken meanwhile by someone else is replaced."""

    def __init__(self, workdir, name, conf_text, port_count=1):
        self.name = name
        self.dir = os.path.join(workdir, f"snmpd-{name}")
        os.makedirs(os.path.join(self.dir, "persist"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "mibs"), exist_ok=True)
        for d in (workdir, self.dir, os.path.join(self.dir, "persist"), os.path.join(self.dir, "mibs")):
            os.chmod(d, 0o777 if d.endswith("persist") else 0o755)
        self.conf = os.path.join(self.dir, "snmpd.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        os.chmod(self.conf, 0o644)
        self.port_count = port_count
        self.log_path = os.path.join(self.dir, "snmpd.log")
        self.log = open(self.log_path, "ab")
        self._spawn()

    def _spawn(self):
        self.udp_ports = [free_udp_port() for _ in range(self.port_count)]
        self.port = self.udp_ports[0]
        listen = ",".join(f"udp:127.0.0.1:{p}" for p in self.udp_ports)
        env = dict(os.environ, SNMP_PERSISTENT_DIR=os.path.join(self.dir, "persist"), MIBS="")
        argv = _drop_root() + ["snmpd", "-f", "-Lo", "-C", "-c", self.conf, "-M", os.path.join(self.dir, "mibs"),
                               "-m", "", "-I", "-smux,ifTable,ifXTable,interfaces", listen]
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, start_new_session=True)

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                if "Error opening specified endpoint" in open(self.log_path).read():
                    # Lost a race for a free port: start again on other ports.
                    self.log.truncate(0)
                    self._spawn()
                    continue
                raise RuntimeError(f"snmpd {self.name} exited:\n" + open(self.log_path).read())
            r = subprocess.run(["snmpget", "-v2c", "-c", self.community_guess(), "-m", "", "-On", "-t", "0.3",
                                "-r", "0", f"127.0.0.1:{self.port}", ".1.3.6.1.2.1.1.3.0"],
                               capture_output=True, text=True, env=dict(os.environ, MIBS=""))
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"snmpd {self.name} did not answer on {self.port}:\n" + open(self.log_path).read())

    def community_guess(self):
        with open(self.conf) as f:
            return f.readline().split()[1]

    def set(self, oid, type_char, value):
        """snmpset through the -rw community: flips a port while the agent runs."""
        rw = self.community_guess() + "-rw"
        subprocess.run(["snmpset", "-v2c", "-c", rw, "-m", "", "-On", "-t", "1", f"127.0.0.1:{self.port}",
                        oid, type_char, str(value)], check=True, capture_output=True, env=dict(os.environ, MIBS=""))

    def set_oper(self, if_index, status):
        self.set(f"{IF_ENTRY}.8.{if_index}", "i", status)

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        self.log.close()


def start_switches(workdir, specs):
    """specs: {name: {"vendor": ..., "community": ..., "ports": [port(...), ...]}}.
    Starts them all, waits until each answers; returns {name: SimSwitch}."""
    sims = {}
    try:
        for name, spec in specs.items():
            sims[name] = SimSwitch(workdir, name, switch_conf(spec["ports"], spec.get("vendor", "generic"),
                                                              spec.get("community", "public"), spec.get("v3_user")))
        for s in sims.values():
            s.wait_ready()
    except Exception:
        for s in sims.values():
            s.stop()
        raise
    return sims


class SilentUdp:
    """A UDP port on 127.0.0.1 that receives and never answers (a dead switch)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()
