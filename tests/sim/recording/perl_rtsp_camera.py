#!/usr/bin/python3
"""A second, independent RTSP server for the camera tests: Debian's rtsp-server-perl (the
RTSP::Server Perl module, AnyEvent), which relays what a source publishes to it. It answers
SETUP for RTP/AVP/TCP interleaved with 400 (it only reads client_port) and sends RTP over UDP.

This script starts it on 127.0.0.1 (client and source ports, RTP ports from a free even base),
publishes each --mount as its source the way the server expects (ANNOUNCE with an H.264 SDP,
SETUP streamid=0 with mode=record, RECORD), then sends RTP packets (version 2, payload type 96)
to the mount's source port 20 times a second. Prints "READY <client port>" once every mount is
published. Exits after --lifetime seconds or on SIGTERM, stopping the server.
Python 3 standard library only."""
import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

LOOPBACK = "127.0.0.1"
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=perl camera\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
       "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n")


def free_tcp_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_udp_base(count=64):
    """An even UDP port with `count` free ports above it (the server hands them out in pairs)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count, 2)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((LOOPBACK, p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range for RTP")


def request(sock, method, url, cseq, headers="", body=""):
    """One RTSP request over `sock`; returns (status, {lower-case header: value})."""
    msg = f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{headers}"
    if body:
        msg += f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n"
    sock.sendall((msg + "\r\n" + body).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"{method}: the server closed the connection")
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(head[0].split(" ")[1]), fields


def publish(source_port, mount):
    """ANNOUNCE + SETUP + RECORD of `mount`; returns (control socket, the server's RTP port)."""
    url = f"rtsp://{LOOPBACK}:{source_port}/{mount}"
    sock = socket.create_connection((LOOPBACK, source_port), timeout=5)
    status, _ = request(sock, "ANNOUNCE", url, 1, body=SDP)
    if status != 200:
        raise RuntimeError(f"ANNOUNCE {mount}: {status}")
    status, fields = request(sock, "SETUP", url + "/streamid=0", 2,
                             "Transport: RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record\r\n")
    if status != 200 or "server_port=" not in fields.get("transport", ""):
        raise RuntimeError(f"SETUP {mount}: {status} {fields}")
    rtp_port = int(fields["transport"].split("server_port=")[1].split("-")[0])
    status, _ = request(sock, "RECORD", url, 3, "Range: npt=0.000-\r\n")
    if status != 200:
        raise RuntimeError(f"RECORD {mount}: {status}")
    return sock, rtp_port


def feed(rtp_ports, stop):
    """RTP packets to every published mount, 20 a second, until `stop` is set."""
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seq = 0
    while not stop.is_set():
        seq = (seq + 1) % 65536
        ts = (seq * 4500) % (1 << 32)
        packet = bytes([0x80, 96]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + b"\x0c\xa1\x1e\x55"
        packet += bytes([0x65]) + b"\x88" * 60  # an IDR slice NAL header and filler
        for port in rtp_ports:
            out.sendto(packet, (LOOPBACK, port))
        stop.wait(0.05)
    out.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mount", action="append", default=[])
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    server = shutil.which("rtsp-server-perl")
    if not server:
        print("rtsp-server-perl is not installed (scripts/install-deps installs it)", file=sys.stderr, flush=True)
        sys.exit(2)
    client_port, source_port, rtp_base = free_tcp_port(), free_tcp_port(), free_udp_base()
    proc = subprocess.Popen(["perl", server, "--clientport", str(client_port), "--serverport", str(source_port),
                             "--client_listen_address", LOOPBACK, "--source_listen_address", LOOPBACK,
                             "--rtp_start_port", str(rtp_base), "--loglevel", "2"],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    stop = threading.Event()

    def finish(*_):
        stop.set()
    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((LOOPBACK, source_port), timeout=1).close()
                socket.create_connection((LOOPBACK, client_port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("rtsp-server-perl did not start listening")
                time.sleep(0.1)
        controls, rtp_ports = [], []
        for mount in args.mount or ["cam"]:
            sock, port = publish(source_port, mount)
            controls.append(sock)
            rtp_ports.append(port)
        feeder = threading.Thread(target=feed, args=(rtp_ports, stop), daemon=True)
        feeder.start()
        print("READY", client_port, flush=True)
        stop.wait(args.lifetime)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


if __name__ == "__main__":
    main()
