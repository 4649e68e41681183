"""The Hugging Face Hub under the network bounds of `llm_platform.network`, and its failures as one line.

huggingface_hub retries on its own: a download resumes after a stall or a dropped connection, a 429 waits for
its Retry-After, a failed metadata HEAD is tried again with a 60 s timeout; none of that has a bound on the
total. Through its documented hook, `set_client_factory`, it gets an httpx2 client whose event hooks

- set every request's timeouts from the bounds (`connect`; `metadata` for the API and HEADs; `read`, the stall
  bound of `--timeout`, for file downloads), so HF_HUB_DOWNLOAD_TIMEOUT / HF_HUB_ETAG_TIMEOUT no longer apply;
- count each download's failed attempts, stalls and waits against a `RetryBudget`: past the retries, the retry
  budget or the longest Retry-After honoured, the request ends in `GiveUp`, which huggingface_hub does not retry.

Imported only when a spec's files come from the hub (huggingface_hub and httpx2 are slow to import).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import get_session, hf_hub_download, set_client_factory
from huggingface_hub.errors import (
    FileMetadataError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from llm_platform.errors import InputError, PlatformError
from llm_platform.network import TIMEOUT_ENV, GiveUp, NetworkBounds, RetryBudget, parse_retry_after

T = TypeVar("T")
RETRIED_STATUS = (408, 429, 500, 502, 503, 504)  # what huggingface_hub retries
HUB_RETRIES = 4


class _HubCall:
    """One hub operation (a file download, huggingface_hub's own retries included): its failed attempts and
    waits, counted by the client's event hooks."""

    def __init__(self, bounds: NetworkBounds, retries: int) -> None:
        self.budget = RetryBudget(bounds, retries=retries)
        self.in_flight: float | None = None  # when the request now on the wire was sent (no response yet)
        self.failed_at: float | None = None  # when the last failure was seen (a response or a broken body)
        self.last = ""  # what the last failure was

    def fail(self, what: str, *, stalled: float = 0.0, retry_after: float | None = None) -> None:
        self.last = what
        self.failed_at = time.monotonic()
        try:
            self.budget.failed(stalled=stalled, retry_after=retry_after)
        except GiveUp as stop:
            raise GiveUp(f"{what}; {stop}") from None


_CALL: contextvars.ContextVar[_HubCall | None] = contextvars.ContextVar("llm_platform_hub_call", default=None)


def _is_data(request: httpx2.Request) -> bool:
    """A file download (the stall bound applies), not an API call or a metadata HEAD."""
    return request.method == "GET" and "/api/" not in request.url.path


class _WatchedStream(httpx2.SyncByteStream):
    """A download's body: a stall or a dropped connection counts as a failed attempt of its `_HubCall`."""

    def __init__(self, inner: httpx2.SyncByteStream, call: _HubCall, read: float) -> None:
        self._inner, self._call, self._read = inner, call, read

    def __iter__(self) -> Iterator[bytes]:
        count = 0
        try:
            for piece in self._inner:
                count += len(piece)
                yield piece
        except httpx2.TimeoutException as exc:
            self._call.fail(
                f"stalled after {count} bytes: nothing for {self._read:g} s ({type(exc).__name__})",
                stalled=self._read,
            )
            raise
        except httpx2.TransportError as exc:
            self._call.fail(f"connection dropped after {count} bytes ({type(exc).__name__})")
            raise

    def close(self) -> None:
        self._inner.close()


class _BoundHooks:
    """The event hooks of the hub client: timeouts from the bounds, failures counted per `_HubCall`."""

    def __init__(self, bounds: NetworkBounds) -> None:
        self.bounds = bounds

    def on_request(self, request: httpx2.Request) -> None:
        bounds, call = self.bounds, _CALL.get()
        read = bounds.read if _is_data(request) else bounds.metadata
        connect = bounds.connect
        if call is None:  # not a download: a timeout the caller chose (clamped to the bounds) stays
            given = (request.extensions.get("timeout") or {}).get("read")
            read = min(read, given) if given else read
        else:
            now = time.monotonic()
            if call.in_flight is not None:  # the previous request got no answer: refused, stalled or dropped
                waited = now - call.in_flight
                call.fail(
                    f"no answer from the hub for {waited:.1f} s (refused, cut or stalled)", stalled=waited
                )
            elif call.failed_at is not None:
                call.budget.waited(now - call.failed_at)
            call.failed_at = None
            try:
                call.budget.check()
            except GiveUp as stop:
                raise GiveUp(f"{call.last}; {stop}") from None
            read, connect = call.budget.timeout(read), call.budget.timeout(connect)
            call.in_flight = now
        request.extensions["timeout"] = {"connect": connect, "read": read, "write": read, "pool": read}

    def on_response(self, response: httpx2.Response) -> None:
        call = _CALL.get()
        if call is None:
            return
        call.in_flight = None
        status = response.status_code
        if status in RETRIED_STATUS:
            retry_after = (
                parse_retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
            )
            call.fail(f"the hub answered HTTP {status}", retry_after=retry_after)
        elif (
            status < 300 and _is_data(response.request) and isinstance(response.stream, httpx2.SyncByteStream)
        ):
            read = (response.request.extensions.get("timeout") or {}).get("read") or self.bounds.read
            response.stream = _WatchedStream(response.stream, call, float(read))


_installed: NetworkBounds | None = None
_hub_hooks: dict[str, list[Callable[..., Any]]] | None = None
_lock = threading.Lock()


def install(bounds: NetworkBounds) -> None:
    """Make huggingface_hub's shared client one with these bounds (once per set of bounds)."""
    global _installed, _hub_hooks
    with _lock:
        if _installed == bounds:
            return
        if _hub_hooks is None:  # huggingface_hub's own hooks (offline mode, request ids), kept
            _hub_hooks = {name: list(hooks) for name, hooks in get_session().event_hooks.items()}
        hooks, own = _BoundHooks(bounds), _hub_hooks

        def client() -> httpx2.Client:
            return httpx2.Client(
                event_hooks={
                    "request": [*own.get("request", []), hooks.on_request],
                    "response": [*own.get("response", []), hooks.on_response],
                },
                follow_redirects=True,
                timeout=None,
            )

        set_client_factory(client)
        _installed = bounds


def _retriable(exc: Exception, timeout: float) -> tuple[float, float | None] | None:
    """(seconds stalled, Retry-After) when `exc` is worth another attempt, else None."""
    if isinstance(exc, httpx2.TimeoutException):
        return timeout, None
    if isinstance(exc, httpx2.TransportError) and not isinstance(exc, httpx2.ProxyError):
        return 0.0, None
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in RETRIED_STATUS:
            header = exc.response.headers.get("retry-after") if status in (429, 503) else None
            return 0.0, parse_retry_after(header)
    return None


def call_api(fn: Callable[[float], T], *, where: str, what: str, bounds: NetworkBounds, retries: int) -> T:
    """`fn(timeout)` (an API call huggingface_hub does not retry) under the retries and the retry budget."""
    budget = RetryBudget(bounds, retries=retries)
    while True:
        timeout = budget.timeout(bounds.metadata)
        try:
            return fn(timeout)
        except Exception as exc:  # noqa: BLE001 - huggingface_hub fails in many classes: each becomes one line
            retry = _retriable(exc, timeout)
            if retry is None:
                raise hub_error(where, what, exc) from None
            try:
                delay = budget.failed(stalled=retry[0], retry_after=retry[1])
            except GiveUp as stop:
                raise hub_error(where, what, exc, stop) from None
            time.sleep(delay)
            budget.waited(delay)


def download(
    repo: str,
    path: str,
    *,
    commit: str,
    where: str,
    bounds: NetworkBounds,
    retries: int = HUB_RETRIES,
    token: str | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """The file in the hub cache (downloaded first if need be), or one error naming the repo and the file."""
    install(bounds)
    reset = _CALL.set(_HubCall(bounds, retries))
    try:
        local = hf_hub_download(
            repo,
            path,
            revision=commit,
            token=token,
            cache_dir=cache_dir,
            endpoint=endpoint,
            etag_timeout=bounds.metadata,
        )
    except Exception as exc:  # noqa: BLE001 - huggingface_hub fails in many classes: each becomes one line
        raise hub_error(where, f"download of {path}", exc) from None
    finally:
        _CALL.reset(reset)
    return Path(str(local))


_TRY_AGAIN = "check the network and the hub's status (or HF_ENDPOINT), then run again"


def hub_error(where: str, what: str, exc: BaseException, stop: GiveUp | None = None) -> PlatformError:
    """One line for a hub failure: InputError (exit 2) for what the spec or the token must fix, else
    PlatformError (exit 1). Names the repo (`where`) and the file (`what`), never the token."""
    given_up = f"; {stop}" if stop is not None else ""
    if isinstance(exc, LocalEntryNotFoundError) and isinstance(exc.__cause__, Exception):
        return hub_error(where, what, exc.__cause__, stop)  # the HEAD's failure, wrapped by huggingface_hub
    if isinstance(exc, GiveUp):
        return PlatformError(f"{where}: {what}: {exc}; {_TRY_AGAIN}")
    if isinstance(exc, OfflineModeIsEnabled) or isinstance(exc.__cause__, OfflineModeIsEnabled):
        return InputError(
            f"{where}: {what}: HF_HUB_OFFLINE is set and the file is not in the hub cache: unset it, or take "
            f"the files from a directory with --source-dir"
        )
    if isinstance(exc, GatedRepoError):
        return InputError(f"{where}: gated repo: accept its terms on the hub and pass a token (HF_TOKEN)")
    if isinstance(exc, RepositoryNotFoundError):
        return InputError(f"{where}: repository not found (or private: pass a token with HF_TOKEN)")
    if isinstance(exc, RevisionNotFoundError):
        return InputError(f"{where}: revision not found (huggingface.revision)")
    if isinstance(exc, RemoteEntryNotFoundError):
        return InputError(
            f"{where}: {what}: the file is not in the repo at this revision (check the spec's patterns)"
        )
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return InputError(
                f"{where}: {what}: the hub refused the token (HTTP 401): check HF_TOKEN or --hf-token"
            )
        if status == 403:
            return InputError(
                f"{where}: {what}: access denied (HTTP 403): the token has no access to this repo"
            )
        if status == 429:
            return PlatformError(
                f"{where}: {what}: rate limited by the hub (HTTP 429){given_up}; wait, then run again"
            )
        return PlatformError(f"{where}: {what}: the hub answered HTTP {status}{given_up}; {_TRY_AGAIN}")
    if isinstance(exc, httpx2.TimeoutException):
        return PlatformError(
            f"{where}: {what}: the hub stalled ({type(exc).__name__}){given_up}; check the network, or raise "
            f"--timeout or ${TIMEOUT_ENV}"
        )
    if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError)):
        return PlatformError(
            f"{where}: {what}: the connection dropped ({type(exc).__name__}){given_up}; run again"
        )
    if isinstance(exc, httpx2.TransportError):
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return PlatformError(
            f"{where}: {what}: cannot reach the hub ({type(exc).__name__}{': ' + detail if detail else ''})"
            f"{given_up}; {_TRY_AGAIN}"
        )
    if isinstance(exc, LocalEntryNotFoundError):
        return PlatformError(
            f"{where}: {what}: cannot reach the hub and the file is not in the hub cache; {_TRY_AGAIN}"
        )
    if isinstance(exc, FileMetadataError):
        return PlatformError(
            f"{where}: {what}: the hub's answer has no file metadata (ETag, commit, size): is HF_ENDPOINT a hub?"
        )
    if isinstance(exc, (ValueError, TypeError, KeyError)) and what == "model info":
        return PlatformError(
            f"{where}: {what}: the hub's answer is not the JSON it should be (a proxy or a captive portal? check "
            f"HF_ENDPOINT); {_TRY_AGAIN}"
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if "Consistency check failed" in reason:
            reason = "the file arrived incomplete (the connection dropped?)"
        return PlatformError(f"{where}: {what}: {reason}; run again")
    return PlatformError(
        f"{where}: {what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )
