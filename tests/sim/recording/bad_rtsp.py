#!/usr/bin/python3
"""Misbehaving RTSP servers on 127.0.0.1, one port per behaviour, for the bad-input tests.

  silent       accepts the connection and never answers
  garbage      answers every request with bytes that are not RTSP
  close-mid    sends half a DESCRIBE reply (header says 400 bytes of SDP, 20 arrive) and closes
  unauthorized answers 401 with a Digest challenge forever, whatever credentials come
  huge-sdp     answers DESCRIBE with a 5 MB SDP (Content-Length and all)
  wrong-cseq   answers with a CSeq that is not the request's
  slow-drip    a valid reply, one byte every 0.5 s (never finishes within a probe timeout)
  udp-only     a working camera that answers SETUP for RTP/AVP/TCP interleaved with
               "461 Unsupported transport", and sends RTP over UDP to the client_port of a
               UDP SETUP after PLAY
  udp-silent   the same, but no RTP ever arrives after PLAY
  no-cseq      replies carry no CSeq header; DESCRIBE answers "404 Not Found"
  odd-headers  a working camera (TCP interleaved) whose replies have lower- and upper-case
               header names, a status line without a reason phrase, a header line without a
               colon, "Session:  ABCD ; timeout=60" and an SDP with bare LF line ends

Usage: bad_rtsp.py MODE [MODE...]; prints "READY mode=port ..." once all listen."""
import asyncio
import socket
import sys

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bad\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
       "a=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n")


async def read_request(reader):
    """One RTSP request: returns (method, cseq) or None at EOF."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method = lines[0].split(" ")[0]
    cseq = "0"
    for line in lines[1:]:
        if line.lower().startswith("cseq:"):
            cseq = line.split(":", 1)[1].strip()
    return method, cseq


async def read_full_request(reader):
    """One RTSP request: (method, {lower-case header: value})."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return lines[0].split(" ")[0], fields


RTP_PACKET = bytes([0x80, 96, 0, 1, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]) + bytes([0x65]) + b"\x00" * 40


async def send_rtp_over_udp(host, port, seconds=3.0):
    """RTP packets (version 2, PT 96) to the client's RTP port, 20 a second."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        for _ in range(int(seconds * 20)):
            sock.sendto(RTP_PACKET, (host, port))
            await asyncio.sleep(0.05)
    finally:
        sock.close()


async def handle_udp_camera(mode, reader, writer):
    """udp-only / udp-silent: TCP interleaved refused with 461, RTP over UDP accepted."""
    client_port = None
    peer = writer.get_extra_info("peername")[0]
    while True:
        try:
            method, fields = await read_full_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        cseq = fields.get("cseq", "0")
        transport = fields.get("transport", "")
        if method == "OPTIONS":
            writer.write(reply(cseq, headers="Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"))
        elif method == "DESCRIBE":
            writer.write(reply(cseq, headers="Content-Type: application/sdp\r\n", body=SDP))
        elif method == "SETUP" and "interleaved" in transport:
            writer.write(reply(cseq, "461 Unsupported transport"))
        elif method == "SETUP" and "client_port=" in transport:
            client_port = int(transport.split("client_port=")[1].split("-")[0].split(";")[0])
            writer.write(reply(cseq, headers=f"Transport: {transport};server_port=30000-30001\r\n"
                                             "Session: 4A3B2C1D;timeout=60\r\n"))
        elif method == "PLAY":
            writer.write(reply(cseq, headers="Session: 4A3B2C1D\r\nRange: npt=0.000-\r\n"))
            if mode == "udp-only" and client_port:
                asyncio.ensure_future(send_rtp_over_udp(peer, client_port))
        else:
            writer.write(reply(cseq))
        await writer.drain()


async def handle_odd_headers(reader, writer):
    """A working camera whose replies are spelled oddly but mean the usual things."""
    sdp = SDP.replace("\r\n", "\n")
    while True:
        try:
            method, fields = await read_full_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        cseq = fields.get("cseq", "0")
        if method == "OPTIONS":
            msg = f"RTSP/1.0 200\r\ncseq: {cseq}\r\nPUBLIC:OPTIONS, DESCRIBE, SETUP, PLAY\r\nX-Junk-Line-Without-Colon\r\n\r\n"
        elif method == "DESCRIBE":
            msg = (f"RTSP/1.0 200 OK\r\nCONTENT-TYPE: application/sdp\r\ncontent-length: {len(sdp)}\r\n"
                   f"Cseq:{cseq}\r\n\r\n{sdp}")
        elif method == "SETUP":
            msg = (f"RTSP/1.0 200 OK\r\nCSEQ: {cseq}\r\ntransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                   "session:  ABCD ; timeout=60\r\n\r\n")
        elif method == "PLAY":
            if fields.get("session") != "ABCD":
                msg = f"RTSP/1.0 454 Session Not Found\r\nCSeq: {cseq}\r\n\r\n"
            else:
                msg = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n"
                writer.write(msg.encode())
                msg = None
                writer.write(b"$\x00" + len(RTP_PACKET).to_bytes(2, "big") + RTP_PACKET)
        else:
            msg = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n"
        if msg:
            writer.write(msg.encode())
        await writer.drain()


def reply(cseq, status="200 OK", headers="", body=""):
    return (f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


async def handle(mode, reader, writer):
    try:
        if mode in ("udp-only", "udp-silent"):
            return await handle_udp_camera(mode, reader, writer)
        if mode == "odd-headers":
            return await handle_odd_headers(reader, writer)
        while True:
            try:
                method, cseq = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if mode == "silent":
                await asyncio.sleep(3600)
            elif mode == "garbage":
                writer.write(b"\x16\x03\x01 this is not rtsp at all \xff\xfe\r\n\r\n")
            elif mode == "close-mid":
                if method == "DESCRIBE":
                    writer.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                                 f"Content-Length: 400\r\n\r\n{SDP[:20]}".encode())
                    await writer.drain()
                    writer.close()
                    return
                writer.write(reply(cseq, headers="Public: OPTIONS, DESCRIBE\r\n"))
            elif mode == "unauthorized":
                writer.write(reply(cseq, "401 Unauthorized",
                                   'WWW-Authenticate: Digest realm="bad", nonce="0123456789abcdef"\r\n'))
            elif mode == "huge-sdp":
                if method == "DESCRIBE":
                    body = SDP + ("a=x-padding:" + "x" * 990 + "\r\n") * 5000
                    writer.write(reply(cseq, headers="Content-Type: application/sdp\r\n", body=body))
                else:
                    writer.write(reply(cseq, headers="Public: OPTIONS, DESCRIBE\r\n"))
            elif mode == "wrong-cseq":
                writer.write(reply(str(int(cseq) + 7), headers="Public: OPTIONS, DESCRIBE\r\n"))
            elif mode == "no-cseq":
                status = "404 Not Found" if method == "DESCRIBE" else "200 OK"
                writer.write(f"RTSP/1.0 {status}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n".encode())
            elif mode == "slow-drip":
                for b in reply(cseq, headers="Public: OPTIONS, DESCRIBE\r\n"):
                    writer.write(bytes([b]))
                    await writer.drain()
                    await asyncio.sleep(0.5)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(modes):
    servers, ports = [], []
    for mode in modes:
        srv = await asyncio.start_server(lambda r, w, m=mode: handle(m, r, w), "127.0.0.1", 0)
        servers.append(srv)
        ports.append(f"{mode}={srv.sockets[0].getsockname()[1]}")
    print("READY", " ".join(ports), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["silent"]))
