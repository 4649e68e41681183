"""Typed errors, all in one place, and the error contract of the command line.

Every failure the pipeline expects ends as one of these: one clear message, one exit code (2: the user's
input; 1: a tool or a service; 3: a conflict). The CLI prints any failure as one line,
`llm-platform: error: <where>: <what>`, long values cut (`one_line`); a traceback only with -v.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

USER_ERROR = 2
SERVICE_ERROR = 1
# An error line longer than this is cut in the middle: a huge value is never echoed in full.
MESSAGE_LIMIT = 1000


class PlatformError(Exception):
    """Base of every expected failure; the CLI prints the message and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PlatformError):
    """Bad input from the user: a spec, a flag, a file. The message names the file, line or field."""

    exit_code = 2


class InvalidReferenceError(InputError, ValueError):
    """A malformed image reference. Also a ValueError, so a pydantic validator reports it against its field."""


class DocumentError(InputError):
    """A document that could not be read or parsed, or that exceeds its limits.

    `kind`: `missing`, `unreadable`, `not-regular`, `symlink-loop`, `syntax` or `limit`; `line` and
    `column` (1-based) when known, and `opening` (line, column) of a quote or bracket the end of the
    file left unclosed. The message is one line: `source:line: detail`.
    """

    def __init__(
        self, source: str, detail: str, *, kind: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.source = source
        self.detail = one_line(detail, 300)
        self.kind = kind
        self.line = line
        self.column = column
        self.opening: tuple[int, int] | None = None  # where an unclosed quote or bracket opens
        super().__init__(f"{self.where}: {self.detail}")

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    @property
    def syntax(self) -> bool:
        return self.kind == "syntax"


class SymlinkError(InputError):
    """A symlink that the bump will not follow: out of the repository, absolute, or a loop."""


class CouldNotRunError(InputError):
    """A command could not start its work (missing input, renderer or configuration)."""


class ToolError(PlatformError):
    """An external tool (git, tofu, kubectl, skopeo, ...) is missing or failed."""


class GitError(ToolError):
    """A git command failed; `stderr` is kept (token masked) so callers can classify push rejections."""

    def __init__(self, message: str, stderr: str = "", stdout: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr
        self.stdout = stdout


def url_without_credentials(url: str) -> str:
    """`url` with any `user:password@` removed: what an error may carry."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RegistryError(PlatformError):
    """An OCI registry refused, failed or could not be reached.

    When it answered, `method`, `url` (never with credentials), `status` and the OCI error `codes` of its
    body (`DIGEST_INVALID`, `BLOB_UNKNOWN`, ...) say what; callers decide on those, never on the text.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        codes: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url_without_credentials(url) if url else None
        self.status = status
        self.codes: tuple[str, ...] = tuple(codes)


class StaleDigestError(RegistryError):
    """The registry refused a layer streamed under a digest recorded earlier: the file has changed since."""

    def __init__(self, message: str, *, path: str, cause: RegistryError) -> None:
        super().__init__(message, method=cause.method, url=cause.url, status=cause.status, codes=cause.codes)
        self.path = path


class PinnedFileError(PlatformError):
    """A file pinned by sha256 in a lock (a CRD, a chart) could not be fetched, or did not match the lock."""


class ConflictError(PlatformError):
    """Someone else changed what we were about to change; nothing was overwritten."""

    exit_code = 3


class SpliceVerificationError(PlatformError):
    """An edited text is not the intended edit; nothing is written."""


class DestroyRefusedError(PlatformError):
    """A plan destroys or replaces a protected resource that `--allow-destroy` does not name."""


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """`message` on one line (line breaks become "; ", other runs of white space one space), cut in the
    middle to at most about `limit` characters so that its start (where) and its end (what to do) survive."""
    text = re.sub(r"[ \t]+", " ", re.sub(r"\s*\n\s*", "; ", message.strip()))
    if len(text) <= limit:
        return text
    keep = (limit - 40) // 2
    return f"{text[:keep]} ...[{len(text) - 2 * keep} characters cut]... {text[-keep:]}"


# Failures of the network below an OSError are the service's, not the user's.
_SERVICE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EPIPE,
}


def exit_code_for_os_error(exc: OSError) -> int:
    """Filesystem and permission problems are the user's (2); a broken connection is the service's (1)."""
    if isinstance(exc, (ConnectionError, TimeoutError)) or exc.errno in _SERVICE_ERRNOS:
        return SERVICE_ERROR
    return USER_ERROR


def describe_os_error(exc: OSError) -> str:
    """`<path>: <reason>` (both paths of a rename or link) for an OSError no layer turned into a message."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason
