"""A Hugging Face Hub file as a byte stream that is never written anywhere, and that resumes where it was cut.

huggingface_hub does what it does for every file (`hub_http` bounds it): the resolve URL (`hf_hub_url`), the
token and the headers (`build_hf_headers`), the metadata HEAD and its redirects (`get_hf_file_metadata`: the
commit, the size from `X-Linked-Size`, the Xet hash from `X-Xet-Hash`, and the `Location` an LFS or Xet file
is served from), offline mode (the HEAD fails with `OfflineModeIsEnabled`, one line). Its downloads go to disk,
so the bytes themselves come through the project's HTTP client (httpx): a GET of that location, read as the
upload takes it. A Xet-backed file is read the same way: the resolve redirect serves its plain bytes.

A cut, a stall, a 429 or a 5xx is retried under the network bounds (`llm_platform.network`, Retry-After
honoured up to its bound) with a `Range` request at the first byte not yet handed on, so nothing is read twice
and the verifying reader above sees one seamless stream. A signed storage URL that no longer works (401, 403,
404 or 410 from a host other than the hub's) is located again through the hub. The token goes to the hub's own
host only, never to the storage an LFS file is redirected to.
"""

from __future__ import annotations

import io
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from huggingface_hub import constants as hub_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils import build_hf_headers

from llm_platform.errors import InputError, PlatformError
from llm_platform.http_client import httpx
from llm_platform.logs import get_logger
from llm_platform.modelcar import hub_http
from llm_platform.network import GiveUp, NetworkBounds, RetryBudget, parse_retry_after

log = get_logger("modelcar.hub_stream")

# Bytes that move after a failure before the next failure counts as a new request's first (network.RetryBudget
# is per request; a resumed read of a 30 GB file is many): a hub that cuts every few MiB still ends.
_FRESH_BUDGET_AFTER = 64 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_TRY_AGAIN = "check the network and the hub's status (or HF_ENDPOINT), then run again"


class _Retry(Exception):  # noqa: N818 - a decision, like network.GiveUp
    """This attempt failed in a way worth another; `stalled`: seconds it waited for nothing."""

    def __init__(self, message: str, *, stalled: float = 0.0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.stalled, self.retry_after = stalled, retry_after


class HubFiles:
    """The files of one repo at one commit, read straight from the hub; one connection pool for all of them
    (thread-safe: the upload threads read several files at once)."""

    def __init__(
        self,
        repo: str,
        commit: str,
        where: str,
        *,
        token: str | None,
        endpoint: str | None,
        bounds: NetworkBounds,
        retries: int,
    ) -> None:
        self.repo, self.commit, self.where = repo, commit, where
        self.token, self.bounds, self.retries = token, bounds, retries
        self.endpoint = (endpoint or hub_constants.ENDPOINT).rstrip("/")
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                # Redirects are followed (a CDN may redirect again); httpx drops Authorization on a redirect
                # to another origin.
                self._client = httpx.Client(follow_redirects=True, timeout=None)
            return self._client

    def open(self, path: str, size: int, start: int = 0) -> HubFileReader:
        return HubFileReader(self, path, size, start)

    def locate(self, path: str, size: int) -> str:
        """Where the file's bytes are served from (the hub's resolve URL, or where it redirects an LFS or Xet
        file to), after checking that the hub serves this commit's file at its listed size."""
        url = hf_hub_url(self.repo, path, revision=self.commit, endpoint=self.endpoint)
        meta = hub_http.call_api(
            lambda timeout: get_hf_file_metadata(
                url, token=self.token, timeout=timeout, endpoint=self.endpoint
            ),
            where=self.where,
            what=f"download of {path}",
            bounds=self.bounds,
            retries=self.retries,
        )
        if meta.commit_hash and meta.commit_hash != self.commit:
            raise PlatformError(
                f"{self.where}: download of {path}: the hub serves it from commit {meta.commit_hash}, not "
                f"{self.commit}"
            )
        if meta.size is not None and meta.size != size:
            raise PlatformError(
                f"{self.where}: download of {path}: the hub serves {meta.size} bytes, listed as {size}"
            )
        if meta.xet_file_data is not None:
            log.debug(
                "%s: %s is stored on Xet (hash %s): read through the resolve redirect",
                self.where,
                path,
                meta.xet_file_data.file_hash,
            )
        return meta.location

    def headers(self, location: str, start: int) -> dict[str, str]:
        """huggingface_hub's headers (user agent, token), the token only for the hub's own host."""
        headers = build_hf_headers(token=self.token, library_name="llm-platform")
        if _origin(location) != _origin(self.endpoint):
            headers.pop("authorization", None)
            headers.pop("Authorization", None)
        headers["Accept-Encoding"] = "identity"  # the file's own bytes, counted as such
        if start:
            headers["Range"] = f"bytes={start}-"
        return headers


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


class HubFileReader(io.RawIOBase):
    """The bytes of one hub file from `start` on. Reads are short: what the connection has delivered (httpx's
    pieces, 64 KiB at most, so memory stays bounded and a cut loses no byte that arrived); a failed read is
    retried, resuming at the first byte not yet returned."""

    def __init__(self, files: HubFiles, path: str, size: int, start: int) -> None:
        self._files, self._path, self._size = files, path, size
        self._offset = start
        self._location: str | None = None
        self._response: httpx.Response | None = None
        self._pieces: Any = None
        self._pending = memoryview(b"")
        self._discard = 0  # bytes to drop: a server that answered a Range request with the whole file
        self._budget = RetryBudget(files.bounds, retries=files.retries)
        self._moved = 0  # since the last failure

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._offset < self._size:
            try:
                if not self._pending:
                    self._pending = memoryview(self._next_piece())
                    continue
            except _Retry as retry:
                self._wait(retry)
                continue
            count = min(len(buffer), len(self._pending), self._size - self._offset)
            buffer[:count] = self._pending[:count]
            self._pending = self._pending[count:]
            self._offset += count
            self._moved += count
            return count
        if self._pending or (self._response is not None and self._more_than_listed()):
            raise PlatformError(
                f"{self._files.where}: download of {self._path}: the hub sent more than its listed {self._size} "
                f"bytes"
            )
        self._close_response()
        return 0

    def _more_than_listed(self) -> bool:
        assert self._pieces is not None
        try:
            return any(len(piece) for piece in self._pieces)
        except httpx.HTTPError:
            return False

    def _next_piece(self) -> bytes:
        if self._pieces is None:
            self._connect()
        try:
            piece: bytes = next(self._pieces)
        except StopIteration:
            raise _Retry(f"the hub ended the file after {self._offset} bytes") from None
        except httpx.TimeoutException as exc:
            read = self._files.bounds.read
            raise _Retry(
                f"stalled after {self._offset} bytes: nothing for {read:g} s ({type(exc).__name__})",
                stalled=read,
            ) from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection dropped after {self._offset} bytes ({type(exc).__name__})") from None
        if self._discard:
            dropped = min(self._discard, len(piece))
            self._discard -= dropped
            piece = piece[dropped:]
        return piece

    def _connect(self) -> None:
        files = self._files
        if self._location is None:
            self._location = files.locate(self._path, self._size)
        location = self._location
        bounds, budget = files.bounds, self._budget
        timeout = httpx.Timeout(
            budget.timeout(bounds.read), connect=budget.timeout(bounds.connect), pool=bounds.read
        )
        client = files.client
        request = client.build_request(
            "GET", location, headers=files.headers(location, self._offset), timeout=timeout
        )
        try:
            response = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise _Retry(
                f"no answer from the hub for {bounds.read:g} s ({type(exc).__name__})", stalled=bounds.read
            ) from None
        except httpx.TransportError as exc:
            raise _Retry(f"cannot reach the hub ({type(exc).__name__})") from None
        try:
            self._check(response, location)
        except BaseException:
            response.close()
            raise
        # Raw pieces as they arrive: a cut loses none of the bytes that did arrive.
        self._response, self._pieces = response, response.iter_raw()

    def _check(self, response: httpx.Response, location: str) -> None:
        status, where = response.status_code, f"{self._files.where}: download of {self._path}"
        if status in hub_http.RETRIED_STATUS:
            retry_after = (
                parse_retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
            )
            what = (
                "rate limited by the hub (HTTP 429)" if status == 429 else f"the hub answered HTTP {status}"
            )
            raise _Retry(what, retry_after=retry_after)
        if status in (401, 403, 404, 410) and _origin(location) != _origin(self._files.endpoint):
            self._location = None  # a signed storage URL that expired: ask the hub again
            raise _Retry(f"the storage the hub redirected to answered HTTP {status}")
        if status == 401:
            raise InputError(f"{where}: the hub refused the token (HTTP 401): check HF_TOKEN or --hf-token")
        if status == 403:
            raise InputError(f"{where}: access denied (HTTP 403): the token has no access to this repo")
        if status == 404:
            raise InputError(
                f"{where}: the file is not in the repo at this revision (check the spec's patterns)"
            )
        remaining = self._size - self._offset
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if (
                match is None
                or int(match.group(1)) != self._offset
                or match.group(3) not in ("*", str(self._size))
            ):
                raise PlatformError(
                    f"{where}: the hub answered the request for bytes {self._offset}- with "
                    f"{response.headers.get('content-range')!r}; {_TRY_AGAIN}"
                )
        elif status == 200:
            self._discard, remaining = self._offset, self._size
            if self._offset:
                log.info("%s: the hub ignored the Range request: dropping %d bytes", where, self._offset)
        else:
            raise PlatformError(f"{where}: the hub answered HTTP {status}; {_TRY_AGAIN}")
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) != remaining:
            raise PlatformError(
                f"{where}: the hub sends {int(length) + self._size - remaining} bytes, listed as {self._size}"
            )

    def _wait(self, retry: _Retry) -> None:
        """Count the failure against the retries and the retry budget; wait; the next read reconnects."""
        self._close_response()
        if self._moved >= _FRESH_BUDGET_AFTER:
            self._budget = RetryBudget(self._files.bounds, retries=self._files.retries)
        self._moved = 0
        try:
            delay = self._budget.failed(stalled=retry.stalled, retry_after=retry.retry_after)
        except GiveUp as stop:
            raise PlatformError(
                f"{self._files.where}: download of {self._path}: {retry}; {stop}; {_TRY_AGAIN}"
            ) from None
        log.info(
            "%s: download of %s: %s; resuming at byte %d in %.1fs",
            self._files.where,
            self._path,
            retry,
            self._offset,
            delay,
        )
        time.sleep(delay)
        self._budget.waited(delay)

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response, self._pieces = None, None
        self._pending = memoryview(b"")

    def close(self) -> None:
        self._close_response()
        super().close()
