"""Broker flapping (issue 9): the real agent audits every second while the county broker (the
shipped config, mTLS, real Mosquitto) is stopped and started every few seconds for
CAMPUS_FLAP_SECONDS (default 120). Proves: nothing lost (the county sees every seq 1..N of
everything stored, in order per topic, copies only identical), no reconnect storm (failed
attempts in the agent log and connections in the broker logs within what the backoff
allows), and RSS, open fds and threads flat."""
import os
import random
import re
import time

from harness import (IntegrationTest, Proc, agent_bin, failed_connect_attempts, max_failed_attempts,
                     proc_resources, under_sanitizer, wait_until)
from county import (COUNTY, FindingsFlipper, agent_config, arrivals_around, county_subscriber, delivery_report,
                    make_certs, schema_errors, sqlite_scalar, start_county_broker)

SCHOOL = "flapping"
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 2.0  # county.agent_config's reconnect_min / reconnect_max


class BrokerFlapping(IntegrationTest):
    def test_flapping_broker_loses_nothing_without_a_storm_and_without_growth(self):
        seconds = float(os.environ.get("CAMPUS_FLAP_SECONDS", "120"))
        rng = random.Random(int(os.environ.get("CAMPUS_SEED", str(int(time.time())))))
        certs = make_certs(self.dir, [SCHOOL])
        broker = self.track(start_county_broker(self.dir, certs))
        port = broker.port
        county = county_subscriber(self.dir, port, certs)
        self.procs.insert(0, county.proc)  # stopped last
        db = os.path.join(self.dir, "data", "agent.db")
        audits = ("fiber", "recording")
        conf = agent_config(self.dir, SCHOOL, port, certs, audits=audits, interval="1s")
        flip = FindingsFlipper([os.path.join(self.dir, f"findings-{a}.json") for a in audits], 0.5)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: "mqtt: connected" in agent.output() or not agent.alive(), 30, what="the first connection")
        self.assertTrue(agent.alive(), "the agent did not start:\n" + agent.output()[-3000:])

        samples = []  # (t, rss_kib, fds, threads)
        outages = []  # seconds the broker was down
        brokers = [broker]
        t0 = time.monotonic()
        next_flip = t0 + rng.uniform(2, 4)
        up = True
        down_since = 0.0
        try:
            while time.monotonic() - t0 < seconds or not up:
                now = time.monotonic()
                if now >= next_flip:
                    if up:
                        broker.stop(10)
                        self.procs.remove(broker)
                        down_since = time.monotonic()
                    else:
                        broker = self.track(start_county_broker(self.dir, certs, port=port,
                                                                name=f"broker{len(brokers)}"))
                        brokers.append(broker)
                        outages.append(time.monotonic() - down_since)
                    up = not up
                    next_flip = time.monotonic() + rng.uniform(2, 4)
                self.assertTrue(agent.alive(), "the agent died:\n" + agent.output()[-3000:])
                samples.append((now - t0, *proc_resources(agent.pid)))
                time.sleep(0.5)
        finally:
            flip.stop()

        # Everything stored reaches the county once the broker stays up.
        unsent = lambda: sqlite_scalar(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")  # noqa: E731
        try:
            wait_until(lambda: unsent() == "0", 120, interval=0.2, what="the outbox to drain")
        except AssertionError as e:
            # The broker's side too: why it closed the agent's connections (CI's loop, ci8 and
            # session 4, left no broker log to read).
            with open(brokers[-1].log_path, encoding="utf-8", errors="replace") as f:
                broker_tail = f.read()[-3000:]
            self.fail(f"{e}: {unsent()} unsent; the agent's log ends with:\n{agent.output()[-4000:]}\n"
                      f"the last broker's log ends with:\n{broker_tail}")
        last = int(sqlite_scalar(db, "SELECT coalesce(max(seq), 0) FROM outbox"))
        # The county's own client (mosquitto_sub, persistent session) reconnects by itself after
        # the last restart and then gets what queued for it: under a loaded 2-core CI machine
        # that took over 30 s once (ci9), so it gets 90 s; the assertions below are unchanged.
        wait_until(lambda: delivery_report(county.messages())["last"] >= last, 90, what=f"seq {last} at the county")
        msgs = county.messages()
        r = delivery_report(msgs)
        self.assertEqual(r["gaps"], [], "seqs missing at the county")
        self.assertEqual(r["id_conflicts"], [], "a seq arrived twice with different contents")
        self.assertEqual(r["disorder"], [], "a topic went back in seq; what the county got around it:\n" +
                         "\n\n".join(arrivals_around(msgs, *d) for d in r["disorder"][:3]))
        # Paho C 1.3.12 (Debian 12) could resend a QoS 1 publish from freed memory on a resumed
        # session (upstream eclipse-paho/paho.mqtt.c #1592, #1310, both open): garbage, or a later
        # message's bytes (then the disorder above). The agent now gives Paho a fresh client per
        # connection, so nothing is replayed; should a garbled copy still arrive (not JSON, so the
        # county drops it), it is counted and shown, while anything that parses but is not
        # schema-valid fails the test, and the retained state the county ends with must be whole.
        state_topic = f"campus/v1/{COUNTY}/{SCHOOL}/state"
        garbled = [m for m in msgs if not isinstance(m["payload"], dict)]
        self.assertEqual([(m["topic"], e) for m in msgs if m not in garbled for e in schema_errors(m["payload"])], [],
                         "schema-invalid messages")
        states = [m for m in msgs if m["topic"] == state_topic]
        self.assertEqual(schema_errors(states[-1]["payload"]), [], "the last state is garbled")
        self.assertGreater(last, 10 * seconds / 6, "audits every second should store several messages a second")

        # No storm: every outage allows at most max_failed_attempts() failed attempts, +1 for
        # an attempt that meets the broker while it starts (port open, TLS not ready yet).
        failed = failed_connect_attempts(agent.output())
        allowed = sum(max_failed_attempts(o, RECONNECT_MIN_S, RECONNECT_MAX_S) + 1 for o in outages)
        self.assertGreaterEqual(failed, len(outages), "each outage costs at least one failed attempt")
        self.assertLessEqual(failed, allowed, f"reconnect storm: {failed} failed attempts in {len(outages)} outages")
        # The broker side: at most one accepted connection per broker start, plus one spare
        # each (a connection the broker saw just before it was stopped).
        client = f"campus-zhenkang-{SCHOOL}"
        accepted = 0
        for b in brokers:  # read from the files: the stopped brokers' Procs are closed
            with open(b.log_path, encoding="utf-8", errors="replace") as f:
                accepted += len(re.findall(rf"New client connected from .* as {re.escape(client)} ", f.read()))
        # Some starts see no connection: an up time of 2 s can pass while the agent waits out
        # its backoff or is still in the TLS handshake when the broker stops again.
        self.assertGreaterEqual(accepted, len(brokers) // 2, "the agent stopped reconnecting")
        self.assertLessEqual(accepted, 2 * len(brokers), "the agent connected more often than the broker restarted")

        # Flat resources: after a warm-up (first quarter: SQLite cache, TLS, allocator arenas),
        # compare the last third of the samples with the first third.
        warm = [s for s in samples if s[0] >= seconds / 4]
        third = max(1, len(warm) // 3)
        first, final = warm[:third], warm[-third:]
        avg = lambda rows, i: sum(row[i] for row in rows) / len(rows)  # noqa: E731
        rss_first, rss_last = avg(first, 1), avg(final, 1)
        # fds: the broker socket (plus an in-flight TLS diagnosis socket) comes and goes with
        # the outages, so the peaks are compared, +2. Threads likewise (Paho's per-connection
        # threads), +2.
        self.assertLessEqual(max(s[2] for s in final), max(s[2] for s in first) + 2, "file descriptors grew")
        self.assertLessEqual(max(s[3] for s in final), max(s[3] for s in first) + 2, "threads grew")
        # RSS: 10% + 2 MiB. The outbox grows by a few hundred rows a minute and SQLite's page
        # cache (2 MiB by default) fills in steps; a leak of even 1 KiB per reconnect or per
        # message would exceed it in two minutes (hundreds of messages, dozens of reconnects
        # leaking a TLS context each would be megabytes). Not under ASan: its quarantine keeps
        # freed memory by design.
        sanitized = under_sanitizer(agent.pid)
        print(f"\nflapping {seconds:.0f} s: {len(outages)} outages ({min(outages):.1f}-{max(outages):.1f} s), "
              f"{last} messages, gaps 0, copies {r['copies']}, garbled copies (Paho C) {len(garbled)} on {sorted({m['topic'].rsplit('/', 1)[-1] for m in garbled})}; failed connect attempts {failed} "
              f"(backoff allows {allowed}); broker accepted {accepted} connections in {len(brokers)} starts; "
              f"RSS first third {rss_first:.0f} KiB, last third {rss_last:.0f} KiB{' (ASan: not bounded)' if sanitized else ''}; "
              f"fds {min(s[2] for s in samples)}-{max(s[2] for s in samples)}, "
              f"threads {min(s[3] for s in samples)}-{max(s[3] for s in samples)}")
        if not sanitized:
            self.assertLessEqual(rss_last, rss_first * 1.10 + 2048, "RSS grew")
        self.assertEqual(agent.stop(10), 0)


class BrokerFailover(IntegrationTest):
    """[mqtt] brokers: the agent connects to the first broker of its list; when that one is gone
    it moves to the next at once (reconnect_min, not the grown backoff) and goes on there, and
    nothing it stored is missing from what the two brokers delivered to the county."""

    def test_the_agent_moves_to_the_next_broker_and_loses_nothing(self):
        certs = make_certs(self.dir, ["failover"])
        first = self.track(start_county_broker(self.dir, certs, name="first"))
        second = self.track(start_county_broker(self.dir, certs, name="second"))
        subs = [county_subscriber(self.dir, b.port, certs, name=f"county-{i}") for i, b in enumerate((first, second))]
        for s in subs:
            self.procs.insert(0, s.proc)
        conf = agent_config(self.dir, "failover", first.port, certs, audits=("fiber",), interval="1s")
        with open(conf) as f:
            text = f.read()
        text = text.replace("host = \"127.0.0.1\"\n", "").replace(
            f"port = {first.port}\n", f'brokers = ["127.0.0.1:{first.port}", "127.0.0.1:{second.port}"]\n')
        with open(conf, "w") as f:
            f.write(text)
        flip = FindingsFlipper([os.path.join(self.dir, "findings-fiber.json")], 0.5)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: f"mqtt: connected to 127.0.0.1:{first.port}" in agent.output() or not agent.alive(), 30,
                   what="the first broker")
        db = os.path.join(self.dir, "data", "agent.db")
        wait_until(lambda: int(sqlite_scalar(db, "SELECT COALESCE(MAX(seq), 0) FROM outbox") or 0) >= 5, 30,
                   what="the first reports")
        first.stop(10)
        self.procs.remove(first)
        gone = time.monotonic()
        wait_until(lambda: f"mqtt: connected to 127.0.0.1:{second.port}" in agent.output(), 20,
                   what="the agent on the second broker")
        moved = time.monotonic() - gone
        print(f"\nfailover: on the second broker {moved:.1f} s after the first stopped", flush=True)
        # The connection loss is noticed within the keep-alive (2 s) or at once (a closed socket),
        # the same broker is tried once, then the next one after reconnect_min (200 ms).
        self.assertLess(moved, 8.0, agent.output()[-3000:])
        self.assertIn(f"mqtt: trying 127.0.0.1:{second.port} next", agent.output())
        time.sleep(3)  # reports go on through the second broker
        flip.stop()
        agent.stop(20)
        last = int(sqlite_scalar(db, "SELECT MAX(seq) FROM outbox"))
        unsent = int(sqlite_scalar(db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL"))
        self.assertEqual(unsent, 0)
        messages = subs[0].messages() + subs[1].messages()
        report = delivery_report(messages)
        self.assertEqual(report["gaps"], [], f"seqs missing from what the two brokers delivered (last {last})")
        self.assertEqual(report["last"], last)
        second_seqs = delivery_report(subs[1].messages())["seqs"]
        self.assertTrue(any(s > 5 for s in second_seqs), "nothing went through the second broker")
