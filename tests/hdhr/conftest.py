"""Shared fixtures for the HDHomeRun tests: a simulator on loopback and a tiny scripted
TCP server that sends hand-written bytes.  Everything binds 127.0.0.1 (or ::1), port 0."""

from __future__ import annotations

import socket
import threading
from typing import Callable, Iterator

import pytest

from otel_bare_metal.hdhr.simulator import Simulator


Script = Callable[[socket.socket, threading.Event], None]


class ScriptedServer:
    """Accepts TCP connections on 127.0.0.1 and runs ``script(conn, stop)`` for each."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stop = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.05)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._loop, daemon=True)
        self._accept.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            conn.settimeout(5)
            self._conns.append(conn)
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.script(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self._accept.join(2)
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2)
        self.listener.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator("127.0.0.1", 0, tuners=4).start()
    try:
        yield simulator
    finally:
        simulator.stop()
