"""A loopback stand-in for the Hugging Face Hub (tests must not reach the internet), and a fault injector.

It serves the small part of the hub's HTTP API that huggingface_hub's `HfApi.model_info` and
`hf_hub_download` use: model info with file metadata at a revision (a branch resolves to its
commit), and `resolve/<commit>/<path>` downloads with the X-Repo-Commit/ETag headers (and `Range`, so a
download resumes as against the hub). It records the Authorization headers it sees, and can serve wrong
bytes for a file to test verification, counts the file bytes it sent and the Range of every file request,
serves files from disk (a `Path` value: multi-GiB models without holding them in memory), redirects LFS files
to a storage route on another origin with the hub's `X-Linked-Size`/`X-Linked-ETag`/`X-Xet-Hash` headers as the hub does for
LFS and Xet files (`HubRepo.redirect_lfs`), and can throttle every file byte it sends to one rate for all
connections (`HubServer.rate`, bytes/s: the network as the limit). It also injects faults (`HubFault`, `HubServer.faults`): an HTTP
status with headers (a 500, a 429 with Retry-After), a body that is not JSON, a download dropped or stalled
(connection held open) mid-body. For a hub that refuses connections, `stop()` it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.loopback import LoopbackHTTPServer


@dataclass
class HubRepo:
    repo: str
    commit: str
    files: dict[str, bytes | Path]  # a Path: served from that file, read in pieces
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit
    lfs_suffixes: tuple[str, ...] = (".safetensors", ".bin")
    private_token: str | None = None  # when set, requests without this bearer token get 401
    redirect_lfs: bool = False  # LFS files answer 302 to the storage route (as the hub does); Xet headers too
    _hashes: dict[str, tuple[str, str, str]] = field(default_factory=dict, repr=False)

    def is_lfs(self, path: str) -> bool:
        return path.endswith(self.lfs_suffixes)

    def size(self, path: str) -> int:
        data = self.files[path]
        return data.stat().st_size if isinstance(data, Path) else len(data)

    def hashes(self, path: str) -> tuple[str, str, str]:
        """(sha256, git blob sha1, plain sha1) of the file, computed once."""
        if path not in self._hashes:
            sha256, blob, plain = (
                hashlib.sha256(),
                hashlib.sha1(b"blob %d\0" % self.size(path)),
                hashlib.sha1(),
            )
            for piece in self.pieces(path, 0):
                sha256.update(piece)
                blob.update(piece)
                plain.update(piece)
            self._hashes[path] = (sha256.hexdigest(), blob.hexdigest(), plain.hexdigest())
        return self._hashes[path]

    def pieces(self, path: str, start: int, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes [start, end) in pieces of at most 1 MiB."""
        data = self.files[path]
        end = self.size(path) if end is None else end
        if not isinstance(data, Path):
            for at in range(start, end, 1 << 20):
                yield data[at : min(end, at + (1 << 20))]
            return
        with data.open("rb") as source:
            source.seek(start)
            left = end - start
            while left > 0:
                piece = source.read(min(left, 1 << 20))
                if not piece:
                    return
                left -= len(piece)
                yield piece


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
        self.served: dict[
            str, int
        ] = {}  # file path -> body bytes sent (all requests, storage route included)
        self.file_requests: list[tuple[str, int]] = []  # (path, first byte asked for) of every file GET
        self.storage_authorizations: list[str | None] = []  # Authorization headers the storage route saw
        self.rate: float | None = None  # bytes/s for all file bodies together; None: as fast as it goes
        self._next_send = 0.0
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

    def _throttle(self, count: int) -> None:
        """Hold the sender so that all file bodies together leave at `rate` bytes/s."""
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            self._next_send = max(self._next_send, now) + count / self.rate
            wait = self._next_send - count / self.rate - now
        if wait > 0:
            time.sleep(wait)

    def _count(self, path: str, count: int) -> None:
        with self._lock:
            self.served[path] = self.served.get(path, 0) + count

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
                    for name in sorted(repo.files):
                        sha256, blob_id, _ = repo.hashes(name)
                        sibling: dict[str, object] = {
                            "rfilename": name,
                            "size": repo.size(name),
                            "blobId": blob_id,
                        }
                        if repo.is_lfs(name):
                            sibling["lfs"] = {"sha256": sha256, "size": repo.size(name), "pointerSize": 134}
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
                storage = parts[0] == "storage" and len(parts) >= 5
                if (len(parts) >= 5 and parts[2] == "resolve") or storage:
                    if storage:  # where an LFS file is redirected to: no token needed (a signed URL)
                        hub.storage_authorizations.append(self.headers.get("Authorization"))
                        parts = parts[1:]
                        repo = hub.repos.get("/".join(parts[:2]))
                        if repo is None:
                            self._error(404, "NotFound", "no such object")
                            return
                    else:
                        repo = self._repo(parts[:2])
                        if repo is None:
                            return
                    commit = self._commit(repo, parts[3] if not storage else parts[2])
                    if commit is None:
                        return
                    name = "/".join(parts[4:] if not storage else parts[3:])
                    if name not in repo.files:
                        self._error(404, "EntryNotFound", f"{name} does not exist")
                        return
                    size = repo.size(name)
                    sha256, _, plain_sha1 = repo.hashes(name)
                    etag = sha256 if repo.is_lfs(name) else plain_sha1
                    # A HEAD's fault is injected at the resolve route; a GET's where the body is served (the
                    # storage route, for a redirected file).
                    redirect = repo.redirect_lfs and repo.is_lfs(name) and not storage
                    injected = (
                        None if redirect and with_body else hub.fault("get" if with_body else "head", name)
                    )
                    if injected is not None and injected.kind in ("status", "not-json"):
                        self._inject_status(injected)
                        return
                    if injected is not None and not with_body:  # a HEAD dropped or stalled: no answer at all
                        if injected.kind == "stall":
                            hub._release.wait(60)
                        self.close_connection = True
                        return
                    if redirect:
                        # Another origin (localhost, not 127.0.0.1), as the hub's storage is another host.
                        storage_origin = hub.endpoint.replace("://127.0.0.1:", "://localhost:")
                        location = f"{storage_origin}/storage/{repo.repo}/{commit}/{name}"
                        self._send(
                            302,
                            b"",
                            {
                                "Location": location,
                                "X-Repo-Commit": commit,
                                "X-Linked-Size": str(size),
                                "X-Linked-ETag": f'"{etag}"',
                                "X-Xet-Hash": hashlib.sha256(b"xet:" + sha256.encode()).hexdigest(),
                                "ETag": '"pointer"',
                            },
                            with_body=False,
                        )
                        return
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
                    if with_body and match and int(match.group(1)) < size:
                        status, start = 206, int(match.group(1))
                        headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
                    if with_body:
                        hub.file_requests.append((name, start))
                    corrupt = name in hub.corrupt
                    if injected is not None:  # "drop" or "stall": the headers, then the body up to `after`
                        self._send_cut(status, repo, name, start, headers, injected, corrupt)
                        return
                    self._send_file(status, repo, name, start, size, headers, with_body, corrupt)
                    return
                self._error(404, "NotFound", f"no route for {path}")

            def _send_file(
                self,
                status: int,
                repo: HubRepo,
                name: str,
                start: int,
                end: int,
                headers: dict[str, str],
                with_body: bool,
                corrupt: bool,
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(repo.size(name) - start))
                self.end_headers()
                if not with_body:
                    return
                try:
                    for piece in repo.pieces(name, start, end):
                        if corrupt:
                            piece = bytes(b ^ 0x55 for b in piece)
                        hub._throttle(len(piece))
                        self.wfile.write(piece)
                        hub._count(name, len(piece))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _send_cut(
                self,
                status: int,
                repo: HubRepo,
                name: str,
                start: int,
                headers: dict[str, str],
                fault: HubFault,
                corrupt: bool,
            ) -> None:
                self._send_file(status, repo, name, start, max(start, fault.after), headers, True, corrupt)
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
