"""Image references as they appear in GitOps values: `[SCHEME://]REPOSITORY[:TAG][@sha256:HEX]`.

Matching is by exact repository, so `.../qwen-7b` never matches `.../qwen-7b-awq`; a scheme
(KServe's `oci://`) and a tag are kept as written, only the digest is ever replaced.

A digest written in uppercase hex (`sha256:ABC...`) is the same digest: OCI spells the hex in lowercase,
so one in uppercase is still a pin of that image, and a bump rewrites it (in lowercase, as every digest
it writes). Comparisons use the lowercase form (`canonical_digest`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm_platform.errors import InputError
from llm_platform.oci import DIGEST_RE
from llm_platform.registry.reference import TAG_PATTERN, parse_reference

_SCHEME = r"[a-z][a-z0-9+.-]*://"
# A digest as a pin may be written: sha256 and 64 hex digits of either case.
WRITTEN_DIGEST_PATTERN = r"sha256:[0-9a-fA-F]{64}"
WRITTEN_DIGEST_RE = re.compile(rf"^{WRITTEN_DIGEST_PATTERN}$")


def canonical_digest(written: str) -> str:
    """The digest as OCI spells it (lowercase hex)."""
    return written.lower()


@dataclass(frozen=True)
class PinnedImage:
    """The `--ref` being bumped to: REPOSITORY@sha256:HEX."""

    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


def parse_pinned_image(text: str, *, what: str = "--ref") -> PinnedImage:
    """Parse `REGISTRY/REPO@sha256:<64 hex>` with the image-reference grammar; a tag is refused because the lock
    and the trailers pin digests. The repository is kept as written: it is what the tree spells."""
    ref = parse_reference(text.strip(), what=what)
    if ref.digest is None:
        raise InputError(
            f"{what}: {text!r} is not digest-pinned; expected REGISTRY/REPOSITORY@sha256:<64 hex>"
        )
    if ref.tag is not None:
        raise InputError(f"{what}: {text!r} carries a tag; give REGISTRY/REPOSITORY@sha256:<hex> without one")
    repository = text.strip().rpartition("@")[0]
    if "/" not in repository:
        raise InputError(f"{what}: {text!r} names no registry; give REGISTRY/REPOSITORY@sha256:<hex>")
    return PinnedImage(repository=repository, digest=ref.digest)


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
    digest: str | None  # canonical (lowercase)
    written_digest: str | None  # as written in the value


class RepositoryMatcher:
    """Recognises values that reference one repository, in any of the written forms."""

    def __init__(self, repository: str, current: str | None = None) -> None:
        self.repository = repository
        # The digest the bump writes: a reference that already holds it (as written) is not edited, so a
        # form that could not be edited exactly, or a digest shared with another image, is no problem there.
        self.current = current
        # REGISTRY and the rest, for charts that split them into `registry:` and `repository:` fields.
        self.registry, _, self.path = repository.partition("/")
        self._value_re = re.compile(
            rf"^(?P<scheme>{_SCHEME})?{re.escape(repository)}"
            rf"(?::(?P<tag>{TAG_PATTERN}))?(?:@(?P<digest>{WRITTEN_DIGEST_PATTERN}))?$"
        )
        # A mention in free text (comments, args, annotations): REPO not followed by more name characters.
        self._mention_re = re.compile(rf"{re.escape(repository)}(?![a-z0-9_/]|[.-][a-z0-9])")
        # What every written form of the repository contains literally (split fields, escaped slashes).
        self.needle = repository.rsplit("/", 1)[-1]

    def match(self, value: str) -> ValueMatch | None:
        found = self._value_re.match(value)
        if found is None:
            return None
        written = found["digest"]
        return ValueMatch(
            scheme=found["scheme"],
            tag=found["tag"],
            digest=canonical_digest(written) if written else None,
            written_digest=written,
        )

    def is_split(self, registry: str, repository: str) -> bool:
        """Whether `registry:` and `repository:` fields together name this repository."""
        return bool(self.path) and registry == self.registry and repository == self.path

    def mentions(self, text: str) -> list[int]:
        """Character offsets where the repository is named in `text` (a file's whole text)."""
        return [m.start() for m in self._mention_re.finditer(text)]
