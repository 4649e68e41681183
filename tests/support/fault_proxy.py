"""A fault-injecting HTTP proxy in front of a real registry: forwards everything (streamed) except what a rule
answers itself, e.g. a 500 for the second PATCH or a 400 for a blob PUT. Loopback only."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.loopback import LoopbackHTTPServer

# (method, path with query, how many requests of that method came before) -> status to answer, or None to forward
Rule = Callable[[str, str, int], "int | None"]
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class FaultProxy:
    upstream: str  # host:port of the registry
    rule: Rule = field(default=lambda method, path, n: None)
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status sent)
    corrupt_uploads: bool = False  # flip one bit in every forwarded PATCH/PUT body buffer
    tamper_manifests: bool = False  # serve manifests with their last byte changed (same length)

    def __post_init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._http = LoopbackHTTPServer(self._handler(), name="fault-proxy")

    @property
    def host(self) -> str:
        return self._http.host

    def start(self) -> FaultProxy:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

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
                status = proxy.rule(self.command, self.path, count)
                if status is not None:
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
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    proxy.seen.append((self.command, self.path, status))
                    return
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
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP:
                        self.send_header(name, value)
                self.end_headers()
                if self.command == "GET" and proxy.tamper_manifests and "/manifests/" in self.path:
                    body = response.read()
                    self.wfile.write(body[:-1] + (b" " if body[-1:] != b" " else b"\n"))
                elif self.command != "HEAD":
                    while piece := response.read(1 << 20):
                        self.wfile.write(piece)
                conn.close()
                proxy.seen.append((self.command, self.path, response.status))

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler
