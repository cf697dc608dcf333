"""Prints what the county received, one line per message: topic, seq, a one-line summary.
Input: lines "topic<TAB>payload" as written by mosquitto_sub -F '%t\t%p'."""
import json
import sys


def summary(kind, body):
    if kind == "state":
        return f"online={body.get('online')} session={body.get('session')} last_seq={body.get('last_seq')}"
    if kind == "health":
        o = body.get("outbox", {})
        return f"outbox depth={o.get('depth')} last_seq={o.get('last_seq')} rss={body.get('rss_bytes', 0) // 1024} KiB"
    if kind == "event":
        return f"{body.get('subject')}: {body.get('from')} -> {body.get('to')} {body.get('reason', '')}".strip()
    if kind == "report":
        s = body.get("summary", {})
        if "overall" in s and "coverage" in s.get("overall", {}):  # fiber
            parts = [f"{t} {s[t].get('covered')}/{s[t].get('rooms')}" for t in ("classroom", "function_room", "office") if t in s]
            return f"fiber coverage {s['overall']['coverage']:.1%} ({', '.join(parts)})"
        if "compliant" in s and "classrooms" in s:  # recording
            return f"recording classrooms compliant {s.get('compliant')}/{s.get('classrooms')}"
        if "open_cases" in s:  # attendance
            oc = s["open_cases"]
            n = len(oc) if isinstance(oc, list) else oc
            return f"attendance: {n} open case(s), {s.get('overdue', s.get('overdue_cases', '?'))} overdue"
        parts = []
        for k, v in s.items():
            if isinstance(v, (int, float, str, bool)) and len(parts) < 8:
                parts.append(f"{k}={round(v, 3) if isinstance(v, float) else v}")
        return " ".join(parts)
    return json.dumps(body)[:100]


def main(path):
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            topic, _, payload = line.rstrip("\n").partition("\t")
            try:
                env = json.loads(payload)
            except ValueError:
                print(f"  {topic}  (not JSON: {payload[:60]})")
                continue
            kind = env.get("kind", "?")
            seq = env.get("seq", "")
            leaf = topic.split("/", 4)[-1] if topic.count("/") >= 4 else topic
            print(f"  {leaf:<24} seq={str(seq):<5} {summary(kind, env.get('body', {}))}")
            n += 1
    print(f"  -- {n} message(s)")


if __name__ == "__main__":
    main(sys.argv[1])
