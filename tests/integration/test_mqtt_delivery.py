"""Delivery of the real campus-agent to the shipped county broker config over mTLS: every seq in
order and schema-valid, broker outages, SIGKILL at random moments, the will, clean stops,
health. The county side is mosquitto_sub logged in with the county certificate."""
import json
import os
import random
import signal
import subprocess
import time

from harness import (IntegrationTest, Proc, agent_bin, failed_connect_attempts, max_failed_attempts, sanitizer_build,
                     wait_until)
from county import (COUNTY, FindingsFlipper, agent_config, county_subscriber, delivery_report, make_certs,
                    schema_errors, sqlite_scalar, start_county_broker, states)

SCHOOL = "nansan"


class MqttDelivery(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.certs = make_certs(self.dir, [SCHOOL, "other"])
        self.broker = self.track(start_county_broker(self.dir, self.certs))
        self.county = county_subscriber(self.dir, self.broker.port, self.certs)
        self.procs.insert(0, self.county.proc)  # stopped last (tearDown stops in reverse)
        self.db = os.path.join(self.dir, "data", "agent.db")

    def start_agent(self, conf, name="agent"):
        return self.track(Proc(name, [agent_bin(), "--config", conf], self.dir))

    def unsent(self):
        v = sqlite_scalar(self.db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        return int(v) if v.isdigit() else -1

    def last_seq(self):
        v = sqlite_scalar(self.db, "SELECT coalesce(max(seq), 0) FROM outbox")
        return int(v) if v.isdigit() else -1

    def wait_delivered(self, timeout=30):
        """Every stored message acknowledged and seen by the county."""
        wait_until(lambda: self.unsent() == 0 and self.last_seq() > 0, timeout, what="outbox drained")
        last = self.last_seq()
        wait_until(lambda: delivery_report(self.county.messages())["last"] >= last, 10, what=f"seq {last} at the county")
        return last

    def assert_complete(self, last):
        msgs = self.county.messages()
        r = delivery_report(msgs)
        self.assertEqual(r["gaps"], [], "seqs missing at the county")
        self.assertEqual(r["id_conflicts"], [], "a seq arrived with two different contents")
        self.assertEqual(r["disorder"], [], "a topic went back in seq")
        self.assertGreaterEqual(r["last"], last)
        bad = [(m["topic"], e) for m in msgs for e in schema_errors(m["payload"])]
        self.assertEqual(bad, [], "schema-invalid messages")
        return r

    def test_every_seq_arrives_in_order_and_schema_valid(self):
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber", "recording"))
        flip = FindingsFlipper([os.path.join(self.dir, f"findings-{a}.json") for a in ("fiber", "recording")], 0.5)
        agent = self.start_agent(conf)
        time.sleep(6)
        flip.stop()
        last = self.wait_delivered()
        self.assertGreater(last, 10)
        r = self.assert_complete(last)
        kinds = {m["payload"]["kind"] for m in self.county.messages() if isinstance(m["payload"], dict)}
        self.assertTrue({"state", "report", "event", "health"} <= kinds, kinds)
        # clean stop: the agent itself says online:false (not the broker's will)
        self.assertEqual(agent.stop(10), 0)
        wait_until(lambda: states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]["online"] is False, 5,
                   what="offline state")
        last_state = states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]
        self.assertEqual(last_state["reason"], "stopped")
        self.assertEqual(last_state["last_seq"], self.last_seq())  # audits went on after `last`
        self.assertEqual(r["copies"], 0, "no copies without any outage")
        acked = int(sqlite_scalar(self.db, "SELECT coalesce(max(seq), 0) FROM outbox WHERE sent_at IS NOT NULL"))
        self.assert_complete(acked)  # everything acknowledged before the stop is at the county

    def test_nothing_is_lost_while_the_broker_is_down(self):
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",))
        flip = FindingsFlipper([os.path.join(self.dir, "findings-fiber.json")], 0.5)
        agent = self.start_agent(conf)
        wait_until(lambda: self.last_seq() > 5 and self.unsent() == 0, 20, what="first deliveries")
        port = self.broker.port
        self.broker.stop(10)
        self.procs.remove(self.broker)
        failed_attempts = lambda: failed_connect_attempts(agent.output())
        before = failed_attempts()
        outage = 6
        time.sleep(outage)
        self.assertGreater(self.unsent(), 0, "audits went on during the outage")
        during = failed_attempts() - before
        # Backoff 200 ms doubling to 2 s, jitter [d/2, d]: at most 9 attempts in 6 s (the
        # shortest waits add up to 0.1+0.2+0.4+0.8+1+1+1+1 s), about 6 typically. Never a storm.
        self.assertLessEqual(during, max_failed_attempts(outage, 0.2, 2.0) + 1, "reconnect storm")
        self.assertGreaterEqual(during, 2)
        self.broker = self.track(start_county_broker(self.dir, self.certs, port=port, name="broker2"))
        time.sleep(3)
        flip.stop()
        last = self.wait_delivered(40)
        self.assert_complete(last)

    def test_a_stop_during_a_commit_waits_for_it_and_the_offline_state_counts_it(self):
        """SIGTERM while a big report is being committed: the commit completes (nothing accepted
        is lost) and the agent's own offline state counts it (Store::last_seq waits for it)."""
        big = os.path.join(self.dir, "findings-fiber.json")
        # A report the store needs most of a second to commit. The agent waits at most 10 s for
        # a commit when it stops (a store stuck on its disk must not hold the stop past systemd's
        # TimeoutStopSec): under ThreadSanitizer the same 100,000 findings took 30 to 35 s from
        # hand-over to exit, under AddressSanitizer 18 s; a fifth of them still takes seconds there.
        sanitizer = sanitizer_build()
        n = 20000 if sanitizer else 100000
        with open(big, "w") as f:
            json.dump({"findings": [{"subject": f"R{i}", "state": "covered", "details": {"port": i}}
                                    for i in range(n)]}, f)
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",), interval="1h")
        with open(conf, "a") as f:
            f.write('input_error = "handing the report to the store"\n')  # logged just before the commit
        agent = self.start_agent(conf)
        agent.wait_for_output("handing the report to the store", timeout=60)
        agent.kill(signal.SIGTERM)
        self.assertEqual(agent.wait(60 if sanitizer else 30), 0, agent.output())
        self.assertEqual(self.last_seq(), 1, agent.output())
        wait_until(lambda: states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]["online"] is False, 10,
                   what="offline state")
        offline = states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]
        self.assertEqual((offline["reason"], offline["last_seq"]), ("stopped", 1),
                         "the offline state was sent before the report being stored was counted")

    def test_once_delivers_what_it_stored_or_keeps_it_and_exits_2(self):
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber", "recording"))
        once = lambda: subprocess.run([agent_bin(), "--once", "--config", conf], capture_output=True, text=True,
                                      timeout=60)
        r = once()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.unsent(), 0, "--once exited before every message was acknowledged")
        last = self.last_seq()
        self.assertEqual(last, 2)  # one report per audit
        wait_until(lambda: delivery_report(self.county.messages())["last"] >= last, 10, what="both reports")
        self.assert_complete(last)
        # The broker is gone: the audits still run and commit; the rows stay for the daemon.
        self.broker.stop(10)
        self.procs.remove(self.broker)
        r = once()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("2 message(s) are still in the outbox", r.stderr)
        self.assertEqual((self.last_seq(), self.unsent()), (4, 2))

    def test_sigkill_at_random_moments_loses_nothing(self):
        kills = int(os.environ.get("CAMPUS_KILLS", "24"))
        audits = ("fiber", "recording", "attendance")
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=audits)
        flip = FindingsFlipper([os.path.join(self.dir, f"findings-{a}.json") for a in audits], 0.3)
        rng = random.Random(int(os.environ.get("CAMPUS_SEED", str(int(time.time())))))
        integrity = []
        try:
            for i in range(kills):
                agent = self.start_agent(conf, name=f"agent{i}")
                time.sleep(rng.uniform(0.3, 2.0))
                agent.kill(signal.SIGKILL)
                agent.wait(10)
                self.procs.remove(agent)
                integrity.append(sqlite_scalar(self.db, "PRAGMA integrity_check"))
        finally:
            flip.stop()
        self.assertEqual(set(integrity), {"ok"}, integrity)
        agent = self.start_agent(conf, name="agent-final")
        last = self.wait_delivered(60)
        r = self.assert_complete(last)
        print(f"\nkill loop: {kills} SIGKILLs, {last} messages, gaps {len(r['gaps'])}, "
              f"duplicates {r['copies']} (all with the same id and content)")
        agent.stop(10)

    def test_will_says_offline_within_one_and_a_half_keep_alives(self):
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",))
        agent = self.start_agent(conf)
        wait_until(lambda: any(s["payload"]["body"]["online"] for s in states(self.county.messages(), SCHOOL)), 15,
                   what="birth")
        birth = [s for s in states(self.county.messages(), SCHOOL) if s["payload"]["body"]["online"]][-1]
        agent.kill(signal.SIGKILL)
        killed = time.monotonic()
        keep_alive = 2.0
        wait_until(lambda: states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]["online"] is False,
                   keep_alive * 1.5 + 0.5, what="the will")
        took = time.monotonic() - killed
        will = states(self.county.messages(), SCHOOL)[-1]["payload"]
        self.assertEqual(will["body"]["reason"], "will")
        self.assertEqual(will["body"]["session"], birth["payload"]["body"]["session"])
        self.assertEqual(schema_errors(will), [])
        self.assertLessEqual(took, keep_alive * 1.5 + 0.5)
        # a late subscriber sees it retained
        late = county_subscriber(self.dir, self.broker.port, self.certs, name="late", persistent=False)
        self.procs.append(late.proc)
        wait_until(lambda: states(late.messages(), SCHOOL), 5, what="retained state")
        self.assertTrue(states(late.messages(), SCHOOL)[-1]["retained"])
        self.assertFalse(states(late.messages(), SCHOOL)[-1]["payload"]["body"]["online"])
        # restarted: a fresh birth with a higher session replaces it
        self.start_agent(conf, name="agent2")
        wait_until(lambda: states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]["online"] is True, 15,
                   what="new birth")
        self.assertGreater(states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]["session"],
                           birth["payload"]["body"]["session"])

    def test_stale_will_after_a_quick_restart_is_answered_with_a_birth(self):
        # Killed and restarted within the keep-alive: the broker may deliver the old session's
        # will after the new birth; the agent must answer it so the county ends with online:true.
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",))
        agent = self.start_agent(conf)
        wait_until(lambda: any(s["payload"]["body"]["online"] for s in states(self.county.messages(), SCHOOL)), 15,
                   what="birth")
        agent.kill(signal.SIGKILL)
        agent.wait(5)
        self.start_agent(conf, name="agent2")
        time.sleep(6)  # > 1.5 x keep-alive: any will of the first session has come and gone
        last = states(self.county.messages(), SCHOOL)[-1]["payload"]["body"]
        self.assertTrue(last["online"], [s["payload"]["body"] for s in states(self.county.messages(), SCHOOL)])

    def test_health_is_schema_valid_and_consistent_with_the_outbox(self):
        conf = agent_config(self.dir, SCHOOL, self.broker.port, self.certs, audits=("fiber",))
        agent = self.start_agent(conf)
        last = self.wait_delivered()
        time.sleep(2.5)  # health every 1 s
        topic = f"campus/v1/{COUNTY}/{SCHOOL}/health"
        healths = [m["payload"] for m in self.county.messages() if m["topic"] == topic]
        self.assertTrue(healths)
        for h in healths:
            self.assertEqual(schema_errors(h), [])
        body = healths[-1]["body"]
        self.assertEqual(body["outbox"]["depth"], 0)
        self.assertIsNone(body["outbox"]["oldest_unsent_age_s"])
        self.assertGreaterEqual(body["outbox"]["last_seq"], last)
        self.assertTrue(body["mqtt"]["connected"])
        self.assertGreaterEqual(body["mqtt"]["published"], last)
        self.assertEqual(body["mqtt"]["refused"], 0)
        self.assertIsNotNone(body["mqtt"]["last_publish"])
        self.assertGreater(body["rss_bytes"], 0)
        self.assertIn("fiber", body["audits"])
        agent.stop(10)
