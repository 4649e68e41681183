"""A loopback stand-in for the Hugging Face Hub (tests must not reach the internet), and a fault injector.

It serves the small part of the hub's HTTP API that huggingface_hub's `HfApi.model_info` and
`hf_hub_download` use: model info with file metadata at a revision (a branch resolves to its
commit), and `resolve/<commit>/<path>` downloads with the X-Repo-Commit/ETag headers (and `Range`, so a
download resumes as against the hub). It records the Authorization headers it sees, and can serve wrong
bytes for a file to test verification. It also injects faults (`HubFault`, `HubServer.faults`): an HTTP
status with headers (a 500, a 429 with Retry-After), a body that is not JSON, a download dropped or stalled
(connection held open) mid-body. For a hub that refuses connections, `stop()` it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.loopback import LoopbackHTTPServer


@dataclass
class HubRepo:
    repo: str
    commit: str
    files: dict[str, bytes]
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit
    lfs_suffixes: tuple[str, ...] = (".safetensors", ".bin")
    private_token: str | None = None  # when set, requests without this bearer token get 401

    def is_lfs(self, path: str) -> bool:
        return path.endswith(self.lfs_suffixes)


@dataclass
class HubFault:
    """A fault to inject on `route` ("info": the model-info API; "head": a file's metadata HEAD; "get": a file
    download), for file `path` (None: any), `times` times (None: every time).

    `kind`: "status" answers `status` with `headers`; "not-json" answers 200 with an HTML page; "drop" sends
    the file up to byte `after` then closes the connection; "stall" sends it up to byte `after` then holds the
    connection open, silent, until the stand-in stops. (A resumed download that starts at or past `after`
    gets no byte before the drop or the stall.)"""

    route: str
    kind: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0
    times: int | None = 1
    path: str | None = None


_RANGE = re.compile(r"^bytes=(\d+)-$")


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.authorizations: list[str | None] = []
        self.downloads: list[str] = []
        self.corrupt: set[str] = set()
        self.faults: list[HubFault] = []
        self.injected: list[tuple[str, str, str | None]] = []  # (route, kind, path) of every fault injected
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._http = LoopbackHTTPServer(self._handler(), name="hf-hub")

    def fault(self, route: str, path: str | None = None) -> HubFault | None:
        """The fault to inject now on `route` (for `path`), if any; counts it."""
        with self._lock:
            for fault in self.faults:
                if fault.route == route and fault.path in (None, path) and fault.times != 0:
                    if fault.times is not None:
                        fault.times -= 1
                    self.injected.append((route, fault.kind, path))
                    return fault
        return None

    @property
    def endpoint(self) -> str:
        return self._http.url

    def add(self, repo: HubRepo) -> HubRepo:
        self.repos[repo.repo] = repo
        return repo

    def start(self) -> HubServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._http.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(
                self, status: int, body: bytes, headers: dict[str, str], with_body: bool = True
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def _inject_status(self, fault: HubFault) -> None:
                if fault.kind == "not-json":
                    self._send(
                        200, b"<html><body>Sign in to the Wi-Fi</body></html>", {"Content-Type": "text/html"}
                    )
                else:
                    body = json.dumps({"error": "fault injected by the test hub"}).encode()
                    self._send(fault.status, body, {"Content-Type": "application/json", **fault.headers})

            def _error(self, status: int, code: str, message: str) -> None:
                body = json.dumps({"error": message}).encode()
                self._send(
                    status,
                    body,
                    {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message},
                )

            def _repo(self, parts: list[str]) -> HubRepo | None:
                repo = hub.repos.get("/".join(parts[:2]))
                if repo is None or (
                    repo.private_token and self.headers.get("Authorization") != f"Bearer {repo.private_token}"
                ):
                    self._error(401, "RepoNotFound", "Repository not found")
                    return None
                return repo

            def _commit(self, repo: HubRepo, revision: str) -> str | None:
                if revision == repo.commit:
                    return repo.commit
                if revision in repo.branches:
                    return repo.branches[revision]
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return None

            def _serve(self, with_body: bool) -> None:
                hub.authorizations.append(self.headers.get("Authorization"))
                path = unquote(urlsplit(self.path).path)
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
                    injected = hub.fault("info")
                    if injected is not None:
                        self._inject_status(injected)
                        return
                    repo = self._repo(parts[2:4])
                    if repo is None:
                        return
                    commit = self._commit(repo, "/".join(parts[5:]))
                    if commit is None:
                        return
                    siblings = []
                    for name, data in sorted(repo.files.items()):
                        sibling: dict[str, object] = {
                            "rfilename": name,
                            "size": len(data),
                            "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                        }
                        if repo.is_lfs(name):
                            sibling["lfs"] = {
                                "sha256": hashlib.sha256(data).hexdigest(),
                                "size": len(data),
                                "pointerSize": 134,
                            }
                        siblings.append(sibling)
                    body = json.dumps(
                        {
                            "id": repo.repo,
                            "modelId": repo.repo,
                            "sha": commit,
                            "private": False,
                            "siblings": siblings,
                        }
                    ).encode()
                    self._send(200, body, {"Content-Type": "application/json"}, with_body)
                    return
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo = self._repo(parts[:2])
                    if repo is None:
                        return
                    commit = self._commit(repo, parts[3])
                    if commit is None:
                        return
                    name = "/".join(parts[4:])
                    injected = hub.fault("get" if with_body else "head", name)
                    if injected is not None and injected.kind in ("status", "not-json"):
                        self._inject_status(injected)
                        return
                    if name not in repo.files:
                        self._error(404, "EntryNotFound", f"{name} does not exist")
                        return
                    data = repo.files[name]
                    if name in hub.corrupt:
                        data = bytes(b ^ 0x55 for b in data)
                    etag = (
                        hashlib.sha256(repo.files[name]).hexdigest()
                        if repo.is_lfs(name)
                        else hashlib.sha1(repo.files[name]).hexdigest()
                    )
                    if with_body:
                        hub.downloads.append(name)
                    headers = {
                        "X-Repo-Commit": commit,
                        "ETag": f'"{etag}"',
                        "Content-Type": "application/octet-stream",
                        "Accept-Ranges": "bytes",
                    }
                    status, start = 200, 0
                    match = _RANGE.match(self.headers.get("Range", ""))
                    if with_body and match and int(match.group(1)) < len(data):
                        status, start = 206, int(match.group(1))
                        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    if injected is not None and not with_body:  # a HEAD dropped or stalled: no answer at all
                        if injected.kind == "stall":
                            hub._release.wait(60)
                        self.close_connection = True
                        return
                    if injected is not None:  # "drop" or "stall": the headers, then the body up to `after`
                        self._send_cut(status, data, start, headers, injected)
                        return
                    self._send(status, data[start:], headers, with_body)
                    return
                self._error(404, "NotFound", f"no route for {path}")

            def _send_cut(
                self, status: int, data: bytes, start: int, headers: dict[str, str], fault: HubFault
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start : max(start, fault.after)])
                self.wfile.flush()
                if fault.kind == "stall":
                    hub._release.wait(60)
                self.close_connection = True

            def do_GET(self) -> None:
                self._serve(True)

            def do_HEAD(self) -> None:
                self._serve(False)

        return Handler


@pytest.fixture
def hf_hub() -> Iterator[HubServer]:
    """A loopback Hugging Face Hub stand-in; add repos with `hf_hub.add(HubRepo(...))`."""
    server = HubServer().start()
    yield server
    server.stop()
