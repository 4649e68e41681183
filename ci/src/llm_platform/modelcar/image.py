"""The image plan of a modelcar: the base image's layers, then one uncompressed tar layer per model
file (sorted by path; above the layer budget the smallest files share layers, `layer_budget`), a
timestamp-free config and an annotated manifest.

Nothing is read when the plan is made. A model layer's size is known from its headers; its digest
is learnt the first time its bytes stream (`write_layout` does that while writing, so a build
reads each file exactly once), unless a previous manifest already gave it (`reuse`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from llm_platform.errors import PlatformError
from llm_platform.modelcar import tar_layer
from llm_platform.modelcar.base_image import BaseImage, Platform, load_base, parse_platform
from llm_platform.modelcar.blob import Blob, BytesBlob
from llm_platform.modelcar.layer_budget import DEFAULT_MAX_LAYERS, group_files, model_layer_slots
from llm_platform.modelcar.layer_stream import LayerStream
from llm_platform.modelcar.paths import check_model_path, check_no_collisions
from llm_platform.modelcar.source import ModelFile, ModelSource
from llm_platform.modelcar.spec import ModelcarSpec
from llm_platform.oci import (
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_FILE_PATH,
    ANNOTATION_FILE_SHA256,
    ANNOTATION_FILES,
    ANNOTATION_HF_REPO,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    ANNOTATION_SPEC,
    ANNOTATION_TITLE,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    SHA256_HEX_RE,
    canonical_json,
    digest_of,
    sha256_digest,
)

# (path under /models, content sha256) of every file of a layer, in the layer's order: what a layer holds,
# whatever its origin (the digest of its tar follows from these and the sizes).
LayerMembers = tuple[tuple[str, str], ...]
# A layer's members -> (layer digest, layer size): what is known without reading.
Reuse = Mapping[LayerMembers, tuple[str, int]]


def layer_members(files: Sequence[ModelFile]) -> LayerMembers | None:
    """The members of the layer of `files`, or None while a file's sha256 is not known without reading it."""
    members = []
    for model_file in files:
        if model_file.known_sha256 is None:
            return None
        members.append((model_file.path, model_file.known_sha256))
    return tuple(members)


class ModelLayer(Blob):
    """The tar layer placing model files at /models/<path>: one file, or several above the layer budget."""

    verifies_digest = True  # open() learns or checks the digest over the bytes it yields

    def __init__(self, files: Sequence[ModelFile], known: tuple[str, int] | None = None) -> None:
        super().__init__(OCI_LAYER)
        self.files = list(files)
        self._size = tar_layer.layer_size([(f.path, f.size) for f in self.files])
        self._digest: str | None = None
        if known is not None and known[1] == self._size:
            self._digest = known[0]

    @property
    def known(self) -> bool:
        """True when the digest and every file's content sha256 are known without reading a file."""
        return self._digest is not None and layer_members(self.files) is not None

    @property
    def label(self) -> str:
        """What logs and errors call the layer: its file under /models, or its first and how many more."""
        first = tar_layer.member_name(self.files[0].path)
        return first if len(self.files) == 1 else f"{first} and {len(self.files) - 1} more files"

    @property
    def size(self) -> int:
        return self._size

    @property
    def digest(self) -> str:
        if self._digest is None:
            for _ in self.open():
                pass
        assert self._digest is not None
        return self._digest

    @property
    def annotations(self) -> dict[str, str]:
        if len(self.files) == 1:
            path = self.files[0].path
            return {
                ANNOTATION_TITLE: tar_layer.member_name(path),
                ANNOTATION_FILE_PATH: path,
                ANNOTATION_FILE_SHA256: self.files[0].sha256,
            }
        # No title: it names one file (ORAS and others take it as the file name of the blob).
        listing = [{"path": f.path, "sha256": f.sha256} for f in self.files]
        return {ANNOTATION_FILES: canonical_json(listing).decode("utf-8")}

    @property
    def resumable(self) -> bool:
        """Its files are read over the network: `open_from` reads from any offset, resuming there."""
        return any(f.remote for f in self.files)

    @cached_property
    def _stream(self) -> LayerStream:
        return LayerStream(self.files, hash_layer=True)

    def open(self) -> Iterator[bytes]:
        if self.resumable:
            return self.open_from(0)
        return self._open_local()

    def open_from(self, start: int) -> Iterator[bytes]:
        """The layer's bytes from `start` on (a resumable layer), its digest learnt or checked at the end."""
        return self._stream.read(start, on_end=self._learnt)

    def _open_local(self) -> Iterator[bytes]:
        hasher = hashlib.sha256()
        count = 0
        for chunk in tar_layer.stream_layer([(f.path, f.size, f.open) for f in self.files]):
            hasher.update(chunk)
            count += len(chunk)
            yield chunk
        self._learnt(digest_of(hasher), count)

    def _learnt(self, digest: str | None, count: int) -> None:
        if count != self._size:
            raise PlatformError(f"{self.label}: layer is {count} bytes, expected {self._size}")
        if self._digest is not None and digest != self._digest:
            raise PlatformError(
                f"{self.label}: layer digest {digest} differs from the recorded {self._digest}"
            )
        self._digest = digest


class ImagePlan:
    """What a modelcar image consists of; config and manifest are derived once all digests are known."""

    def __init__(
        self,
        spec: ModelcarSpec,
        source: ModelSource,
        base: BaseImage,
        platform: Platform,
        groups: Sequence[Sequence[ModelFile]],
        reuse: Reuse,
    ) -> None:
        self.spec, self.source, self.base, self.platform = spec, source, base, platform
        self.model_files: list[ModelFile] = list(source.files)
        self.model_layers: list[ModelLayer] = []
        for files in groups:
            members = layer_members(files)
            self.model_layers.append(ModelLayer(files, reuse.get(members) if members is not None else None))
        self.layers: list[Blob] = [*base.layers, *self.model_layers]
        self.annotations: dict[str, str] = {
            ANNOTATION_SOURCE: spec.source_url,
            ANNOTATION_REVISION: source.revision,
            ANNOTATION_TITLE: spec.name,
            ANNOTATION_SPEC: spec.name,
            ANNOTATION_HF_REPO: spec.huggingface.repo,
            ANNOTATION_BASE_DIGEST: base.manifest_digest,
        }

    @cached_property
    def config(self) -> Blob:
        config: dict[str, Any] = copy.deepcopy(self.base.config)
        # Timestamps would make the digest depend on when the build ran. History is optional and
        # only informative; without its times some tools crash on it (umoci 0.4 stat), so it goes too.
        config.pop("created", None)
        config.pop("history", None)
        # A numeric non-root user: runAsNonRoot can only be checked against a uid, not a name.
        config.setdefault("config", {})["User"] = str(self.spec.image.user)
        rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        # Uncompressed tar layers: the diff_id is the blob digest.
        rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(layer.digest for layer in self.model_layers)]
        return BytesBlob(OCI_CONFIG, canonical_json(config))

    @cached_property
    def manifest_bytes(self) -> bytes:
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config.descriptor(),
            "layers": [layer.descriptor() for layer in self.layers],
            "annotations": dict(sorted(self.annotations.items())),
        }
        return canonical_json(manifest)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest_bytes)

    @property
    def reference(self) -> str:
        """The digest-pinned reference the image gets when pushed to the spec's repository."""
        return f"{self.spec.image.repository}@{self.manifest_digest}"


def plan_image(
    spec: ModelcarSpec,
    source: ModelSource,
    base: BaseImage | str,
    *,
    platform: str = "linux/amd64",
    reuse: Reuse | None = None,
    max_layers: int = DEFAULT_MAX_LAYERS,
) -> ImagePlan:
    """The image plan of `spec` built from `source` on `base` (a BaseImage, or a reference to load), with
    at most `max_layers` layers, the base's included.

    `reuse` maps a layer's members (file paths and content sha256s) to (layer digest, layer size) from a
    previous manifest, so files whose sha256 is known up front (the hub's LFS files) are neither read nor
    downloaded.
    """
    resolved = parse_platform(platform)
    if isinstance(base, str):
        base = load_base(base, resolved)
    for model_file in source.files:
        check_model_path(model_file.path, origin=source.location)
    check_no_collisions((f.path for f in source.files), origin=source.location)
    slots = model_layer_slots(max_layers, len(base.layers), what="max_layers")
    return ImagePlan(spec, source, base, resolved, group_files(source.files, slots), reuse or {})


def _listed_members(value: str) -> LayerMembers | None:
    """The members a grouped layer's annotation lists; None for one this code did not write."""
    try:
        listing = json.loads(value)
    except ValueError:
        return None
    if not isinstance(listing, list) or not listing:
        return None
    members = []
    for entry in listing:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            return None
        if not isinstance(entry.get("sha256"), str) or not SHA256_HEX_RE.match(entry["sha256"]):
            return None
        members.append((entry["path"], entry["sha256"]))
    return tuple(members)


def declared_members(notes: Mapping[str, Any]) -> LayerMembers | None:
    """The (path, sha256) of each file a model layer's annotations declare, in the layer's order: the one file
    of a layer of its own, or the listing of a shared layer; None for a layer declaring none (the base's) or
    declaring them in a form this code did not write. The one reading of those annotations (publish's reuse,
    the signing attestations)."""
    if ANNOTATION_FILE_PATH in notes and ANNOTATION_FILE_SHA256 in notes:
        return ((str(notes[ANNOTATION_FILE_PATH]), str(notes[ANNOTATION_FILE_SHA256])),)
    if ANNOTATION_FILES in notes:
        return _listed_members(str(notes[ANNOTATION_FILES]))
    return None


def reuse_from_manifest(manifest: Mapping[str, Any]) -> dict[LayerMembers, tuple[str, int]]:
    """The `reuse` map of a previous modelcar manifest, from its layer annotations."""
    reuse: dict[LayerMembers, tuple[str, int]] = {}
    for layer in manifest.get("layers", []):
        members = declared_members(layer.get("annotations") or {})
        if members is not None:
            reuse[members] = (layer["digest"], int(layer["size"]))
    return reuse
