#!/usr/bin/env python3
"""Simulated attendance system of a school: an HTTP JSON API on 127.0.0.1.

GET /api/attendance?from=YYYY-MM-DD&to=YYYY-MM-DD&page=N   (Authorization: Bearer <token>)
  -> {"records": [...], "page": N, "pages": P, "total": T, "next": "/api/attendance?...&page=N+1" | null}
Records carry an "id_card" field on purpose: the agent must drop it.

Fault modes, switched at run time with GET /control?mode=ok|500|notjson|hang (no token needed):
  500 -> HTTP 500; notjson -> 200 with an HTML body; hang -> accept and never answer.
/control?fail_pages=3 makes only page 3 fail with 500. /stats -> {"requests": n, "by_page": {...}}.

  server.py --port PORT --data records.jsonl --token-file FILE [--page-size 30]
"""
import argparse
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"


class State:
    def __init__(self, records, token, page_size):
        self.records = records
        self.token = token
        self.page_size = page_size
        self.mode = "ok"
        self.fail_pages = set()
        self.requests = 0
        self.by_page = {}
        self.unauthorized = 0
        self.lock = threading.Lock()


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet; tests read /stats
            pass

        def send(self, code, body, ctype="application/json"):
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/control":
                with state.lock:
                    if "mode" in q:
                        state.mode = q["mode"]
                    if "fail_pages" in q:
                        state.fail_pages = {int(x) for x in q["fail_pages"].split(",") if x}
                return self.send(200, json.dumps({"mode": state.mode}))
            if url.path == "/stats":
                with state.lock:
                    return self.send(200, json.dumps({"requests": state.requests, "by_page": state.by_page,
                                                      "unauthorized": state.unauthorized, "mode": state.mode}))
            if url.path != "/api/attendance":
                return self.send(404, json.dumps({"error": "not found"}))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                with state.lock:
                    state.unauthorized += 1
                return self.send(401, json.dumps({"error": "bad or missing bearer token"}))
            page = int(q.get("page", "1") or 1)
            with state.lock:
                state.requests += 1
                state.by_page[str(page)] = state.by_page.get(str(page), 0) + 1
                mode = state.mode
                failing = page in state.fail_pages
            if mode == "hang":
                time.sleep(3600)
                return
            if mode == "500" or failing:
                return self.send(500, json.dumps({"error": "internal error"}))
            if mode == "notjson":
                return self.send(200, "<html><body>Maintenance</body></html>", "text/html")
            lo, hi = q.get("from", "0000-00-00"), q.get("to", "9999-99-99")
            matching = [r for r in state.records if lo <= r["date"] <= hi]
            pages = max(1, (len(matching) + state.page_size - 1) // state.page_size)
            chunk = matching[(page - 1) * state.page_size: page * state.page_size]
            nxt = None
            if page < pages:
                nq = dict(q)
                nq["page"] = str(page + 1)
                nxt = "/api/attendance?" + urllib.parse.urlencode(nq)
            self.send(200, json.dumps({"records": chunk, "page": page, "pages": pages,
                                       "total": len(matching), "next": nxt}, ensure_ascii=False))

    return Handler


def load_records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", required=True, help="records, one JSON object per line")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--page-size", type=int, default=30)
    args = ap.parse_args()
    with open(args.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    state = State(load_records(args.data), token, args.page_size)
    server = ThreadingHTTPServer((LOOPBACK, args.port), make_handler(state))
    server.daemon_threads = True
    print(f"attendance sim listening on {LOOPBACK}:{args.port} with {len(state.records)} records", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
