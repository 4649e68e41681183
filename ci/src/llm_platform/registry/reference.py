"""Image references `REGISTRY/REPOSITORY[:TAG][@DIGEST]`, parsed and normalised like the docker/distribution grammar."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from llm_platform.errors import InvalidReferenceError
from llm_platform.oci import DIGEST_RE

DOCKER_HUB = "docker.io"
# docker.io is a name, not a host: its API lives elsewhere (docker/distribution reference normalisation).
DOCKER_HUB_API_HOST = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_TAG_RE = re.compile(rf"^{TAG_PATTERN}$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::\d+)?$"
)
_MAX_NAME_LENGTH = 255  # REGISTRY/REPOSITORY, the distribution spec's limit


class ImageReference(BaseModel):
    """A parsed reference; `registry` is the name users write (docker.io), `api_host` where to connect."""

    model_config = ConfigDict(frozen=True)

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """`REGISTRY/REPOSITORY` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> ImageReference:
        """The digest-pinned form (tag dropped): what the pipeline prints and pins."""
        return ImageReference(registry=self.registry, repository=self.repository, digest=digest)

    def with_repository(self, repository: str) -> ImageReference:
        return ImageReference(registry=self.registry, repository=repository)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def parse_reference(text: str, *, what: str = "image reference") -> ImageReference:
    """Parse and normalise a reference; `what` names the flag or field in the error message."""
    raw = text.strip()
    if not raw:
        raise InvalidReferenceError(f"{what}: empty image reference")
    if raw != text:
        raise InvalidReferenceError(f"{what}: {text!r} has surrounding whitespace")
    if "://" in raw:
        raise InvalidReferenceError(
            f"{what}: {text!r} must be REGISTRY/REPOSITORY[:TAG][@DIGEST], without a URL scheme"
        )
    rest, _, digest = raw.partition("@")
    if digest and not DIGEST_RE.match(digest):
        raise InvalidReferenceError(
            f"{what}: {text!r} has an invalid digest {digest!r} (expected sha256:<64 hex>)"
        )
    first, slash, remainder = rest.partition("/")
    if slash and _looks_like_host(first):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    registry = registry.lower() if not registry.startswith("[") else registry
    if registry in ("index.docker.io", DOCKER_HUB_API_HOST):
        registry = DOCKER_HUB
    if not _HOST_RE.match(registry):
        raise InvalidReferenceError(f"{what}: {text!r} has an invalid registry host {registry!r}")
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"{what}: {text!r} has an invalid tag {tag!r}")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPOSITORY_RE.match(path):
        raise InvalidReferenceError(
            f"{what}: {text!r} has an invalid repository {path!r} "
            "(lowercase letters, digits and . _ - separators, components joined by /)"
        )
    if len(f"{registry}/{path}") > _MAX_NAME_LENGTH:
        raise InvalidReferenceError(
            f"{what}: {text!r} names a repository longer than {_MAX_NAME_LENGTH} characters"
        )
    return ImageReference(registry=registry, repository=path, tag=tag, digest=digest or None)


def is_loopback(host: str) -> bool:
    """Loopback registries are spoken to over plain HTTP without being named insecure (as docker does)."""
    bare = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return bare in ("localhost", "127.0.0.1", "[::1]") or bare.startswith("127.")
