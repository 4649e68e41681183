"""A git remote over smart HTTP: the real `git http-backend` CGI behind a tiny threaded server on 127.0.0.1.

Every request must carry HTTP basic auth whose password is the token; the server records each
request line and header set so a test can prove the token never travelled in a URL.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.support.loopback import LoopbackHTTPServer
from tests.support.tools import require_tool


def _http_backend() -> str:
    git = require_tool("git")
    exec_path = subprocess.run(
        [git, "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    if not backend.is_file():
        raise AssertionError(f"git-http-backend not found in {exec_path}")
    return str(backend)


@dataclass
class GitHttpServer:
    """Serves the bare repositories under `project_root` at http://127.0.0.1:PORT/<name>.git."""

    project_root: Path
    username: str
    token: str
    requests: list[str] = field(default_factory=list)  # "METHOD path?query" of every request
    rejected: int = 0  # requests refused for missing/wrong credentials
    fail_next: int = 0  # answer this many upcoming authorized requests with 503 (a flaky remote)
    read_only: bool = False  # the token may fetch but not push: receive-pack requests get 403
    denied_pushes: int = 0  # receive-pack requests refused because of `read_only`
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _http: LoopbackHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._http is not None, "start() first"
        return self._http.url

    def start(self) -> GitHttpServer:
        backend = _http_backend()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return False
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user == owner.username and password == owner.token

            def _handle(self) -> None:
                owner.requests.append(f"{self.command} {self.path}")
                if not self._authorized():
                    owner.rejected += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if owner.read_only and "git-receive-pack" in self.path:
                    owner.denied_pushes += 1
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with owner._lock:
                    failing = owner.fail_next > 0
                    owner.fail_next -= 1 if failing else 0
                if failing:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    body = b"".join(chunks)
                elif self.headers.get("Content-Length"):
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(owner.project_root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_CONFIG_GLOBAL": os.devnull,
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": owner.username,  # receive-pack is enabled for authenticated users only
                    "REMOTE_ADDR": "127.0.0.1",
                    "GATEWAY_INTERFACE": "CGI/1.1",
                    "SERVER_PROTOCOL": "HTTP/1.0",
                }
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                proc = subprocess.run([backend], input=body, capture_output=True, env=env, check=False)
                head, _, payload = proc.stdout.partition(b"\r\n\r\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _handle
            do_POST = _handle

        self._http = LoopbackHTTPServer(Handler, name="git-http").start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None
