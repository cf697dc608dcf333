"""The simulated school for scripts/demo (and the benchmarks): starts every audit's device
simulators on 127.0.0.1 and writes the agent's [audits.*] tables.

Each audit contributes tests/sim/<audit>/demo.py with
    start(workdir) -> str      starts its simulators (harness.Proc, stopped at exit) and
                               returns its [audits.<audit>] TOML table
Usage: school.py --workdir DIR --ready FILE   (FILE is written when everything listens;
runs until SIGTERM/SIGINT, then stops everything it started)."""
import argparse
import importlib.util
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402  (stops every Proc at exit)

AUDITS = ("fiber", "recording", "attendance")


def load(audit):
    path = os.path.join(HERE, audit, "demo.py")
    if not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location(f"demo_{audit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    spec.loader.exec_module(module)
    return module


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    tables, started = [], []
    for audit in AUDITS:
        module = load(audit)
        if module is None:
            continue
        audit_dir = os.path.join(args.workdir, audit)
        os.makedirs(audit_dir, exist_ok=True)
        os.chmod(audit_dir, 0o755)
        tables.append(module.start(audit_dir))
        started.append(audit)
    with open(os.path.join(args.workdir, "audits.toml"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(tables) + "\n")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(args.ready, "w") as f:
        f.write(f"simulated school up: {', '.join(started) or 'no audit simulators found'}\n")
    while not stop:
        time.sleep(0.2)
    harness._stop_all()


if __name__ == "__main__":
    main()
