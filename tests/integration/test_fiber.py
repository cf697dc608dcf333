"""Fiber coverage audit against real Debian snmpd switches on 127.0.0.1: port states, optical
power for two vendor profiles, a wrong community, a switch that never answers, endpoints, bad
register rows, a link flipped between runs, and the deadline behaviour with dead switches."""
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import unittest

import harness
from harness import IntegrationTest, write_file

sys.path.insert(0, os.path.join(harness.SIM, "fiber"))
import snmpsim  # noqa: E402
from snmpsim import port, DOWN, LOWER_LAYER_DOWN  # noqa: E402


class FiberTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.sims = {}
        self.closers = []

    def tearDown(self):
        for s in self.sims.values():
            s.stop()
        for c in self.closers:
            c()
        super().tearDown()

    def start(self, specs):
        self.sims.update(snmpsim.start_switches(self.dir, specs))

    def silent_udp(self):
        s = snmpsim.SilentUdp()
        self.closers.append(s.close)
        return s.port

    def listener(self):
        """A TCP port that accepts connections (a device in the room)."""
        s = socket.socket()
        s.bind((harness.LOOPBACK, 0))
        s.listen(64)
        self.closers.append(s.close)
        return s.getsockname()[1]

    def write_config(self, rooms, switches, community="public", timeout_ms=1000, retries=1):
        """agent.toml with MQTT off and [audits.fiber] pointing at the registers."""
        write_file(os.path.join(self.dir, "rooms.csv"), rooms)
        write_file(os.path.join(self.dir, "switches.csv"), switches)
        write_file(os.path.join(self.dir, "community"), community + "\n", 0o600)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        return write_file(os.path.join(self.dir, "agent.toml"), f"""[agent]
county = "zhenkang"
school = "fiber-test"
data_dir = "{self.dir}/data"
plugin_dir = "{harness.PLUGINS}"
log_level = "warn"
[mqtt]
enabled = false
[audits.fiber]
timeout = "60s"
rooms = "rooms.csv"
switches = "switches.csv"
community_file = "community"
snmp_timeout = "{timeout_ms}ms"
snmp_retries = {retries}
endpoint_timeout = "1500ms"
""")

    def audit(self, rooms, switches, community="public", timeout_ms=1000, retries=1, mode="--dry-run"):
        """Runs the real daemon once (`--dry-run --json`, or `--once` to store and derive events)."""
        conf = self.write_config(rooms, switches, community, timeout_ms, retries)
        argv = [harness.agent_bin(), "--config", conf, mode] + (["--json"] if mode == "--dry-run" else [])
        started = time.monotonic()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - started
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        if mode != "--dry-run":
            return None
        report = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertEqual(report["audit"], "fiber")
        report["by_room"] = {f["subject"]: f for f in report["findings"]}
        report["elapsed"] = elapsed
        return report

    def events(self):
        """Fiber events the store derived, oldest first: (subject, from, to, reason)."""
        db = sqlite3.connect(os.path.join(self.dir, "data", "agent.db"))
        try:
            rows = db.execute("SELECT payload FROM outbox WHERE kind = 'event' AND audit = 'fiber' ORDER BY seq").fetchall()
        finally:
            db.close()
        out = []
        for (payload,) in rows:
            body = json.loads(payload)["body"]
            out.append((body.get("subject"), body.get("from"), body.get("to"), body.get("reason")))
        return out

    def assertRoom(self, report, room, state, reason_part=None):
        f = report["by_room"].get(room)
        self.assertIsNotNone(f, f"room {room} missing from the report")
        self.assertEqual(f["state"], state, f"{room}: {f['reason']} {f['details']}")
        if reason_part:
            self.assertIn(reason_part, f["reason"], room)
        return f


class FiberAuditTest(FiberTest):
    def test_classifies_every_room_against_real_switches(self):
        self.start({
            "h3c": {"vendor": "h3c", "ports": [
                port(1, rx_dbm=-5.2, alias="C101", tx_dbm=-5.5),
                port(2, oper=DOWN, rx_dbm=None),
                port(3, speed=100, rx_dbm=-6.0),
                port(4, admin=DOWN, oper=DOWN),
                port(5, rx_dbm=-25.0),
                port(6, rx_dbm=-18.5),
                port(7, rx_dbm=-7.0, last_change=1),
            ]},
            "huawei": {"vendor": "huawei", "ports": [
                port(1, name="GigabitEthernet0/0/1", rx_dbm=-6.3, tx_dbm=-5.0),
                port(2, name="GigabitEthernet0/0/2", rx_dbm=-30.0),
                port(3, name="GigabitEthernet0/0/3", oper=LOWER_LAYER_DOWN),
            ]},
            "wrongcomm": {"vendor": "h3c", "community": "not-public", "ports": [port(1, rx_dbm=-5.0)]},
        })
        dead = self.silent_udp()
        up = self.listener()
        closed = harness.free_port()
        s = self.sims
        switches = ("id,address,profile\n"
                    f"sw-h3c,127.0.0.1:{s['h3c'].port},h3c\n"
                    f"sw-hw,127.0.0.1:{s['huawei'].port},huawei\n"
                    f"sw-wrong,127.0.0.1:{s['wrongcomm'].port},h3c\n"
                    f"sw-dead,127.0.0.1:{dead},generic\n")
        rooms = ("id,name,type,building,floor,switch,port,endpoint\n"
                 "C101,一年级一班,classroom,教学楼A,1,sw-h3c,1,\n"
                 "C102,一年级二班,classroom,教学楼A,1,sw-h3c,2,\n"
                 "C103,一年级三班,classroom,教学楼A,1,sw-h3c,GigabitEthernet1/0/3,\n"
                 "C104,二年级一班,classroom,教学楼A,2,sw-h3c,4,\n"
                 "C105,二年级二班,classroom,教学楼A,2,sw-h3c,5,\n"
                 "C106,二年级三班,classroom,教学楼A,2,sw-h3c,6,\n"
                 "C107,三年级一班,classroom,教学楼A,3,sw-h3c,7,\n"
                 "F201,录播教室,function_room,教学楼B,2,sw-hw,GigabitEthernet0/0/1,\n"
                 "F202,音乐教室,function_room,教学楼B,2,sw-hw,GigabitEthernet0/0/2,\n"
                 "F203,美术教室,function_room,教学楼B,2,sw-hw,3,\n"
                 "F204,科学实验室,function_room,教学楼B,3,,,\n"
                 "O301,校长办公室,office,行政楼,3,sw-wrong,1,\n"
                 "O302,教务处,office,行政楼,3,sw-dead,1,\n"
                 f"O303,总务处,office,行政楼,3,,,tcp:127.0.0.1:{up}\n"
                 f"O304,财务室,office,行政楼,3,,,tcp:127.0.0.1:{closed}\n"
                 f"O305,档案室,office,行政楼,3,sw-h3c,1,tcp:127.0.0.1:{closed}\n"
                 "X901,仓库,storeroom,行政楼,1,sw-h3c,1,\n"
                 "C108,三年级二班,classroom,教学楼A,3,sw-none,1,\n"
                 "C109,三年级三班,classroom,教学楼A,3,sw-h3c,99,\n")
        r = self.audit(rooms, switches)

        c101 = self.assertRoom(r, "C101", "covered")
        self.assertEqual(c101["details"]["rx_dbm"], -5.2)
        self.assertEqual((c101["details"]["tx_dbm"], c101["details"]["tx_limits_from"]), (-5.5, "audit"))
        self.assertEqual(c101["details"]["if_alias"], "C101")
        self.assertRoom(r, "C102", "down", "link down")
        self.assertRoom(r, "C103", "degraded", "speed 100 Mbit/s below minimum 1000")
        self.assertRoom(r, "C104", "down", "administratively down")
        self.assertRoom(r, "C105", "degraded", "optical power out of range: rx -25.0 dBm")
        self.assertRoom(r, "C106", "degraded", "near a limit")
        self.assertRoom(r, "C107", "degraded", "flapping")
        f201 = self.assertRoom(r, "F201", "covered")
        self.assertEqual(f201["details"]["rx_dbm"], -6.3, "huawei power through entAliasMapping")
        self.assertEqual(f201["details"]["tx_dbm"], -5.0, "huawei transmit power through entAliasMapping")
        self.assertRoom(r, "F202", "degraded", "rx -30.0 dBm")
        self.assertRoom(r, "F203", "down", "lowerLayerDown")
        self.assertRoom(r, "F204", "not_planned", "no fiber link in the register")
        self.assertRoom(r, "O301", "unknown", "wrong community")
        self.assertRoom(r, "O302", "unknown", "no answer from 127.0.0.1")
        self.assertRoom(r, "O303", "covered")
        self.assertRoom(r, "O304", "down", "connection refused")
        self.assertRoom(r, "O305", "down", "endpoint")
        self.assertRoom(r, "X901", "unknown", "rooms.csv:18 column type")
        self.assertRoom(r, "C108", "unknown", "unknown switch")
        self.assertRoom(r, "C109", "unknown", "port 99 not found")

        errors = "\n".join(json.dumps(e, ensure_ascii=False) for e in r["errors"])
        self.assertIn("rooms.csv:18 column type", errors)
        self.assertIn("rooms.csv:19 column switch", errors)
        self.assertIn("rooms.csv:20 column port", errors)

        s = r["summary"]
        self.assertEqual(s["classroom"]["rooms"], 9)
        self.assertEqual(s["classroom"]["covered"], 1)
        self.assertEqual(s["function_room"]["not_planned"], 1)
        self.assertEqual(s["office"]["unknown"], 2)
        self.assertEqual(s["overall"]["rooms"], 19)
        self.assertEqual(s["overall"]["covered"], 3)
        self.assertAlmostEqual(s["overall"]["coverage"], 3 / 19)
        self.assertEqual(len(s["not_covered"]), 16)
        self.assertEqual(s["switches"], {"listed": 4, "answered": 2})

    def test_ruijie_and_zte_switches_with_their_own_profiles(self):
        """RUIJIE-FIBER-MIB (0.01 dBm, -10000 = no reading, per-module alarm thresholds, DOM flag)
        and ZTE-AN-OPTICAL-MODULE-MIB (0.001 dBm, no row without a module) served by snmpd."""
        self.start({
            "ruijie": {"vendor": "ruijie", "ports": [
                # Healthy module with its own thresholds: -17.5 dBm is inside the audit's
                # [-20, -1] but below the module's own -16 low alarm.
                port(1, rx_dbm=-5.2, tx_dbm=-4.1, rx_alarm=(-18.0, 0.5), tx_alarm=(-9.0, -1.0)),
                port(2, rx_dbm=-17.5, tx_dbm=-5.0, rx_alarm=(-16.0, 0.0), tx_alarm=(-9.0, -1.0)),
                port(3, dom=False),                                   # a module without DOM
                port(4, rx_raw=-10000, tx_dbm=-5.5),                  # the "no reading" value
                port(5, rx_dbm=-8.0, tx_dbm=-11.8),                   # thresholds -10000: profile window
                port(6, module=False),                                # copper / empty cage: no row
            ]},
            "zte": {"vendor": "zte", "ports": [
                port(1, rx_dbm=-7.123, tx_dbm=-5.456),
                port(2, rx_dbm=-21.5, tx_dbm=-5.0),
                port(3, dom=False),
            ]},
        })
        s = self.sims
        switches = ("id,address,profile\n"
                    f"rj,127.0.0.1:{s['ruijie'].port},ruijie\n"
                    f"zte,127.0.0.1:{s['zte'].port},zte\n")
        rooms = ("id,name,type,switch,port\n"
                 "R1,一班,classroom,rj,1\nR2,二班,classroom,rj,2\nR3,三班,classroom,rj,3\n"
                 "R4,四班,classroom,rj,4\nR5,五班,classroom,rj,5\nR6,六班,classroom,rj,6\n"
                 "Z1,图书室,function_room,zte,1\nZ2,实验室,function_room,zte,2\nZ3,教研室,office,zte,3\n")
        r = self.audit(rooms, switches)
        self.assertEqual(r["errors"], [])

        r1 = self.assertRoom(r, "R1", "covered")
        d = r1["details"]
        self.assertEqual((d["rx_dbm"], d["tx_dbm"]), (-5.2, -4.1))
        self.assertEqual((d["rx_limits_from"], d["rx_limits_dbm"]), ("module", [-18.0, 0.5]))
        self.assertEqual((d["tx_limits_from"], d["tx_limits_dbm"]), ("module", [-9.0, -1.0]))
        r2 = self.assertRoom(r, "R2", "degraded", "optical power out of range: rx -17.5 dBm outside "
                                                  "[-16.0 dBm, 0.0 dBm] (the module's own alarm thresholds)")
        self.assertEqual(r2["details"]["rx_limits_from"], "module")
        r3 = self.assertRoom(r, "R3", "covered")
        self.assertEqual(r3["details"]["rx_note"],
                         "the transceiver has no digital diagnostics (DOM): its optical power is not known")
        self.assertNotIn("rx_dbm", r3["details"])
        r4 = self.assertRoom(r, "R4", "covered")
        self.assertIn("reports -10000 for the receive power, its \"no reading\" value", r4["details"]["rx_note"])
        self.assertEqual(r4["details"]["tx_dbm"], -5.5)
        r5 = self.assertRoom(r, "R5", "degraded", "transmit power out of range: tx -11.8 dBm outside "
                                                  "[-11.0 dBm, -3.0 dBm] (profile ruijie's tx_min_dbm/tx_max_dbm)")
        self.assertEqual(r5["details"]["rx_limits_from"], "profile")
        self.assertIn("no usable receive alarm thresholds (low -10000, high -10000)", r5["details"]["rx_limits_note"])
        r6 = self.assertRoom(r, "R6", "covered")
        self.assertIn("no optical receive power reading for this port", r6["details"]["rx_note"])

        z1 = self.assertRoom(r, "Z1", "covered")
        self.assertEqual((z1["details"]["rx_dbm"], z1["details"]["tx_dbm"]), (-7.1, -5.5), "0.001 dBm, rounded")
        self.assertEqual(z1["details"]["rx_limits_from"], "profile")
        self.assertNotIn("rx_limits_note", z1["details"], "ZTE thresholds are not asked for")
        self.assertRoom(r, "Z2", "degraded", "rx -21.5 dBm outside [-19.0 dBm, -3.0 dBm] (profile zte's")
        z3 = self.assertRoom(r, "Z3", "covered")
        self.assertIn("no optical receive power reading", z3["details"]["rx_note"])
        self.assertEqual(r["summary"]["tx_range_dbm"], [-12.0, 3.0])

    def test_link_flipped_between_runs_changes_the_room_and_makes_an_event(self):
        self.start({"h3c": {"vendor": "h3c", "ports": [port(1, rx_dbm=-5.0), port(2, rx_dbm=-5.0)]}})
        sw = self.sims["h3c"]
        switches = f"id,address,profile\nsw,127.0.0.1:{sw.port},h3c\n"
        rooms = "id,name,type,switch,port\nC1,一班,classroom,sw,1\nC2,二班,classroom,sw,2\n"
        self.assertRoom(self.audit(rooms, switches), "C1", "covered")
        self.audit(rooms, switches, mode="--once")
        sw.set_oper(1, DOWN)
        r = self.audit(rooms, switches)
        self.assertRoom(r, "C1", "down", "link down")
        self.assertRoom(r, "C2", "covered")
        self.audit(rooms, switches, mode="--once")
        down = [e for e in self.events() if e[0] == "C1" and e[2] == "down"]
        self.assertEqual(len(down), 1, self.events())
        self.assertEqual(down[0][1], "covered")
        self.assertIn("link down", down[0][3])
        sw.set_oper(1, 1)
        sw.set(f"{snmpsim.H3C_RX}.2", "i", -2600)
        r = self.audit(rooms, switches)
        self.assertRoom(r, "C1", "covered")
        self.assertRoom(r, "C2", "degraded", "rx -26.0 dBm")
        self.audit(rooms, switches, mode="--once")
        self.assertIn(("C1", "down", "covered"), [e[:3] for e in self.events()])
        self.assertIn(("C2", "covered", "degraded"), [e[:3] for e in self.events()])

    def test_snmpv3_switch_with_right_and_wrong_keys(self):
        # One snmpd per switch: net-snmp shares a v3 user's keys between sessions to one engine.
        spec = {"vendor": "h3c", "v3_user": ("campus", "authpass123", "privpass123"), "ports": [port(1, rx_dbm=-5.0)]}
        self.start({"v3a": spec, "v3b": spec, "v3c": spec})
        pa, pb, pc = (self.sims[n].port for n in ("v3a", "v3b", "v3c"))
        for name, text in (("good.auth", "authpass123"), ("good.priv", "privpass123"), ("bad.auth", "wrongpass999")):
            write_file(os.path.join(self.dir, name), text + "\n", 0o600)
        switches = ("id,address,profile,snmp_version,user,auth_protocol,auth_key_file,priv_protocol,priv_key_file\n"
                    f"good,127.0.0.1:{pa},h3c,3,campus,SHA,good.auth,AES,good.priv\n"
                    f"badkey,127.0.0.1:{pb},h3c,3,campus,SHA,bad.auth,AES,good.priv\n"
                    f"baduser,127.0.0.1:{pc},h3c,3,nobody,SHA,good.auth,AES,good.priv\n")
        rooms = ("id,name,type,switch,port\n"
                 "C1,一班,classroom,good,1\nC2,二班,classroom,badkey,1\nC3,三班,classroom,baduser,1\n")
        # Each try must be answered within its own timeout (net-snmp gives the retry a new msgID
        # and drops a late answer to the first try): 1 s once was too little for the wrong-key
        # report with CI's two cores shared by three snmpd, the agent and another test.
        r = self.audit(rooms, switches, timeout_ms=3000)
        c1 = self.assertRoom(r, "C1", "covered")
        self.assertEqual(c1["details"]["rx_dbm"], -5.0)
        self.assertRoom(r, "C2", "unknown", "authentication failed")
        self.assertRoom(r, "C3", "unknown", "unknown SNMPv3 user")

    def test_bad_fiber_config_is_refused_with_the_key_and_why(self):
        write_file(os.path.join(self.dir, "rooms.csv"), "id,name,type\n")
        write_file(os.path.join(self.dir, "community"), "public\n", 0o644)  # readable by others
        conf = write_file(os.path.join(self.dir, "agent.toml"), f"""[agent]
county = "zhenkang"
school = "fiber-test"
data_dir = "{self.dir}/data"
plugin_dir = "{harness.PLUGINS}"
[mqtt]
enabled = false
[audits.fiber]
rooms = "rooms.csv"
community_file = "community"
snmp_timeout = "fast"
rx_min_dbm = -1.0
rx_max_dbm = -20.0
colour = "blue"
""")
        out = subprocess.run([harness.agent_bin(), "--config", conf, "--check-config"],
                             capture_output=True, text=True, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        text = out.stdout + out.stderr
        for part in ("audits.fiber.switches", "audits.fiber.snmp_timeout", "audits.fiber.rx_max_dbm",
                     "audits.fiber.colour", "audits.fiber.community_file"):
            self.assertIn(part, text)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root for a network namespace")
    def test_icmp_endpoints_by_raw_and_by_unprivileged_socket(self):
        # Two ICMP rooms per run: the plugin says which kind of ICMP socket it uses once per
        # process, not once per probe or per room.
        rooms = "id,name,type,endpoint\nO1,办公室,office,icmp:127.0.0.1\nO2,机房,office,127.0.0.1\n"
        conf = self.write_config(rooms, "id,address\n")

        def run(prefix):
            out = subprocess.run(prefix + [harness.agent_bin(), "--config", conf, "--dry-run", "--json",
                                           "--log-level", "info"], capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            report = json.loads(out.stdout.strip().splitlines()[-1])
            self.assertEqual([(f["subject"], f["state"]) for f in report["findings"]],
                             [("O1", "covered"), ("O2", "covered")], report["findings"])
            log = out.stdout + out.stderr
            self.assertEqual(log.count("icmp probes:"), 1, log)
            return log

        # As root, with ping_group_range not admitting root's group: a raw socket.
        if not self.ping_group_admits_root():
            self.assertIn("icmp probes: raw ICMP socket", run([]))
        # In a namespace of its own, ping_group_range can admit root's group: the plugin then
        # uses an unprivileged ICMP socket and says so.
        script = "ip link set lo up && sysctl -qw net.ipv4.ping_group_range='0 2147483647' && exec \"$@\""
        log = run(["unshare", "-n", "sh", "-c", script, "sh"])
        self.assertIn("icmp probes: unprivileged ICMP socket", log)

    @staticmethod
    def ping_group_admits_root():
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low <= 0 <= high

    def test_dead_switches_cost_one_timeout_not_one_each(self):
        # 40 live switches (one snmpd answering on 40 ports) and 10 that never answer, 5 of
        # them SNMPv3 (whose engine-ID discovery must not block the others either).
        ports = [port(i, rx_dbm=-5.0) for i in range(1, 49)]
        sim = snmpsim.SimSwitch(self.dir, "many", snmpsim.switch_conf(ports, "h3c"), port_count=40)
        self.sims["many"] = sim
        sim.wait_ready()
        live_ports = sim.udp_ports
        dead = [self.silent_udp() for _ in range(10)]
        write_file(os.path.join(self.dir, "v3.auth"), "authpass123\n", 0o600)
        switches = "id,address,profile,snmp_version,user,auth_protocol,auth_key_file\n" \
            + "".join(f"sw{i},127.0.0.1:{p},h3c,,,,\n" for i, p in enumerate(live_ports)) \
            + "".join(f"dead{i},127.0.0.1:{p},h3c,{'3,campus,SHA,v3.auth' if i % 2 else ',,,'}\n"
                      for i, p in enumerate(dead))
        rooms = "id,name,type,switch,port\n" + "".join(f"C{i},班{i},classroom,sw{i},{1 + i % 48}\n" for i in range(40)) \
            + "".join(f"D{i},办{i},office,dead{i},1\n" for i in range(10))
        r = self.audit(rooms, switches, timeout_ms=1000, retries=1)
        self.assertEqual(r["summary"]["classroom"]["covered"], 40)
        self.assertEqual(r["summary"]["office"]["unknown"], 10)
        # One timeout x (retries + 1) = 2 s, plus the daemon's start; ten in sequence would be 20 s.
        self.assertLess(r["summary"]["duration_ms"], 3000, r["summary"])
        self.assertGreaterEqual(r["summary"]["duration_ms"], 1900)
        self.assertLess(r["elapsed"], 5.0)


if __name__ == "__main__":
    unittest.main()
