"""Image references as they appear in GitOps values: `[SCHEME://]REPOSITORY[:TAG][@sha256:HEX]`.

Matching is by exact repository, so `.../qwen-7b` never matches `.../qwen-7b-awq`; a scheme
(KServe's `oci://`) and a tag are kept as written, only the digest is ever replaced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm_platform.errors import InputError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_SCHEME = r"[a-z][a-z0-9+.-]*://"
# Characters that may continue a repository name; used to tell `REPO` from `REPO-other` in free text.
REPOSITORY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-/"


@dataclass(frozen=True)
class PinnedImage:
    """The `--ref` being bumped to: REPOSITORY@sha256:HEX."""

    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


def parse_pinned_image(text: str, *, what: str = "--ref") -> PinnedImage:
    """Parse `REGISTRY/REPO@sha256:<64 hex>`; a tag is refused because the lock and the trailers pin digests."""
    repository, at, digest = text.strip().rpartition("@")
    if not at or not repository:
        raise InputError(
            f"{what}: {text!r} is not digest-pinned; expected REGISTRY/REPOSITORY@sha256:<64 hex>"
        )
    if not DIGEST_RE.match(digest):
        raise InputError(
            f"{what}: {text!r} has an invalid digest {digest!r}; expected sha256:<64 lowercase hex>"
        )
    if "://" in repository:
        raise InputError(
            f"{what}: {text!r} must not carry a URL scheme; give REGISTRY/REPOSITORY@sha256:<hex>"
        )
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        raise InputError(f"{what}: {text!r} carries a tag; give REGISTRY/REPOSITORY@sha256:<hex> without one")
    if "/" not in repository or repository != repository.lower() or any(c.isspace() for c in repository):
        raise InputError(f"{what}: {text!r} has an invalid repository {repository!r}")
    return PinnedImage(repository=repository, digest=digest)


def parse_digest(text: str, *, what: str = "--expect") -> str:
    digest = text.strip()
    if not DIGEST_RE.match(digest):
        raise InputError(f"{what}: {text!r} is not a digest; expected sha256:<64 lowercase hex>")
    return digest


@dataclass(frozen=True)
class ValueMatch:
    """A scalar value that names the repository."""

    scheme: str | None
    tag: str | None
    digest: str | None


class RepositoryMatcher:
    """Recognises values that reference one repository, in any of the written forms."""

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self._value_re = re.compile(
            rf"^(?P<scheme>{_SCHEME})?{re.escape(repository)}"
            rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>sha256:[0-9a-f]{{64}}))?$"
        )
        # A mention in free text (comments, args, annotations): REPO not followed by more name characters.
        self._mention_re = re.compile(rf"{re.escape(repository)}(?![a-z0-9_/]|[.-][a-z0-9])")

    def match(self, value: str) -> ValueMatch | None:
        found = self._value_re.match(value)
        if found is None:
            return None
        return ValueMatch(scheme=found["scheme"], tag=found["tag"], digest=found["digest"])

    def mentions(self, text: str) -> list[int]:
        """Character offsets where the repository is named in `text` (a file's whole text)."""
        return [m.start() for m in self._mention_re.finditer(text)]
