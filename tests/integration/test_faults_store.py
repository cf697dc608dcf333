"""A damaged or deleted database while the agent is stopped (docs/reliability.md,
docs/store.md "Recovery"): the real agent, restarted over the damage, logs STORE RECOVERED
with the file and what was wrong, moves the old file aside with its -wal/-shm, starts a fresh
store with a new id, says so in its retained health and birth (store.recovered), and
publishes again. Never a silent reset: a fresh store always shows the county a new store id."""
import glob
import os
import re

from harness import IntegrationTest, Proc, agent_bin, wait_until
from county import (COUNTY, FindingsFlipper, agent_config, county_subscriber, delivery_report, make_certs,
                    schema_errors, start_county_broker)

SCHOOL = "nansan"
PAGE = 4096


def overwrite(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


# What the test does to the stopped agent's database, and the reason the agent must give.
DAMAGES = [
    ("garbage pages", lambda db: overwrite(db, PAGE, b"\x5a" * (PAGE * 4)), "corrupt"),
    ("overwritten header", lambda db: overwrite(db, 0, b"this is not an SQLite file, sorry" * 3), "not_a_store"),
    ("truncated to half", lambda db: os.truncate(db, os.path.getsize(db) // 2), "corrupt"),
    ("truncated to 0 bytes", lambda db: os.truncate(db, 0), "emptied"),
    ("deleted", lambda db: [os.unlink(p) for p in (db, db + "-wal", db + "-shm") if os.path.exists(p)], "missing"),
]


class DamagedStore(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.certs = make_certs(self.dir, [SCHOOL])
        self.broker = self.track(start_county_broker(self.dir, self.certs))
        self.county = county_subscriber(self.dir, self.broker.port, self.certs)
        self.procs.insert(0, self.county.proc)
        self.data = os.path.join(self.dir, "data")
        self.db = os.path.join(self.data, "agent.db")
        self.conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",))

    def own(self, kind):
        return [m["payload"] for m in self.county.messages()
                if m["topic"] == f"campus/v1/{COUNTY}/{SCHOOL}/{kind}" and isinstance(m["payload"], dict)]

    def births(self):
        return [s for s in self.own("state") if s["body"]["online"]]

    def run_agent(self, name):
        """Starts the agent; returns it and its store id once its birth and a report arrived."""
        agent = self.track(Proc(name, [agent_bin(), "--config", self.conf], self.dir))
        seen = len(self.county.messages())
        birth = wait_until(lambda: next((m["payload"] for m in self.county.messages()[seen:]
                                         if m["topic"].endswith("/state") and m["payload"]["body"]["online"]), None),
                           20, what=f"{name}'s birth")
        wait_until(lambda: any(m["payload"].get("kind") == "report" for m in self.county.messages()[seen:]
                               if isinstance(m["payload"], dict)), 20, what=f"a report from {name}")
        return agent, birth

    def check_recovered(self, agent, birth, reason, old_id, before):
        log = agent.output()
        line = next((l for l in log.splitlines() if "STORE RECOVERED" in l), None)
        self.assertIsNotNone(line, f"no STORE RECOVERED line:\n{log[-2000:]}")
        self.assertIn(self.db, line)
        self.assertIn(" error ", line)
        rec = birth["body"]["store"]["recovered"]
        self.assertIsNotNone(rec, "the birth does not say the store was recovered")
        self.assertEqual(rec["reason"], reason)
        self.assertEqual(rec["previous_id"], old_id)
        self.assertNotEqual(birth["body"]["store"]["id"], old_id, "a fresh store needs a new id")
        moved = sorted(set(glob.glob(self.db + ".*-*")) - before)
        if reason == "missing":
            self.assertEqual(rec["moved_to"], "")
        else:
            self.assertRegex(rec["moved_to"], re.escape(self.db) + rf"\.{reason}-\d{{8}}T\d{{6}}Z$")
            self.assertIn(rec["moved_to"], moved)
            self.assertIn(rec["moved_to"], line)
        # The retained health says it too, for as long as this store lives.
        new_id = birth["body"]["store"]["id"]
        health = wait_until(lambda: next((h for h in reversed(self.own("health"))
                                          if h["body"].get("store", {}).get("id") == new_id), None),
                            10, what="health of the fresh store")
        self.assertEqual(health["body"]["store"]["recovered"], rec)
        # It publishes again (run_agent waited for a report): seq 1 of the fresh store.
        self.assertTrue(agent.alive())

    def test_each_damage_is_moved_aside_reported_and_the_agent_publishes_again(self):
        flip = FindingsFlipper([os.path.join(self.dir, "findings-fiber.json")], 0.5)
        try:
            agent, birth = self.run_agent("agent-first")
            self.assertIsNone(birth["body"]["store"]["recovered"], "a first start is not a recovery")
            store_id = birth["body"]["store"]["id"]
            self.assertEqual(agent.stop(10), 0)
            for i, (damage, apply, reason) in enumerate(DAMAGES):
                with self.subTest(damage=damage):
                    before = set(glob.glob(self.db + ".*-*"))
                    apply(self.db)
                    agent, birth = self.run_agent(f"agent-{i}")
                    try:
                        self.check_recovered(agent, birth, reason, store_id, before)
                    finally:
                        # The next damage is done to a stopped agent's store, whatever happened.
                        self.assertEqual(agent.stop(10), 0)
                        store_id = birth["body"]["store"]["id"]
        finally:
            flip.stop()
        bad = [(m["topic"], e) for m in self.county.messages() for e in schema_errors(m["payload"])]
        self.assertEqual(bad, [], "schema-invalid messages")
        # Every damage started a new sequence: as many seq 1 as stores (the county tells them
        # apart by the store id of the birth before them).
        ones = [m for m in self.county.messages() if isinstance(m["payload"], dict) and m["payload"].get("seq") == 1]
        self.assertGreaterEqual(len(ones), len(DAMAGES) + 1)

    def test_a_restart_without_damage_keeps_the_store(self):
        agent, birth = self.run_agent("agent-a")
        self.assertEqual(agent.stop(10), 0)
        agent, again = self.run_agent("agent-b")
        self.assertEqual(again["body"]["store"]["id"], birth["body"]["store"]["id"])
        self.assertIsNone(again["body"]["store"]["recovered"])
        self.assertNotIn("STORE RECOVERED", agent.output())
        self.assertEqual(glob.glob(self.db + ".*-*"), [])
        r = delivery_report(self.county.messages())
        self.assertEqual(r["gaps"], [])
        agent.stop(10)
