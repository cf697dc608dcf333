"""What a county's schools send, shared by scripts/bench-county, bench/loadgen and the province
tests: the demo school's real payloads (bench/county/payloads/) re-keyed for any school and seq,
and a day's mix of reports and events at the shipped audit intervals."""
import json
import os
import random
import re

COUNTY = "zhenkang"
PAYLOADS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "payloads")
# Per school and day at the shipped intervals (config/agent.toml): fiber every 15 min, recording
# every 10 min, attendance every hour; events: a few state changes a day (assumed 10).
PER_DAY = {"fiber": 96, "recording": 144, "attendance": 24}
EVENTS_PER_DAY = 10
MESSAGES_PER_DAY = sum(PER_DAY.values()) + EVENTS_PER_DAY

# Placeholders the fast renderer splits the serialized templates on.
_FIELDS = ("school", "seq", "id", "store_id", "audit", "kind", "ts", "subject")
_MARK = re.compile('"@@(' + "|".join(_FIELDS) + ')@@"')


def fiber_event_body(seq, subject=None):
    return {"subject": subject if subject is not None else f"C{seq % 60:03d}", "from": "covered", "to": "down",
            "reason": "link down: port 5 on switch jxl-a is down"}


class Templates:
    """The demo school's real payloads, re-keyed for any school and seq."""

    def __init__(self):
        self.reports = {}
        for audit in PER_DAY:
            with open(os.path.join(PAYLOADS, f"report-{audit}.json")) as f:
                self.reports[audit] = json.load(f)
        with open(os.path.join(PAYLOADS, "event-attendance.json")) as f:
            self.event = json.load(f)
        self._fast = {}

    def envelope(self, school, store, seq, kind, audit, ts):
        env = dict(self.reports[audit] if kind == "report" else self.event)
        if kind == "event" and audit == "fiber":
            env["body"] = fiber_event_body(seq)
        env.update(school=school, seq=seq, id=f"{school}:{seq}", store_id=store, audit=audit, kind=kind, ts=ts)
        return env

    def message(self, school, store, seq, kind, audit, ts):
        """(topic, payload): the payload serialized as the agent does (compact, sorted keys, UTF-8)."""
        env = self.envelope(school, store, seq, kind, audit, ts)
        topic = f"campus/v1/{COUNTY}/{school}/{kind}/{audit}"
        return topic, json.dumps(env, separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    def render(self, school, store, seq, kind, audit, ts):
        """The same (topic, payload) as message(), byte for byte, without serializing the
        template again: a province's load needs hundreds of thousands of them."""
        key = (kind, audit)
        parts = self._fast.get(key)
        if parts is None:
            env = self.envelope("@@school@@", "@@store_id@@", 0, kind, audit, "@@ts@@")
            env.update(seq="@@seq@@", id="@@id@@", audit="@@audit@@", kind="@@kind@@")
            if kind == "event" and audit == "fiber":
                env["body"] = fiber_event_body(0, "@@subject@@")
            text = json.dumps(env, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
            # Even pieces are literal text, odd ones name a field.
            parts = self._fast[key] = _MARK.split(text)
        values = {"school": f'"{school}"', "seq": str(seq), "id": f'"{school}:{seq}"', "store_id": f'"{store}"',
                  "audit": f'"{audit}"', "kind": f'"{kind}"', "ts": f'"{ts}"', "subject": f'"C{seq % 60:03d}"'}
        out = [p if i % 2 == 0 else values[p] for i, p in enumerate(parts)]
        return f"campus/v1/{COUNTY}/{school}/{kind}/{audit}", "".join(out)


def day_mix(n):
    """The kinds of a day's n messages in the shipped proportions: (kind, audit) for seq 1..n."""
    total = MESSAGES_PER_DAY
    kinds = []
    for audit, k in PER_DAY.items():
        kinds += [("report", audit)] * k
    kinds += [("event", "fiber")] * (EVENTS_PER_DAY // 2) + [("event", "attendance")] * (EVENTS_PER_DAY // 2)
    random.Random(1).shuffle(kinds)
    return [kinds[i % total] for i in range(n)]
