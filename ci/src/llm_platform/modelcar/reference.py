"""OCI image references (`[host[:port]/]path[:tag][@sha256:hex]`), parsed by the distribution grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The grammar of github.com/distribution/reference: lowercase path components joined by `.`, `_`, `__` or `-`s.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, the part a tag or digest is appended to."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """Host that serves the distribution API (Docker Hub's differs from its reference name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def insecure(self) -> bool:
        """Plain http only for loopback registries (tests, local mirrors); everything else is https."""
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry
        return host in ("localhost", "127.0.0.1", "[::1]")

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Parse an image reference; raise ValueError saying which part is wrong."""
    if not text or text != text.strip():
        raise ValueError("an image reference must be non-empty and have no surrounding spaces")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise ValueError(f"digest {digest!r} is not sha256:<64 lowercase hex>")
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ValueError(f"tag {tag!r} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, remainder
        if not _DOMAIN_RE.match(registry):
            raise ValueError(f"registry host {registry!r} is not a valid host[:port]")
    else:
        registry, path = DOCKER_HUB, rest
        if "/" not in path:
            path = f"library/{path}"
    if not _PATH_RE.match(path):
        raise ValueError(
            f"repository path {path!r} is not valid (lowercase letters, digits, and . _ __ - between them, "
            "components joined by /)"
        )
    if len(f"{registry}/{path}") > 255:
        raise ValueError("repository name is longer than 255 characters")
    return ImageReference(registry=registry, repository=path, tag=tag, digest=digest)
