"""A fault-injecting HTTP proxy in front of a real registry: it exists only to inject faults. It forwards
everything (streamed) except what a rule answers itself: a status (a 500 for the second PATCH, a 400 for a blob
PUT, a 429 or 503 with a Retry-After), a dropped connection, a request read and never answered (`hold`), or a
response cut off mid-body with the connection held open (`stall_after`). Held connections stay open until the
proxy stops. Loopback only."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.loopback import LoopbackHTTPServer


@dataclass(frozen=True)
class Fault:
    """What to do instead of forwarding: answer `status` (0: drop the connection) with `headers`; `hold`: read
    the request, answer nothing, keep the connection open; `stall_after`: forward, but send only that many bytes
    of the registry's response body, then keep the connection open."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False
    stall_after: int | None = None


# (method, path with query, how many requests of that method came before) -> a status to answer (0: drop the
# connection), a Fault, or None to forward
Rule = Callable[[str, str, int], "int | Fault | None"]
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
HELD, STALLED = -1, -2  # the status `seen` records for a held request and a stalled response


@dataclass
class FaultProxy:
    upstream: str  # host:port of the registry
    rule: Rule = field(default=lambda method, path, n: None)
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status sent)
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)  # (time.monotonic(), method, path)
    corrupt_uploads: bool = False  # flip one bit in every forwarded PATCH/PUT body buffer
    tamper_manifests: bool = False  # serve manifests with their last byte changed (same length)

    def __post_init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()  # set on stop: held connections close
        self._http = LoopbackHTTPServer(self._handler(), name="fault-proxy")

    @property
    def host(self) -> str:
        return self._http.host

    def start(self) -> FaultProxy:
        self._http.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._http.stop()

    def _hold(self) -> None:
        """Keep the connection open, sending nothing, until the proxy stops (at most a minute)."""
        self._release.wait(60)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _drain(self) -> None:
                left = int(self.headers.get("Content-Length") or 0)
                while left:
                    left -= len(self.rfile.read(min(left, 1 << 20)))

            def _handle(self) -> None:
                with proxy._lock:
                    count = proxy._counts.get(self.command, 0)
                    proxy._counts[self.command] = count + 1
                    proxy.arrivals.append((time.monotonic(), self.command, self.path))
                answer = proxy.rule(self.command, self.path, count)
                fault = Fault(status=answer) if isinstance(answer, int) else answer
                if fault is not None and fault.hold:
                    self._drain()
                    proxy.seen.append((self.command, self.path, HELD))
                    proxy._hold()
                    self.close_connection = True
                    return
                if fault is not None and fault.status is not None:
                    status = fault.status
                    self._drain()
                    body = (
                        b'{"errors":[{"code":"INJECTED","message":"fault injected by the test proxy"}]}'
                        if status != 0
                        else b""
                    )
                    if status == 0:  # drop the connection without an answer
                        proxy.seen.append((self.command, self.path, 0))
                        self.close_connection = True
                        return
                    proxy.seen.append((self.command, self.path, status))  # before the client has it
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in fault.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                    return
                stall_after = fault.stall_after if fault is not None else None
                conn = http.client.HTTPConnection(proxy.upstream, timeout=120)
                length = int(self.headers.get("Content-Length") or 0)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP:
                        conn.putheader(name, value)
                conn.endheaders()
                left = length
                while left:
                    piece = self.rfile.read(min(left, 1 << 20))
                    if not piece:
                        break
                    if proxy.corrupt_uploads and self.command in ("PATCH", "PUT") and "/blobs/" in self.path:
                        piece = bytes([piece[0] ^ 1]) + piece[1:]
                    conn.send(piece)
                    left -= len(piece)
                response = conn.getresponse()
                if (
                    response.getheader("Content-Length") is None
                    and self.command != "HEAD"
                    and response.status not in (204, 304)
                ):
                    self.close_connection = True  # the body ends when the connection does
                if stall_after is None:
                    # Recorded before the client can have the answer: a test reading `seen` right after its
                    # request returns sees it (appending after the write raced with the client).
                    proxy.seen.append((self.command, self.path, response.status))
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP:
                        self.send_header(name, value)
                self.end_headers()
                if self.command == "GET" and proxy.tamper_manifests and "/manifests/" in self.path:
                    body = response.read()
                    self.wfile.write(body[:-1] + (b" " if body[-1:] != b" " else b"\n"))
                elif stall_after is not None:
                    self.wfile.write(response.read()[:stall_after])
                    self.wfile.flush()
                    conn.close()
                    proxy.seen.append((self.command, self.path, STALLED))
                    proxy._hold()
                    self.close_connection = True
                    return
                elif self.command != "HEAD":
                    while piece := response.read(1 << 20):
                        self.wfile.write(piece)
                conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler
