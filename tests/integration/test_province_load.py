"""A province-sized load, scaled to the CI machine: 1,000 simulated schools (bench/loadgen: one
process, one MQTT 5 connection each, the demo school's real payloads in the shipped mix) through
one real Mosquitto 2.0 into the real campus-county, with outages (connections dropped without
DISCONNECT: the broker publishes the wills, the schools come back with a backlog) and holes (seqs
the broker never got: only resend fills them). At the end every seq of every school is in the
database exactly once, every gap is filled, nothing is quarantined. Bounded: every wait has a
deadline; about a minute on 2 cores."""
import os
import sys
import time
import unittest

from collector import Collector, collector_config
from harness import SOURCE, IntegrationTest, start_mosquitto, wait_until

sys.path.insert(0, os.path.join(SOURCE, "bench", "loadgen"))
import loadgen  # noqa: E402

SCHOOLS = 1000
MESSAGES = 20


class ProvinceLoad(IntegrationTest):
    def test_a_thousand_schools_with_outages_and_holes_end_contiguous_each_seq_once(self):
        loadgen.raise_nofile(SCHOOLS + 512)  # the broker inherits it: a descriptor per school
        pdir = os.path.join(self.dir, "mosquitto-db")
        os.makedirs(pdir, exist_ok=True)
        os.chmod(pdir, 0o777)
        broker = self.track(start_mosquitto(self.dir, extra_conf=f"persistence true\npersistence_location {pdir}/\n"
                                                                  "max_queued_messages 1000000\nmax_queued_bytes 0\n"))
        repair = {"reorder_grace": "1s", "tick": "300ms", "backoff_min": "500ms", "backoff_max": "2s",
                  "request_timeout": "4s", "tail_wait_max": "3s", "max_schools": 32}
        coll = Collector(self.dir, collector_config(self.dir, broker.port, repair=repair,
                                                    county={"log_level": "info"}))
        self.addCleanup(coll.stop)
        coll.start()
        plan = loadgen.Plan(schools=SCHOOLS, messages=MESSAGES, outage_fraction=0.1, outage_after=0.5, outage_s=3.0,
                            hole_fraction=0.1, hole_len=3, interval=0.1, window=20, connect_rate=400, keepalive=30,
                            health_every=5, seed=16)
        t0 = time.monotonic()
        load = loadgen.Background(plan, broker.port)
        self.addCleanup(load.stop)
        self.assertTrue(load.published.wait(90), "the schools did not publish everything within 90 s")
        self.assertIsNone(load.error, load.error)
        st = load.gen.stats
        holes = load.gen.hole_count()
        outages = sum(1 for s in load.gen.schools if s.outage_at is not None)
        self.assertEqual(st.outages, outages)
        self.assertGreater(holes, 0)
        self.assertGreater(outages, 0)
        self.assertEqual(st.published + st.held_back, SCHOOLS * MESSAGES)
        self.assertEqual(st.refused, 0)

        complete = (f"SELECT COUNT(*) FROM (SELECT r.school, COUNT(*) AS n, MIN(m.seq) AS lo, MAX(m.seq) AS hi "
                    f"FROM message m JOIN series r ON r.id = m.series GROUP BY r.school) t "
                    f"WHERE n = {MESSAGES} AND lo = 1 AND hi = {MESSAGES}")
        last = {}

        def done():
            last["complete"] = coll.scalar(complete)
            last["open"] = coll.scalar("SELECT COUNT(*) FROM gap WHERE state <> 'filled'")
            return last["complete"] == SCHOOLS and last["open"] == 0
        try:
            wait_until(done, 100 - (time.monotonic() - t0), interval=1.0,
                       what=f"every seq 1..{MESSAGES} of {SCHOOLS} schools, every gap filled")
        except AssertionError as e:
            raise AssertionError(f"{e}: {last}; loadgen: {st.line()}; collector: {coll.output()[-3000:]}")
        elapsed = time.monotonic() - t0
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM message"), SCHOOLS * MESSAGES, "every seq exactly once")
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM series"), SCHOOLS, "one store per school")
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM quarantine"), 0, coll.quarantine()[:5])
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM conflict"), 0)
        # Every hole was seen as a gap and filled by a resend, not by luck.
        self.assertGreaterEqual(coll.scalar("SELECT COUNT(DISTINCT series) FROM gap WHERE state = 'filled'"),
                                sum(1 for s in load.gen.schools if s.holes))
        self.assertGreaterEqual(st.requests, 1)
        held = coll.scalar("SELECT COUNT(*) FROM message WHERE resent = 1")
        self.assertGreaterEqual(held, holes, "the holes came as resent copies")
        # The outages were seen: each school that dropped its connection has a will on record.
        wills = coll.scalar("SELECT COUNT(DISTINCT school) FROM state_change WHERE reason = 'will'")
        self.assertEqual(wills, outages)
        print(f"\nprovince load: {SCHOOLS} schools x {MESSAGES} in {elapsed:.1f} s ({holes} seqs in holes, {outages} "
              f"outages); loadgen published in {load.took:.1f} s: {st.line()}", file=sys.stderr)
        load.stop()
        coll.stop()


if __name__ == "__main__":
    unittest.main()
