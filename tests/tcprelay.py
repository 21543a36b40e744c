"""A TCP relay in front of the test PostgreSQL that can lose one message, or its answer.

Why a relay and not a mock: the ledger's promise is about what a real server did with a COMMIT
whose answer never came back. Only a real server, with the real connection cut at that moment,
shows it: the relay passes bytes both ways, and when armed it cuts the first connection whose
client sends ``marker`` (psycopg sends COMMIT as a simple query), either before the server sees
it (``before``: nothing was committed) or just after (``after``: the server committed, the
answer is lost).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Literal


class Relay:
    """Listens on a free loopback port (``port``) and relays to ``127.0.0.1:target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._armed: tuple[bytes, str] | None = None
        self._lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, marker: bytes, when: Literal["before", "after"]) -> None:
        """Cut the next connection that sends ``marker``, ``before`` or ``after`` relaying it."""
        with self._lock:
            self._armed = (marker, when)

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                cut = self._cut(data) if from_client else None
                if cut == "before":
                    break
                if cut == "after":  # the client hears nothing more; the server gets the message
                    src.shutdown(socket.SHUT_RDWR)
                    dst.sendall(data)
                    time.sleep(0.3)  # the server commits and answers into a closed connection
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _cut(self, data: bytes) -> str | None:
        with self._lock:
            if self._armed is None or self._armed[0] not in data:
                return None
            when, self._armed = self._armed[1], None
            self.cuts += 1
            return when
