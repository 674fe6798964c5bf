"""A real RTSP server for the tests: GStreamer's gst-rtsp-server (Debian gir1.2-gst-rtsp-server-1.0) serving
a folder of JPEG frames as an MJPEG/RTP stream on 127.0.0.1. Run with the SYSTEM python3 (python3-gi):

    /usr/bin/python3 tests/device/rtsp_server.py --port 8554 --frames DIR [--fps 15] [--protocols tcp|udp|any]
        [--user U --password P]

Prints "READY rtsp://127.0.0.1:PORT/cam" once it listens; stops on SIGTERM/SIGKILL or after --max-seconds.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--frames", required=True, help="folder of 000.jpg, 001.jpg, ...")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--protocols", choices=["tcp", "udp", "any"], default="any")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--max-seconds", type=float, default=600)
    a = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( multifilesrc location={a.frames}/%03d.jpg loop=true caps=image/jpeg,framerate={a.fps}/1 ! jpegdec "
        f"! videoconvert ! videoscale ! video/x-raw,width={a.size},height={a.size} ! jpegenc quality=95 "
        "! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(True)
    lower = {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP,
             "any": GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP}[a.protocols]
    factory.set_protocols(lower)
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        perms.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(perms)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{a.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.timeout_add(int(a.max_seconds * 1000), loop.quit)
    print(f"READY rtsp://127.0.0.1:{a.port}/cam", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
