#!/usr/bin/python3
"""Simulated classroom recorders: the ONVIF device service and the JSON status page of many
recorders in one http.server on 127.0.0.1, one path prefix per device.

  POST /<device>/onvif/device_service   SOAP 1.2: GetSystemDateAndTime (no auth),
                                        GetDeviceInformation (WS-Security UsernameToken
                                        PasswordDigest checked, or HTTP Digest)
  GET  /<device>/api/status             the recorder's JSON status

The device table is a JSON file re-read on every request, so a test can change a device while
the server runs:
  {"R101": {"user": "admin", "password": "pw", "drift": 0,
            "onvif_auth": "wsse" | "digest" | "none",
            "onvif": "ok" | "fault" | "malformed" | "absent",
            "status_code": 200, "status": {...} | "status_raw": "text"}}
Usage: recorder_sim.py DEVICES.json [--port N]; prints "READY <port>"."""
import base64
import datetime
import hashlib
import http.server
import json
import os
import re
import sys
import threading
import time

ENV_NS = "http://www.w3.org/2003/05/soap-envelope"
REALM = "onvif-sim"
NONCE = "5f1c0aa7e1d2"


def soap(body):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="{ENV_NS}" '
            'xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
            'xmlns:ter="http://www.onvif.org/ver10/error">'
            f"<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>")


def fault(subcode, reason):
    return soap("<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value>"
                f"<SOAP-ENV:Subcode><SOAP-ENV:Value>{subcode}</SOAP-ENV:Value></SOAP-ENV:Subcode>"
                f"</SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang=\"en\">{reason}</SOAP-ENV:Text>"
                "</SOAP-ENV:Reason></SOAP-ENV:Fault>")


def date_time_reply(now):
    local = now + datetime.timedelta(hours=8)

    def block(t):
        return (f"<tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date>")
    return soap("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
                "<tt:TimeZone><tt:TZ>CST-8:00:00</tt:TZ></tt:TimeZone>"
                f"<tt:UTCDateTime>{block(now)}</tt:UTCDateTime>"
                f"<tt:LocalDateTime>{block(local)}</tt:LocalDateTime>"
                "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")


def device_info_reply(name):
    return soap("<tds:GetDeviceInformationResponse><tds:Manufacturer>SimVision</tds:Manufacturer>"
                "<tds:Model>LR-4000 Recorder</tds:Model><tds:FirmwareVersion>V2.3.1 build 240518</tds:FirmwareVersion>"
                f"<tds:SerialNumber>SIM-{name}-0001</tds:SerialNumber><tds:HardwareId>LR4K</tds:HardwareId>"
                "</tds:GetDeviceInformationResponse>")


def tag(xml, name):
    m = re.search(r"<(?:\w+:)?%s\b[^>]*>(.*?)</(?:\w+:)?%s>" % (name, name), xml, re.S)
    return m.group(1).strip() if m else None


def wsse_ok(xml, dev, device_now):
    """True when the UsernameToken digest matches and Created is fresh by the device's clock."""
    user, pw, nonce, created = (tag(xml, n) for n in ("Username", "Password", "Nonce", "Created"))
    if not all((user, pw, nonce, created)) or user != dev.get("user"):
        return False
    want = base64.b64encode(hashlib.sha1(base64.b64decode(nonce) + created.encode()
                                         + dev.get("password", "").encode()).digest()).decode()
    if pw != want:
        return False
    try:
        t = datetime.datetime.strptime(created.replace(".000", ""), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return abs((t - device_now).total_seconds()) <= 5  # devices refuse stale tokens


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def http_digest_ok(header, dev, method):
    if not header or not header.startswith("Digest "):
        return False
    f = dict((k.strip(), v.strip().strip('"')) for k, _, v in
             (p.partition("=") for p in re.split(r",\s*(?=\w+=)", header[7:])))
    ha1 = md5(f"{dev.get('user')}:{REALM}:{dev.get('password', '')}")
    ha2 = md5(f"{method}:{f.get('uri')}")
    want = md5(f"{ha1}:{NONCE}:{f.get('nc')}:{f.get('cnonce')}:{f.get('qop')}:{ha2}")
    return f.get("username") == dev.get("user") and f.get("response") == want


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    devices_file = None

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/soap+xml; charset=utf-8", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def device(self):
        parts = self.path.split("/")
        if len(parts) < 3:
            return None, None
        with open(self.devices_file) as f:
            devices = json.load(f)
        return parts[1], devices.get(parts[1])

    def do_GET(self):
        name, dev = self.device()
        if dev is None or not self.path.endswith("/api/status"):
            return self.send(404, "not found", "text/plain")
        if "status_raw" in dev:
            return self.send(dev.get("status_code", 200), dev["status_raw"], "text/html")
        self.send(dev.get("status_code", 200), json.dumps(dev.get("status", {})), "application/json")

    def do_POST(self):
        name, dev = self.device()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8", "replace")
        if dev is None or not self.path.endswith("/onvif/device_service") or dev.get("onvif") == "absent":
            return self.send(404, "not found", "text/plain")
        mode = dev.get("onvif", "ok")
        if mode == "malformed":
            return self.send(200, "<SOAP-ENV:Envelope><SOAP-ENV:Body><tds:GetSystemDateAndTimeResponse>")
        if mode == "fault":
            return self.send(500, fault("ter:ActionNotSupported", "internal device error"))
        device_now = datetime.datetime.utcnow().replace(microsecond=0) + datetime.timedelta(seconds=dev.get("drift", 0))
        if "GetSystemDateAndTime" in body:
            return self.send(200, date_time_reply(device_now))
        # HTTP Digest devices challenge every other request before reading it (libcurl sends
        # the first, unauthenticated POST with an empty body).
        if dev.get("onvif_auth") == "digest" and not http_digest_ok(self.headers.get("Authorization"), dev, "POST"):
            return self.send(401, "unauthorized", "text/plain", [
                ("WWW-Authenticate", f'Digest realm="{REALM}", qop="auth", nonce="{NONCE}", algorithm=MD5')])
        if "GetDeviceInformation" in body:
            if dev.get("onvif_auth", "wsse") == "wsse" and not wsse_ok(body, dev, device_now):
                return self.send(400, fault("ter:NotAuthorized", "Sender not Authorized"))
            return self.send(200, device_info_reply(name))
        self.send(400, fault("ter:ActionNotSupported", "unknown action"))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main():
    Handler.devices_file = os.path.abspath(sys.argv[1])
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    srv = Server(("127.0.0.1", port), Handler)
    threading.Timer(3600, lambda: os._exit(0)).start()
    print("READY", srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
