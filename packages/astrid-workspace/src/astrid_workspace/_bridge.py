"""The bridge inside a sandbox: 127.0.0.1:PORT in the sandbox's own network namespace, each
accepted connection handed to the egress proxy over its unix socket (bind-mounted in) with
SCM_RIGHTS — the proxy serves and relays the socket itself. Standard library only. (`relay`
here is the proxy's kernel-side relay.)

The sandbox has no route out; this loopback port is the one door, and the proxy behind it
decides for every connection. The bridge is forked by the launcher before Landlock and seccomp
apply (it must reach the socket) and detached, so it ends with the sandbox's pid namespace.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

__all__ = ["start_bridge", "relay"]

_CHUNK = 1024 * 1024
HANDOVER = b"\x00"  # the proxy's marker: the client's socket comes with this byte


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes, then close both."""

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            _splice_all(src, dst)
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)

    back = threading.Thread(target=pump, args=(b, a), daemon=True)
    back.start()
    pump(a, b)
    back.join()
    a.close()
    b.close()


def _splice_all(src: socket.socket, dst: socket.socket) -> None:
    """Move bytes kernel-side (socket -> pipe -> socket) until `src` ends; copy if splice is
    unavailable. The bridge sits on every byte a command downloads: no Python copies."""
    splice = getattr(os, "splice", None)
    if splice is None:
        buffer = memoryview(bytearray(_CHUNK))
        while n := src.recv_into(buffer):
            dst.sendall(buffer[:n])
        return
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # a larger pipe: fewer, bigger moves
        import fcntl

        fcntl.fcntl(write_end, 1031, _CHUNK)  # F_SETPIPE_SZ
    try:
        while moved := splice(src.fileno(), write_end, _CHUNK):
            while moved:
                moved -= splice(read_end, dst.fileno(), moved)
    finally:
        os.close(read_end)
        os.close(write_end)


def _serve(listener: socket.socket, socket_path: str) -> None:
    while True:
        client, _ = listener.accept()
        # No relay here: the accepted socket itself goes to the proxy (one byte HANDOVER
        # with it, SCM_RIGHTS), which relays it; every byte crosses one relay, not two.
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with client, upstream, contextlib.suppress(OSError):
            upstream.connect(socket_path)
            socket.send_fds(upstream, [HANDOVER], [client.fileno()])


def start_bridge(port: int, socket_path: str) -> None:
    """Listen now (the command may connect at once), serve from a detached grandchild."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        listener.close()
        return
    try:
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # never hold the command's output pipe open
        _serve(listener, socket_path)
    finally:
        os._exit(0)
