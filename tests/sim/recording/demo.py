#!/usr/bin/python3
"""The demo school's recording classrooms on 127.0.0.1 (scripts/demo through tests/sim/school.py,
or alone: demo.py WORKDIR).

start(workdir) starts one GStreamer RTSP server (real H.264 cameras, Digest authentication)
with a mount per camera and the recorder simulator (ONVIF + JSON status of every classroom),
from config/demo/recording/classrooms.json, and returns the [audits.recording] TOML table.
One classroom (R106) fails visibly: its board camera is offline and its disk nearly full.
Writes into workdir:
  recording-classrooms.csv        the register
  recording-secrets/*.cred        credentials (0600)
  recording.toml                  the [audits.recording] table (also returned)
  recorders.json                  the simulator's device table (edit it to change a device live)
Everything is a harness.Proc, stopped at interpreter exit."""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "../../.."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))

import harness  # noqa: E402

CAMERA_USER, CAMERA_PASS = "camera", "demo-cam-pass"
RECORDER_USER, RECORDER_PASS = "admin", "demo-rec-pass"


def secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text + "\n")


def start(workdir):
    work = os.path.abspath(workdir)
    os.makedirs(os.path.join(work, "recording-secrets"), exist_ok=True)
    with open(os.path.join(SOURCE, "config/demo/recording/classrooms.json"), encoding="utf-8") as f:
        rooms = json.load(f)["classrooms"]

    mounts = [f"{r['id'].lower()}-{s}" for r in rooms for s in r["streams"] if s not in r.get("offline", [])]
    cam = harness.start_rtsp_camera(work, mounts, digest=f"{CAMERA_USER}:{CAMERA_PASS}", name="recording-cameras")
    offline_port = harness.free_port()  # an offline camera: nothing listens there
    devices = {r["id"]: {"user": RECORDER_USER, "password": RECORDER_PASS, "drift": r["drift"],
                         "onvif_auth": r["onvif_auth"],
                         "status": {"recording": True, "storage": {"free_percent": r["free_percent"]},
                                    "model": "LR-4000", "channels": len(r["streams"])}}
               for r in rooms}
    rec = harness.start_recorder_sim(work, devices, name="recorders")

    secret(os.path.join(work, "recording-secrets/recorders.cred"), f"{RECORDER_USER}:{RECORDER_PASS}")
    secret(os.path.join(work, "recording-secrets/cameras.cred"), f"{CAMERA_USER}:{CAMERA_PASS}")
    rows = ["id,name,recorder_url,onvif_url,streams,credentials,camera_credentials,min_cameras"]
    for r in rooms:
        streams = ";".join(
            f"{s}=rtsp://127.0.0.1:{offline_port if s in r.get('offline', []) else cam.port}/{r['id'].lower()}-{s}"
            for s in r["streams"])
        rows.append(f'{r["id"]},{r["name"]},{rec.url(r["id"], "status")},{rec.url(r["id"], "onvif")},"{streams}",'
                    "recording-secrets/recorders.cred,recording-secrets/cameras.cred,")
    register = os.path.join(work, "recording-classrooms.csv")
    with open(register, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    table = f"""[audits.recording]
enabled = true
interval = "1m"
jitter = "0s"
first_delay = "0s"
timeout = "30s"
register = "{register}"
min_cameras = 2
min_free_percent = 15
max_clock_drift = "5s"
rtsp_timeout = "3s"
http_timeout = "3s"
"""
    with open(os.path.join(work, "recording.toml"), "w", encoding="utf-8") as f:
        f.write(table)
    return table


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    start(sys.argv[1])
    print("READY", flush=True)
    while not stop:
        time.sleep(0.2)
    harness._stop_all()


if __name__ == "__main__":
    main()
