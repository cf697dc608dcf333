#!/usr/bin/python3
"""Simulated Hikvision and Dahua NVRs speaking their own HTTP APIs, many in one http.server on
127.0.0.1, one path prefix per device (recorder_url = http://127.0.0.1:PORT/<device>):

  Hikvision ISAPI (XML, xmlns http://www.hikvision.com/ver20/XMLSchema):
    GET /<device>/ISAPI/System/deviceInfo       <DeviceInfo> model, serialNumber, firmwareVersion
    GET /<device>/ISAPI/ContentMgmt/Storage     <storage><hddList><hdd> status, capacity, freeSpace (MB)
    GET /<device>/ISAPI/System/time             <Time><localTime>2024-05-01T18:00:00+08:00
    GET /<device>/ISAPI/System/workingstatus    <WorkingStatus><ChanStatus> chanNo, online, record
  Dahua CGI (key=value lines, CRLF):
    GET /<device>/cgi-bin/magicBox.cgi?action=getSystemInfo
    GET /<device>/cgi-bin/storageDevice.cgi?action=getDeviceAllInfo
    GET /<device>/cgi-bin/global.cgi?action=getCurrentTime
    GET /<device>/cgi-bin/configManager.cgi?action=getConfig&name=RecordMode

Every call needs HTTP Digest (RFC 2617, MD5, qop=auth) the way the devices ask for it: a 401
with a fresh nonce (Hikvision also offers Basic, and sends a <userCheck> body). Errors as the
devices send them: a wrong password counts towards a lock-out (lock_after wrong answers; then
every request gets 401 with the vendor's lock body: Hikvision <userCheck><lockStatus>lock,
Dahua "Error\\r\\nUser Locked! ..."), "stale_once" answers the first correctly authorized
request with 401 stale="TRUE" and a new nonce, a disk can be in error, unknown calls get the
vendor's error reply (Hikvision <ResponseStatus> 404, Dahua 400 "Error\\r\\nBad Request!").

The device table is a JSON file re-read on every request:
  {"H1": {"vendor": "hikvision", "user": "admin", "password": "pw", "drift": 0, "utc_offset": 480,
          "disks": [{"status": "ok", "capacity_mb": 3815447, "free_mb": 1907723}],
          "channels": [{"online": 1, "record": 1}], "locked": false, "lock_after": 5, "stale_once": false},
   "D1": {"vendor": "dahua", ..., "disks": [{"state": "Success", "total": 4e12, "used": 3e12, "error": false}],
          "modes": [0, 1, 2]}}
GET /_stats/<device> (no auth) returns what the device saw: {"stale_sent", "authorized",
"wrong", "unauthenticated", "locked_replies"}.
Usage: nvr_sim.py DEVICES.json [--port N]; prints "READY <port>". Python 3 standard library only."""
import datetime
import hashlib
import http.server
import json
import os
import secrets
import sys
import threading
import time

HIK_NS = "http://www.hikvision.com/ver20/XMLSchema"
STATE_LOCK = threading.Lock()
STATE = {}  # device -> {"nonces": {nonce: issued}, "wrong": n, "stale_sent": n, ...}


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def digest_fields(header):
    """Authorization: Digest k="v", k=v, ... -> dict (None when not Digest)."""
    if not header or not header.startswith("Digest "):
        return None
    fields, rest = {}, header[7:]
    while rest:
        key, _, rest = rest.strip().partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        fields[key.strip()] = value.strip()
        rest = rest.lstrip(", ")
    return fields


def state(name):
    with STATE_LOCK:
        return STATE.setdefault(name, {"nonces": set(), "wrong": 0, "stale_sent": 0, "authorized": 0,
                                       "unauthenticated": 0, "locked_replies": 0, "stale_done": False})


def realm(dev):
    return "4c8f1f1a2b3e5d6f7a8b9c0d" if dev["vendor"] == "hikvision" else "Login to 5J01A8FPAZ12345"


def hik_xml(root, inner):
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} version="2.0" xmlns="{HIK_NS}">\n{inner}</{root}>\n'


def hik_user_check(locked, dev):
    if locked:
        return ('<?xml version="1.0" encoding="UTF-8" ?>\n<userCheck>\n<statusValue>401</statusValue>\n'
                '<statusString>Unauthorized</statusString>\n<lockStatus>lock</lockStatus>\n'
                f'<unlockTime>{dev.get("unlock_s", 1800)}</unlockTime>\n<retryLoginTime>0</retryLoginTime>\n</userCheck>\n')
    return ('<?xml version="1.0" encoding="UTF-8" ?>\n<userCheck>\n<statusValue>401</statusValue>\n'
            '<statusString>Unauthorized</statusString>\n<lockStatus>unlock</lockStatus>\n<unlockTime>0</unlockTime>\n'
            f'<retryLoginTime>{max(0, dev.get("lock_after", 5) - state_wrong(dev))}</retryLoginTime>\n</userCheck>\n')


def state_wrong(dev):
    return STATE.get(dev["_name"], {}).get("wrong", 0)


def device_time(dev):
    offset = datetime.timedelta(minutes=dev.get("utc_offset", 480))
    return datetime.datetime.utcnow().replace(microsecond=0) + datetime.timedelta(seconds=dev.get("drift", 0)) + offset, offset


def hikvision(name, dev, call):
    if call == "/ISAPI/System/deviceInfo":
        return 200, hik_xml("DeviceInfo", f"<deviceName>{name} NVR</deviceName>\n<deviceID>48524a4d-{name}</deviceID>\n"
                            "<model>DS-7608NI-K2</model>\n"
                            f"<serialNumber>DS-7608NI-K20820211231CCRRJ{name}WCVU</serialNumber>\n"
                            "<macAddress>c4:2f:90:f1:a2:b3</macAddress>\n<firmwareVersion>V4.30.085</firmwareVersion>\n"
                            "<firmwareReleasedDate>build 220318</firmwareReleasedDate>\n<deviceType>NVR</deviceType>\n")
    if call == "/ISAPI/ContentMgmt/Storage":
        hdds = "".join(f'<hdd version="2.0">\n<id>{i + 1}</id>\n<hddName>hdd{i + 1}</hddName>\n<hddPath></hddPath>\n'
                       f'<hddType>SATA</hddType>\n<status>{d["status"]}</status>\n<capacity>{d["capacity_mb"]}</capacity>\n'
                       f'<freeSpace>{d["free_mb"]}</freeSpace>\n<property>RW</property>\n</hdd>\n'
                       for i, d in enumerate(dev.get("disks", [])))
        return 200, hik_xml("storage", f'<hddList version="2.0">\n{hdds}</hddList>\n<nasList version="2.0">\n</nasList>\n')
    if call == "/ISAPI/System/time":
        local, offset = device_time(dev)
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        return 200, hik_xml("Time", f"<timeMode>NTP</timeMode>\n<localTime>{local.isoformat()}{zone}</localTime>\n"
                            f"<timeZone>CST{'-' if minutes >= 0 else '+'}{abs(minutes) // 60}:00:00</timeZone>\n")
    if call == "/ISAPI/System/workingstatus":
        chans = "".join(f"<ChanStatus><chanNo>{i + 1}</chanNo><enable>1</enable><online>{c['online']}</online>"
                        f"<record>{c['record']}</record><recordStatus>0</recordStatus><signal>{1 - c['online']}</signal>"
                        f"<linkNum>{c['online']}</linkNum><bitRate>2048</bitRate></ChanStatus>\n"
                        for i, c in enumerate(dev.get("channels", [])))
        return 200, hik_xml("WorkingStatus", f"<devStatus>0</devStatus>\n{chans}")
    return 404, hik_xml("ResponseStatus", f"<requestURL>{call}</requestURL>\n<statusCode>4</statusCode>\n"
                        "<statusString>Invalid Operation</statusString>\n<subStatusCode>notSupport</subStatusCode>\n")


def dahua(name, dev, call):
    lines = None
    if call == "/cgi-bin/magicBox.cgi?action=getSystemInfo":
        lines = ["deviceType=DHI-NVR4208-8P-4KS2", "hardwareVersion=1.00", "processor=ST7108",
                 f"serialNumber=5J01A8FPAZ{name}", "updateSerial=NVR4208-8P-4KS2"]
    elif call == "/cgi-bin/storageDevice.cgi?action=getDeviceAllInfo":
        lines = []
        for i, d in enumerate(dev.get("disks", [])):
            p = f"list.info[{i}]"
            lines += [f"{p}.Detail[0].IsError={'true' if d.get('error') else 'false'}", f"{p}.Detail[0].Path=/dev/sd{chr(97 + i)}1",
                      f"{p}.Detail[0].TotalBytes={d['total']:.6f}", f"{p}.Detail[0].Type=ReadWrite",
                      f"{p}.Detail[0].UsedBytes={d['used']:.6f}", f"{p}.Name=/dev/sd{chr(97 + i)}", f"{p}.State={d['state']}"]
    elif call == "/cgi-bin/global.cgi?action=getCurrentTime":
        local, _ = device_time(dev)
        lines = [f"result={local.strftime('%Y-%m-%d %H:%M:%S')}"]
    elif call == "/cgi-bin/configManager.cgi?action=getConfig&name=RecordMode":
        lines = [f"table.RecordMode[{i}].Mode={m}" for i, m in enumerate(dev.get("modes", []))]
    if lines is None:
        return 400, "Error\r\nBad Request!\r\n"
    return 200, "".join(line + "\r\n" for line in lines)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    devices_file = None

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype, headers=()):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def challenge(self, name, dev, stale=False, body=None):
        nonce = secrets.token_hex(16) + (f":{int(time.time() * 1000)}" if dev["vendor"] == "hikvision" else "")
        st = state(name)
        with STATE_LOCK:
            st["nonces"].add(nonce)
        if dev["vendor"] == "hikvision":
            headers = [("WWW-Authenticate", f'Digest realm="{realm(dev)}", domain="::", qop="auth", nonce="{nonce}", '
                                            f'opaque="", algorithm="MD5", stale="{"TRUE" if stale else "FALSE"}"'),
                       ("WWW-Authenticate", f'Basic realm="{realm(dev)}"')]
            return self.send(401, body or hik_user_check(False, dev), 'application/xml; charset="UTF-8"', headers)
        headers = [("WWW-Authenticate", f'Digest realm="{realm(dev)}", qop="auth", nonce="{nonce}", '
                                        f'opaque="{md5(nonce)[:16]}"' + (', stale=true' if stale else ""))]
        return self.send(401, body or "Error\r\nUnauthorized!\r\n", "text/plain;charset=utf-8", headers)

    def do_GET(self):
        parts = self.path.split("/", 2)
        if len(parts) < 3:
            return self.send(404, "no device", "text/plain")
        name, call = parts[1], "/" + parts[2]
        if name == "_stats":
            st = state(call[1:])
            with STATE_LOCK:
                out = {k: v for k, v in st.items() if k not in ("nonces", "stale_done")}
            return self.send(200, json.dumps(out), "application/json")
        with open(self.devices_file) as f:
            devices = json.load(f)
        dev = devices.get(name)
        if dev is None:
            return self.send(404, "no such device", "text/plain")
        dev["_name"] = name
        st = state(name)
        locked = dev.get("locked") or st["wrong"] >= dev.get("lock_after", 5)
        if locked:
            with STATE_LOCK:
                st["locked_replies"] += 1
            body = hik_user_check(True, dev) if dev["vendor"] == "hikvision" else \
                "Error\r\nUser Locked! Please try again after 30 minutes.\r\n"
            return self.challenge(name, dev, body=body)
        f = digest_fields(self.headers.get("Authorization"))
        if f is None:
            with STATE_LOCK:
                st["unauthenticated"] += 1
            return self.challenge(name, dev)
        ha1 = md5(f"{dev.get('user')}:{realm(dev)}:{dev.get('password', '')}")
        ha2 = md5(f"GET:{f.get('uri')}")
        want = md5(f"{ha1}:{f.get('nonce')}:{f.get('nc')}:{f.get('cnonce')}:{f.get('qop')}:{ha2}")
        if f.get("nonce") not in st["nonces"] or f.get("uri") != self.path or f.get("realm") != realm(dev):
            return self.challenge(name, dev)
        if f.get("username") != dev.get("user") or f.get("response") != want:
            with STATE_LOCK:
                st["wrong"] += 1
            return self.challenge(name, dev)
        if dev.get("stale_once") and not st["stale_done"]:
            # The nonce expired between the challenge and this (correct) answer.
            with STATE_LOCK:
                st["stale_done"] = True
                st["stale_sent"] += 1
                st["nonces"].discard(f.get("nonce"))
            return self.challenge(name, dev, stale=True)
        with STATE_LOCK:
            st["authorized"] += 1
        code, body = hikvision(name, dev, call) if dev["vendor"] == "hikvision" else dahua(name, dev, call)
        ctype = 'application/xml; charset="UTF-8"' if dev["vendor"] == "hikvision" else "text/plain;charset=utf-8"
        self.send(code, body, ctype)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    Handler.devices_file = os.path.abspath(sys.argv[1])
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    srv = Server(("127.0.0.1", port), Handler)
    threading.Timer(3600, lambda: os._exit(0)).start()
    print("READY", srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
