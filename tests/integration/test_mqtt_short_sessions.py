"""A broker that accepts the agent's resumed session and closes it at once, again and again (the
loop CI saw in test_faults_broker: connected, closed within 2 ms, for minutes, with the broker
up). The agent gives the session up for a clean one after 3 such connections, backs off
instead of hammering, and then delivers. The broker here is a small MQTT 5 server on 127.0.0.1
that speaks the real protocol (CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH/PUBACK, PINGREQ)
and closes every connection whose CONNECT asks to resume a session (clean start 0)."""
import os
import re
import socket
import threading
import time

from harness import LOOPBACK, IntegrationTest, Proc, agent_bin, free_port, wait_until
from county import agent_config, sqlite_scalar


def read_packet(conn):
    """(first byte, body) of one MQTT control packet, or None when the peer closed."""
    head = conn.recv(1)
    if not head:
        return None
    length, shift = 0, 0
    while True:
        b = conn.recv(1)
        if not b:
            return None
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return head[0], body


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


class ResumeRefusingBroker:
    """Accepts every CONNECT with a CONNACK; closes the connection right after it when the
    client asked to resume its session. Records each CONNECT's clean-start flag."""

    def __init__(self):
        self.port = free_port()
        self.clean_starts = []  # one bool per CONNECT, in order
        self.published = []     # topics of PUBLISH packets on kept connections
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
                self.clean_starts.append(clean)
                # CONNACK: session present when resuming, reason 0, no properties.
                conn.sendall(bytes([0x20, 3, 0 if clean else 1, 0, 0]))
                if not clean:
                    return  # closed at once, as in CI's loop
                while not self.stopping:
                    p = read_packet(conn)
                    if p is None:
                        return
                    kind, body = p[0] >> 4, p[1]
                    if kind == 8:  # SUBSCRIBE: packet id, properties, then filters
                        at = 2
                        props, at = varint(body, at)
                        at += props
                        n = 0
                        while at < len(body):
                            at += 2 + int.from_bytes(body[at:at + 2], "big") + 1
                            n += 1
                        conn.sendall(bytes([0x90, 3 + n]) + body[0:2] + b"\x00" + b"\x01" * n)
                    elif kind == 3:  # PUBLISH: topic, packet id when QoS > 0
                        qos = (p[0] >> 1) & 3
                        tlen = int.from_bytes(body[0:2], "big")
                        self.published.append(body[2:2 + tlen].decode("utf-8", "replace"))
                        if qos:
                            conn.sendall(bytes([0x40, 2]) + body[2 + tlen:4 + tlen])
                    elif kind == 12:  # PINGREQ
                        conn.sendall(bytes([0xD0, 0]))
                    elif kind == 14:  # DISCONNECT
                        return
        except OSError:
            return

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(5)


class ShortSessions(IntegrationTest):
    def test_a_session_closed_at_once_three_times_is_given_up_for_a_clean_one(self):
        broker = ResumeRefusingBroker()
        self.addCleanup(broker.stop)
        conf = agent_config(self.dir, "school-a", broker.port, "/nonexistent", audits=("t",))
        with open(conf) as f:
            text = f.read()
        # Plain MQTT to this test broker (TLS is not what is tested here).
        text = re.sub(r'(?m)^(ca_file|cert_file|key_file) = .*\n', "", text)
        text = text.replace("[mqtt]\n", "[mqtt]\ninsecure = true\n", 1)
        with open(conf, "w") as f:
            f.write(text)
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
        self.assertTrue(any(t.endswith("/school-a/state") for t in broker.published), broker.published)
        agent.stop(10)
