#!/usr/bin/python3
"""Misbehaving RTSP servers on 127.0.0.1, one port per behaviour, for the bad-input tests.

  silent       accepts the connection and never answers
  garbage      answers every request with bytes that are not RTSP
  close-mid    sends half a DESCRIBE reply (header says 400 bytes of SDP, 20 arrive) and closes
  unauthorized answers 401 with a Digest challenge forever, whatever credentials come
  huge-sdp     answers DESCRIBE with a 5 MB SDP (Content-Length and all)
  wrong-cseq   answers with a CSeq that is not the request's
  slow-drip    a valid reply, one byte every 0.5 s (never finishes within a probe timeout)

Usage: bad_rtsp.py MODE [MODE...]; prints "READY mode=port ..." once all listen."""
import asyncio
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


def reply(cseq, status="200 OK", headers="", body=""):
    return (f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


async def handle(mode, reader, writer):
    try:
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
