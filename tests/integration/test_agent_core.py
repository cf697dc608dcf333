"""The real campus-agent binary: --version, --check-config, --dry-run, --once, daemon signals
(SIGTERM stops cleanly, SIGHUP applies a good config and rejects a bad one)."""
import glob
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import unittest

from harness import PLUGINS, IntegrationTest, Proc, agent_bin, notify_reader, notify_socket, wait_until, write_file, SOURCE


def config(data_dir, findings, extra_audit="", interval="1h", mqtt="enabled = false"):
    return f"""
[agent]
county = "zhenkang"
school = "core-test"
data_dir = "{data_dir}"
plugin_dir = "{PLUGINS}"

[mqtt]
{mqtt}

[audits.t]
plugin = "testaudit"
findings_file = "{findings}"
interval = "{interval}"
jitter = "0s"
first_delay = "0s"
{extra_audit}
"""


def run(*args, timeout=60):
    return subprocess.run([agent_bin(), *args], capture_output=True, text=True, timeout=timeout)


class AgentCore(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.data = os.path.join(self.dir, "data")
        self.findings = write_file(os.path.join(self.dir, "findings.json"), json.dumps({
            "summary": {"rooms": 2},
            "findings": [{"subject": "R1", "state": "covered"},
                         {"subject": "R2", "state": "down", "reason": "link down"}]}))
        self.conf = write_file(os.path.join(self.dir, "agent.toml"), config(self.data, self.findings))

    def test_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"campus-agent \d+\.\d+\.\d+")

    def test_the_shipped_agent_toml_carries_each_plugins_sample_toml_as_it_is(self):
        # One source for each plugin's keys: its sample.toml. config/agent.toml carries the same
        # section (switched off until the school fills it in); a key added to one and not the
        # other fails here.
        def section(text, audit):
            lines = text[text.index(f"[audits.{audit}]"):].split("\n")
            out = [lines[0]]
            for line in lines[1:]:
                if line.startswith("[") and not line.startswith(f"[audits.{audit}."):
                    break
                out.append(line)
            # What follows the last blank line and is only comments introduces the next section.
            while out and not out[-1].strip():
                out.pop()
            cut = len(out)
            while cut > 0 and out[cut - 1].startswith("#"):
                cut -= 1
            if cut < len(out) and cut > 0 and not out[cut - 1].strip():
                out = out[:cut]
            while out and not out[-1].strip():
                out.pop()
            return out
        with open(os.path.join(SOURCE, "config", "agent.toml")) as f:
            agent = f.read()
        for audit in ("fiber", "recording", "attendance"):
            with open(os.path.join(SOURCE, "plugins", audit, "sample.toml")) as f:
                sample = section(f.read(), audit)
            shipped = section(agent, audit)
            self.assertIn("enabled = true", sample, audit)
            self.assertEqual(shipped, [("enabled = false" if l == "enabled = true" else l) for l in sample],
                             f"config/agent.toml [audits.{audit}] differs from plugins/{audit}/sample.toml")

    def test_check_config_accepts_the_shipped_default(self):
        r = run("--check-config", "--config", os.path.join(SOURCE, "config", "agent.toml"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK", r.stdout)

    def test_every_plugin_key_in_the_shipped_config_is_known_to_its_plugin(self):
        with open(os.path.join(SOURCE, "config", "agent.toml")) as f:
            text = f.read().replace("enabled = false", "enabled = true")
        text = text.replace('# plugin_dir = "/usr/lib/campus-agent/plugins"', f'plugin_dir = "{PLUGINS}"')
        conf = write_file(os.path.join(self.dir, "all.toml"), text)
        r = run("--check-config", "--config", conf)
        self.assertNotIn("unknown key", r.stderr)
        self.assertNotIn("expected", r.stderr)  # no wrong type or value among the defaults
        for line in r.stderr.splitlines():
            if line.startswith("config error:"):
                self.assertTrue("does not exist" in line or "cannot" in line or "not found" in line
                                or "secret file" in line, line)

    def test_every_key_the_agent_reads_is_in_the_shipped_config(self):
        """config/agent.toml is the reference of every key (set or commented out): each key a
        TableReader getter is asked for in the core or a plugin must appear there, a plugin's
        keys inside its own [audits.<plugin>...] part."""
        with open(os.path.join(SOURCE, "config", "agent.toml")) as f:
            shipped = f.read()
        getter = re.compile(r'\.(?:string|optional_string|required_string|boolean|integer|number|duration|size|'
                            r'choice|path|optional_path|secret_file|string_array|table|known)\(\s*"(\w+)"')

        def documented(key, text):
            return re.search(rf"^\s*#?\s*{key}\s*=|^\s*#?\s*\[(?:\w+\.)*{key}(?:\.\w+)*\]", text, re.M)

        missing = []
        sources = glob.glob(os.path.join(SOURCE, "agent", "src", "core", "*.cpp")) + \
            glob.glob(os.path.join(SOURCE, "plugins", "*", "src", "*.cpp"))
        self.assertGreater(len(sources), 10)
        for src in sources:
            part = shipped
            plugin = re.search(r"plugins/(\w+)/src/", src)
            if plugin:  # from its [audits.<plugin>] header to the next plugin's
                start = shipped.index(f"[audits.{plugin.group(1)}]")
                nxt = re.search(r"^\s*#?\s*\[audits\.(?!" + plugin.group(1) + r"\b)", shipped[start:], re.M)
                part = shipped[start:start + nxt.start()] if nxt else shipped[start:]
            with open(src) as f:
                for key in getter.findall(f.read()):
                    if not documented(key, part):
                        missing.append(f"{os.path.relpath(src, SOURCE)}: {key}")
        self.assertEqual(missing, [], "keys read but not in config/agent.toml (add them with their default)")

    def test_check_config_names_every_problem_and_exits_1(self):
        bad = write_file(os.path.join(self.dir, "bad.toml"),
                         config(self.data, self.findings, extra_audit='bogus = 1\ndelay = "soon"'))
        r = run("--check-config", "--config", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("key audits.t.bogus: unknown key", r.stderr)
        self.assertIn("key audits.t.delay", r.stderr)
        self.assertIn("bad.toml", r.stderr)

    def test_check_config_refuses_a_missing_plugin(self):
        bad = write_file(os.path.join(self.dir, "bad.toml"),
                         config(self.data, self.findings).replace('plugin = "testaudit"', 'plugin = "nosuch"'))
        r = run("--check-config", "--config", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("campus-nosuch.so", r.stderr)
        self.assertIn("plugin_dir", r.stderr)

    def test_dry_run_prints_the_reports_and_stores_nothing(self):
        r = run("--dry-run", "--config", self.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("== t: ok", r.stdout)
        self.assertIn("R2", r.stdout)
        self.assertIn("link down", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.data, "agent.db")))
        j = run("--dry-run", "--json", "--config", self.conf)
        line = json.loads(j.stdout.strip().splitlines()[0])
        self.assertEqual(line["audit"], "t")
        self.assertEqual(line["status"], "ok")
        self.assertEqual([f["state"] for f in line["findings"]], ["covered", "down"])

    def test_once_stores_the_report_with_the_next_seq_and_exits(self):
        for expected in (1, 2):
            r = run("--once", "--config", self.conf)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"report seq {expected} stored", r.stderr)
        db = os.path.join(self.data, "agent.db")
        self.assertEqual(os.stat(db).st_mode & 0o777, 0o600)
        with sqlite3.connect(db) as c:
            rows = c.execute("select seq, topic, retain from outbox order by seq").fetchall()
            seen = [json.loads(p)["body"]["summary"]["had_previous"]
                    for (p,) in c.execute("select payload from outbox order by seq")]
        self.assertEqual([r[0] for r in rows], [1, 2])
        self.assertEqual(seen, [False, True])  # the second run was given the first one's summary
        self.assertEqual(rows[0][1], "campus/v1/zhenkang/core-test/report/t")

    def test_log_level_from_the_config_and_from_the_command_line(self):
        stored = "report seq"
        self.assertIn(stored, run("--once", "--config", self.conf).stderr)  # info by default
        self.assertNotIn(stored, run("--once", "--log-level", "warn", "--config", self.conf).stderr)
        quiet = write_file(os.path.join(self.dir, "quiet.toml"),
                           config(self.data, self.findings).replace("[agent]", '[agent]\nlog_level = "warn"'))
        self.assertNotIn(stored, run("--once", "--config", quiet).stderr)
        self.assertIn(stored, run("--once", "--log-level", "info", "--config", quiet).stderr)  # the flag wins

    def test_state_change_between_runs_becomes_an_event(self):
        self.assertEqual(run("--once", "--config", self.conf).returncode, 0)
        write_file(self.findings, json.dumps({"findings": [{"subject": "R1", "state": "down", "reason": "cut"},
                                                           {"subject": "R2", "state": "down"}]}))
        r = run("--once", "--config", self.conf)
        self.assertIn("with 1 event(s)", r.stderr)
        with sqlite3.connect(os.path.join(self.data, "agent.db")) as c:
            ev = c.execute("select payload from outbox where kind = 'event'").fetchall()
        body = json.loads(ev[0][0])["body"]
        self.assertEqual((body["subject"], body["from"], body["to"]), ("R1", "covered", "down"))

    def test_daemon_stops_cleanly_on_sigterm(self):
        p = self.track(Proc("agent", [agent_bin(), "--config", self.conf], self.dir))
        p.wait_for_output("report seq 1 stored", timeout=15)
        p.kill(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        self.assertIn("stopped", p.output())

    def test_sigterm_and_sigint_cancel_a_running_audit_and_close_the_store(self):
        slow = write_file(os.path.join(self.dir, "slow.toml"),
                          config(self.data, self.findings, extra_audit='delay = "30s"\ntimeout = "60s"'))
        for sig in (signal.SIGTERM, signal.SIGINT):
            p = self.track(Proc(f"agent-{sig.name}", [agent_bin(), "--config", slow], self.dir))
            p.wait_for_output("campus-agent", timeout=15)
            time.sleep(1)  # the audit is running (first_delay 0s) and will not answer for 30 s
            t0 = time.monotonic()
            p.kill(sig)
            self.assertEqual(p.wait(10), 0, p.output())
            self.assertLess(time.monotonic() - t0, 5, "waited for the audit instead of cancelling it")
            self.assertIn(f"{sig.name}: stopping", p.output())
            self.assertNotIn("report seq", p.output())
            # The store was closed: SQLite removes the WAL file when the last connection closes.
            self.assertFalse(os.path.exists(os.path.join(self.data, "agent.db-wal")), p.output())

    def test_sighup_applies_a_good_config_and_rejects_a_bad_one(self):
        p = self.track(Proc("agent", [agent_bin(), "--config", self.conf], self.dir))
        p.wait_for_output("report seq 1 stored", timeout=15)
        # Bad: the old config keeps running, every error is logged.
        with open(self.conf) as f:
            good = f.read()
        write_file(self.conf, good.replace('jitter = "0s"', 'jitter = "0s"\nbogus = true'))
        p.kill(signal.SIGHUP)
        p.wait_for_output("reload rejected", timeout=10)
        self.assertIn("key audits.t.bogus: unknown key", p.output())
        self.assertIn("the previous configuration keeps running", p.output())
        self.assertTrue(p.alive())
        # Good: a shorter interval applies without a restart.
        write_file(self.conf, good.replace('interval = "1h"', 'interval = "1s"'))
        p.kill(signal.SIGHUP)
        p.wait_for_output("reload applied", timeout=10)
        p.wait_for_output("report seq 3 stored", timeout=15)
        p.kill(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)

    def notify_socket(self, address):
        """A datagram socket where the agent's sd_notify messages arrive, as systemd's would."""
        sock = notify_socket(address)
        self.addCleanup(sock.close)
        return sock

    def test_sd_notify_ready_status_watchdog_reloading_stopping(self):
        path = os.path.join(self.dir, "notify.sock")
        sock = self.notify_socket(path)
        with open(self.conf) as f:
            text = f.read()
        conf = write_file(self.conf, text.replace("enabled = false", 'enabled = false\nhealth_interval = "1s"'))
        p = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir,
                            env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}))
        got = []
        drain = notify_reader(sock, got)

        wait_until(lambda: any("READY=1" in m for m in drain()), 10, what="READY=1")
        ready = next(m for m in got if "READY=1" in m)
        self.assertIn("STATUS=delivery off, backlog", ready)
        wait_until(lambda: sum("WATCHDOG=1" in m for m in drain()) >= 5, 5, what="5 watchdog pings")
        wait_until(lambda: any(m.startswith("STATUS=") for m in drain()), 5, what="a STATUS update")
        p.kill(signal.SIGHUP)
        wait_until(lambda: any("RELOADING=1" in m for m in drain()), 5, what="RELOADING=1")
        p.kill(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        self.assertTrue(any("STOPPING=1" in m for m in drain()))

    def test_sd_notify_abstract_socket_and_watchdog_for_another_pid(self):
        # The agent speaks the sd_notify protocol itself (no libsystemd): systemd may hand it an
        # abstract socket ("@name"), and WATCHDOG_USEC counts only when WATCHDOG_PID is ours.
        name = f"campus-notify-test-{os.getpid()}"
        sock = self.notify_socket("\0" + name)
        p = self.track(Proc("agent", [agent_bin(), "--config", self.conf], self.dir,
                            env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}))
        got = []
        drain = notify_reader(sock, got)

        wait_until(lambda: any("READY=1" in m for m in drain()), 10, what="READY=1 on the abstract socket")
        time.sleep(1)  # five watchdog periods
        self.assertFalse(any("WATCHDOG=1" in m for m in drain()), got)
        p.kill(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)


if __name__ == "__main__":
    unittest.main()
