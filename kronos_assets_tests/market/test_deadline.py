"""The request deadline ends a request however the server stalls: silent, trickling headers, trickling body."""

from __future__ import annotations

import re
import socket
import threading
import time

import ccxt
import pytest
import requests

from kronos_assets.market.deadline import DeadlineAdapter

pytestmark = pytest.mark.timeout(120)  # a regression that hangs fails instead of stalling the suite
# Upper bounds on how long a stalled request takes: far below the 10 s per-read timeout the client asks for (so
# only the deadline can have ended it), far above the deadline itself (a machine at load 15 runs threads late).
LATE_S = 4.0


class StallingServer:
    """Accepts connections on 127.0.0.1 and answers each with ``script(conn, stop)`` until closed."""

    def __init__(self, script):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.script = script
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/api"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self.script(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sock.close()
        self.thread.join(2)


def silent(conn, stop):
    stop.wait(30)


def trickled_headers(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.05):
        conn.sendall(b"X-Slow: y\r\n")  # a new header line every 50 ms, never the blank line


def trickled_body(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while not stop.wait(0.05):
        conn.sendall(b" ")


def trickled_body_without_length(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[")
    while not stop.wait(0.05):
        conn.sendall(b" ")


@pytest.mark.parametrize("script", [silent, trickled_headers, trickled_body, trickled_body_without_length])
def test_every_request_ends_at_its_deadline(script):
    session = requests.Session()
    adapter = DeadlineAdapter(0.5)
    session.mount("http://", adapter)
    with StallingServer(script) as server:
        t0 = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout, match=r"GET http://127.0.0.1:\d+/api: no complete answer within 0.5s"):
            session.get(server.url, timeout=10)  # the per-read timeout alone would never end these
        took = time.monotonic() - t0
    assert 0.45 < took < 0.5 + LATE_S


def test_the_fetch_deadline_caps_each_request():
    session = requests.Session()
    adapter = DeadlineAdapter(30)
    session.mount("http://", adapter)
    with StallingServer(trickled_body) as server:
        t0 = time.monotonic()
        adapter.cap = t0 + 1.0
        with pytest.raises(ccxt.RequestTimeout, match=r"no complete answer within ([\d.]+)s") as info:
            session.get(server.url, timeout=10)
        assert time.monotonic() - t0 < 1.0 + LATE_S
        budget = float(re.search(r"within ([\d.]+)s", str(info.value)).group(1))
        assert 0 < budget <= 1.0  # the cap's remainder, not the adapter's 30 s
        with pytest.raises(ccxt.RequestTimeout, match="not sent, the fetch deadline has passed"):
            session.get(server.url, timeout=10)


def test_a_prompt_answer_is_untouched():
    def prompt(conn, stop):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]")

    session = requests.Session()
    session.mount("http://", DeadlineAdapter(0.5 + LATE_S))  # prompt, even on a machine at load 15
    with StallingServer(prompt) as server:
        for _ in range(3):
            assert session.get(server.url, timeout=10).json() == []
