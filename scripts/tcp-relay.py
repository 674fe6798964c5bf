#!/usr/bin/env python3
"""One guest connection to a host service, for qemu's user-mode `guestfwd=...-cmd:` (scripts/pi-vm.sh with
PI_VM_BROKER): qemu runs this once per connection the guest opens, with the connection on stdin/stdout;
it connects to HOST:PORT and copies bytes both ways until either side closes. Standard library only.

    python3 scripts/tcp-relay.py 127.0.0.1 1883
"""

import os
import selectors
import socket
import sys


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        print(f"tcp-relay: cannot connect to {host}:{port}: {e}", file=sys.stderr)
        return 1
    sock.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "guest")
    sel.register(sock, selectors.EVENT_READ, "host")
    while True:
        for key, _ in sel.select():
            if key.data == "guest":
                data = os.read(0, 65536)
                if not data:
                    sock.close()
                    return 0
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return 0
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view):]


if __name__ == "__main__":
    sys.exit(main())
