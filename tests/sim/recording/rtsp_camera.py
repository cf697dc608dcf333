#!/usr/bin/python3
"""A real RTSP server (GStreamer's gst-rtsp-server) standing in for classroom cameras.

Each --mount NAME[=KIND] serves a live test stream on rtsp://127.0.0.1:PORT/NAME:
  KIND video (default): videotestsrc ! x264enc ! rtph264pay (H.264, 320x240, 10 fps)
  KIND audio: an audio-only stream (no m=video: the audit must say so)
--digest USER:PASS (or --basic USER:PASS) protects every mount. Prints "READY <port>" once
listening. Run by /usr/bin/python3 (Debian's, with python3-gi)."""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VIDEO = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 "
         "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=256 "
         "! rtph264pay name=pay0 pt=96 config-interval=1 )")
AUDIO = "( audiotestsrc is-live=true ! audioconvert ! audio/x-raw,rate=8000,channels=1 ! rtpL16pay name=pay0 pt=97 )"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mount", action="append", default=[], help="NAME[=video|audio]")
    ap.add_argument("--digest", help="USER:PASS: require Digest authentication")
    ap.add_argument("--basic", help="USER:PASS: require Basic authentication")
    ap.add_argument("--lifetime", type=float, default=3600, help="exit after this many seconds")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.set_backlog(1024)
    mounts = server.get_mount_points()
    creds = args.digest or args.basic
    if creds:
        user, _, password = creds.partition(":")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "camera-user")
        if args.digest:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(user, password, token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
    for spec in args.mount or ["cam"]:
        name, _, kind = spec.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(AUDIO if kind == "audio" else VIDEO)
        factory.set_shared(True)  # one encoder per mount, however many clients describe it
        if creds:
            perms = GstRtspServer.RTSPPermissions()
            perms.add_permission_for_role("camera-user", "media.factory.access", True)
            perms.add_permission_for_role("camera-user", "media.factory.construct", True)
            factory.set_permissions(perms)
        mounts.add_factory("/" + name, factory)
    if server.attach(None) == 0:
        print("cannot listen on port", args.port, file=sys.stderr, flush=True)
        sys.exit(1)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    GLib.timeout_add_seconds(int(args.lifetime), loop.quit)
    print("READY", server.get_bound_port(), flush=True)
    loop.run()


if __name__ == "__main__":
    main()
