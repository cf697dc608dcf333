"""A province's schools on the wire: one asyncio process holds N MQTT 5 connections (a minimal
client of its own, a few kB per connection) and plays each as a campus-agent would
(docs/protocol.md): client id campus-{county}-{school}, a Last Will on `state`, a retained birth
with last_seq and the store id, reports (retained) and events with seq, health with the outbox
depth and last seq, QoS 1 with PUBACK tracking in a bounded window per connection, and answers to
`resend` on the school's `cmd` (the copies with "resent": true, then the reply with the
request's Correlation Data on its Response Topic).

What makes it a load: the demo school's real payloads in the shipped mix (bench/county/workload.py),
a ramp-up of the connections, a fraction of schools with an outage (the connection dropped without
DISCONNECT so the broker publishes the will, the messages of the outage produced meanwhile and
published as a backlog after the reconnect), and holes (seqs never published: the broker "lost"
them, only a resend brings them).

Only 127.0.0.1 is ever a target. As a module: Plan, Generator (run(), answer resends until
stop()). As a CLI: bench/loadgen/campus-loadgen --help."""
import asyncio
import datetime
import hashlib
import json
import os
import random
import resource
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "county"))
from workload import COUNTY, Templates, day_mix  # noqa: E402

LOOPBACK = "127.0.0.1"
AGENT = "campus-agent/0.1.0"
TZ = datetime.timezone(datetime.timedelta(hours=8))  # the schools' UTC offset

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


def raise_nofile(wanted):
    """Raises the soft RLIMIT_NOFILE towards `wanted` (at most the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def now_ts(t=None):
    """RFC 3339 with the schools' offset and milliseconds (the collector keeps ts_ms)."""
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, TZ).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- MQTT 5 encoding
def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def props(items):
    """Properties: (id, encoded value) pairs."""
    b = b"".join(bytes([i]) + v for i, v in items)
    return varint(len(b)) + b


def parse_props(data, i):
    """The properties at data[i:]: {id: value} and the offset after them (the ids a broker sends us)."""
    n, i = read_varint(data, i)
    end, out = i + n, {}
    while i < end:
        pid = data[i]
        i += 1
        if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            out[pid] = data[i]
            i += 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            out[pid] = struct.unpack_from("!H", data, i)[0]
            i += 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            out[pid] = struct.unpack_from("!I", data, i)[0]
            i += 4
        elif pid == 0x0B:
            out[pid], i = read_varint(data, i)
        elif pid == 0x26:
            for _ in range(2):
                ln = struct.unpack_from("!H", data, i)[0]
                i += 2 + ln
        else:  # strings and binary data: 0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F
            ln = struct.unpack_from("!H", data, i)[0]
            out[pid] = bytes(data[i + 2:i + 2 + ln])
            i += 2 + ln
    return out, end


def read_varint(data, i):
    n, mul = 0, 1
    while True:
        b = data[i]
        i += 1
        n += (b & 0x7F) * mul
        if not b & 0x80:
            return n, i
        mul *= 128


class Connection(asyncio.Protocol):
    """One MQTT 5 connection: QoS 1 publishes in a window of `window` unacknowledged, PUBACKs
    matched by packet id, incoming QoS 1 publishes acknowledged and handed to on_message."""

    def __init__(self, window, on_message):
        self.window, self.on_message = window, on_message
        self.buf = bytearray()
        self.transport = None
        self.connack = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.free = None  # asyncio.Semaphore of the window, made at CONNACK (the broker's Receive Maximum)
        self.pending = {}  # packet id -> future of the PUBACK reason code
        self.next_id = 0
        self.last_sent = time.monotonic()
        self.refused = 0

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)
        if not self.connack.done():
            self.connack.set_exception(ConnectionError("closed before CONNACK"))
        for f in self.pending.values():
            if not f.done():
                f.set_exception(ConnectionError("connection lost"))
        self.pending.clear()

    def send(self, data):
        self.transport.write(data)
        self.last_sent = time.monotonic()

    def data_received(self, data):
        self.buf += data
        buf = self.buf
        i = 0
        while True:
            if len(buf) - i < 2:
                break
            try:
                n, j = read_varint(buf, i + 1)
            except IndexError:
                break
            if j + n > len(buf):
                break
            self.handle(buf[i] >> 4, buf[i] & 15, memoryview(buf)[j:j + n].tobytes())
            i = j + n
        if i:
            del buf[:i]

    def handle(self, ptype, flags, body):
        if ptype == PUBACK:
            pid = struct.unpack_from("!H", body)[0]
            f = self.pending.pop(pid, None)
            if f is not None and not f.done():
                f.set_result(body[2] if len(body) > 2 else 0)
            if self.free is not None:
                self.free.release()
        elif ptype == PUBLISH:
            ln = struct.unpack_from("!H", body)[0]
            topic = body[2:2 + ln].decode()
            i = 2 + ln
            qos = (flags >> 1) & 3
            pid = None
            if qos:
                pid = struct.unpack_from("!H", body, i)[0]
                i += 2
            pr, i = parse_props(body, i)
            if pid is not None:
                self.send(packet(PUBACK, 0, struct.pack("!H", pid)))
            self.on_message(topic, pr, body[i:])
        elif ptype == CONNACK:
            reason = body[1]
            pr, _ = parse_props(body, 2)
            self.window = min(self.window, pr.get(0x21, 65535))
            self.free = asyncio.Semaphore(self.window)
            if not self.connack.done():
                if reason:
                    self.connack.set_exception(ConnectionError(f"CONNACK reason 0x{reason:02x}"))
                else:
                    self.connack.set_result(pr)
        elif ptype == SUBACK:
            pid = struct.unpack_from("!H", body)[0]
            f = self.pending.pop(pid, None)
            if f is not None and not f.done():
                pr, i = parse_props(body, 2)
                f.set_result(body[i])
        elif ptype == DISCONNECT:
            self.transport.close()

    def _id(self):
        while True:
            self.next_id = self.next_id % 65535 + 1
            if self.next_id not in self.pending:
                return self.next_id

    async def publish(self, topic, payload, retain=False, properties=b"\x00"):
        """Sends a QoS 1 publish once the window has room; returns the PUBACK's future."""
        await self.free.acquire()
        if self.transport.is_closing():
            self.free.release()
            raise ConnectionError("connection lost")
        pid = self._id()
        f = asyncio.get_running_loop().create_future()
        self.pending[pid] = f
        data = payload.encode() if isinstance(payload, str) else payload
        self.send(packet(PUBLISH, 0x02 | (1 if retain else 0), utf8(topic) + struct.pack("!H", pid) + properties + data))
        return f

    async def subscribe(self, topic):
        pid = self._id()
        f = asyncio.get_running_loop().create_future()
        self.pending[pid] = f
        self.send(packet(SUBSCRIBE, 0x02, struct.pack("!H", pid) + b"\x00" + utf8(topic) + b"\x01"))
        return await f

    def ping(self):
        self.send(packet(PINGREQ, 0, b""))

    def disconnect(self):
        """A normal DISCONNECT (reason 0: the broker discards the will), then close."""
        if not self.transport.is_closing():
            self.transport.write(packet(DISCONNECT, 0, b"\x00\x00"))
            self.transport.close()

    def drop(self):
        """Gone without DISCONNECT: the broker publishes the will."""
        self.transport.abort()


def connect_packet(client_id, keepalive, will_topic, will_payload, login=None):
    """login: (user name, password), or None for none."""
    flags = 0x02 | 0x04 | 0x08 | 0x20  # Clean Start, Will, Will QoS 1, Will Retain
    if login:
        flags |= 0x80 | 0x40  # User Name, Password
    head = utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive)
    body = head + props([]) + utf8(client_id) + props([]) + utf8(will_topic) + utf8(will_payload)
    if login:
        body += utf8(login[0]) + utf8(login[1])
    return packet(CONNECT, 0, body)


# ---------------------------------------------------------------- the schools
class Plan:
    """What the generator plays. Defaults: a small county's minute."""

    def __init__(self, schools=100, messages=30, prefix="school", outage_fraction=0.0, outage_after=0.5,
                 outage_s=2.0, hole_fraction=0.0, hole_len=3, interval=0.0, window=20, connect_rate=500.0,
                 keepalive=60, health_every=10, seed=16, first_index=0, first_seq=1, backlog=False, login=False):
        self.schools, self.messages, self.prefix = schools, messages, prefix
        self.outage_fraction, self.outage_after, self.outage_s = outage_fraction, outage_after, outage_s
        self.hole_fraction, self.hole_len = hole_fraction, hole_len
        self.interval, self.window, self.connect_rate = interval, window, connect_rate
        self.keepalive, self.health_every, self.seed, self.first_index = keepalive, health_every, seed, first_index
        # first_seq: a later run of the same schools goes on where the earlier one ended.
        # backlog: every seq is produced before the first connection (a school back after an outage
        # of outage_s: the birth's last_seq says how far it got, then it publishes its outbox).
        self.first_seq, self.backlog = first_seq, backlog
        # login: each school sends its code as user name (password "loadgen"), for a broker that
        # wants one and takes any (ejabberd's anonymous login_anon).
        self.login = login

    def describe(self):
        return (f"{self.schools} schools x {self.messages} messages, window {self.window}, ramp {self.connect_rate:g}/s,"
                f" interval {self.interval:g}s, outages {self.outage_fraction:.0%} ({self.outage_s:g}s after "
                f"{self.outage_after:.0%}), holes {self.hole_fraction:.0%} of {self.hole_len} seq(s)")


class Stats:
    def __init__(self):
        self.connects = self.connect_failures = self.outages = self.published = self.bytes = 0
        self.resent = self.requests = self.refused = self.births = self.healths = 0
        self.held_back = 0
        self.done_schools = 0

    def line(self):
        return (f"{self.connects} connections ({self.connect_failures} failed attempts), {self.births} births, "
                f"{self.published} messages first published ({self.bytes / 1e6:.1f} MB), {self.held_back} held back as"
                f" holes, {self.outages} outages, {self.healths} health, {self.requests} resend requests answered "
                f"with {self.resent} copies, {self.refused} refused by the broker")


class School:
    def __init__(self, gen, index, rng):
        p = gen.plan
        self.gen, self.index = gen, index
        self.code = f"{p.prefix}-{index:05d}"
        self.store = hashlib.md5(f"{p.seed}:{self.code}".encode()).hexdigest()
        self.first = p.first_seq
        self.n = p.first_seq + p.messages - 1  # the last seq
        self.mix = gen.mix
        self.ts = [None] * (self.n + 1)  # the ts of each seq produced: a resent copy is the same bytes
        # Seqs before first_seq came from an earlier run of this school, whose ts this run does not
        # know: a copy asked for now carries the time this run began.
        self.ts[1:self.first] = [gen.started_ts] * (self.first - 1)
        self.produced = self.first - 1
        self.acked = self.produced
        self.session = 0
        self.conn = None
        self.holes = set()
        if rng.random() < p.hole_fraction and p.messages >= 2:
            start = rng.randint(self.first, max(self.first, self.n - p.hole_len + 1))
            self.holes = set(range(start, min(self.n, start + p.hole_len - 1) + 1))
        self.outage_at = None
        if rng.random() < p.outage_fraction and p.messages >= 2 and not p.backlog:
            self.outage_at = max(self.first, min(self.n - 1, self.first - 1 + int(p.messages * p.outage_after)))
        self.start_delay = index / p.connect_rate if p.connect_rate > 0 else 0.0

    def topic(self, leaf):
        return f"campus/v1/{COUNTY}/{self.code}/{leaf}"

    def envelope(self, kind, body):
        return json.dumps({"v": 1, "kind": kind, "county": COUNTY, "school": self.code, "ts": now_ts(), "agent": AGENT,
                           "body": body}, separators=(",", ":"), sort_keys=True)

    def store_obj(self):
        return {"id": self.store, "created": "2026-09-01T00:00:00+00:00", "recovered": None}

    def message(self, seq):
        kind, audit = self.mix[seq - 1]
        return self.gen.templates.render(self.code, self.store, seq, kind, audit, self.ts[seq])

    async def connect(self):
        gen = self.gen
        self.session += 1
        will = self.envelope("state", {"online": False, "session": self.session, "last_seq": self.produced,
                                       "reason": "will"})
        delay = 0.2
        for attempt in range(30):
            loop = asyncio.get_running_loop()
            try:
                _, conn = await loop.create_connection(lambda: Connection(gen.plan.window, self.on_message),
                                                       LOOPBACK, gen.ports[self.index % len(gen.ports)])
                login = (self.code, "loadgen") if gen.plan.login else None
                conn.send(connect_packet(f"campus-{COUNTY}-{self.code}", gen.plan.keepalive, self.topic("state"), will,
                                         login))
                await asyncio.wait_for(conn.connack, 30)
                self.conn = conn
                gen.conns.add(conn)
                gen.stats.connects += 1
                break
            except (OSError, ConnectionError, asyncio.TimeoutError):
                gen.stats.connect_failures += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)
        else:
            raise ConnectionError(f"{self.code}: no connection after 30 attempts")
        await asyncio.wait_for(self.conn.subscribe(self.topic("cmd")), 30)
        # The birth: how far the school has got, and its store.
        await self.publish(self.topic("state"), self.envelope("state", {
            "online": True, "session": self.session, "last_seq": self.produced, "version": "0.1.0",
            "audits": ["fiber", "recording", "attendance"], "store": self.store_obj()}), retain=True, count=False)
        gen.stats.births += 1

    async def publish(self, topic, payload, retain=False, properties=b"\x00", count=True):
        f = await self.conn.publish(topic, payload, retain, properties)
        f.add_done_callback(self._acked)
        if count:
            self.gen.stats.bytes += len(payload)
        return f

    def _acked(self, f):
        if not f.cancelled() and f.exception() is None and f.result() >= 0x80:
            self.gen.stats.refused += 1

    async def drain(self):
        """Waits until every publish of the connection is acknowledged."""
        futs = [f for f in self.conn.pending.values()]
        if futs:
            await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 120)

    async def health(self):
        depth = self.produced - self.acked
        await self.publish(self.topic("health"), self.envelope("health", {
            "version": "0.1.0", "outbox": {"depth": depth, "last_seq": self.produced,
                                           "oldest_unsent_age_s": None if depth == 0 else 1},
            "mqtt": {"session": self.session, "reconnects": self.session - 1}, "store": self.store_obj()}),
            retain=True, count=False)
        self.gen.stats.healths += 1

    def produce(self, seq, t=None):
        self.ts[seq] = now_ts(t)
        self.produced = seq

    async def send_seq(self, seq):
        if seq in self.holes:
            self.gen.stats.held_back += 1
            return
        topic, payload = self.message(seq)
        f = await self.publish(topic, payload, retain=self.mix[seq - 1][0] == "report")
        self.gen.stats.published += 1
        f.add_done_callback(lambda _f, s=seq: self._mark(s))

    def _mark(self, seq):
        self.acked = max(self.acked, seq)

    async def play(self):
        p, gen = self.gen.plan, self.gen
        await asyncio.sleep(self.start_delay)
        seq = self.first
        if p.backlog:
            t0 = time.time() - p.outage_s
            for s in range(seq, self.n + 1):
                self.produce(s, t0 + (s - seq) * p.outage_s / max(1, self.n - seq + 1))
        await self.connect()
        if p.backlog:
            for s in range(seq, self.n + 1):
                await self.send_seq(s)
            seq = self.n + 1
        jitter = random.Random(self.index).uniform(0, p.interval) if p.interval else 0
        await asyncio.sleep(jitter)
        while seq <= self.n:
            if self.outage_at is not None and seq == self.outage_at + 1:
                await self.drain()
                self.conn.drop()
                gen.conns.discard(self.conn)
                gen.stats.outages += 1
                # The outage: the school goes on producing; what it produces waits in its outbox.
                backlog_end = min(self.n, seq + max(1, int(p.outage_s / p.interval) if p.interval else self.n))
                t0 = time.time()
                for s in range(seq, backlog_end + 1):
                    self.produce(s, t0 + (s - seq) * (p.outage_s / max(1, backlog_end - seq + 1)))
                await asyncio.sleep(p.outage_s)
                await self.connect()
                for s in range(seq, backlog_end + 1):
                    await self.send_seq(s)
                seq = backlog_end + 1
                await self.health()
                continue
            self.produce(seq)
            await self.send_seq(seq)
            if p.health_every and seq % p.health_every == 0:
                await self.health()
            seq += 1
            if p.interval:
                await asyncio.sleep(p.interval)
        await self.drain()
        self.acked = self.produced
        await self.health()
        await self.drain()
        gen.stats.done_schools += 1

    # ---- resend
    def on_message(self, topic, pr, payload):
        try:
            req = json.loads(payload)
        except ValueError:
            return
        if not isinstance(req, dict) or req.get("cmd") != "resend" or 0x08 not in pr:
            return
        asyncio.get_running_loop().create_task(self.answer(req, pr[0x08].decode(), pr.get(0x09)))

    async def answer(self, req, response, corr):
        lo, hi = req.get("from_seq"), req.get("to_seq")
        if not isinstance(lo, int) or not isinstance(hi, int) or lo < 1 or hi < lo:
            return
        last = self.produced
        sent = []
        try:
            for s in range(lo, min(hi, last) + 1):
                kind, audit = self.mix[s - 1]
                topic, payload = self.message(s)
                # The original envelope with "resent": true in its sorted place (after "kind"),
                # as the agent serializes it; the collector stores it as the original.
                mark = f'"kind":"{kind}","school":'
                at = payload.rindex(mark) + len(mark) - len('"school":')
                copy = payload[:at] + '"resent":true,' + payload[at:]
                sent.append(await self.publish(topic, copy, count=False))
            if sent:
                await asyncio.wait_for(asyncio.gather(*sent), 60)
            body = {"ok": True, "cmd": "resend", "result": {
                "from_seq": lo, "to_seq": hi, "last_seq": last, "held": len(sent), "resent": len(sent), "failed": 0,
                "missing": [], "missing_count": 0, "not_yet_produced": [max(lo, last + 1), hi] if hi > last else None}}
            pr = props([(0x09, utf8(corr))]) if corr is not None else b"\x00"
            await self.publish(response, self.envelope("reply", body), properties=pr, count=False)
            self.gen.stats.requests += 1
            self.gen.stats.resent += len(sent)
        except (ConnectionError, asyncio.TimeoutError, AttributeError):
            pass  # offline meanwhile: the collector asks again after its request_timeout

    async def stop(self):
        if self.conn and not self.conn.transport.is_closing():
            try:
                await self.publish(self.topic("state"), self.envelope("state", {
                    "online": False, "session": self.session, "last_seq": self.produced, "reason": "stopped"}),
                    retain=True, count=False)
                await asyncio.wait_for(self.drain(), 10)
            except (ConnectionError, asyncio.TimeoutError):
                pass
            self.conn.disconnect()


class Generator:
    def __init__(self, plan, port):
        """port: the broker's port, or a list of ports (a cluster's nodes): school i connects to
        port i mod len, every time."""
        self.plan = plan
        self.ports = list(port) if isinstance(port, (list, tuple)) else [port]
        self.templates = Templates()
        self.mix = day_mix(plan.first_seq + plan.messages - 1)
        self.stats = Stats()
        self.started_ts = now_ts()
        self.conns = set()
        rng = random.Random(plan.seed)
        self.schools = [School(self, plan.first_index + i, rng) for i in range(plan.schools)]
        self.stopping = None
        raise_nofile(plan.schools + 256)

    def hole_count(self):
        return sum(len(s.holes) for s in self.schools)

    async def _keepalive(self):
        while True:
            await asyncio.sleep(1)
            limit = time.monotonic() - self.plan.keepalive / 2
            for c in list(self.conns):
                if c.transport.is_closing():
                    self.conns.discard(c)
                elif c.last_sent < limit:
                    c.ping()

    async def play(self, progress=None):
        """Every school plays its plan; returns when each has published everything and it is
        acknowledged (the connections stay, answering resend, until stop())."""
        ka = asyncio.get_running_loop().create_task(self._keepalive())
        self._ka = ka
        t0 = time.monotonic()
        tasks = [asyncio.get_running_loop().create_task(s.play()) for s in self.schools]
        if progress:
            rep = asyncio.get_running_loop().create_task(self._progress(progress, t0))
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if progress:
                rep.cancel()
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} school(s) failed, the first: {errors[0]!r}")
        return time.monotonic() - t0

    async def _progress(self, out, t0):
        while True:
            await asyncio.sleep(5)
            print(f"  loadgen {time.monotonic() - t0:.0f}s: {self.stats.line()}; {self.stats.done_schools} schools done",
                  file=out, flush=True)

    async def stop(self):
        await asyncio.gather(*(s.stop() for s in self.schools), return_exceptions=True)
        if getattr(self, "_ka", None):
            self._ka.cancel()


class Background:
    """A Generator's event loop in a thread, for a synchronous caller (a test, a benchmark):
    `published` is set once every school published everything and got it acknowledged (or
    failed: `error`); the schools stay connected, answering resend, until stop()."""

    def __init__(self, plan, port, progress=None):
        import threading
        self.gen = Generator(plan, port)
        self.published = threading.Event()
        self.error = self.took = self.loop = None
        self.progress = progress
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        async def go():
            self.loop = asyncio.get_running_loop()
            self.stopping = asyncio.Event()
            try:
                self.took = await self.gen.play(self.progress)
            except BaseException as e:  # reported by the caller
                self.error = e
            self.published.set()
            await self.stopping.wait()
            try:
                await asyncio.wait_for(self.gen.stop(), 30)
            except asyncio.TimeoutError:
                pass
        asyncio.run(go())

    def stop(self):
        if self.loop and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(40)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="the broker on 127.0.0.1")
    ap.add_argument("--schools", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=30, help="reports and events per school (seq 1..M)")
    ap.add_argument("--prefix", default="school", help="school codes are PREFIX-NNNNN")
    ap.add_argument("--first-index", type=int, default=0)
    ap.add_argument("--outage-fraction", type=float, default=0.1, help="schools that drop their connection once")
    ap.add_argument("--outage-after", type=float, default=0.5, help="the outage comes after this share of messages")
    ap.add_argument("--outage-s", type=float, default=3.0)
    ap.add_argument("--hole-fraction", type=float, default=0.05, help="schools with a hole only resend fills")
    ap.add_argument("--hole-len", type=int, default=3)
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between a school's messages (0: at once)")
    ap.add_argument("--window", type=int, default=20, help="unacknowledged publishes per connection")
    ap.add_argument("--connect-rate", type=float, default=500.0, help="new connections per second")
    ap.add_argument("--keepalive", type=int, default=60)
    ap.add_argument("--linger", type=float, default=30.0, help="seconds to stay connected answering resend")
    ap.add_argument("--seed", type=int, default=16)
    a = ap.parse_args(argv)
    plan = Plan(schools=a.schools, messages=a.messages, prefix=a.prefix, outage_fraction=a.outage_fraction,
                outage_after=a.outage_after, outage_s=a.outage_s, hole_fraction=a.hole_fraction, hole_len=a.hole_len,
                interval=a.interval, window=a.window, connect_rate=a.connect_rate, keepalive=a.keepalive, seed=a.seed,
                first_index=a.first_index)

    async def go():
        gen = Generator(plan, a.port)
        print(f"loadgen: {plan.describe()} to {LOOPBACK}:{a.port}", flush=True)
        took = await gen.play(progress=sys.stdout)
        print(f"loadgen: published in {took:.1f}s: {gen.stats.line()}", flush=True)
        await asyncio.sleep(a.linger)
        await gen.stop()
        print(f"loadgen: done: {gen.stats.line()}", flush=True)
    asyncio.run(go())


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
