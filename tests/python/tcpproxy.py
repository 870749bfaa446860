"""A TCP proxy the tests can cut and restore: a stand-in for a database or Redis that goes
away (every open connection reset, new ones refused) and comes back on the same port; or that
stalls (bytes held back until `unstall`), a stand-in for a slow one."""

from __future__ import annotations

import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.stalled = threading.Event()
        # Reserve a port for the proxy's whole life: while cut, it is bound but not listening,
        # so connections are refused and no other process can take it.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._up = False
        self._acceptor: threading.Thread | None = None
        self.restore()

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        with self._lock:
            if self._up:
                return
            self._up = True
            self._sock = self._fresh_listener()
            self._acceptor = threading.Thread(target=self._accept, args=(self._sock,), daemon=True)
            self._acceptor.start()

    def _fresh_listener(self) -> socket.socket:
        s = self._sock
        try:
            s.listen(64)
        except OSError:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.port))
            s.listen(64)
        return s

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until `restore()`."""
        with self._lock:
            if not self._up:
                return
            self._up = False
            listener = self._sock
            conns, self._conns = self._conns, []
        # Closing a listening socket unblocks accept(); rebind without listening to refuse.
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        for c in conns:
            _reset(c)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        self._sock = s

    def close(self) -> None:
        self.cut()
        self._sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if not self._up:
                    _reset(client)
                    _reset(upstream)
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b, self.stalled), daemon=True).start()

    def stall(self) -> None:
        """Hold every byte back (connections stay open) until `unstall()`."""
        self.stalled.set()

    def unstall(self) -> None:
        self.stalled.clear()


def _pump(src: socket.socket, dst: socket.socket, stalled: threading.Event) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            while stalled.is_set():
                time.sleep(0.01)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _reset(s: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), like a server that died."""
    import struct

    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
