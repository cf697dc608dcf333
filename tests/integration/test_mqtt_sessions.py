"""The agent's MQTT sessions against a small MQTT 5 server on 127.0.0.1 that speaks the real
protocol (CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH/PUBACK, PINGREQ) and does what a real
broker only does by accident, on purpose:

- ShortSessions: it accepts the agent's resumed session and closes it at once, again and again
  (the loop CI saw in test_faults_broker: connected, closed within 2 ms, for minutes, with the
  broker up). The agent gives the session up for a clean one after 3 such connections, backs off
  instead of hammering, and then delivers.
- ResumedSession: it leaves the agent's publishes unacknowledged, drops the connection, and
  resumes the session on the next. What the agent sends then must come from its store, in
  order, as new publishes: never Paho's own resend of what the last connection left in flight
  (DUP set), which Paho C 1.3.12 can make from freed memory (docs/reliability.md): in CI that
  put a later event's bytes under an earlier packet, so the county saw seq 843 before 841.
- TakenOver: it ends sessions with DISCONNECT 0x8E (session taken over), as MQTT 5 brokers do
  when another client connects with the agent's client id (Mosquitto from 2.0.15, EMQX;
  Debian's 2.0.11 sends no DISCONNECT at all: test_broker_identities). The agent logs it as an
  error naming the reason, counts it in its health and waits reconnect_max before taking the
  session back."""
import json
import os
import re
import socket
import threading
import time

from harness import LOOPBACK, IntegrationTest, Proc, agent_bin, free_port, read_packet, wait_until
from county import agent_config, schema_errors, sqlite_scalar


def varint(data, at):
    """(value, next offset) of an MQTT variable byte integer."""
    value, shift = 0, 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, at


class SmallBroker:
    """An MQTT 5 server for one client at a time, scripted by four hooks:
    on_connect(n, clean_start) -> (session_present, keep): CONNACK flags, and whether to serve
    the connection or close it right after the CONNACK; None closes it without a CONNACK (a
    failed connect for the client); on_publish(n, packet) -> ack: whether
    to PUBACK it (a dict: conn, dup, qos, retain, topic, payload). n counts connections from 0.
    close_after_publish(n, packet) -> bool drops connection n after that publish.
    disconnect_after(n) -> (seconds, reason) ends connection n that long after its CONNACK with
    a DISCONNECT carrying that reason code (None: never)."""

    def __init__(self, on_connect, on_publish=lambda n, p: True, close_after_publish=lambda n, p: False,
                 disconnect_after=lambda n: None):
        self.on_connect, self.on_publish, self.close_after_publish = on_connect, on_publish, close_after_publish
        self.disconnect_after = disconnect_after
        self.port = free_port()
        self.clean_starts = []  # one bool per CONNECT, in order
        self.connected_at = []  # time.monotonic() of each CONNECT
        self.disconnected_at = {}  # n -> time.monotonic() when its DISCONNECT was sent
        self.published = []     # every PUBLISH packet (dicts as above), in arrival order
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:  # closed by stop()
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            with conn:
                p = read_packet(conn)
                if p is None or p[0] >> 4 != 1:
                    return
                body = p[1]
                name_len = int.from_bytes(body[0:2], "big")
                flags = body[2 + name_len + 1]  # after the protocol name and the version byte
                clean = bool(flags & 0x02)
                n = len(self.clean_starts)
                self.clean_starts.append(clean)
                self.connected_at.append(time.monotonic())
                reply = self.on_connect(n, clean)
                if reply is None:
                    return
                present, keep = reply
                # CONNACK: session present flag, reason 0, no properties.
                conn.sendall(bytes([0x20, 3, 1 if present else 0, 0, 0]))
                if not keep:
                    return
                ending = self.disconnect_after(n)
                if ending:
                    threading.Timer(ending[0], self._disconnect, args=(conn, n, ending[1])).start()
                while not self.stopping:
                    p = read_packet(conn)
                    if p is None:
                        return
                    kind, body = p[0] >> 4, p[1]
                    if kind == 8:  # SUBSCRIBE: packet id, properties, then filters
                        at = 2
                        props, at = varint(body, at)
                        at += props
                        count = 0
                        while at < len(body):
                            at += 2 + int.from_bytes(body[at:at + 2], "big") + 1
                            count += 1
                        conn.sendall(bytes([0x90, 3 + count]) + body[0:2] + b"\x00" + b"\x01" * count)
                    elif kind == 3:  # PUBLISH: topic, packet id when QoS > 0, properties, payload
                        qos = (p[0] >> 1) & 3
                        tlen = int.from_bytes(body[0:2], "big")
                        at = 2 + tlen
                        packet_id = body[at:at + 2] if qos else b""
                        at += len(packet_id)
                        props, at = varint(body, at)
                        pub = {"conn": n, "dup": bool(p[0] & 0x08), "qos": qos, "retain": bool(p[0] & 1),
                               "topic": body[2:2 + tlen].decode("utf-8", "replace"), "payload": body[at + props:]}
                        self.published.append(pub)
                        if qos and self.on_publish(n, pub):
                            conn.sendall(bytes([0x40, 2]) + packet_id)
                        if self.close_after_publish(n, pub):
                            return
                    elif kind == 12:  # PINGREQ
                        conn.sendall(bytes([0xD0, 0]))
                    elif kind == 14:  # DISCONNECT
                        return
        except OSError:
            return

    def _disconnect(self, conn, n, reason):
        """DISCONNECT with `reason` (no properties), then the connection is closed, as a broker does."""
        try:
            conn.sendall(bytes([0xE0, 2, reason, 0]))
            self.disconnected_at[n] = time.monotonic()
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(5)


def plain_config(workdir, school, port):
    """agent.toml for the real daemon over plain MQTT to a SmallBroker (TLS is not what is
    tested here)."""
    conf = agent_config(workdir, school, port, "/nonexistent", audits=("t",))
    with open(conf) as f:
        text = f.read()
    text = re.sub(r'(?m)^(ca_file|cert_file|key_file) = .*\n', "", text)
    text = text.replace("[mqtt]\n", "[mqtt]\ninsecure = true\n", 1)
    with open(conf, "w") as f:
        f.write(text)
    return conf


class ShortSessions(IntegrationTest):
    def test_a_session_closed_at_once_three_times_is_given_up_for_a_clean_one(self):
        # Resumed sessions (clean start 0) are closed right after their CONNACK.
        broker = SmallBroker(on_connect=lambda n, clean: (not clean, clean))
        self.addCleanup(broker.stop)
        conf = plain_config(self.dir, "school-a", broker.port)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: True in broker.clean_starts or not agent.alive(), 60,
                   what="a clean-start CONNECT")
        self.assertTrue(agent.alive(), agent.output()[-3000:])
        first_clean = broker.clean_starts.index(True)
        self.assertEqual(broker.clean_starts[:first_clean], [False] * 3,
                         "resumed sessions closed at once before the clean start")
        self.assertIn("the last 3 connections were closed by the broker within 2 s of connecting", agent.output())
        # It backed off meanwhile: no storm of reconnects (200 ms, 400 ms, 800 ms ... plus jitter).
        self.assertLessEqual(len(broker.clean_starts), 5, broker.clean_starts)
        # And then it delivers: every stored row acknowledged on the clean session.
        db = os.path.join(self.dir, "data", "agent.db")
        wait_until(lambda: os.path.exists(db) and sqlite_scalar(db, "SELECT count(*) FROM outbox") != "0"
                   and sqlite_scalar(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == "0", 30,
                   what="the outbox delivered on the clean session")
        self.assertTrue(any(p["topic"].endswith("/school-a/state") for p in broker.published),
                        [p["topic"] for p in broker.published])
        agent.stop(10)


def outbox_seq(pub):
    """The seq of a report or event envelope, None for anything else (state, health)."""
    try:
        env = json.loads(pub["payload"])
    except ValueError:
        return None
    return env.get("seq") if isinstance(env, dict) and env.get("kind") in ("report", "event") else None


class ResumedSession(IntegrationTest):
    def test_a_resumed_session_gets_the_stores_copies_in_order_and_no_paho_resend(self):
        unacked = 3  # outbox rows the first connection leaves unacknowledged before it drops
        first_conn = lambda n, p: n == 0 and outbox_seq(p) is not None  # noqa: E731
        broker = SmallBroker(on_connect=lambda n, clean: (n > 0 and not clean, True),
                             on_publish=lambda n, p: n > 0,  # nothing acknowledged on connection 0
                             close_after_publish=lambda n, p: first_conn(n, p) and
                             sum(1 for q in broker.published if first_conn(q["conn"], q)) >= unacked)
        self.addCleanup(broker.stop)
        conf = plain_config(self.dir, "school-a", broker.port)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        db = os.path.join(self.dir, "data", "agent.db")
        wait_until(lambda: len(broker.clean_starts) >= 2 or not agent.alive(), 60, what="a second connection")
        self.assertTrue(agent.alive(), agent.output()[-3000:])
        self.assertEqual(broker.clean_starts[:2], [False, False], "the agent resumes its session")
        wait_until(lambda: sqlite_scalar(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == "0", 30,
                   what="the outbox delivered on the resumed session")
        agent.stop(10)
        lost = [outbox_seq(p) for p in broker.published if first_conn(p["conn"], p)]
        self.assertEqual(len(lost), unacked, "rows left unacknowledged on connection 0")
        resumed = [p for p in broker.published if p["conn"] == 1]
        seqs = [s for s in map(outbox_seq, resumed) if s is not None]
        # Paho's resend of the first connection's in-flight publishes carries DUP; the store's
        # copies are new publishes.
        self.assertEqual([(p["topic"], p["payload"][:60]) for p in resumed if p["dup"]], [],
                         "publishes resent by Paho from the last connection")
        self.assertLessEqual(set(lost), set(seqs), "rows left unacknowledged are sent again")
        self.assertEqual(seqs, sorted(seqs), "the resumed session sends the outbox in seq order")
        self.assertEqual(len(seqs), len(set(seqs)), "each row once on the resumed session")
        print(f"\nresumed session: seqs {lost} unacknowledged on connection 0; connection 1 got {len(resumed)} "
              f"publishes, none with DUP, outbox seqs {seqs[:8]}...")


class LostAfterAFailedConnect(IntegrationTest):
    def test_a_client_used_again_after_a_failed_connect_still_hears_its_connection_lost(self):
        # The first CONNECT gets no CONNACK (a failed connect: the client is used again), the
        # second is served and closed after the first outbox row. The agent must learn of that
        # from Paho's connection-lost callback, not only later from a publish that fails.
        broker = SmallBroker(on_connect=lambda n, clean: None if n == 0 else (n > 1 and not clean, True),
                             close_after_publish=lambda n, p: n == 1 and outbox_seq(p) is not None)
        self.addCleanup(broker.stop)
        conf = plain_config(self.dir, "school-a", broker.port)
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: len(broker.clean_starts) >= 3 or not agent.alive(), 30, what="a third connection")
        self.assertTrue(agent.alive(), agent.output()[-3000:])
        out = agent.output()
        self.assertIn(f"mqtt: connection to 127.0.0.1:{broker.port} lost", out, out[-3000:])
        self.assertNotIn("Paho reports the connection closed without telling us", out, out[-3000:])
        agent.stop(10)


class TakenOver(IntegrationTest):
    def test_a_session_taken_over_is_logged_counted_in_health_and_backed_off(self):
        # Each connection is served 2.5 s (longer than a session the broker fails at once, so only
        # the reason can explain a long wait), then ended by DISCONNECT: first "server shutting
        # down" (0x8B), then twice "session taken over" (0x8E); the fourth connection stays.
        reasons = {0: 0x8B, 1: 0x8E, 2: 0x8E}
        broker = SmallBroker(on_connect=lambda n, clean: (n > 0 and not clean, True),
                             disconnect_after=lambda n: (2.5, reasons[n]) if n in reasons else None)
        self.addCleanup(broker.stop)
        conf = plain_config(self.dir, "school-a", broker.port)  # reconnect_min 200 ms, reconnect_max 2 s
        agent = self.track(Proc("agent", [agent_bin(), "--config", conf], self.dir))
        wait_until(lambda: len(broker.connected_at) >= 4 or not agent.alive(), 60, what="a fourth connection")
        self.assertTrue(agent.alive(), agent.output()[-3000:])
        health = f"campus/v1/zhenkang/school-a/health"
        wait_until(lambda: any(p["conn"] == 3 and p["topic"] == health for p in broker.published), 15,
                   what="health on the fourth connection")
        out = agent.output()
        waits = [broker.connected_at[n + 1] - broker.disconnected_at[n] for n in range(3)]
        print(f"\n  next CONNECT after 0x8B: {waits[0]:.2f} s, after each 0x8E: {waits[1]:.2f} s, {waits[2]:.2f} s")
        # Learnt from the DISCONNECT itself, not later from a publish that failed.
        self.assertNotIn("Paho reports the connection closed without telling us", out, out[-3000:])
        self.assertIn("mqtt: the broker closed the connection: server shutting down (0x8B)", out)
        # The wait the agent chose after each DISCONNECT (the broker also sees Paho's connect time).
        chosen = [int(m) for m in re.findall(r"the broker closed the connection: .*\n(?:.*\n)*?.*next connect attempt in (\d+) ms",
                                              out)]
        self.assertEqual(len(chosen), 3, out[-3000:])
        self.assertLess(chosen[0], 1000, "an ordinary close gets the ordinary backoff (reconnect_min 200 ms, doubling)")
        takeovers = [l for l in out.splitlines() if "session taken over (0x8E)" in l]
        self.assertEqual(len(takeovers), 2, out[-3000:])
        self.assertIn(" error [campus] mqtt:", takeovers[0])
        self.assertIn("another client connected with this agent's client id 'campus-zhenkang-school-a'", takeovers[0])
        self.assertIn("Takeover 2 since start", takeovers[1])
        print(f"  {takeovers[0].strip()}")
        for c, w in zip(chosen[1:], waits[1:]):  # reconnect_max 2 s, jittered into [1 s, 2 s]
            self.assertGreaterEqual(c, 1000, "the agent was to take its session back at once")
            self.assertLessEqual(c, 2000)
            self.assertGreaterEqual(w, 1.0, "the agent took its session back at once")
        body = json.loads([p for p in broker.published if p["conn"] == 3 and p["topic"] == health][-1]["payload"])
        self.assertEqual(schema_errors(body), [])
        self.assertEqual(body["body"]["mqtt"]["takeovers"], 2, body["body"]["mqtt"])
        self.assertIsNotNone(body["body"]["mqtt"]["last_takeover"])
        agent.stop(10)
