"""The property the county center exists for, end to end: while 3 real agents audit every second,
the agents, the collector and the broker (the shipped county config: TLS, client certificates,
the ACL, persistence on) are SIGKILLed at random moments; once the broker is also restarted
without its persistence file. At the end the collector's database holds every seq each agent
stored, exactly once, and `campusctl gaps` shows none open.

CAMPUS_CHAOS_SECONDS sets how long the chaos lasts (default 100), CAMPUS_CHAOS_SEED the random
moments. CAMPUS_CHAOS_REPAIR=0 runs the
same with the collector's repair off, to see the test fail without it."""
import json
import os
import random
import signal
import time
import unittest

from collector import Collector, agent_store, collector_config, ctl
from county import COUNTY, FindingsFlipper, agent_config, make_certs, start_county_broker
from harness import IntegrationTest, Proc, agent_bin, free_port, wait_until

SCHOOLS = ["school-a", "school-b", "school-c"]


class CollectorChaos(IntegrationTest):
    def start_broker(self, persistence=True):
        self.broker = start_county_broker(self.dir, self.certs, port=self.port, persistence=persistence,
                                          name=f"broker{self.broker_runs}")
        self.broker_runs += 1

    def kill_broker(self, wipe=False):
        self.broker.kill(signal.SIGKILL)
        self.broker.wait(10)
        self.broker.stop()
        if wipe:  # as if the broker had never written its persistence file
            for f in os.listdir(os.path.join(self.dir, "broker-db")):
                os.remove(os.path.join(self.dir, "broker-db", f))

    def start_agent(self, school):
        self.agents[school] = Proc(f"agent-{school}-{random.random():.6f}", [agent_bin(), "--config", self.confs[school]],
                                   os.path.join(self.dir, school))

    def test_every_seq_of_every_agent_ends_in_the_database_exactly_once_through_random_kills(self):
        seconds = float(os.environ.get("CAMPUS_CHAOS_SECONDS", "100"))
        repair = os.environ.get("CAMPUS_CHAOS_REPAIR", "1") != "0"
        rng = random.Random(int(os.environ.get("CAMPUS_CHAOS_SEED", "14")))
        self.certs = make_certs(self.dir, SCHOOLS)
        self.port = free_port()
        self.broker_runs = 0
        self.start_broker()
        self.confs, self.agents = {}, {}
        findings = []
        for s in SCHOOLS:
            wd = os.path.join(self.dir, s)
            os.makedirs(wd, exist_ok=True)
            self.confs[s] = agent_config(wd, s, self.port, self.certs, audits=("t",), interval="1s")
            findings.append(os.path.join(wd, "findings-t.json"))
            self.start_agent(s)
        flipper = FindingsFlipper(findings, period=0.4)
        self.addCleanup(flipper.stop)
        coll = Collector(self.dir, collector_config(self.dir, self.port, self.certs,
                                                    repair={"enabled": repair, "reorder_grace": "3s"}))
        coll.start()

        # "outage": the collector is down while the schools publish, then the broker dies with what
        # it queued for the collector since its last autosave (the first time also without its
        # persistence file): holes that only the repair can fill.
        kills = {"agent": 0, "collector": 0, "broker": 0, "outage": 0}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(rng.uniform(1.0, 3.0))
            what = rng.choice(["agent", "agent", "collector", "broker", "outage"])
            if what == "agent":
                s = rng.choice(SCHOOLS)
                self.agents[s].kill(signal.SIGKILL)
                self.agents[s].wait(10)
                time.sleep(rng.uniform(0.2, 1.5))
                self.start_agent(s)
            elif what == "collector":
                coll.kill()
                time.sleep(rng.uniform(0.2, 2.0))
                coll.start(wait_connected=False)
            elif what == "broker":
                self.kill_broker()
                time.sleep(rng.uniform(0.5, 2.0))
                self.start_broker()
            else:
                coll.kill()
                time.sleep(rng.uniform(2.0, 4.0))
                self.kill_broker(wipe=kills["outage"] == 0)
                time.sleep(rng.uniform(0.3, 1.0))
                self.start_broker()
                coll.start(wait_connected=False)
            kills[what] += 1
        flipper.stop()
        if not coll.proc.alive():
            coll.start(wait_connected=False)
        for s in SCHOOLS:
            if not self.agents[s].alive():
                self.start_agent(s)
        print(f"chaos for {seconds:.0f} s: {json.dumps(kills)}", flush=True)

        # Every agent's store: every seq it holds is in the database once. The agents keep running
        # (a school must be online to be asked for what is missing) and keep auditing, so their
        # last seq grows: every seq up to a snapshot of it must arrive.
        time.sleep(5)
        expected = {s: agent_store(os.path.join(self.dir, s)) for s in SCHOOLS}

        def complete():
            for s, (store, last) in expected.items():
                if coll.seqs(s, store)[:last] != list(range(1, last + 1)):
                    return False
            return True
        try:
            wait_until(complete, 150, interval=1, what="every seq of every agent in the county database")
        except AssertionError:
            for s, (store, last) in expected.items():
                have = set(coll.seqs(s, store))
                missing = [q for q in range(1, last + 1) if q not in have]
                print(f"{s}: store {store} last {last}: {len(missing)} missing, first {missing[:10]}")
            print(json.dumps(coll.gaps(), indent=1)[:4000])
            raise
        self.assertGreater(len(coll.requests()), 0, "the chaos made no hole: it proves nothing about the repair")
        for s, (store, last) in expected.items():
            self.assertEqual(coll.scalar(f"SELECT COUNT(*) FROM message m JOIN series r ON r.id = m.series "
                                         f"WHERE r.store_id = '{store}' AND m.seq <= {last}"), last)
        for s in SCHOOLS:
            self.agents[s].stop(20)
        time.sleep(2)
        r = ctl("gaps", "--json", db=coll.db)
        self.assertEqual(r.returncode, 0, r.stderr)
        gaps = json.loads(r.stdout)
        self.assertEqual(gaps["open"], 0, gaps)
        self.assertEqual(gaps["lost"], 0, gaps)
        dups = coll.scalar("SELECT value FROM counter WHERE name = 'duplicates'")
        print(f"gaps: {gaps['filled']} filled, requests: {len(coll.requests())}; duplicates dropped: {dups}", flush=True)
        self.assertEqual(coll.quarantine(), [])
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM conflict"), 0)
        coll.stop()


if __name__ == "__main__":
    unittest.main()
