#!/usr/bin/python3
"""The demo school's recording classrooms on 127.0.0.1 (used by scripts/demo).

  demo.py WORKDIR

Starts one GStreamer RTSP server (real H.264 cameras, Digest authentication) with a mount per
camera, and one simulated recorder per classroom (ONVIF + JSON status), from
config/demo/recording/classrooms.json. One classroom (R106) fails visibly: its board camera is
offline and its disk is nearly full. Writes into WORKDIR:
  recording-classrooms.csv        the register
  recording-secrets/*.cred        credentials (0600)
  recording.toml                  the [audits.recording] table to add to agent.toml
  recorders.json                  the simulator's device table (edit it to change a device live)
Prints "READY" when everything listens; runs until SIGTERM/SIGINT, then stops its children."""
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "../../.."))
PY = "/usr/bin/python3"
CAMERA_USER, CAMERA_PASS = "camera", "demo-cam-pass"
RECORDER_USER, RECORDER_PASS = "admin", "demo-rec-pass"


def start(argv, log):
    return subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def ready(proc, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log) as f:
            for line in f:
                if line.startswith("READY"):
                    return line.split()[1:]
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"demo: {log} never said READY:\n" + open(log).read())


def secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text + "\n")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    work = os.path.abspath(sys.argv[1])
    os.makedirs(os.path.join(work, "recording-secrets"), exist_ok=True)
    with open(os.path.join(SOURCE, "config/demo/recording/classrooms.json")) as f:
        rooms = json.load(f)["classrooms"]

    children = []

    def stop(*_):
        for p in children:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in children:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    mounts = [f"{r['id'].lower()}-{s}" for r in rooms for s in r["streams"] if s not in r.get("offline", [])]
    cam_log = os.path.join(work, "recording-cameras.log")
    argv = [PY, os.path.join(HERE, "rtsp_camera.py"), "--port", "0", "--digest", f"{CAMERA_USER}:{CAMERA_PASS}"]
    for m in mounts:
        argv += ["--mount", m]
    cam = start(argv, cam_log)
    children.append(cam)
    cam_port = int(ready(cam, cam_log)[0])

    # An offline camera: a port with nothing listening (bound and released).
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        offline_port = s.getsockname()[1]

    devices = {}
    for r in rooms:
        devices[r["id"]] = {"user": RECORDER_USER, "password": RECORDER_PASS, "drift": r["drift"],
                            "onvif_auth": r["onvif_auth"],
                            "status": {"recording": True, "storage": {"free_percent": r["free_percent"]},
                                       "model": "LR-4000", "channels": len(r["streams"])}}
    dev_file = os.path.join(work, "recorders.json")
    with open(dev_file, "w") as f:
        json.dump(devices, f, indent=1, ensure_ascii=False)
    rec_log = os.path.join(work, "recording-recorders.log")
    rec = start([PY, os.path.join(HERE, "recorder_sim.py"), dev_file], rec_log)
    children.append(rec)
    rec_port = int(ready(rec, rec_log)[0])

    secret(os.path.join(work, "recording-secrets/recorders.cred"), f"{RECORDER_USER}:{RECORDER_PASS}")
    secret(os.path.join(work, "recording-secrets/cameras.cred"), f"{CAMERA_USER}:{CAMERA_PASS}")
    rows = ["id,name,recorder_url,onvif_url,streams,credentials,camera_credentials,min_cameras"]
    for r in rooms:
        streams = ";".join(
            f"{s}=rtsp://127.0.0.1:{offline_port if s in r.get('offline', []) else cam_port}/{r['id'].lower()}-{s}"
            for s in r["streams"])
        base = f"http://127.0.0.1:{rec_port}/{r['id']}"
        rows.append(f'{r["id"]},{r["name"]},{base}/api/status,{base}/onvif/device_service,"{streams}",'
                    f"recording-secrets/recorders.cred,recording-secrets/cameras.cred,")
    with open(os.path.join(work, "recording-classrooms.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    with open(os.path.join(work, "recording.toml"), "w") as f:
        f.write(f"""[audits.recording]
enabled = true
interval = "1m"
jitter = "0s"
first_delay = "0s"
timeout = "30s"
register = "{os.path.join(work, 'recording-classrooms.csv')}"
min_cameras = 2
min_free_percent = 15
max_clock_drift = "5s"
rtsp_timeout = "3s"
http_timeout = "3s"
""")
    print(f"READY cameras=127.0.0.1:{cam_port} recorders=127.0.0.1:{rec_port} classrooms={len(rooms)}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
