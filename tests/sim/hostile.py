#!/usr/bin/python3
"""Hostile devices on 127.0.0.1 for the fault tests: each server speaks just enough of its
protocol to look like the real thing, then misbehaves in one of three ways.

  hang     accepts, reads the request, never answers (the connection stays open)
  trickle  answers a plausible reply one byte per second, forever
  flood    answers a plausible reply followed by 100 MB (FLOOD_BYTES), as fast as the client
           reads, produced by a generator (never held in memory here either)

Protocols (the ones the agent speaks):
  rtsp        raw TCP RTSP/1.0 (a camera); flood = a status line then header lines without end
  onvif       HTTP/1.1 SOAP device service (POST /onvif/device_service)
  recorder    HTTP/1.1 JSON recorder status (GET .../api/status)
  attendance  HTTP/1.1 JSON attendance API (GET /api/attendance?...)
  tcp         a room endpoint for the fiber TCP probe: accepts, then hangs (mode is ignored)
The HTTP floods send no Content-Length (Connection: close), so a client can only stop them by
counting what it received.

Usage: hostile.py PROTO:MODE [PROTO:MODE ...]
Prints "READY proto:mode=port ..." once every server listens, then one line per connection
when it ends: "DONE proto:mode sent=N bytes" (how much the client took before it hung up).
Runs until SIGTERM. Python standard library only."""
import os
import signal
import socket
import sys
import threading
import time

LOOPBACK = "127.0.0.1"
FLOOD_BYTES = int(os.environ.get("HOSTILE_FLOOD_BYTES", str(100 * 1024 * 1024)))
PROTOCOLS = ("rtsp", "onvif", "recorder", "attendance", "tcp")
MODES = ("hang", "trickle", "flood")
_print_lock = threading.Lock()


def say(line):
    with _print_lock:
        print(line, flush=True)


def read_request(conn, limit=65536):
    """Reads one request head (and ignores any body); returns its text, or None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.decode("latin-1")


def cseq_of(head):
    for line in head.split("\r\n"):
        if line.lower().startswith("cseq:"):
            return line.split(":", 1)[1].strip()
    return "1"


def reply_head(proto, request):
    """The start of a plausible reply for the protocol."""
    if proto == "rtsp":
        return f"RTSP/1.0 200 OK\r\nCSeq: {cseq_of(request)}\r\n".encode()
    ctype = "application/soap+xml; charset=utf-8" if proto == "onvif" else "application/json"
    return f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nConnection: close\r\n\r\n".encode()


def flood_chunks(proto, total):
    """`total` bytes after the reply head, 64 KiB at a time: one chunk is reused, so memory
    stays at one chunk whatever `total` is."""
    if proto == "rtsp":
        line = b"X-Flood: " + b"f" * 1000 + b"\r\n"  # header lines, never the blank line that ends them
        chunk = line * 64
        first = b""
    elif proto == "onvif":
        first = (b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
                 b"<s:Body><tds:GetSystemDateAndTimeResponse xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\">")
        chunk = b"<tds:Pad>" + b"x" * 65000 + b"</tds:Pad>"
    elif proto == "attendance":
        first = b'{"page": 1, "pages": 1, "records": ['
        rec = b'{"student_id": "S0001", "class": "1-1", "grade": 1, "date": "2026-11-27", "status": "absent"},'
        chunk = rec * (65536 // len(rec))
    else:  # recorder
        first = b'{"recording": true, "storage": {"free_percent": 50}, "pad": "'
        chunk = b"x" * 65536
    sent = 0
    if first:
        yield first
        sent += len(first)
    while sent < total:
        piece = chunk if total - sent >= len(chunk) else chunk[:total - sent]
        yield piece
        sent += len(piece)


def serve_connection(proto, mode, conn, name):
    sent = 0
    try:
        if proto == "tcp":
            while conn.recv(4096):  # accepts then hangs: reads and discards until the peer goes
                pass
            return
        while True:
            request = read_request(conn)
            if request is None:
                return
            if mode == "hang":
                while conn.recv(4096):
                    pass
                return
            head = reply_head(proto, request)
            if mode == "trickle":
                # The head, then a body that never ends, one byte a second.
                for b in head + b"x" * 100000:
                    conn.sendall(bytes([b]))
                    sent += 1
                    time.sleep(1)
                return
            conn.sendall(head)
            sent += len(head)
            for piece in flood_chunks(proto, FLOOD_BYTES):
                conn.sendall(piece)
                sent += len(piece)
            return
    except OSError:
        return  # the client hung up: that is what we are waiting for
    finally:
        say(f"DONE {name} sent={sent} bytes")
        try:
            conn.close()
        except OSError:
            pass


def start_server(proto, mode):
    """A listening socket on 127.0.0.1 served by a thread per connection; returns its port."""
    name = f"{proto}:{mode}"
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((LOOPBACK, 0))
    srv.listen(64)

    def accept_loop():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve_connection, args=(proto, mode, conn, name), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return srv.getsockname()[1]


def main(argv):
    specs = []
    for arg in argv:
        proto, _, mode = arg.partition(":")
        if proto not in PROTOCOLS or (proto != "tcp" and mode not in MODES):
            sys.exit(f"hostile.py: {arg!r}: expected PROTO:MODE with PROTO in {PROTOCOLS} and MODE in {MODES}")
        specs.append((proto, mode or "hang"))
    if not specs:
        sys.exit(__doc__)
    ports = {f"{p}:{m}": start_server(p, m) for p, m in specs}
    say("READY " + " ".join(f"{k}={v}" for k, v in ports.items()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
