"""Two campus-county collectors on one PostgreSQL, each with its own durable session on a real
Mosquitto 2.0 (not a shared subscription, which loses QoS 1 messages when a member leaves): either
is SIGKILLed at random moments while schools publish with holes that only `resend` fills. Every
seq is stored once, no school is asked by both at the same time, and the survivor repairs alone.
Then PostgreSQL itself goes away for a minute: the collectors keep running, acknowledge nothing,
say so, and catch up when it is back. PostgreSQL only, by its nature (CAMPUS_COUNTY_DB is forced)."""
import os

os.environ["CAMPUS_COUNTY_DB"] = "postgres"

import random  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

from collector import Collector, FakeSchool, PostgresServer, collector_config, start_broker  # noqa: E402
from harness import IntegrationTest, notify_reader, notify_socket, wait_until, write_file  # noqa: E402

SCHOOLS = [f"school-{c}" for c in "abcdef"]
HOLE_EVERY = 7  # every 7th seq is held back: only a resend brings it
DATABASE_AWAY_S = 60


def second_collector(test, first_conf, name):
    """The same county and database as `first_conf`, another client id and data directory. The
    requester stays the same: a reply to a request of a collector that died settles it in the
    survivor, which holds the same subscription."""
    with open(first_conf) as f:
        text = f.read()
    os.makedirs(os.path.join(test.dir, f"{name}-data"), exist_ok=True)
    text = text.replace("[mqtt]\n", f'[mqtt]\nclient_id = "campus-county-{name}"\n', 1)
    # The data directory holds the database's name for the test's queries.
    with open(os.path.join(test.dir, "collector-data", "database")) as f:
        write_file(os.path.join(test.dir, f"{name}-data", "database"), f.read())
    return write_file(os.path.join(test.dir, f"{name}.toml"), text)


def requests_overlap(rows):
    """Pairs of resend requests to one school whose time in flight overlaps (sent .. reply, or
    sent .. deadline when no reply came)."""
    bad = []
    by_school = {}
    for r in rows:
        by_school.setdefault(r["school"], []).append(r)
    for school, rs in by_school.items():
        rs.sort(key=lambda r: (r["sent_ms"], r["id"]))
        for a, b in zip(rs, rs[1:]):
            end = a["reply_ms"] if a["reply_ms"] is not None else a["deadline_ms"]
            if b["sent_ms"] < end:
                bad.append((a, b))
    return bad


class TwoCollectorsOnOnePostgres(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = start_broker(self)
        self.port = self.broker.port

    def collectors(self, repair=True, env_a=None):
        settings = {"enabled": repair, "reorder_grace": "1s", "tick": "300ms", "backoff_min": "500ms",
                    "backoff_max": "2s", "request_timeout": "4s", "tail_wait_max": "3s"}
        self.conf_a = collector_config(self.dir, self.port, repair=settings)
        self.conf_b = second_collector(self, self.conf_a, "collector-b")
        self.a = Collector(self.dir, self.conf_a, name="collector", env=env_a)
        self.b = Collector(self.dir, self.conf_b, name="collector-b")
        self.addCleanup(lambda: (self.a.stop(), self.b.stop()))
        self.a.start()
        self.b.start()

    def schools(self):
        out = []
        for name in SCHOOLS:
            s = FakeSchool(self.port, name, store=name[-1] * 32, reply_delay=0.3)
            self.addCleanup(s.close)
            s.birth(0)
            out.append(s)
        return out

    def publish(self, schools, first, last, holes=True, pace=0.1):
        """Each school's seqs first..last, interleaved; with holes every HOLE_EVERY-th is held back."""
        for seq in range(first, last + 1):
            for s in schools:
                keep = holes and seq % HOLE_EVERY == 0
                if seq % 3 == 0:
                    s.report(seq, publish=not keep)
                else:
                    s.event(seq, publish=not keep)
            if seq % 10 == 0:
                for s in schools:
                    s.health(last_seq=seq)
            time.sleep(pace)

    def assert_complete(self, last, timeout=90):
        coll = self.a if self.a.proc and self.a.proc.alive() else self.b
        for s in SCHOOLS:
            wait_until(lambda: coll.seqs(s) == list(range(1, last + 1)), timeout,
                       what=f"seq 1..{last} of {s} in the county database")
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM message m JOIN series r ON r.id = m.series"),
                         len(SCHOOLS) * last, "every seq exactly once")
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM gap WHERE state <> 'filled'"), 0, coll.gaps())
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM conflict"), 0)
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM quarantine"), 0, coll.quarantine())
        self.assertEqual(requests_overlap(coll.requests()), [], "a school was asked twice at the same time")
        return coll

    def test_either_collector_killed_at_any_moment_loses_nothing_and_no_school_is_asked_twice(self):
        self.collectors()
        schools = self.schools()
        rng = random.Random(16)
        # A school publishes through the kills; each hole needs a resend from whichever collector plans it.
        t = threading.Thread(target=self.publish, args=(schools, 1, 120))
        t.start()
        kills = 0
        while t.is_alive():
            victim = rng.choice([self.a, self.b])
            time.sleep(rng.uniform(0.5, 2.0))
            victim.kill()
            kills += 1
            time.sleep(rng.uniform(0.2, 1.5))
            victim.start()
        t.join()
        self.assertGreaterEqual(kills, 4)
        for s in schools:
            s.birth()  # announces the last seq: a tail, if any, is found
        coll = self.assert_complete(120)
        asked = len(coll.requests())
        self.assertGreaterEqual(asked, len(SCHOOLS), "the holes were filled by resend")
        for s in schools:
            self.assertLessEqual(s.max_in_flight, 1, f"{s.school} answered two requests at once")
        # What arrived twice (both sessions deliver every message) is dropped by its key, not stored.
        self.assertGreater(coll.scalar("SELECT value FROM counter WHERE name = 'duplicates'"), 0)

        # The survivor alone: A is gone for good, new holes appear, B asks for every one of them.
        self.a.kill()
        self.a.proc = None
        before_b = len(re.findall(r"repair: asking", self.b.output()))
        self.publish(schools, 121, 160)
        for s in schools:
            s.birth()
        self.assert_complete(160)
        self.assertGreater(len(re.findall(r"repair: asking", self.b.output())), before_b,
                           "the survivor asked for the new holes")

    def test_postgres_away_for_a_while_stops_acknowledging_and_the_collectors_catch_up(self):
        # Repair off and no holes: what arrives must come through the broker sessions alone, so a
        # collector that acknowledged a message it could not store would leave it missing.
        sock = notify_socket(os.path.join(self.dir, "notify.sock"))
        self.addCleanup(sock.close)
        drain = notify_reader(sock, [])
        self.collectors(repair=False, env_a={"NOTIFY_SOCKET": os.path.join(self.dir, "notify.sock")})
        schools = self.schools()
        self.publish(schools, 1, 20, holes=False)
        wait_until(lambda: len(self.a.seqs("school-a")) >= 15, 30, what="the first seqs")
        pg = PostgresServer.get()
        stopper = threading.Thread(target=pg.restart, args=(DATABASE_AWAY_S,))
        stopper.start()
        time.sleep(2)
        # Published while the database is away: the broker keeps them in both sessions.
        self.publish(schools, 21, 60, holes=False)
        wait_until(lambda: re.search(r"county: .*(not stored|failed)", self.a.output()), 30,
                   what="the collector to say the database failed")
        wait_until(lambda: any("STATUS=database unavailable, nothing acknowledged" in m for m in drain()), 30,
                   what="the STATUS line to say the database is unavailable")
        self.assertTrue(self.a.proc.alive() and self.b.proc.alive(), "a collector exited with the database away")
        stopper.join()
        wait_until(lambda: any(re.match(r"STATUS=\d+ committed", m) for m in drain()[-3:]), 60,
                   what="the STATUS line back to its figures")
        for s in schools:
            s.birth()
        self.assert_complete(60, timeout=120)
        wait_until(lambda: "the database takes messages again" in self.a.output(), 30, what="the recovery line")


if __name__ == "__main__":
    unittest.main()
