#!/usr/bin/env python3
"""The demo school's network for the fiber audit: starts its switches (real snmpd on
127.0.0.1), writes the room register, switch list, community file and the [audits.fiber] TOML
snippet into WORKDIR. start(workdir) is what tests/sim/school.py (scripts/demo) calls; run
alone it prints one JSON line {"ready": true, ...} and runs until SIGTERM/SIGINT.

    tests/sim/fiber/demo.py WORKDIR
    tests/sim/fiber/demo.py --rooms-only FILE  # just write the demo room register

南山中心小学 (nansan-central-primary): 62 rooms in three buildings. Most are covered; the rest
show every state a county sees: a cut fiber, a port shut down, a 100M link, weak and hot optics,
a flapping link, rooms without any planned link, and a switch that does not answer."""
import atexit
import json
import os
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snmpsim  # noqa: E402
from snmpsim import port, DOWN, LOWER_LAYER_DOWN  # noqa: E402

GRADES = ["一", "二", "三", "四", "五", "六"]
FUNCTION_ROOMS = ["录播教室", "多媒体教室", "音乐教室", "美术教室", "科学实验室", "计算机教室", "图书室",
                  "舞蹈教室", "心理咨询室", "书法教室", "劳动教室", "阶梯教室", "会议室", "校史室"]
OFFICES = ["校长办公室", "副校长办公室", "教务处", "德育处", "总务处", "财务室", "档案室", "卫生室",
           "党建室", "教研室一", "教研室二", "教研室三", "门卫室", "网络机房"]


def school():
    """(rooms rows, switch specs, special cases) for the demo school."""
    rooms = []
    specs = {
        "jxl-a": {"vendor": "h3c", "ports": []},       # 教学楼A: classrooms, H3C with optics
        "jxl-b": {"vendor": "huawei", "ports": []},    # 教学楼B: function rooms, Huawei with optics
        "xzl": {"vendor": "generic", "ports": []},     # 行政楼: offices, IF-MIB only
    }
    # 24 classrooms (6 grades x 4 classes) on jxl-a ports 1..24, 2 planned but not built.
    n = 0
    for g, grade in enumerate(GRADES):
        for c in range(1, 5):
            n += 1
            rid = f"C{g + 1}{c:02d}"
            name = f"{grade}年级{c}班"
            floor = str(g // 2 + 1)
            if n in (23, 24):  # new classrooms in the extension: no fiber planned yet
                rooms.append([rid, name, "classroom", "教学楼A", floor, "", "", ""])
                continue
            p = port(n, rx_dbm=-4.5 - (n % 5) * 0.7, alias=rid)
            if n == 5:
                p = port(n, oper=DOWN, rx_dbm=None, alias=rid)            # fiber cut
            elif n == 9:
                p = port(n, speed=100, rx_dbm=-6.0, alias=rid)            # negotiated 100M
            elif n == 13:
                p = port(n, rx_dbm=-18.2, alias=rid)                      # dirty connector
            elif n == 17:
                p = port(n, rx_dbm=-7.1, last_change=1, alias=rid)        # flapping
            specs["jxl-a"]["ports"].append(p)
            rooms.append([rid, name, "classroom", "教学楼A", floor, "jxl-a", str(n), ""])
    # 14 function rooms on jxl-b, named by ifName.
    for i, name in enumerate(FUNCTION_ROOMS, start=1):
        rid = f"F{i:02d}"
        ifname = f"GigabitEthernet0/0/{i}"
        if i == 14:  # 校史室: no link planned
            rooms.append([rid, name, "function_room", "教学楼B", "3", "", "", ""])
            continue
        p = port(i, name=ifname, rx_dbm=-5.0 - (i % 4) * 0.8, alias=rid)
        if i == 4:
            p = port(i, name=ifname, admin=DOWN, oper=DOWN, alias=rid)  # shut down by someone
        elif i == 7:
            p = port(i, name=ifname, rx_dbm=-23.4, alias=rid)           # out of range
        elif i == 10:
            p = port(i, name=ifname, oper=LOWER_LAYER_DOWN, alias=rid)  # transceiver gone
        specs["jxl-b"]["ports"].append(p)
        rooms.append([rid, name, "function_room", "教学楼B", str((i - 1) // 5 + 1), "jxl-b", ifname, ""])
    # 14 offices: 10 on xzl, 2 behind the old switch that does not answer, 2 by endpoint only.
    for i, name in enumerate(OFFICES, start=1):
        rid = f"O{i:02d}"
        if i <= 10:
            specs["xzl"]["ports"].append(port(i, speed=1000 if i != 8 else 100, alias=rid))
            rooms.append([rid, name, "office", "行政楼", str((i - 1) // 4 + 1), "xzl", str(i), ""])
        elif i <= 12:
            rooms.append([rid, name, "office", "行政楼", "4", "xzl-old", str(i - 10), ""])
        else:
            rooms.append([rid, name, "office", "行政楼", "1", "", "", f"tcp:127.0.0.1:{{endpoint_{i}}}"])
    # A few more classrooms in the annex, reached only through the endpoint (the class PC).
    for i in range(1, 11):
        rid = f"A{i:02d}"
        rooms.append([rid, f"附楼{i}班", "classroom", "附楼", "1", "", "", f"tcp:127.0.0.1:{{annex_{i}}}"])
    return rooms, specs


def write_rooms(path, rooms, fill=None):
    fill = fill or {}
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,name,type,building,floor,switch,port,endpoint\n")
        for r in rooms:
            endpoint = r[7].format(**fill) if fill else r[7]
            f.write(",".join(r[:7] + [endpoint]) + "\n")


_running = []  # simulators and sockets of this process, stopped at exit


def _stop_all():
    while _running:
        item = _running.pop()
        try:
            item.stop() if hasattr(item, "stop") else item.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def start(workdir):
    """scripts/demo entry point (tests/sim/school.py): starts the switches and endpoints,
    writes the registers into workdir and returns the [audits.fiber] TOML table."""
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    atexit.register(_stop_all)
    rooms, specs = school()
    sims = snmpsim.start_switches(workdir, specs)
    _running.extend(sims.values())
    silent = snmpsim.SilentUdp()  # xzl-old: powered off in the closet
    _running.append(silent)
    # Endpoints: the class PCs in the annex answer except two; office 13 answers, 14 does not.
    fill = {}
    for key, up in [("endpoint_13", True), ("endpoint_14", False)] + [(f"annex_{i}", i not in (3, 8)) for i in range(1, 11)]:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        if up:
            s.listen(16)
        fill[key] = s.getsockname()[1]
        _running.append(s)  # a bound socket that does not listen refuses connections
    write_rooms(os.path.join(workdir, "rooms.csv"), rooms, fill)
    with open(os.path.join(workdir, "switches.csv"), "w") as f:
        f.write("id,address,profile\n")
        f.write(f"jxl-a,127.0.0.1:{sims['jxl-a'].port},h3c\n")
        f.write(f"jxl-b,127.0.0.1:{sims['jxl-b'].port},huawei\n")
        f.write(f"xzl,127.0.0.1:{sims['xzl'].port},generic\n")
        f.write(f"xzl-old,127.0.0.1:{silent.port},generic\n")
    community = os.path.join(workdir, "fiber-community")
    with open(community, "w") as f:
        f.write("public\n")
    os.chmod(community, 0o600)
    table = f"""[audits.fiber]
enabled = true
interval = "1m"
first_delay = "1s"
timeout = "30s"
rooms = "{workdir}/rooms.csv"
switches = "{workdir}/switches.csv"
community_file = "{community}"
snmp_timeout = "1s"
snmp_retries = 1
endpoint_timeout = "1s"
"""
    with open(os.path.join(workdir, "fiber.toml"), "w") as f:
        f.write(table)
    return table


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--rooms-only":
        # The static copy in config/demo/fiber/ shows the class PCs' port as 3389 (RDP).
        keys = [f"endpoint_{i}" for i in (13, 14)] + [f"annex_{i}" for i in range(1, 11)]
        write_rooms(sys.argv[2], school()[0], {k: 3389 for k in keys})
        return 0
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    start(sys.argv[1])
    print(json.dumps({"ready": True, "toml": os.path.join(os.path.abspath(sys.argv[1]), "fiber.toml")}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    _stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
