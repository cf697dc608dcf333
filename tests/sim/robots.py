#!/usr/bin/python3
"""Group robots on 127.0.0.1, as the county's alerts reach them: WeCom's and DingTalk's
custom-robot webhooks (their request shapes, their answers and error codes, their rate limit of
20 messages a minute per robot) and a generic JSON webhook.

  POST /cgi-bin/webhook/send?key=KEY                  WeCom group robot
       {"msgtype": "markdown", "markdown": {"content": "..."}}   (content at most 4096 bytes)
       -> {"errcode": 0, "errmsg": "ok"}; 93000 invalid webhook url (unknown key);
          45009 api freq out of limit; 40008 invalid message type; 40058 invalid content
  POST /robot/send?access_token=T[&timestamp=MS&sign=S]   DingTalk group robot
       {"msgtype": "markdown", "markdown": {"title": "...", "text": "..."}}
       -> {"errcode": 0, "errmsg": "ok"}; 300001 token is not exist; 310000 sign not match /
          keywords not in content; 130101 send too fast; 40035 missing parameter
       A robot made with a secret ("加签") checks timestamp (within an hour) and
       sign = urlencode(base64(HMAC-SHA256(secret, "{timestamp}\\n{secret}"))).
  POST /hook                                             a generic JSON webhook: 200 {}

What the test controls (Robots methods, or in a script the JSON on stdout):
  fail(n, how)   the next n requests fail: "busy" (WeCom -1 / DingTalk -1 system busy),
                 "rate" (45009 / 130101 and HTTP 200, as the robots do), "http500", "http429"
  hold(seconds)  the next request is read and recorded, its answer held for `seconds` (a
                 collector killed meanwhile has sent but not recorded it)
  received       every request that was well formed: (path, query, headers, body JSON)

Run as a script: robots.py [--wecom-key K] [--dingtalk-token T --dingtalk-secret S]; prints
"READY port=N" and one JSON line per request received. Python standard library only."""
import base64
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time
import urllib.parse

LOOPBACK = "127.0.0.1"
RATE_PER_MINUTE = 20


class Robots:
    def __init__(self, wecom_keys=("wecom-key",), dingtalk_tokens=None, rate_per_minute=RATE_PER_MINUTE):
        self.wecom_keys = set(wecom_keys)
        self.dingtalk = dict(dingtalk_tokens or {"ding-token": None})  # token -> secret (None: unsigned)
        self.rate_per_minute = rate_per_minute
        self.lock = threading.Lock()
        self.received = []      # accepted requests: {"path","query","headers","body","at"}
        self.answers = []       # (path, errcode or HTTP status) of every request, in order
        self._fail = []         # pending failure modes, one per request
        self._hold = 0.0
        self._sent = {}         # robot -> [monotonic times of accepted messages]
        robots = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                robots._handle(self)

        self.server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://{LOOPBACK}:{self.port}{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def fail(self, n, how):
        with self.lock:
            self._fail += [how] * n

    def recover(self):
        """The failures still planned by fail() are dropped: the next requests are judged as usual."""
        with self.lock:
            self._fail.clear()

    def hold(self, seconds):
        with self.lock:
            self._hold = seconds

    def messages(self, path=None):
        with self.lock:
            return [r for r in self.received if path is None or r["path"] == path]

    # ---- the protocol ----
    def _reply(self, h, status, body):
        data = json.dumps(body, ensure_ascii=False).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json;charset=UTF-8")
        h.send_header("Content-Length", str(len(data)))
        if status == 429:
            h.send_header("Retry-After", "1")
        h.end_headers()
        try:
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up (its timeout) or died while the answer was held

    def _rate_ok(self, robot):
        now = time.monotonic()
        times = [t for t in self._sent.get(robot, []) if now - t < 60]
        self._sent[robot] = times
        if len(times) >= self.rate_per_minute:
            return False
        times.append(now)
        return True

    def _handle(self, h):
        url = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        kind = {"/cgi-bin/webhook/send": "wecom", "/robot/send": "dingtalk", "/hook": "webhook"}.get(url.path)
        if kind is None:
            return self._reply(h, 404, {"errcode": 404, "errmsg": "not found"})
        with self.lock:
            how = self._fail.pop(0) if self._fail else None
            hold, self._hold = self._hold, 0.0
        code = self._check(kind, query, body, raw, how)
        with self.lock:
            self.answers.append((url.path, code))
            if code == 0:
                self.received.append({"path": url.path, "query": query, "headers": dict(h.headers.items()),
                                      "body": body, "at": time.time()})
        if hold:
            time.sleep(hold)
        if isinstance(code, str):  # an HTTP failure
            status = int(code[4:])
            return self._reply(h, status, {"error": f"HTTP {status} from the simulator"})
        if kind == "webhook":
            return self._reply(h, 200 if code == 0 else 400, {} if code == 0 else {"error": code})
        return self._reply(h, 200, {"errcode": code, "errmsg": ERRMSG.get((kind, code), "ok" if code == 0 else "error")})

    def _check(self, kind, query, body, raw, how):
        """0 when the request is accepted, else the robot's errcode (or "http500"/"http429")."""
        if how in ("http500", "http429"):
            return how
        if how == "busy":
            return -1
        if kind == "webhook":
            return 0 if isinstance(body, dict) and isinstance(body.get("alerts"), list) else "bad body"
        if not isinstance(body, dict):
            return 40035 if kind == "dingtalk" else 40058
        if kind == "wecom":
            if query.get("key") not in self.wecom_keys:
                return 93000
            if body.get("msgtype") != "markdown" or not isinstance(body.get("markdown"), dict):
                return 40008
            content = body["markdown"].get("content")
            if not isinstance(content, str) or not content or len(content.encode()) > 4096:
                return 40058
            robot = "wecom:" + query["key"]
            if how == "rate":
                return 45009
        else:
            token = query.get("access_token")
            if token not in self.dingtalk:
                return 300001
            secret = self.dingtalk[token]
            if secret is not None:
                ts, sign = query.get("timestamp", ""), query.get("sign", "")
                if not ts.isdigit() or abs(time.time() * 1000 - int(ts)) > 3600 * 1000:
                    return 310000
                want = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest())
                # parse_qsl has undone the URL encoding already
                if not hmac.compare_digest(want.decode(), sign):
                    return 310000
            md = body.get("markdown")
            if body.get("msgtype") != "markdown" or not isinstance(md, dict) or not md.get("title") or not md.get("text"):
                return 40035
            robot = "dingtalk:" + token
            if how == "rate":
                return 130101
        with self.lock:
            if not self._rate_ok(robot):
                return 45009 if kind == "wecom" else 130101
        return 0


ERRMSG = {("wecom", 93000): "invalid webhook url, hint: [sim]", ("wecom", 45009): "api freq out of limit",
          ("wecom", 40008): "invalid message type", ("wecom", 40058): "invalid content",
          ("wecom", -1): "system busy", ("dingtalk", 300001): "token is not exist",
          ("dingtalk", 310000): "sign not match", ("dingtalk", 130101): "send too fast, exceed 20 times per minute",
          ("dingtalk", 40035): "缺少参数 json", ("dingtalk", -1): "系统繁忙"}


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--wecom-key", default="wecom-key")
    ap.add_argument("--dingtalk-token", default="ding-token")
    ap.add_argument("--dingtalk-secret", default=None)
    a = ap.parse_args()
    r = Robots([a.wecom_key], {a.dingtalk_token: a.dingtalk_secret})
    print(f"READY port={r.port}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            for m in r.messages()[seen:]:
                print(json.dumps(m, ensure_ascii=False), flush=True)
            seen = len(r.messages())
    except KeyboardInterrupt:
        r.stop()


if __name__ == "__main__":
    sys.exit(main())
