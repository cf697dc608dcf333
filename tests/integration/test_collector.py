"""campus-county, the county collector, against a real Mosquitto 2.0 on 127.0.0.1: with the real
agent (nothing acknowledged before it is committed, so SIGKILLs of the collector lose nothing; a
broker restart without persistence leaves a hole that only the repair fills), and with fake
schools that speak the wire contract (duplicates, conflicts, reorder within the grace, offline
schools, pacing of resend requests, seqs no longer held, a replaced store, every bad input)."""
import json
import os
import random
import re
import signal
import threading
import time
import unittest

from collector import (Collector, FakeSchool, agent_store, collector_config, ctl, mosquitto_pub, start_broker,
                       start_insecure_agent)
from county import COUNTY
from harness import IntegrationTest, Proc, notify_reader, notify_socket, wait_until, write_file


class CollectorWithTheRealAgent(IntegrationTest):
    def start_agent(self, school="school-a", interval="1s"):
        return start_insecure_agent(self, self.port, school, interval)

    def test_collector_killed_again_and_again_loses_nothing_because_it_acknowledges_only_what_it_committed(self):
        # Repair is off: every seq must come through the broker session alone.
        self.broker = start_broker(self)
        self.port = self.broker.port
        coll = Collector(self.dir, collector_config(self.dir, self.port, repair={"enabled": False}))
        coll.start()
        wd, agent, _ = self.start_agent()
        rng = random.Random(7)
        for i in range(10):
            time.sleep(rng.uniform(0.7, 2.0))
            coll.kill()
            time.sleep(rng.uniform(0.1, 0.8))
            coll.start()
        agent.stop(20)
        # What the broker acknowledged must all be there; the seqs the agent had not sent when it
        # stopped (a busy machine leaves a few) wait in its outbox for its next run.
        store, acknowledged, last = agent_store(wd, acknowledged=True)
        self.assertGreater(acknowledged, 30, "the agent produced too little to prove anything")
        wait_until(lambda: coll.seqs("school-a", store)[:acknowledged] == list(range(1, acknowledged + 1)), 60,
                   what=f"seq 1..{acknowledged} in the county database")
        seqs = coll.seqs("school-a", store)
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "a seq twice, or one beyond a hole")
        self.assertLessEqual(len(seqs), last)
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM gap"), 0, coll.gaps())
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM quarantine"), 0, coll.quarantine())
        coll.stop()

    def test_a_hole_the_broker_lost_stays_open_without_repair_and_is_filled_by_resend(self):
        self.broker = start_broker(self, persistent=False)
        self.port = self.broker.port
        conf = collector_config(self.dir, self.port, repair={"enabled": False})
        coll = Collector(self.dir, conf).start()
        wd, agent, _ = self.start_agent()
        wait_until(lambda: len(coll.seqs("school-a")) >= 5, 30, what="the first seqs")
        coll.stop()  # a clean stop: the durable session stays on the broker and queues for it
        time.sleep(4)  # the agent publishes meanwhile
        self.broker.stop()  # without persistence the broker forgets the queued messages
        self.broker = start_broker(self, port=self.port, persistent=False, name="mosquitto2")
        coll.start()
        wait_until(lambda: any(g["state"] == "open" for g in coll.gaps()), 60, what="the collector to see the hole")
        time.sleep(5)  # repair is off: nothing fills it
        self.assertTrue(any(g["state"] == "open" for g in coll.gaps()), coll.gaps())
        self.assertEqual(coll.requests(), [])
        # Repair on (SIGHUP): the collector asks the agent, the copies fill the hole.
        with open(conf) as f:
            write_file(conf, f.read().replace("enabled = false", "enabled = true"))
        coll.reload()
        wait_until(lambda: coll.requests() and all(g["state"] == "filled" for g in coll.gaps()), 60,
                   what="the hole to be filled")
        agent.stop(20)
        store, acknowledged, last = agent_store(wd, acknowledged=True)
        wait_until(lambda: coll.seqs("school-a", store)[:acknowledged] == list(range(1, acknowledged + 1)), 60,
                   what=f"every seq up to {acknowledged}, the last the broker acknowledged")
        self.assertLessEqual(len(coll.seqs("school-a", store)), last)
        self.assertIn("repair: asking school-a to resend", coll.output())
        coll.stop()


class CollectorWithFakeSchools(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = start_broker(self)
        self.port = self.broker.port

    def collector(self, **sections):
        c = Collector(self.dir, collector_config(self.dir, self.port, **sections)).start()
        self.addCleanup(c.stop)
        return c

    def school(self, name="school-a", **kw):
        s = FakeSchool(self.port, name, **kw)
        self.addCleanup(s.close)
        return s

    def test_duplicates_are_dropped_and_a_conflicting_copy_is_kept_aside(self):
        coll = self.collector()
        s = self.school()
        s.birth(0)
        env = s.report(1)
        s.raw("report/fiber", json.dumps(dict(env, resent=True)))  # a resent copy: same bytes but the flag
        s.raw("report/fiber", json.dumps(dict(env, body={"summary": {"g": 999}, "findings": []})))  # other bytes
        wait_until(lambda: coll.scalar("SELECT COUNT(*) FROM conflict") == 1, 20, what="the conflict")
        self.assertEqual(coll.seqs("school-a"), [1])
        kept = json.loads(coll.scalar("SELECT payload FROM message"))
        self.assertEqual(kept["body"]["summary"], {"g": 1})
        self.assertEqual(coll.scalar("SELECT value FROM counter WHERE name = 'duplicates'"), 1)
        self.assertIn("CONFLICT: school-a seq 1", coll.output())

    def test_a_collector_killed_during_a_fast_flow_loses_nothing_it_was_sent(self):
        # The sharper form of the kill loop above: a school publishing as fast as the broker takes
        # it, so every kill lands while a batch is received and not yet committed. A collector
        # that acknowledged on receipt loses those messages (checked by hand: it does); repair is
        # off, so nothing else could bring them back.
        coll = self.collector(repair={"enabled": False})
        s = self.school()
        s.birth(0)
        stop = threading.Event()
        published = []

        def publish():
            seq = 0
            while not stop.is_set():
                seq += 1
                s.event(seq)
                published.append(seq)
        publisher = threading.Thread(target=publish)
        publisher.start()
        rng = random.Random(11)
        for _ in range(8):
            time.sleep(rng.uniform(0.1, 0.3))
            coll.kill()
            coll.start(wait_connected=False)
        stop.set()
        publisher.join()
        total = len(published)
        wait_until(lambda: coll.seqs("school-a") == list(range(1, total + 1)), 60, what=f"seq 1..{total}")
        self.assertEqual(coll.gaps(), [])
        print(f"\n8 kills while {total} messages were published", flush=True)

    def test_seqs_out_of_order_within_the_grace_are_never_asked_for(self):
        coll = self.collector(repair={"reorder_grace": "3s"})
        s = self.school()
        s.birth(0)
        s.report(1)
        s.report(3)
        wait_until(lambda: coll.gaps(), 20, what="the gap")
        time.sleep(1)
        s.event(2)
        wait_until(lambda: coll.gaps()[0]["state"] == "filled", 20, what="the gap to fill")
        time.sleep(4)  # past the grace
        self.assertEqual(s.requests, [])
        self.assertEqual(coll.requests(), [])

    def test_an_offline_school_is_asked_only_when_it_is_back(self):
        coll = self.collector(repair={"reorder_grace": "1s"})
        s = self.school()
        s.birth(0)
        s.report(1)
        s.report(3, publish=False)
        s.event(2, publish=False)
        s.report(3)
        s.offline("will")
        wait_until(lambda: coll.scalar("SELECT online FROM school") == 0, 20, what="offline")
        time.sleep(4)
        self.assertEqual(s.requests, [], "asked a school that is offline")
        s.birth()
        wait_until(lambda: s.requests, 20, what="the request once the school is back")
        wait_until(lambda: coll.seqs("school-a") == [1, 2, 3], 20, what="the repaired seq")
        # Where to reply is in the payload too, for schools on MQTT 3.1.1 (test_mqtt311).
        self.assertEqual(s.requests[0][1], {"cmd": "resend", "from_seq": 2, "to_seq": 2,
                                            "reply_to": f"campus/v1/{COUNTY}/school-a/reply/collector",
                                            "correlation": s.requests[0][1].get("correlation")})
        self.assertTrue(s.requests[0][1]["correlation"].startswith("resend-"))

    def test_one_request_per_school_in_flight_and_what_is_no_longer_held_is_lost(self):
        coll = self.collector(repair={"reorder_grace": "1s", "max_range": 5, "backoff_min": "500ms",
                                      "backoff_max": "1s"})
        s = self.school(reply_delay=1.5)
        s.birth(0)
        s.report(1)
        for seq in range(2, 14):
            s.event(seq, publish=False)
        s.missing = {2, 3}  # pruned at the school after delivery
        s.report(14)
        settled = lambda gaps: gaps and all(g["state"] != "open" for g in gaps)  # noqa: E731
        wait_until(lambda: settled(coll.gaps()), 60, what="every gap filled or lost")
        self.assertEqual(s.max_in_flight, 1, "more than one request in flight to one school")
        self.assertGreaterEqual(len(s.requests), 3)  # 12 seqs, at most 5 per request
        for _, r in s.requests:
            self.assertLessEqual(r["to_seq"] - r["from_seq"] + 1, 5)
        self.assertEqual(coll.seqs("school-a"), [1, *range(4, 15)])
        g = coll.gaps("school-a")[0]
        self.assertEqual((g["state"], g["lost"], g["filled"]), ("lost", 2, 10))
        self.assertIn("no_longer_held", g["lost_reason"])
        requests = coll.requests()
        self.assertTrue(all(r["outcome"] == "answered" for r in requests), requests)

    def test_a_replaced_store_starts_a_new_series_and_closes_the_old_gaps_as_lost(self):
        coll = self.collector(repair={"reorder_grace": "30s"})
        s = self.school()
        s.birth(0)
        s.report(1)
        s.report(4)  # 2..3 open
        wait_until(lambda: coll.gaps(), 20, what="the gap")
        s.close()
        fresh = self.school(store="b" * 32)
        fresh.birth(0)
        fresh.report(1, summary={"fresh": True})
        wait_until(lambda: coll.seqs("school-a") == [1] and coll.gaps()[0]["state"] == "lost", 20,
                   what="the new series and the lost gap")
        self.assertIn("store_replaced", coll.gaps()[0]["lost_reason"])
        self.assertEqual(coll.seqs("school-a", "a" * 32), [1, 4])
        self.assertEqual(coll.scalar("SELECT COUNT(*) FROM conflict"), 0)
        self.assertIn("replaced by " + "b" * 32, coll.output())

    def test_every_bad_input_is_quarantined_with_its_reason_and_the_collector_goes_on(self):
        coll = self.collector(ingest={"max_payload": "8KiB", "quarantine_log_every": "1h"})
        s = self.school()
        s.birth(0)
        good = s.report(1)
        root = f"campus/v1/{COUNTY}/school-a/"
        cases = [
            ("report/fiber", "{not json", "not_json"),
            ("report/fiber", "[1, 2]", "not_an_object"),
            ("report/fiber", json.dumps(dict(good, school="school-b")), "topic_mismatch"),
            ("report/fiber", json.dumps(dict(good, kind="event")), "topic_mismatch"),
            ("report/fiber", json.dumps(dict(good, seq=0, id="school-a:0")), "bad_seq"),
            ("report/fiber", json.dumps(dict(good, seq="2")), "bad_seq"),
            ("report/fiber", json.dumps(dict(good, seq=5, id="school-a:6")), "bad_id"),
            ("report/fiber", json.dumps(dict(good, seq=6, id="school-a:6", body={"summary": {"x": "y" * 9000},
                                                                                   "findings": []})), "too_large"),
            ("report/fiber", json.dumps(dict(good, kind="telemetry")), "unknown_kind"),
            ("report/fiber", json.dumps(dict(good, v=2)), "bad_envelope"),
            ("state", json.dumps({"v": 1, "kind": "state", "county": COUNTY, "school": "school-a",
                                  "ts": "2026-11-28T21:00:00+08:00", "agent": "x", "body": {"online": "yes"}}), "bad_body"),
        ]
        for leaf, payload, _ in cases:
            mosquitto_pub(self.port, root + leaf, payload)
        s.report(2)  # and it goes on
        wait_until(lambda: len(coll.quarantine()) >= len(cases) and coll.seqs("school-a") == [1, 2], 30,
                   what="every bad input quarantined")
        got = [q["reason"] for q in coll.quarantine()]
        self.assertEqual(got, [c[2] for c in cases])
        big = [q for q in coll.quarantine() if q["reason"] == "too_large"][0]
        self.assertGreater(big["size"], 8192)
        # Logged once per school and kind per hour, not once per message.
        self.assertEqual(coll.output().count("quarantined a message on"), 2, coll.output())
        # The seqs of the quarantined copies that had one (5: a wrong id, 6: too large) are accounted as
        # lost, never asked for again and again.
        lost = [g for g in coll.gaps() if g["cause"] == "quarantined"]
        self.assertEqual([(g["from_seq"], g["state"]) for g in lost], [(5, "lost"), (6, "lost")])

    def test_a_school_outside_the_register_is_quarantined(self):
        coll = Collector(self.dir, collector_config(self.dir, self.port, register=["school-a"])).start()
        self.addCleanup(coll.stop)
        a = self.school("school-a")
        x = self.school("school-x")
        a.report(1)
        x.report(1)
        wait_until(lambda: coll.quarantine() and coll.seqs("school-a") == [1], 20, what="both handled")
        q = coll.quarantine()[0]
        self.assertEqual((q["school"], q["reason"]), ("school-x", "unknown_school"))

    def test_the_durable_session_holds_what_arrives_while_the_collector_is_stopped(self):
        coll = self.collector(repair={"enabled": False})
        s = self.school()
        s.birth(0)
        s.report(1)
        wait_until(lambda: coll.seqs("school-a") == [1], 20, what="seq 1")
        coll.stop()
        for seq in range(2, 40):
            s.event(seq)
        coll.start()
        wait_until(lambda: coll.seqs("school-a") == list(range(1, 40)), 30, what="the queued seqs")
        self.assertEqual(coll.gaps(), [])

    def test_systemd_ready_status_watchdog_reload_and_a_clean_stop(self):
        from collector import collector_bin
        sock = notify_socket(os.path.join(self.dir, "notify.sock"))
        self.addCleanup(sock.close)
        conf = collector_config(self.dir, self.port, name="notified")
        p = self.track(Proc("notified", [collector_bin(), "--config", conf], self.dir,
                            env={"NOTIFY_SOCKET": os.path.join(self.dir, "notify.sock"), "WATCHDOG_USEC": "400000"}))
        got = []
        drain = notify_reader(sock, got)
        wait_until(lambda: any("READY=1" in m for m in drain()), 10, what="READY=1")
        s = self.school()
        s.birth(0)
        s.report(1)
        wait_until(lambda: sum("WATCHDOG=1" in m for m in drain()) >= 5, 10, what="5 watchdog pings")
        status = re.compile(r"STATUS=[1-9]\d* committed, 0 open gap\(s\), 0 seq\(s\) lost, 0 quarantined")
        wait_until(lambda: any(status.match(m) for m in drain()), 10, what="a STATUS line with the figures")
        p.kill(signal.SIGHUP)
        wait_until(lambda: any("RELOADING=1" in m for m in drain()), 5, what="RELOADING=1")
        wait_until(lambda: "reload applied" in p.output(), 5, what="the reload")
        p.kill(signal.SIGTERM)
        self.assertEqual(p.wait(20), 0, p.output())
        self.assertTrue(any("STOPPING=1" in m for m in drain()))
        self.assertIn("county: stopped", p.output())

    def test_check_config_names_every_problem(self):
        bad = os.path.join(self.dir, "bad.toml")
        with open(bad, "w") as f:
            f.write('[county]\ncode = "Zhen Kang"\nregister = "nowhere.csv"\n[mqtt]\nport = 99999\nkeep_alive = "soon"\n'
                    '[repair]\nreorder_grace = "abc"\nmax_range = 20000\n[frobnicate]\nx = 1\n')
        from collector import collector_bin
        import subprocess
        r = subprocess.run([collector_bin(), "--check-config", "--config", bad], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        for text in ["key county.code", "key county.register", "key mqtt.port", "key mqtt.keep_alive",
                     "mqtt.ca_file is required", "key repair.reorder_grace", "key repair.max_range", "frobnicate"]:
            self.assertIn(text, r.stderr)
        reg = os.path.join(self.dir, "reg.csv")
        with open(reg, "w") as f:
            f.write("code,name\nschool-a,A\nall,everyone\nschool-a,again\nBad Code,x\n")
        good = collector_config(self.dir, self.port, name="regcheck")
        with open(good) as f:
            write_file(good, f.read().replace('[county]\n', f'[county]\nregister = "{reg}"\n'))
        r = subprocess.run([collector_bin(), "--check-config", "--config", good], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("reg.csv:3", r.stderr)
        self.assertIn("reserved", r.stderr)
        self.assertIn("reg.csv:4", r.stderr)
        self.assertIn("listed twice", r.stderr)
        self.assertIn("reg.csv:5", r.stderr)
        for url, text in [("mysql://county@127.0.0.1/county", "is not a PostgreSQL URL"),
                          ("postgresql://county:secret@127.0.0.1/county", "carries a password")]:
            pg = collector_config(self.dir, self.port, name="pgcheck", database={"url": url})
            r = subprocess.run([collector_bin(), "--check-config", "--config", pg], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("key database.url", r.stderr)
            self.assertIn(text, r.stderr)
            self.assertNotIn("secret", r.stderr)


if __name__ == "__main__":
    unittest.main()
