"""An OCI distribution-API client that streams blobs built on the fly (httpx, one pooled connection per upload).

Why not oras-py's `Registry` for the HTTP side: its monolithic upload sends `fd.read()` (the whole blob in
memory) and needs a file path, not a stream; its chunked upload has no 416/offset resync, no resume and no
`OCI-Chunk-Min-Length`; its retry decorator would replay a consumed body; it has no cross-repository mount;
and its token cache is scope-blind (see auth.py). Credentials still come through oras-py (auth.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llm_platform.errors import RegistryError
from llm_platform.http_client import httpx
from llm_platform.logs import get_logger
from llm_platform.network import GiveUp, NetworkBounds, RetryBudget, parse_retry_after
from llm_platform.oci import MANIFEST_ACCEPT, OCI_INDEX, digest_of, sha256_digest
from llm_platform.registry import PASSWORD_ENV, USERNAME_ENV
from llm_platform.registry.auth import Credentials, RegistryAuth
from llm_platform.registry.policy import RegistryPolicy, UploadMode, policy_for
from llm_platform.registry.progress import UploadProgress, human_bytes
from llm_platform.registry.reference import ImageReference, is_loopback

log = get_logger("registry.client")

_RANGE_RE = re.compile(r"^(?:bytes=)?(\d+)-(\d+)$")


class BlobSource(Protocol):
    """What the client uploads: `open()` yields the blob's exact bytes in bounded chunks. A blob whose
    `resumable` is true also has `open_from(offset)`, the bytes from there on: an upload resumed mid-blob
    reads from there instead of reading (and dropping) everything before it."""

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...

    def open(self) -> Iterator[bytes]: ...


class _RetriableError(Exception):
    """A failure worth another attempt (connection lost, a stall, 5xx, 429, 416, an expired token); `response` is
    the registry's answer when there was one, `stalled` the seconds the attempt waited for nothing, `retry_after`
    the registry's Retry-After (429 and 503) in seconds."""

    def __init__(
        self,
        message: str,
        response: httpx.Response | None = None,
        *,
        stalled: float = 0.0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.stalled = stalled
        self.retry_after = retry_after

    def give_up(self, message: str) -> RegistryError:
        return response_error(message, self.response) if self.response is not None else RegistryError(message)


@dataclass
class _Upload:
    location: str | None = None
    offset: int = 0
    chunk_size: int = 0
    needs_resync: bool = False


def _oci_errors(response: httpx.Response) -> list[tuple[str, str]]:
    """(code, message) of the OCI error body (`{"errors": [{"code": ..., "message": ...}]}`), at most 3."""
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        (str(err.get("code", "?")), str(err.get("message", "")))
        for err in errors[:3]
        if isinstance(err, dict)
    ]


def _describe_errors(response: httpx.Response) -> str:
    """`HTTP 400 DIGEST_INVALID: provided digest did not match uploaded content` from the OCI error body."""
    text = f"HTTP {response.status_code}"
    errors = _oci_errors(response)
    if errors:
        text += " " + "; ".join(f"{code}: {message}".strip() for code, message in errors)
    return text


def response_error(message: str, response: httpx.Response) -> RegistryError:
    """The one place a registry's answer becomes a RegistryError: method, URL, status and OCI codes."""
    return RegistryError(
        message,
        method=response.request.method,
        url=str(response.request.url),
        status=response.status_code,
        codes=[code for code, _ in _oci_errors(response)],
    )


def _transport_reason(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__
    detail = str(exc) or (str(cause) if cause else "")
    return f"{type(exc).__name__}{': ' + detail if detail else ''}"


def _timeout_seconds(exc: httpx.TimeoutException, timeout: httpx.Timeout) -> float:
    """The bound that ran out: the connect, write, pool or read timeout of the request."""
    if isinstance(exc, httpx.ConnectTimeout):
        value = timeout.connect
    elif isinstance(exc, httpx.WriteTimeout):
        value = timeout.write
    elif isinstance(exc, httpx.PoolTimeout):
        value = timeout.pool
    else:
        value = timeout.read
    return float(value or 0.0)


def _transport_failure(
    what: str, base_url: str, exc: httpx.TransportError, timeout: httpx.Timeout
) -> _RetriableError:
    """A transport failure as a retriable one; a timeout says which bound ran out, and counts as a stall."""
    if isinstance(exc, httpx.TimeoutException):
        seconds = _timeout_seconds(exc, timeout)
        doing = {
            httpx.ConnectTimeout: "no connection",
            httpx.WriteTimeout: "accepted no bytes",
            httpx.PoolTimeout: "no free connection",
        }.get(type(exc), "sent nothing")
        return _RetriableError(
            f"{what}: {base_url} stalled: {doing} for {seconds:g} s ({type(exc).__name__})", stalled=seconds
        )
    return _RetriableError(f"{what}: {base_url} unreachable ({_transport_reason(exc)})")


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After of a 429 or 503, in seconds (RFC 9110 §10.2.3, RFC 6585 §4)."""
    if response.status_code not in (429, 503):
        return None
    return parse_retry_after(response.headers.get("retry-after"))


@dataclass(frozen=True)
class _Timeouts:
    """One attempt's timeouts: small requests, and requests that move a blob."""

    metadata: httpx.Timeout
    data: httpx.Timeout


_PREFETCH_DEPTH = 4  # buffers read ahead per upload (1 MiB each for model layers): bounded memory


class _Prefetched:
    """Reads (and, inside the source, hashes) the next buffers on a helper thread while the current one is
    on the wire, so disk, hashing and network overlap; at most `_PREFETCH_DEPTH` buffers wait in between."""

    _END = object()

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_PREFETCH_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pieces,), name="blob-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, pieces: Iterator[bytes]) -> None:
        try:
            for piece in pieces:
                if not self._put(piece):
                    return
            self._put(self._END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, raised there
            self._put(exc)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()


class _BlobCursor:
    """Walks a blob's stream once: `take(n)` yields the next n bytes, starting at `start` (skipped, not sent)."""

    def __init__(self, blob: BlobSource, start: int) -> None:
        resumable = start > 0 and getattr(blob, "resumable", False)
        pieces = blob.open_from(start) if resumable else blob.open()  # type: ignore[attr-defined]
        self._prefetch = _Prefetched(iter(pieces))
        self._pieces: Iterator[bytes] = self._prefetch
        self._pending = b""
        self._skip = 0 if resumable else start

    def _next_piece(self) -> bytes:
        if self._pending:
            piece, self._pending = self._pending, b""
            return piece
        while True:
            following = next(self._pieces, None)
            if following is None:
                raise RegistryError("blob source ended before its declared size")
            piece = following
            if self._skip:
                if len(piece) <= self._skip:
                    self._skip -= len(piece)
                    continue
                piece, self._skip = piece[self._skip :], 0
            return piece

    def take(self, length: int, *, last: bool = False) -> Iterator[bytes]:
        remaining = length
        while remaining > 0:
            piece = self._next_piece()
            if len(piece) > remaining:
                piece, self._pending = piece[:remaining], piece[remaining:]
            remaining -= len(piece)
            yield bytes(piece)
        if last:
            self.finish()

    def close(self) -> None:
        self._prefetch.close()

    def finish(self) -> None:
        """Run the source to its end: a verifying source checks size and digest there (and learns its digest)."""
        extra = len(self._pending)
        for piece in self._pieces:
            skipped = min(self._skip, len(piece))
            self._skip -= skipped
            extra += len(piece) - skipped
        if extra or self._skip:
            raise RegistryError("blob source does not have its declared size")


class _LazyTransport(httpx.BaseTransport):
    """An `httpx.HTTPTransport` built on its first request (thread-safe)."""

    def __init__(self, **options: object) -> None:
        self._options = options
        self._transport: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if self._transport is None:
                self._transport = httpx.HTTPTransport(**self._options)  # type: ignore[arg-type]
            transport = self._transport
        return transport.handle_request(request)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()


def scheme_for(ref: ImageReference, insecure_registries: Sequence[str]) -> str:
    """Plain HTTP for loopback registries and those named with --insecure-registry; HTTPS otherwise."""
    insecure = ref.registry in insecure_registries or ref.api_host in insecure_registries
    return "http" if insecure or is_loopback(ref.api_host) else "https"


class RegistryClient:
    """One registry host. Thread-safe: uploads of several blobs may run concurrently on one client.

    Every request runs under `bounds` (`llm_platform.network`: connect, metadata and stall timeouts, Retry-After
    honoured up to its bound, one retry budget per request); `retries` and `backoff` say how often and how soon.
    """

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        policy: RegistryPolicy | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        progress: UploadProgress | None = None,
        max_connections: int = 8,
        verify: bool | str = True,
        bounds: NetworkBounds | None = None,
    ) -> None:
        self.host = host
        self.scheme = "http" if insecure or is_loopback(host) else "https"
        self.base_url = f"{self.scheme}://{host}"
        self.policy = policy or policy_for(host)
        self.retries = retries
        self.backoff = backoff
        self.progress = progress
        self.bounds = bounds or NetworkBounds.from_timeout()
        self.auth = RegistryAuth(
            host,
            credentials,
            verify=verify,
            timeout=httpx.Timeout(self.bounds.metadata, connect=self.bounds.connect),
        )
        self.credentials = credentials
        self._aborted = threading.Event()
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        transports: dict[str, object] = {}
        if self.scheme == "http" and not urllib.request.getproxies_environment():
            # Plain HTTP: TLS (and its ~0.1 s CA-bundle load) is needed only if the registry redirects a blob
            # to HTTPS storage, so that transport is built on first use. (Not with proxy variables set:
            # an explicit transport would turn httpx's proxy support off.)
            transports = {
                "transport": _LazyTransport(verify=verify, limits=limits),
                "mounts": {"http://": httpx.HTTPTransport(verify=False, limits=limits)},
            }
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=self.auth,
            verify=verify,
            timeout=self._timeouts(None).data,
            limits=limits,
            headers={"User-Agent": "llm-platform"},
            follow_redirects=False,
            **transports,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:  # noqa: PYI034 - final class in practice
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------------
    def _timeouts(self, budget: RetryBudget | None) -> _Timeouts:
        """The timeouts of the next attempt: the bounds, or what is left of the retry budget after a failure."""
        b = self.bounds

        def clamp(value: float) -> float:
            return budget.timeout(value) if budget is not None else value

        connect, pool = clamp(b.connect), max(b.read, b.metadata)
        return _Timeouts(
            metadata=httpx.Timeout(clamp(b.metadata), connect=connect, pool=pool),
            data=httpx.Timeout(clamp(b.read), connect=connect, pool=pool),
        )

    def _budget(self) -> RetryBudget:
        return RetryBudget(self.bounds, retries=self.retries, backoff=self.backoff)

    @staticmethod
    def _next_delay(budget: RetryBudget, exc: _RetriableError, give_up: str) -> float:
        """Count a failed attempt: the seconds to wait before the next (a Retry-After up to its bound), or the
        error, prefixed with `give_up`, when retrying is over."""
        try:
            return budget.failed(stalled=exc.stalled, retry_after=exc.retry_after)
        except GiveUp as stop:
            raise exc.give_up(f"{give_up}: {exc} ({stop})") from None

    def _sleep(self, budget: RetryBudget, delay: float) -> None:
        self._aborted.wait(delay)  # an abort (another blob of the push failed) ends the wait early
        budget.waited(delay)

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        timeout: httpx.Timeout,
        stream: bool = False,
        **kwargs: object,
    ) -> httpx.Response:
        """One request; transport failures become `_RetriableError`, authentication failures `RegistryError`.

        With `stream=True` the body of a successful response is left unread (the caller closes it) and
        redirects are followed (blob storage behind a CDN); an error response is read for its message.
        """
        try:
            if stream:
                request = self._http.build_request(method, url, timeout=timeout, **kwargs)  # type: ignore[arg-type]
                response = self._http.send(request, stream=True, follow_redirects=True)
            else:
                response = self._http.request(method, url, timeout=timeout, **kwargs)  # type: ignore[arg-type]
        except (
            httpx.StreamConsumed
        ) as exc:  # a body that met a 401 cannot be replayed; the token is cached now
            raise _RetriableError(f"{what}: re-authenticated mid-request") from exc
        except httpx.TransportError as exc:
            raise _transport_failure(what, self.base_url, exc, timeout) from exc
        if stream and response.status_code >= 300:
            try:
                response.read()
            except httpx.HTTPError:
                pass
            finally:
                response.close()
        if response.status_code == 401:
            if self.credentials is None:
                raise response_error(
                    f"{self.host}: authentication failed for {what}: anonymous access rejected, the registry "
                    f"requires credentials and none were found (log in with podman/docker login, or set "
                    f"${USERNAME_ENV} and ${PASSWORD_ENV}) ({_describe_errors(response)})",
                    response,
                )
            raise response_error(
                f"{self.host}: authentication failed for {what}: user {self.credentials.username!r} "
                f"(credentials from {self.credentials.source}) rejected ({_describe_errors(response)})",
                response,
            )
        if response.status_code == 403:
            raise response_error(f"{self.host}: {what} denied ({_describe_errors(response)})", response)
        if response.status_code in (429, 500, 502, 503, 504):
            raise _RetriableError(
                f"{what}: {_describe_errors(response)}", response, retry_after=_retry_after(response)
            )
        return response

    def _with_retries(
        self, what: str, action: Callable[[httpx.Timeout], httpx.Response], *, data: bool = False
    ) -> httpx.Response:
        """`action(timeout)` until it succeeds, within the retries and the retry budget. `data`: the request
        moves a blob (the stall bound applies), not a small answer (the metadata bound)."""
        budget = self._budget()
        while True:
            timeouts = self._timeouts(budget)
            try:
                return action(timeouts.data if data else timeouts.metadata)
            except _RetriableError as exc:
                delay = self._next_delay(budget, exc, self.host)
                log.debug("%s; retrying in %.1fs", exc, delay)
                self._sleep(budget, delay)

    def _request(
        self, method: str, url: str, *, what: str, data: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One distribution-API request: sent by `_send`, retried by `_with_retries`; `data` as there."""
        return self._with_retries(
            what, lambda timeout: self._send(method, url, what=what, timeout=timeout, **kwargs), data=data
        )

    def _absolute(self, location: str) -> str:
        return location if location.startswith(("http://", "https://")) else self.base_url + location

    def _unexpected(self, what: str, response: httpx.Response) -> RegistryError:
        return response_error(f"{self.host}: {what} failed: {_describe_errors(response)}", response)

    # -- API --------------------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/: fails early (and clearly) on an unreachable registry or rejected credentials."""
        response = self._request("GET", "/v2/", what="API check")
        if response.status_code != 200:
            raise self._unexpected("API check (GET /v2/)", response)

    def blob_size(self, repository: str, digest: str) -> int | None:
        """Size of a blob the repository already holds, None when absent."""
        what = f"HEAD blob {digest[:19]} in {repository}"
        response = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", what=what)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(what, response)
        return int(response.headers.get("content-length", "-1"))

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        """Cross-repository mount (`?mount=&from=`); False when the registry opened an upload instead."""
        what = f"mount {digest[:19]} from {source_repository} into {repository}"
        response = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            what=what,
            params={"mount": digest, "from": source_repository},
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202 and response.headers.get("location"):
            # The registry opened a session we will not use: close it rather than leave it to expire.
            with contextlib.suppress(httpx.HTTPError):
                self._http.delete(
                    self._absolute(response.headers["location"]), timeout=self._timeouts(None).metadata
                )
            return False
        raise self._unexpected(what, response)

    def get_blob(self, repository: str, digest: str, *, max_size: int = 16 * 1024 * 1024) -> bytes:
        """A small blob (a config), checked against its digest."""
        what = f"GET blob {digest[:19]} from {repository}"

        def fetch(timeout: httpx.Timeout) -> httpx.Response:
            try:
                response = self._http.get(
                    f"/v2/{repository}/blobs/{digest}", follow_redirects=True, timeout=timeout
                )
            except httpx.TransportError as exc:
                raise _transport_failure(what, self.base_url, exc, timeout) from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise _RetriableError(
                    f"{what}: {_describe_errors(response)}", response, retry_after=_retry_after(response)
                )
            return response

        response = self._with_retries(what, fetch, data=True)
        if response.status_code != 200:
            raise self._unexpected(what, response)
        body = response.content
        if len(body) > max_size:
            raise RegistryError(f"{self.host}: {what}: blob larger than {human_bytes(max_size)}")
        if sha256_digest(body) != digest:
            raise RegistryError(f"{self.host}: {what}: content does not match its digest")
        return body

    def stream_blob(
        self, repository: str, digest: str, *, size: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """A blob of any size in chunks of at most `chunk_size` bytes, checked against `digest` (and `size`)
        as it streams: the last chunk is followed by a RegistryError, not by the end, when the bytes are wrong.
        The request is sent on first iteration; a connection lost mid-blob is an error (no partial retries)."""
        what = f"GET blob {digest[:19]} from {repository}"
        response = self._request("GET", f"/v2/{repository}/blobs/{digest}", what=what, data=True, stream=True)
        try:
            if response.status_code == 404:
                raise response_error(
                    f"{self.host}/{repository}: blob {digest} not found ({_describe_errors(response)})",
                    response,
                )
            if response.status_code != 200:
                raise self._unexpected(what, response)
            hasher, count = hashlib.sha256(), 0
            try:
                for chunk in response.iter_bytes(chunk_size):
                    count += len(chunk)
                    if size is not None and count > size:
                        raise RegistryError(f"{self.host}: {what}: more than the expected {size} bytes")
                    hasher.update(chunk)
                    yield chunk
            except httpx.HTTPError as exc:
                raise RegistryError(
                    f"{self.host}: {what}: connection lost after {count} bytes ({_transport_reason(exc)})"
                ) from None
            if size is not None and count != size:
                raise RegistryError(f"{self.host}: {what}: got {count} bytes, expected {size}")
            if digest_of(hasher) != digest:
                raise RegistryError(f"{self.host}: {what}: content does not match its digest")
        finally:
            response.close()

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """(body, digest, media type); the digest is computed from the body and checked against the registry's."""
        what = f"GET manifest {repository}:{reference}"
        response = self._request(
            "GET", f"/v2/{repository}/manifests/{reference}", what=what, headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            raise response_error(
                f"{self.host}/{repository}: manifest {reference} not found ({_describe_errors(response)})",
                response,
            )
        if response.status_code != 200:
            raise self._unexpected(what, response)
        body = response.content
        digest = sha256_digest(body)
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed != digest:
            raise RegistryError(
                f"{self.host}: {what}: registry says {claimed} but the body hashes to {digest}"
            )
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(f"{self.host}: {what}: manifest body hashes to {digest}")
        return body, digest, response.headers.get("content-type", "").split(";")[0]

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """HEAD a manifest: its digest, or None when the tag/digest is unknown."""
        what = f"HEAD manifest {repository}:{reference}"
        response = self._request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", what=what, headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(what, response)
        return response.headers.get("docker-content-digest")

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        return self._put_manifest(repository, reference, body, media_type)[0]

    def put_referrer_manifest(
        self, repository: str, body: bytes, media_type: str, *, tag: str | None = None
    ) -> tuple[str, bool]:
        """PUT a manifest that names a `subject`, by `tag` or else its digest: (digest, True when the registry
        says it indexed the subject itself). Without its `OCI-Subject` answer (distribution-spec v1.1) a client
        must keep the referrers tag of the subject up to date instead."""
        digest, response = self._put_manifest(repository, tag or sha256_digest(body), body, media_type)
        return digest, bool(response.headers.get("oci-subject"))

    def _put_manifest(
        self, repository: str, reference: str, body: bytes, media_type: str
    ) -> tuple[str, httpx.Response]:
        what = f"PUT manifest {repository}:{reference}"
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            what=what,
            content=body,
            headers={"Content-Type": media_type},
        )
        if response.status_code not in (200, 201):
            raise self._unexpected(what, response)
        digest = sha256_digest(body)
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed != digest:
            raise RegistryError(f"{self.host}: {what}: registry stored {claimed}, expected {digest}")
        return digest, response

    def get_referrers(self, repository: str, digest: str) -> bytes | None:
        """GET /v2/<name>/referrers/<digest>: the image index of the manifests whose `subject` is `digest`, or
        None when the registry has no referrers API (404 or 405), where the referrers tag stands in for it."""
        what = f"GET referrers of {repository}@{digest[:19]}"
        response = self._request(
            "GET", f"/v2/{repository}/referrers/{digest}", what=what, headers={"Accept": OCI_INDEX}
        )
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            raise self._unexpected(what, response)
        return response.content

    def list_tags(self, repository: str) -> list[str]:
        """Every tag (following `Link` pagination); [] when the repository does not exist yet."""
        what = f"list tags of {repository}"
        url: str | None = f"/v2/{repository}/tags/list?n=1000"
        tags: list[str] = []
        while url:
            response = self._request("GET", url, what=what)
            if response.status_code == 404:
                return tags
            if response.status_code != 200:
                raise self._unexpected(what, response)
            tags.extend(response.json().get("tags") or [])
            url = None
            match = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", response.headers.get("link", ""))
            if match:
                url = match.group(1)
        return tags

    # -- blob upload --------------------------------------------------------------------------------------
    def check_layer_size(self, size: int, label: str) -> None:
        limit = self.policy.max_layer_size
        if limit is not None and size > limit:
            raise RegistryError(
                f"{label} is {human_bytes(size)} ({size} bytes), over the {human_bytes(limit)} layer limit "
                f"of {self.host} ({self.policy.limit_source}); nothing was uploaded"
            )

    def upload_blob(self, repository: str, blob: BlobSource, *, label: str = "blob") -> int:
        """Upload one blob; returns the bytes sent (retries included). Resumes chunked uploads where it can.

        A chunked upload reads `blob.digest` only when committing, so a blob whose digest is learnt while it
        streams (a tar layer built on the fly) is read once; a monolithic PUT needs the digest up front.
        """
        self.check_layer_size(blob.size, label)
        key = f"{repository}/{label}#{id(blob)}"
        if self.progress:
            self.progress.start(key, label, blob.size)
        state = _Upload()
        sent = [0]
        budget = self._budget()
        while True:
            if self._aborted.is_set():
                if self.progress:
                    self.progress.finish(key, "ABORTED")
                raise RegistryError(f"upload of {label} aborted: another blob of this push failed")
            timeouts = self._timeouts(budget)
            try:
                if state.needs_resync:
                    self._resync(state, label, timeouts)
                    if self.progress:
                        self.progress.reset(key, state.offset)
                if state.location is None:
                    self._open_session(repository, state, timeouts)
                    if self.progress:
                        self.progress.reset(key, 0)
                if self.policy.upload_mode is UploadMode.MONOLITHIC or blob.size == 0:
                    self._put_whole(blob, state, key, sent, timeouts)
                else:
                    self._patch_chunks(blob, state, key, sent, label, timeouts)
                    self._close_session(blob, state, timeouts)
                if self.progress:
                    self.progress.finish(key, "pushed")
                return sent[0]
            except _RetriableError as exc:
                try:
                    delay = self._next_delay(budget, exc, f"{self.host}: upload of {label} failed")
                except RegistryError:
                    if self.progress:
                        self.progress.finish(key, "FAILED")
                    raise
                log.info("upload of %s interrupted (%s); retrying in %.1fs", label, exc, delay)
                self._sleep(budget, delay)
                state.needs_resync = True
            except BaseException:
                if self.progress:
                    self.progress.finish(key, "FAILED")
                self._cancel_session(state)
                raise

    def _cancel_session(self, state: _Upload) -> None:
        """Best effort: close a session we give up on instead of leaving it for the registry to expire."""
        if state.location is None:
            return
        with contextlib.suppress(httpx.HTTPError):
            self._http.delete(state.location, timeout=min(5.0, self.bounds.metadata))

    def _open_session(self, repository: str, state: _Upload, timeouts: _Timeouts) -> None:
        what = f"start upload in {repository}"
        response = self._send(
            "POST", f"/v2/{repository}/blobs/uploads/", what=what, timeout=timeouts.metadata
        )
        if response.status_code != 202 or not response.headers.get("location"):
            raise self._unexpected(what, response)
        state.location = self._absolute(response.headers["location"])
        state.offset = 0
        minimum = int(response.headers.get("oci-chunk-min-length", "0") or 0)
        state.chunk_size = max(self.policy.chunk_size, minimum)

    def _resync(self, state: _Upload, label: str, timeouts: _Timeouts) -> None:
        """After a failure: ask the session where it stands (GET → 204 + Range); restart when it is gone."""
        if state.location is None or self.policy.upload_mode is UploadMode.MONOLITHIC:
            state.location = None
            state.needs_resync = False
            return
        try:
            response = self._http.get(state.location, timeout=timeouts.metadata)
        except httpx.TransportError as exc:  # still down: keep the session, the next attempt asks again
            raise _transport_failure(
                f"upload status of {label}", self.base_url, exc, timeouts.metadata
            ) from exc
        if response.status_code in (429, 503):
            raise _RetriableError(
                f"upload status of {label}: {_describe_errors(response)}",
                response,
                retry_after=_retry_after(response),
            )
        state.needs_resync = False
        match = _RANGE_RE.match(response.headers.get("range", ""))
        if response.status_code == 204 and match and match.group(2) != "0":
            # "0-0" means 0 or 1 byte (docker/distribution writes it for both): restart rather than guess.
            state.offset = int(match.group(2)) + 1
            if response.headers.get("location"):
                state.location = self._absolute(response.headers["location"])
            log.info("resuming %s at byte %d", label, state.offset)
            return
        log.info(
            "restarting the upload of %s from its first byte (session status: %s)",
            label,
            _describe_errors(response),
        )
        self._cancel_session(state)
        state.location = None

    def abort(self) -> None:
        """Stop every upload in flight at its next buffer (another upload of the same push failed)."""
        self._aborted.set()

    def _counted(self, pieces: Iterator[bytes], key: str, sent: list[int]) -> Iterator[bytes]:
        for piece in pieces:
            if self._aborted.is_set():
                raise RegistryError("upload aborted: another blob of this push failed")
            sent[0] += len(piece)
            if self.progress:
                self.progress.advance(key, len(piece))
            yield piece

    def _put_whole(
        self, blob: BlobSource, state: _Upload, key: str, sent: list[int], timeouts: _Timeouts
    ) -> None:
        assert state.location is not None
        what = f"upload {blob.digest[:19]}"
        url = httpx.URL(state.location).copy_merge_params({"digest": blob.digest})
        cursor = _BlobCursor(blob, 0)
        try:
            response = self._send(
                "PUT",
                str(url),
                what=what,
                timeout=timeouts.data,
                content=self._counted(cursor.take(blob.size, last=True), key, sent),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
            )
        except _RetriableError:
            state.location = None  # a monolithic PUT cannot resume: restart the session
            raise
        finally:
            cursor.close()
        self._check_committed(blob, response, what)

    def _patch_chunks(
        self, blob: BlobSource, state: _Upload, key: str, sent: list[int], label: str, timeouts: _Timeouts
    ) -> None:
        cursor = _BlobCursor(blob, state.offset)  # one pass over the source per attempt, however many chunks
        try:
            self._send_chunks(blob, state, key, sent, cursor, label, timeouts)
        finally:
            cursor.close()

    def _send_chunks(
        self,
        blob: BlobSource,
        state: _Upload,
        key: str,
        sent: list[int],
        cursor: _BlobCursor,
        label: str,
        timeouts: _Timeouts,
    ) -> None:
        while state.offset < blob.size:
            assert state.location is not None
            length = min(state.chunk_size, blob.size - state.offset)
            end = state.offset + length - 1
            # Not `blob.digest` here: a layer built on the fly learns its digest only at the end of its stream.
            what = f"upload of {label} bytes {state.offset}-{end}"
            response = self._send(
                "PATCH",
                state.location,
                what=what,
                timeout=timeouts.data,
                content=self._counted(cursor.take(length), key, sent),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(length),
                    "Content-Range": f"{state.offset}-{end}",
                },
            )
            if response.status_code == 416:
                raise _RetriableError(f"{what}: registry reports a different offset (416)", response)
            if response.status_code != 202:
                if response.status_code in (400, 404):  # session unknown or invalid: start a new one
                    state.location = None
                    raise _RetriableError(f"{what}: {_describe_errors(response)}", response)
                raise self._unexpected(what, response)
            if response.headers.get("location"):
                state.location = self._absolute(response.headers["location"])
            match = _RANGE_RE.match(response.headers.get("range", ""))
            server_end = int(match.group(2)) if match else end
            if server_end != end:
                state.offset = server_end + 1
                raise _RetriableError(f"{what}: registry holds bytes up to {server_end}")
            state.offset = end + 1
        cursor.finish()

    def _close_session(self, blob: BlobSource, state: _Upload, timeouts: _Timeouts) -> None:
        assert state.location is not None
        what = f"commit {blob.digest[:19]}"
        url = httpx.URL(state.location).copy_merge_params({"digest": blob.digest})
        # The registry checks the whole blob before it answers: the stall bound, not the metadata one.
        response = self._send(
            "PUT",
            str(url),
            what=what,
            timeout=timeouts.data,
            content=b"",
            headers={"Content-Type": "application/octet-stream"},
        )
        if response.status_code in (404,):
            state.location = None
            raise _RetriableError(f"{what}: {_describe_errors(response)}", response)
        self._check_committed(blob, response, what)

    def _check_committed(self, blob: BlobSource, response: httpx.Response, what: str) -> None:
        if response.status_code != 201:
            raise response_error(f"{self.host}: {what} rejected: {_describe_errors(response)}", response)
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed != blob.digest:
            raise RegistryError(f"{self.host}: {what}: registry stored {claimed}, expected {blob.digest}")
