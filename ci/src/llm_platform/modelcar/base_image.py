"""The base image a modelcar is built on: from a local OCI layout (`oci:DIR[:TAG]`) or a registry.

An image index is resolved to the manifest of the requested platform (linux/amd64 by default).
Manifests and configs are verified against their digests when read; layers are verified while
they are streamed into the output. Registry bases are read through `llm_platform.registry` (its
reference grammar, credential resolution and HTTP client), the same code the push uses.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_platform.documents import OCI_LIMITS, DocumentError, cut, load_json, read_bytes
from llm_platform.errors import InputError, PlatformError
from llm_platform.modelcar.blob import Blob, StreamBlob, read_file_chunks
from llm_platform.network import NetworkBounds
from llm_platform.oci import (
    ANNOTATION_REF_NAME,
    DIGEST_RE,
    DOCKER_TO_OCI,
    INDEX_TYPES,
    MANIFEST_TYPES,
    sha256_digest,
)
from llm_platform.registry.reference import ImageReference, parse_reference

_PLATFORM_RE = re.compile(r"^(?P<os>[a-z0-9]+)/(?P<arch>[a-z0-9_]+)(?:/(?P<variant>[a-z0-9]+))?$")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, entry: dict[str, Any]) -> bool:
        if entry.get("os") != self.os or entry.get("architecture") != self.architecture:
            return False
        variant = entry.get("variant")
        if self.variant is None:
            # arm64 images carry variant v8 or none; other unqualified requests take the first match.
            return variant in (None, "", "v8") if self.architecture == "arm64" else True
        return variant == self.variant or (
            variant in (None, "") and (self.architecture, self.variant) == ("arm64", "v8")
        )


def parse_platform(text: str) -> Platform:
    match = _PLATFORM_RE.match(text)
    if not match:
        raise InputError(f"--platform {text!r}: expected os/arch[/variant], e.g. linux/amd64")
    return Platform(match["os"], match["arch"], match["variant"])


@dataclass
class BaseImage:
    """A resolved single-platform base image: its manifest digest, config, and layers."""

    reference: str
    manifest_digest: str
    config: dict[str, Any]
    layers: list[Blob]


class _Reader:
    """Manifests and blobs of one image, wherever they live. `bad` is what a malformed document is:
    the user's input (InputError) in a local layout, a service's fault (PlatformError) in a registry."""

    origin: str
    bad: type[PlatformError] = PlatformError

    def name(self, digest: str) -> str:
        """How errors name the document `digest`."""
        return f"{self.origin}{digest}"

    def manifest(self, descriptor_or_ref: str) -> tuple[bytes, str]:
        raise NotImplementedError

    def blob(self, digest: str) -> bytes:
        raise NotImplementedError

    def layer(self, descriptor: dict[str, Any]) -> Blob:
        raise NotImplementedError


class _LayoutReader(_Reader):
    bad = InputError

    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin = f"oci:{root}: "

    def name(self, digest: str) -> str:
        return f"{self.origin}blobs/sha256/{digest.removeprefix('sha256:')}"

    def _path(self, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise PlatformError(f"{self.origin}unsupported or malformed digest {digest!r}")
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def blob(self, digest: str) -> bytes:
        try:
            data = read_bytes(self._path(digest), OCI_LIMITS, source=self.name(digest))
        except DocumentError as exc:
            if exc.kind == "missing":
                raise PlatformError(f"{self.origin}blob {digest} is missing from the layout") from None
            raise
        if sha256_digest(data) != digest:
            raise PlatformError(f"{self.origin}blob {digest} does not match its digest")
        return data

    def manifest(self, descriptor_or_ref: str) -> tuple[bytes, str]:
        data = self.blob(descriptor_or_ref)
        declared = _object(self, data, self.name(descriptor_or_ref)).get("mediaType")
        return data, declared if isinstance(declared, str) else ""

    def layer(self, descriptor: dict[str, Any]) -> Blob:
        path = self._path(descriptor["digest"])
        if not path.is_file():
            raise PlatformError(f"{self.origin}layer {descriptor['digest']} is missing from the layout")
        return _layer_blob(descriptor, lambda: read_file_chunks(path), self.origin)


class _RegistryReader(_Reader):
    """One repository of a registry, through one pooled client kept for as long as the layers may be read
    (a build or a push streams them well after `load_base` returns)."""

    def __init__(self, ref: ImageReference, bounds: NetworkBounds | None = None) -> None:
        self.repository = ref.repository
        self.origin = f"{ref.name}: "
        # Imported here: httpx costs ~0.15 s of start-up, and an `oci:` base never talks to a registry.
        from llm_platform.registry.auth import resolve_credentials
        from llm_platform.registry.client import RegistryClient

        self.client = RegistryClient(
            ref.api_host, credentials=resolve_credentials(ref.registry), bounds=bounds
        )
        weakref.finalize(self, self.client.close)

    def manifest(self, descriptor_or_ref: str) -> tuple[bytes, str]:
        data, _, content_type = self.client.get_manifest(self.repository, descriptor_or_ref)
        declared = _object(self, data, self.name(descriptor_or_ref)).get("mediaType")
        return data, declared if isinstance(declared, str) and declared else str(content_type)

    def blob(self, digest: str) -> bytes:
        return self.client.get_blob(self.repository, digest)

    def layer(self, descriptor: dict[str, Any]) -> Blob:
        digest, size = descriptor["digest"], int(descriptor["size"])
        return _layer_blob(
            descriptor,
            lambda: self.client.stream_blob(self.repository, digest, size=size),
            self.origin,
        )


def _object(reader: _Reader, data: bytes, where: str) -> dict[str, Any]:
    """An OCI JSON document (index, manifest, config) as an object, within OCI_LIMITS."""
    try:
        document = load_json(data, source=where, limits=OCI_LIMITS)
    except DocumentError as exc:
        raise reader.bad(str(exc)) from None
    if not isinstance(document, dict):
        raise reader.bad(f"{where}: not a JSON object")
    return document


def _field_list(reader: _Reader, document: dict[str, Any], key: str, where: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        problem = "missing" if value is None else "not a list"
        raise reader.bad(f"{where}: {key}: {problem} (an OCI {_kind(key)} needs it)")
    return value


def _kind(key: str) -> str:
    return {"manifests": "index", "layers": "image manifest", "config": "image manifest"}.get(key, "document")


def _descriptor(
    reader: _Reader, entry: Any, where: str, field: str, *, sized: bool = False
) -> dict[str, Any]:
    """`entry` checked as an OCI descriptor: mediaType and digest (and size, for what is streamed)."""
    if not isinstance(entry, dict):
        raise reader.bad(f"{where}: {field}: not a descriptor object")
    for key in ("mediaType", "digest"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise reader.bad(
                f"{where}: {field}.{key}: missing (a descriptor needs mediaType, digest and size)"
            )
    if not DIGEST_RE.match(entry["digest"]):
        raise reader.bad(f"{where}: {field}.digest: {cut(entry['digest'], 80)!r} is not a sha256 digest")
    size = entry.get("size")
    if sized and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise reader.bad(f"{where}: {field}.size: missing or not a byte count")
    return entry


def _layer_blob(descriptor: dict[str, Any], opener: Any, origin: str) -> Blob:
    media_type = DOCKER_TO_OCI.get(descriptor["mediaType"], descriptor["mediaType"])
    return StreamBlob(
        media_type,
        descriptor["digest"],
        int(descriptor["size"]),
        opener,
        descriptor.get("annotations"),
        origin,
    )


def _select_platform(
    reader: _Reader, index: dict[str, Any], platform: Platform, where: str
) -> dict[str, Any]:
    entries = _field_list(reader, index, "manifests", where)
    for i, entry in enumerate(entries):
        entry = _descriptor(reader, entry, where, f"manifests[{i}]")
        wanted = entry.get("platform")
        if platform.matches(wanted if isinstance(wanted, dict) else {}):
            return dict(entry)
    available = sorted(
        "/".join(str(p) for p in (e["platform"].get(k) for k in ("os", "architecture", "variant")) if p)
        for e in entries
        if isinstance(e.get("platform"), dict)
    )
    raise InputError(
        f"{reader.origin}no manifest for platform {platform} (available: {', '.join(available) or 'none'})"
    )


def _resolve(reader: _Reader, first: str, reference: str, platform: Platform) -> BaseImage:
    data, media_type = reader.manifest(first)
    digest = sha256_digest(data)
    where = reader.name(first)
    document = _object(reader, data, where)
    if media_type in INDEX_TYPES or "manifests" in document:
        entry = _select_platform(reader, document, platform, where)
        data, media_type = reader.manifest(entry["digest"])
        digest, where = sha256_digest(data), reader.name(entry["digest"])
        document = _object(reader, data, where)
    if media_type not in MANIFEST_TYPES and "config" not in document:
        raise PlatformError(
            f"{reader.origin}{digest} is not an image manifest ({media_type or 'no media type'})"
        )
    config_descriptor = _descriptor(reader, document.get("config"), where, "config")
    descriptors = [
        _descriptor(reader, layer, where, f"layers[{i}]", sized=True)
        for i, layer in enumerate(_field_list(reader, document, "layers", where))
    ]
    config_where = reader.name(config_descriptor["digest"])
    config = _object(reader, reader.blob(config_descriptor["digest"]), config_where)
    actual = Platform(str(config.get("os", "")), str(config.get("architecture", "")), config.get("variant"))
    if (actual.os, actual.architecture) != (platform.os, platform.architecture):
        raise InputError(f"{reader.origin}base image is {actual}, not the requested {platform}")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise reader.bad(f"{config_where}: rootfs.diff_ids: missing (an image config needs it)")
    layers = [reader.layer(layer) for layer in descriptors]
    if len(layers) != len(diff_ids):
        raise PlatformError(f"{reader.origin}config rootfs.diff_ids does not match the manifest's layers")
    return BaseImage(reference=reference, manifest_digest=digest, config=config, layers=layers)


def split_layout_reference(reference: str) -> tuple[Path, str | None]:
    """`oci:DIR[:TAG]` -> (DIR, TAG); a colon that is part of an existing directory's name is not a tag."""
    rest = reference.removeprefix("oci:")
    directory, tag = rest, None
    head, sep, tail = rest.rpartition(":")
    if sep and head and "/" not in tail and not Path(rest).exists():
        directory, tag = head, tail
    return Path(directory), tag


def _layout(reference: str, platform: Platform) -> BaseImage:
    root, tag = split_layout_reference(reference)
    reader = _LayoutReader(root)
    where = f"--base {reference}: index.json"
    try:
        raw = read_bytes(root / "index.json", OCI_LIMITS, source=where)
    except DocumentError as exc:
        if exc.kind == "limit":
            raise
        raise InputError(f"--base {reference}: not an OCI layout (index.json: {exc.detail})") from None
    index = _object(reader, raw, where)
    every = [
        _descriptor(reader, e, where, f"manifests[{i}]")
        for i, e in enumerate(_field_list(reader, index, "manifests", where))
    ]
    entries = every

    def ref_name(entry: dict[str, Any]) -> Any:
        annotations = entry.get("annotations")
        return annotations.get(ANNOTATION_REF_NAME) if isinstance(annotations, dict) else None

    if tag is not None:
        entries = [e for e in entries if ref_name(e) == tag]
        if not entries:
            raise InputError(f"--base {reference}: no image tagged {cut(tag, 80)!r} in the layout")
    if len(entries) != 1:
        if tag is None and entries and all("platform" in e for e in entries):
            entries = [_select_platform(reader, index, platform, where)]
        else:
            tags = sorted(str(ref_name(e) or "?") for e in every)
            raise InputError(
                f"--base {reference}: the layout holds {len(entries)} images; name one of {tags}"
            )
    return _resolve(reader, entries[0]["digest"], reference, platform)


def load_base(
    reference: str, platform: Platform | str = "linux/amd64", *, bounds: NetworkBounds | None = None
) -> BaseImage:
    """Resolve `oci:DIR[:TAG]` or a digest-pinned registry reference to one platform's image; a registry is
    read within `bounds` (default: `$LLM_PLATFORM_HTTP_TIMEOUT`, else the defaults)."""
    if isinstance(platform, str):
        platform = parse_platform(platform)
    if reference.startswith("oci:"):
        return _layout(reference, platform)
    ref = parse_reference(reference, what="--base")
    if not ref.digest:
        raise InputError(f"--base {reference!r}: a registry base must be pinned by digest (@sha256:...)")
    return _resolve(_RegistryReader(ref, bounds), ref.digest, reference, platform)
