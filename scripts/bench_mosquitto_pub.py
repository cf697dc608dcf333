"""The baseline of scripts/bench-drain: `mosquitto_pub -q 1 -l` sending every line of a file, timed
until the broker has acknowledged the last one.

Why not simply time `mosquitto_pub -l < file`: Mosquitto 2.0.11's client exits at the end of its
input with most of its queue unsent (about 35,000 of 100,000 lines reach the broker), so its
exit time says nothing. Here its standard input stays open until every PUBACK has arrived.
mosquitto_pub does not report PUBACKs (and `-d`, which prints them, slows it 100-fold), so the
script watches the bytes the process has read (/proc/PID/io rchar): its input file, then the
CONNACK and one PUBACK per message. The moment that count stops growing, after all input was
read, is the last PUBACK; the broker's own count ($SYS received) confirms the number delivered.

usage: python3 scripts/bench_mosquitto_pub.py PAYLOADS -- MOSQUITTO_PUB_ARGS...
prints: "mosquitto_pub: N messages acknowledged in S s = R msg/s (PUBACK bytes B)"
"""
import os
import subprocess
import sys
import time


def rchar(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def main():
    sep = sys.argv.index("--")
    path, args = sys.argv[1], sys.argv[sep + 1:]
    with open(path, "rb") as f:
        data = f.read()
    lines = data.count(b"\n")
    t0 = time.monotonic()
    pub = subprocess.Popen(["mosquitto_pub", "-l", *args], stdin=subprocess.PIPE)
    start = rchar(pub.pid)  # what exec and the loader read before main
    pub.stdin.write(data)
    pub.stdin.flush()
    last, last_change = start, time.monotonic()
    while True:
        now = rchar(pub.pid)
        t = time.monotonic()
        if now != last:
            last, last_change = now, t
        elif now - start > len(data) and t - last_change > 1.0:
            break  # input read, then quiet for a second: the last PUBACK is in
        if t - t0 > 600 or pub.poll() is not None:
            print("mosquitto_pub: did not finish (exited or over 600 s)", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.001)
    pub.stdin.close()
    pub.wait(10)
    secs = last_change - t0
    acked_bytes = last - start - len(data)
    print(f"mosquitto_pub: {lines} messages acknowledged in {secs:.3f} s = {lines / secs:.0f} msg/s "
          f"(bytes read after the input: {acked_bytes}, {acked_bytes / lines:.1f} per message)")


if __name__ == "__main__":
    main()
