"""The MQTT 3.1.1 fallback (docs/protocol.md "MQTT 3.1.1"): a broker that refuses MQTT 5, in
front of a real Mosquitto 2.0 on 127.0.0.1, and the real agent, campusctl and campus-county.

V5RefusingBroker is a TCP proxy that reads each client's CONNECT: an MQTT 5 one gets the refusal
a broker sends (CONNACK reason 0x84 "Unsupported Protocol Version" in the MQTT 5 form, or return
code 1 "unacceptable protocol version" in the 3.1.1 form, which a 3.1.1-only broker sends to a
CONNECT it cannot read) and the connection is closed; a 3.1.1 one is passed to Mosquitto byte for
byte. Mosquitto forwards a 3.1.1 client nothing of MQTT 5's properties, so the agent's requests
and replies must carry their reply topic and correlation in the payload, which campusctl and the
collector put there next to the properties."""
import json
import os
import socket
import subprocess
import threading
import time

from collector import Collector, agent_store, collector_config, start_broker, start_insecure_agent
from county import COUNTY
from harness import BIN, LOOPBACK, CountySubscriber, IntegrationTest, free_port, read_packet, wait_until, write_file

CONNACK_0X84 = bytes([0x20, 0x03, 0x00, 0x84, 0x00])  # MQTT 5: flags, reason 0x84, no properties
CONNACK_RC1 = bytes([0x20, 0x02, 0x00, 0x01])  # MQTT 3.1.1: return code 1


def read_raw_packet(conn):
    """The bytes of one whole MQTT control packet, or None when the peer closed first."""
    p = read_packet(conn)
    if p is None:
        return None
    first, body = p
    length, n = b"", len(body)
    while True:  # the remaining length again, as a variable byte integer
        b, n = n & 0x7F, n >> 7
        length += bytes([b | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


class V5RefusingBroker:
    """127.0.0.1:port in front of Mosquitto on upstream_port: refuses MQTT 5 CONNECTs with
    `refusal`, relays everything else. Counts what it saw by protocol level."""

    def __init__(self, upstream_port, refusal=CONNACK_0X84):
        self.upstream_port, self.refusal = upstream_port, refusal
        self.port = free_port()
        self.levels = []  # the protocol level of every CONNECT, in order
        self.lock = threading.Lock()
        self.conns = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, self.port))
        self.sock.listen(64)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def refused(self):
        with self.lock:
            return self.levels.count(5)

    def passed(self):
        with self.lock:
            return self.levels.count(4)

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with self.lock:
            self.conns.append(conn)
        try:
            conn.settimeout(10)
            first = read_raw_packet(conn)
            # CONNECT: fixed header, then protocol name "\0\4MQTT" and the level byte.
            start = 1
            while first and first[start] & 0x80:
                start += 1
            start += 1
            if not first or first[0] >> 4 != 1 or first[start:start + 6] != b"\x00\x04MQTT":
                return conn.close()
            level = first[start + 6]
            with self.lock:
                self.levels.append(level)
            if level == 5:
                conn.sendall(self.refusal)
                return conn.close()
            up = socket.create_connection((LOOPBACK, self.upstream_port), timeout=10)
            with self.lock:
                self.conns.append(up)
            conn.settimeout(None)
            up.settimeout(None)
            up.sendall(first)
            threading.Thread(target=self._pipe, args=(up, conn), daemon=True).start()
            self._pipe(conn, up)
        except OSError:
            conn.close()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            V5RefusingBroker._close(s)

    @staticmethod
    def _close(s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def stop(self):
        self.stopped = True
        self.sock.close()
        with self.lock:
            for c in self.conns:
                self._close(c)


class AgentOnABrokerThatRefusesMqtt5(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.broker = start_broker(self, persistent=False)
        self.port = self.broker.port

    def proxy(self, refusal):
        p = V5RefusingBroker(self.port, refusal)
        self.addCleanup(p.stop)
        return p

    def ctl_config(self):
        return write_file(os.path.join(self.dir, "campusctl.toml"),
                          f'[county]\ncode = "{COUNTY}"\n\n[mqtt]\nhost = "{LOOPBACK}"\nport = {self.port}\n'
                          f'insecure = true\n')

    def test_the_agent_falls_back_to_3_1_1_and_answers_requests_through_the_payload(self):
        for name, refusal in (("0x84", CONNACK_0X84), ("return code 1", CONNACK_RC1)):
            with self.subTest(refusal=name):
                proxy = self.proxy(refusal)
                county = CountySubscriber(self.dir, self.port, name=f"county-{proxy.port}")
                self.addCleanup(county.stop)
                wd, agent, _ = start_insecure_agent(self, proxy.port, school=f"school-{proxy.port}")
                school = f"school-{proxy.port}"
                agent.wait_for_output("MQTT 3.1.1", 20)
                wait_until(lambda: any(m["topic"].endswith(f"/{school}/state") and m["payload"]["body"]["online"]
                                       for m in county.messages()), 20, what="the birth through the 3.1.1 connection")
                self.assertEqual(proxy.refused(), 1, "one MQTT 5 attempt, then 3.1.1 for the life of the process")
                self.assertGreaterEqual(proxy.passed(), 1)
                self.assertIn("refused MQTT 5", agent.output())
                # health says which protocol the connection speaks
                wait_until(lambda: any(m["topic"].endswith(f"/{school}/health") and
                                       m["payload"]["body"]["mqtt"].get("protocol") == "3.1.1"
                                       for m in county.messages()), 20, what="health with mqtt.protocol 3.1.1")
                wait_until(lambda: any("/report/" in m["topic"] and f"/{school}/" in m["topic"]
                                       for m in county.messages()), 20, what="a report")

                # campusctl (MQTT 5 to Mosquitto) asks; the reply comes back without Correlation
                # Data (the agent is on 3.1.1) and campusctl matches it by the body's correlation.
                r = subprocess.run([os.path.join(BIN, "campusctl"), "--config", self.ctl_config(), "--timeout", "30s",
                                    "ping", school], capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn(school, r.stdout)

                # A 3.1.1 requester: only the payload says where to answer.
                reply_topic = f"campus/v1/{COUNTY}/{school}/reply/old-tool"
                subprocess.run(["mosquitto_pub", "-V", "mqttv311", "-h", LOOPBACK, "-p", str(self.port), "-q", "1",
                                "-t", f"campus/v1/{COUNTY}/{school}/cmd",
                                "-m", json.dumps({"cmd": "ping", "reply_to": reply_topic, "correlation": "c-311"})],
                               check=True, timeout=30)
                wait_until(lambda: [m for m in county.messages() if m["topic"] == reply_topic], 20, what="the reply")
                reply = [m for m in county.messages() if m["topic"] == reply_topic][0]["payload"]
                self.assertEqual(reply["kind"], "reply")
                self.assertTrue(reply["body"]["ok"], reply)
                self.assertEqual(reply["body"]["correlation"], "c-311")

                # A reply topic outside the school's subtree is refused as with MQTT 5.
                subprocess.run(["mosquitto_pub", "-V", "mqttv311", "-h", LOOPBACK, "-p", str(self.port), "-q", "1",
                                "-t", f"campus/v1/{COUNTY}/{school}/cmd",
                                "-m", json.dumps({"cmd": "ping", "reply_to": f"campus/v1/{COUNTY}/other/reply/x"})],
                               check=True, timeout=30)
                agent.wait_for_output("is not campus/v1/", 20)
                self.assertEqual(agent.stop(20), 0, agent.output()[-3000:])

    def test_the_collector_repairs_a_3_1_1_school_through_the_payload(self):
        proxy = self.proxy(CONNACK_0X84)
        conf = collector_config(self.dir, self.port, repair={"enabled": True, "reorder_grace": "1s"})
        coll = Collector(self.dir, conf).start()
        wd, agent, _ = start_insecure_agent(self, proxy.port)
        agent.wait_for_output("MQTT 3.1.1", 20)
        wait_until(lambda: len(coll.seqs("school-a")) >= 5, 30, what="the first seqs")
        coll.stop()  # its durable session stays on the broker and queues for it
        time.sleep(4)  # the agent publishes meanwhile
        # Mosquitto without persistence forgets what it queued: a hole only a resend fills.
        self.broker.stop()
        self.broker = start_broker(self, port=self.port, persistent=False, name="mosquitto2")
        coll.start()
        wait_until(lambda: coll.requests() and coll.gaps() and all(g["state"] == "filled" for g in coll.gaps()), 90,
                   what="the hole to be filled by the agent's resend")
        # The reply went back without Correlation Data (the agent is on 3.1.1): the collector
        # matched it to its request by the body's correlation, or the request would time out.
        wait_until(lambda: all(r["reply_ms"] is not None for r in coll.requests()), 30, what="the replies matched")
        self.assertFalse([r for r in coll.requests() if r["outcome"] in ("timeout", "not_sent")], coll.requests())
        self.assertIn("repair: asking school-a to resend", coll.output())
        agent.stop(20)
        store, acknowledged, last = agent_store(wd, acknowledged=True)
        wait_until(lambda: len(coll.seqs("school-a", store)) >= acknowledged, 30, what=f"seq 1..{acknowledged}")
        seqs = coll.seqs("school-a", store)
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertLessEqual(len(seqs), last)
        coll.stop()
