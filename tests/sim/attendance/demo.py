#!/usr/bin/env python3
"""Demo launcher for the attendance audit: a term of attendance for ~600 students with a
handful of real cases, a spool directory holding the term's export (GBK, as Chinese
spreadsheets save it, with a national ID column the agent must drop), and the simulated
attendance HTTP service serving the last two weeks.

As a module: start(workdir) -> TOML table (tests/sim/school.py, scripts/demo).
As a command:
  demo.py start --workdir DIR [--port N] [--students 600] [--today YYYY-MM-DD]
      prints {"toml": ".../attendance.toml", "port": N, "pid": PID}; the TOML file holds the
      [audits.attendance] block to paste into (or include in) the demo's agent.toml.
  demo.py stop --workdir DIR
      stops the HTTP service started by `start` (by its recorded pid only).

Cases planted (see attendance_data.demo_plan): one overdue (absent 8 days, never contacted),
one closed by return, two new ones within their deadline, one 2-day absence covered by
approved leave (no case), one student at risk (2 days)."""
import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import attendance_data as data  # noqa: E402

LOOPBACK = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def school_today():
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=8)).date()


def prepare(workdir, students=600, today=None):
    """Writes calendar.csv, spool/term-export.csv (GBK, with an id_card column), records.jsonl
    (the last two weeks, for the HTTP service) and a 0600 token into workdir. Returns today."""
    spool = os.path.join(workdir, "spool")
    os.makedirs(spool, exist_ok=True)
    today = today or school_today()
    days = data.school_days(data.CALENDAR_ROWS, until=today - dt.timedelta(days=1))
    school = data.School(students=students)
    records = list(data.term_records(school, days, scripted=data.demo_plan(days, today)))
    cutoff = (today - dt.timedelta(days=10)).isoformat()
    recent = (today - dt.timedelta(days=14)).isoformat()
    with open(os.path.join(workdir, "calendar.csv"), "w", encoding="utf-8") as f:
        f.write(data.calendar_csv())
    data.write_csv(os.path.join(spool, "term-export.csv"), [r for r in records if r["date"] < cutoff], encoding="gbk")
    with open(os.path.join(workdir, "records.jsonl"), "w", encoding="utf-8") as f:
        for r in records:
            if r["date"] >= recent:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    token = os.path.join(workdir, "token")
    with open(token, "w") as f:
        f.write("demo-attendance-token\n")
    os.chmod(token, 0o600)
    return today


def server_argv(workdir, port):
    return [sys.executable, os.path.join(HERE, "server.py"), "--port", str(port),
            "--data", os.path.join(workdir, "records.jsonl"), "--token-file", os.path.join(workdir, "token"),
            "--page-size", "200"]


def wait_listening(port, proc_alive, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return True
        except OSError:
            if not proc_alive():
                return False
            time.sleep(0.05)
    return False


def toml_table(workdir, port, schedule=True):
    sched = 'interval = "5m"\njitter = "0s"\nfirst_delay = "1s"\ntimeout = "2m"\n' if schedule else ""
    return f"""[audits.attendance]
{sched}calendar = "{workdir}/calendar.csv"
spool_dir = "{workdir}/spool"
threshold_days = 3
leave_breaks_run = false
contact_within = 1
publish_names = false

[audits.attendance.http]
url = "http://{LOOPBACK}:{port}/api/attendance?from={{from}}&to={{to}}&page={{page}}"
token_file = "{workdir}/token"
timeout = "5s"
lookback_days = 14
"""


def start(workdir):
    """tests/sim/school.py's entry point: prepares the data, starts the HTTP service (a
    harness.Proc, stopped at exit) and returns the [audits.attendance] TOML table."""
    sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
    import harness  # noqa: E402
    workdir = os.path.abspath(workdir)
    prepare(workdir)
    port = free_port()
    proc = harness.Proc("attendance-sim", server_argv(workdir, port), workdir)
    if not wait_listening(port, proc.alive):
        raise RuntimeError("attendance sim did not start:\n" + proc.output())
    return toml_table(workdir, port)


def cli_start(args):
    root = os.path.join(os.path.abspath(args.workdir), "attendance")
    os.makedirs(root, exist_ok=True)
    today = prepare(root, args.students, dt.date.fromisoformat(args.today) if args.today else None)
    port = args.port or free_port()
    log = open(os.path.join(root, "attendance-sim.log"), "ab")
    proc = subprocess.Popen(server_argv(root, port), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    if not wait_listening(port, lambda: proc.poll() is None):
        sys.exit("attendance sim did not start: see " + log.name)
    with open(os.path.join(root, "attendance-sim.pid"), "w") as f:
        f.write(str(proc.pid))
    toml = os.path.join(root, "attendance.toml")
    with open(toml, "w", encoding="utf-8") as f:
        f.write(toml_table(root, port))
    print(json.dumps({"toml": toml, "port": port, "pid": proc.pid, "today": today.isoformat(),
                      "students": args.students}))


def stop(args):
    pid_file = os.path.join(os.path.abspath(args.workdir), "attendance", "attendance-sim.pid")
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    os.remove(pid_file)


def main():
    ap = argparse.ArgumentParser(description="attendance demo launcher")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--workdir", required=True)
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--students", type=int, default=600)
    s.add_argument("--today", help="the school's date (default: today at +08:00)")
    t = sub.add_parser("stop")
    t.add_argument("--workdir", required=True)
    args = ap.parse_args()
    cli_start(args) if args.cmd == "start" else stop(args)


if __name__ == "__main__":
    main()
