"""The image plan of a modelcar: the base image's layers, then one uncompressed tar layer per model
file (sorted by path), a timestamp-free config and an annotated manifest.

Nothing is read when the plan is made. A model layer's size is known from its headers; its digest
is learnt the first time its bytes stream (`write_layout` does that while writing, so a build
reads each file exactly once), unless a previous manifest already gave it (`reuse`).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

from llm_platform.errors import PlatformError
from llm_platform.modelcar import tar_layer
from llm_platform.modelcar.base_image import BaseImage, Platform, load_base, parse_platform
from llm_platform.modelcar.blob import Blob, BytesBlob
from llm_platform.modelcar.paths import check_model_path, check_no_collisions
from llm_platform.modelcar.source import ModelFile, ModelSource
from llm_platform.modelcar.spec import ModelcarSpec
from llm_platform.oci import (
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_FILE_PATH,
    ANNOTATION_FILE_SHA256,
    ANNOTATION_HF_REPO,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    ANNOTATION_SPEC,
    ANNOTATION_TITLE,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    canonical_json,
    digest_of,
    sha256_digest,
)


class ModelLayer(Blob):
    """The tar layer placing one model file at /models/<path>."""

    verifies_digest = True  # open() learns or checks the digest over the bytes it yields

    def __init__(self, model_file: ModelFile, known: tuple[str, int] | None = None) -> None:
        super().__init__(OCI_LAYER)
        self.model_file = model_file
        self._size = tar_layer.layer_size(model_file.path, model_file.size)
        self._digest: str | None = None
        if known is not None and known[1] == self._size:
            self._digest = known[0]

    @property
    def known(self) -> bool:
        """True when digest and content sha256 are both known without reading the file."""
        return self._digest is not None and self.model_file.known_sha256 is not None

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
        path = self.model_file.path
        return {
            ANNOTATION_TITLE: tar_layer.member_name(path),
            ANNOTATION_FILE_PATH: path,
            ANNOTATION_FILE_SHA256: self.model_file.sha256,
        }

    def open(self) -> Iterator[bytes]:
        hasher, count = hashlib.sha256(), 0
        for chunk in tar_layer.stream_layer(self.model_file.path, self.model_file.size, self.model_file.open):
            hasher.update(chunk)
            count += len(chunk)
            yield chunk
        digest = digest_of(hasher)
        if count != self._size:
            raise PlatformError(f"{self.model_file.path}: layer is {count} bytes, expected {self._size}")
        if self._digest is not None and digest != self._digest:
            raise PlatformError(
                f"{self.model_file.path}: layer digest {digest} differs from the recorded {self._digest}"
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
        reuse: Mapping[tuple[str, str], tuple[str, int]],
    ) -> None:
        self.spec, self.source, self.base, self.platform = spec, source, base, platform
        self.model_files: list[ModelFile] = list(source.files)
        self.model_layers = [
            ModelLayer(f, reuse.get((f.path, f.known_sha256)) if f.known_sha256 else None)
            for f in self.model_files
        ]
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
    reuse: Mapping[tuple[str, str], tuple[str, int]] | None = None,
) -> ImagePlan:
    """The image plan of `spec` built from `source` on `base` (a BaseImage, or a reference to load).

    `reuse` maps (file path, content sha256) to (layer digest, layer size) from a previous manifest,
    so files whose sha256 is known up front (the hub's LFS files) are neither read nor downloaded.
    """
    resolved = parse_platform(platform)
    if isinstance(base, str):
        base = load_base(base, resolved)
    for model_file in source.files:
        check_model_path(model_file.path, origin=source.location)
    check_no_collisions((f.path for f in source.files), origin=source.location)
    return ImagePlan(spec, source, base, resolved, reuse or {})


def reuse_from_manifest(manifest: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, int]]:
    """The `reuse` map of a previous modelcar manifest, from its layer annotations."""
    reuse: dict[tuple[str, str], tuple[str, int]] = {}
    for layer in manifest.get("layers", []):
        notes = layer.get("annotations") or {}
        if ANNOTATION_FILE_PATH in notes and ANNOTATION_FILE_SHA256 in notes:
            reuse[(notes[ANNOTATION_FILE_PATH], notes[ANNOTATION_FILE_SHA256])] = (
                layer["digest"],
                int(layer["size"]),
            )
    return reuse
