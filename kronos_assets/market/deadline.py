"""A wall-clock deadline for every HTTP request of a ccxt client: connect, headers and body together.

requests' ``timeout`` bounds each socket operation, not a request: a server that trickles its body a byte at a
time keeps one request alive for ever. ``DeadlineAdapter`` reads the whole body inside ``send`` while a timer
watches the clock; at the deadline the timer shuts the socket down, which ends any blocked read at once, and
the request raises ``ccxt.RequestTimeout`` (a transient fault: retried, then handed to the next exchange).

Only direct connections are watched (each socket is registered as its request starts); a proxied request is
still bounded per socket operation by the client's timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import ccxt
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()  # the watch of the request this thread is sending


class _Watch:
    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.expired = False
        self._lock = threading.Lock()

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self.socks.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self.socks)
        for sock in socks:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # a blocked recv returns at once; the socket object stays valid
    except OSError:
        pass


class _Registering:
    """Mixin: a connection that gives the current watch its socket: a reused one as a request starts, a new one
    as soon as it is connected. The socket itself is kept: http.client drops ``conn.sock`` when an answer will
    close the connection, while its body is still being read from that socket."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(_local, "watch", None)
        if watch is not None:
            watch.add(getattr(self, "sock", None))
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        watch = getattr(_local, "watch", None)
        if watch is not None:
            watch.add(getattr(self, "sock", None))


class _HTTPConnection(_Registering, HTTPConnection):
    pass


class _HTTPSConnection(_Registering, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """Requests through this adapter end within ``deadline_s`` seconds, and by ``cap`` (a ``time.monotonic``
    instant, e.g. the end of the whole fetch) when one is set."""

    def __init__(self, deadline_s: float, **kwargs: Any):
        if deadline_s <= 0:
            raise ValueError("request deadline must be positive")
        self.deadline_s = deadline_s
        self.cap: float | None = None
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def send(
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> requests.Response:
        budget = self.deadline_s if self.cap is None else min(self.deadline_s, self.cap - time.monotonic())
        what = f"{request.method} {request.url}"
        if budget <= 0:
            raise ccxt.RequestTimeout(f"{what}: not sent, the fetch deadline has passed")
        per_read = budget if not isinstance(timeout, (int, float)) else min(float(timeout), budget)
        deadline = time.monotonic() + budget
        watch = _Watch()
        timer = threading.Timer(budget, watch.expire)
        timer.daemon = True
        _local.watch = watch
        timer.start()
        try:
            try:
                response = super().send(request, stream=True, timeout=per_read, **kwargs)
                try:
                    response.content  # the whole body, under the watch  # noqa: B018
                except BaseException:
                    response.close()
                    raise
            except requests.RequestException as exc:
                # The per-read timeout equals the budget, so a silent server's read may time out just before the
                # timer fires (a busy machine runs the timer late): past the deadline it is the deadline either way.
                if watch.expired or time.monotonic() >= deadline:
                    raise ccxt.RequestTimeout(f"{what}: no complete answer within {budget:g}s") from exc
                raise
            if watch.expired:  # the shutdown may have ended a body without Content-Length early
                response.close()
                raise ccxt.RequestTimeout(f"{what}: no complete answer within {budget:g}s")
            return response
        finally:
            timer.cancel()
            _local.watch = None


def install(client: Any, deadline_s: float) -> DeadlineAdapter:
    """Mount a DeadlineAdapter on a ccxt client's requests session (http and https) and return it."""
    adapter = DeadlineAdapter(deadline_s)
    client.session.mount("http://", adapter)
    client.session.mount("https://", adapter)
    return adapter
