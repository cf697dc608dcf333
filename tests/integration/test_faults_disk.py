"""Disk full (docs/reliability.md): the real agent's data directory is a small tmpfs that
the test fills with a filler file while the agent audits every second, with the county broker
down (a backlog builds) and then up again. The agent must keep running, say buffer_full in its
retained health, refuse new reports and count them, lose nothing it had accepted, and resume
when the filler is gone: at the county seq 1..N arrives without a gap. An agent (re)started
on the full disk must come up and say so too.

Needs root to mount the tmpfs (CI runs as root); skipped with the reason otherwise."""
import errno
import os
import re
import subprocess
import time

from harness import IntegrationTest, Proc, agent_bin, wait_until
from county import (COUNTY, FindingsFlipper, agent_config, county_subscriber, delivery_report, make_certs,
                    schema_errors, sqlite_scalar, start_county_broker)

SCHOOL = "nansan"
TMPFS_SIZE = "8m"


def fill(path):
    """Writes zeros to `path` until the file system says ENOSPC; returns the bytes written."""
    chunk = b"\0" * 65536
    written = 0
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                # tmpfs may take a last partial chunk; try smaller writes until nothing fits.
                for size in (4096, 512, 1):
                    try:
                        while True:
                            written += f.write(b"\0" * size)
                    except OSError as e2:
                        if e2.errno != errno.ENOSPC:
                            raise
                return written


class DiskFull(IntegrationTest):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("mounting the test's tmpfs needs root (CI runs as root)")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "campus-test-tmpfs", self.data],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs on {self.data}: {r.stderr.strip()}")
        self.mounted = True
        self.certs = make_certs(self.dir, [SCHOOL])
        self.broker = self.track(start_county_broker(self.dir, self.certs))
        self.county = county_subscriber(self.dir, self.broker.port, self.certs)
        self.procs.insert(0, self.county.proc)
        self.db = os.path.join(self.data, "agent.db")

    def tearDown(self):
        # The agent goes first, then the tmpfs (always, even after a failure), then the rest.
        for p in reversed(self.procs):
            p.stop(5)
        if getattr(self, "mounted", False):
            r = subprocess.run(["umount", self.data], capture_output=True, text=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", self.data], capture_output=True)
        super().tearDown()

    def healths(self):
        return [m["payload"] for m in self.county.messages()
                if m["topic"] == f"campus/v1/{COUNTY}/{SCHOOL}/health" and isinstance(m["payload"], dict)]

    def latest_health(self):
        h = self.healths()
        return h[-1]["body"] if h else None

    def sql(self, query):
        v = sqlite_scalar(self.db, query)
        return int(v) if v.lstrip("-").isdigit() else -1

    def assert_recovers_and_delivers_everything(self):
        """Once space is back: buffer_full clears, the outbox empties, and the county has every
        seq (no gap, no seq reused) in schema-valid messages. Returns the highest seq."""
        wait_until(lambda: (self.latest_health() or {}).get("buffer_full") is False
                   and self.latest_health()["outbox"]["depth"] == 0, 30,
                   what="health with buffer_full false and an empty outbox")
        last = self.sql("SELECT coalesce(max(seq), 0) FROM outbox")
        wait_until(lambda: delivery_report(self.county.messages())["last"] >= last, 20, what=f"seq {last} at the county")
        r = delivery_report(self.county.messages())
        self.assertEqual(r["gaps"], [], "accepted messages were lost")
        self.assertEqual(r["id_conflicts"], [], "a seq was reused for different content")
        bad = [(m["topic"], e) for m in self.county.messages() for e in schema_errors(m["payload"])]
        self.assertEqual(bad, [], "schema-invalid messages")
        return last

    def test_disk_full_is_survived_reported_and_recovered(self):
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",))
        flip = FindingsFlipper([os.path.join(self.dir, "findings-fiber.json")], 0.5)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        try:
            wait_until(lambda: self.sql("SELECT coalesce(max(seq), 0) FROM outbox") > 5
                       and self.sql("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0, 30,
                       what="first deliveries")

            # Broker down: a backlog builds in the store, then the disk fills under it.
            port = self.broker.port
            self.broker.stop(10)
            self.procs.remove(self.broker)
            time.sleep(2)
            filler = os.path.join(self.data, "filler")
            filled = fill(filler)
            refusals = lambda: len(re.findall(r"the report was NOT stored", agent.output()))
            # Commits may still land in WAL pages the file already has; the WAL must grow (or
            # a checkpoint the main file) soon, and then every report is refused.
            wait_until(lambda: refusals() >= 3, 60, what="three refused reports")
            self.assertTrue(agent.alive(), "the agent died on a full disk:\n" + agent.output()[-3000:])
            self.assertIn("free space on the data directory's file system", agent.output())

            # Broker back while the disk is still full: the backlog is delivered (acks cannot be
            # written, delivery goes on), and the retained health says buffer_full.
            self.broker = self.track(start_county_broker(self.dir, self.certs, port=port, name="broker2"))
            full = wait_until(lambda: (self.latest_health() or {}).get("buffer_full") is True and self.latest_health(),
                              20, what="health with buffer_full true")
            self.assertGreaterEqual(full["outbox"]["refused_commits"], 3)
            self.assertTrue(full["outbox"]["buffer_full"])
            accepted = wait_until(lambda: max(int(s) for s in re.findall(r"report seq (\d+) stored", agent.output())),
                                  5, what="stored reports")
            self.assertTrue(agent.alive())

            # Space again: the next report is stored, buffer_full clears, everything drains.
            os.unlink(filler)
            flip.stop()
            last = self.assert_recovers_and_delivers_everything()
            self.assertGreater(last, accepted, "no report was stored after the space came back")
            final = self.latest_health()
            self.assertEqual(final["outbox"]["refused_commits"], refusals(),
                             "every refused report is counted, and only those")
            self.assertEqual(sqlite_scalar(self.db, "PRAGMA integrity_check"), "ok")
            print(f"\ndisk full: filler {filled // 1024} KiB on a {TMPFS_SIZE} tmpfs, {refusals()} reports refused, "
                  f"{last} messages delivered without a gap, highest accepted before the space came back {accepted}")
            self.assertEqual(agent.stop(10), 0)
        finally:
            flip.stop()

    def test_an_agent_started_on_a_full_disk_comes_up_and_says_so(self):
        # After a reboot or a crash while the disk is full: SQLite cannot create its -shm, and
        # the agent used to exit with "disk I/O error", leaving the county with nothing.
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",))
        flip = FindingsFlipper([os.path.join(self.dir, "findings-fiber.json")], 0.5)
        try:
            first = self.track(Proc("agent-first", [agent_bin(), "--config", conf], self.dir))
            wait_until(lambda: self.sql("SELECT coalesce(max(seq), 0) FROM outbox") > 3, 30, what="first reports")
            self.assertEqual(first.stop(10), 0)
            filler = os.path.join(self.data, "filler")
            fill(filler)
            agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
            agent.wait_for_output("the store opens in exclusive mode", 20)
            refusals = lambda: len(re.findall(r"the report was NOT stored", agent.output()))
            wait_until(lambda: refusals() >= 2, 30, what="refused reports")
            self.assertTrue(agent.alive(), agent.output()[-3000:])
            seen = len(self.healths())
            wait_until(lambda: any(h["body"]["buffer_full"] for h in self.healths()[seen:]), 20,
                       what="health with buffer_full from the agent started on the full disk")
            os.unlink(filler)
            flip.stop()
            self.assert_recovers_and_delivers_everything()
            self.assertEqual(agent.stop(10), 0)
            self.assertEqual(sqlite_scalar(self.db, "PRAGMA integrity_check"), "ok")
        finally:
            flip.stop()
