"""The model files an image carries, read from its manifest's layer annotations (path and sha256 per file):
what the OMS bundle, the provenance and the ModelPack manifest are built from, without reading a weight byte.

One reading, `files_of_layer`, over publish's own (`modelcar.image.declared_members`): a layer of one file carries
`io.llm-platform.modelcar.file.path` and `.file.sha256`; a layer shared by several files (above the layer
budget) lists them in `io.llm-platform.modelcar.files`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from llm_platform.errors import PlatformError
from llm_platform.modelcar.image import declared_members
from llm_platform.oci import ANNOTATION_FILE_PATH, ANNOTATION_FILE_SHA256, ANNOTATION_FILES, SHA256_HEX_RE


@dataclass(frozen=True)
class LayerFile:
    """One model file: its path under /models, its content sha256 (hex) and the layer blob holding it."""

    path: str
    sha256: str
    layer_digest: str
    layer_size: int

    @property
    def sort_key(self) -> tuple[str, ...]:
        """Path components: the order model_signing gives its resources (pathlib order, not string order)."""
        return PurePosixPath(self.path).parts


_OUR_PREFIX = "io.llm-platform.modelcar."
_KNOWN = {ANNOTATION_FILE_PATH, ANNOTATION_FILE_SHA256, ANNOTATION_FILES}


def files_of_layer(layer: Mapping[str, Any]) -> list[LayerFile]:
    """The files one layer descriptor declares (one, or every file of a layer shared above the layer budget);
    [] for a layer without file annotations (the base image's).

    A layer annotation of ours that this reading does not know (a newer way to declare files), or one it
    cannot read, is an error, not a layer without files: an attestation silently missing files would still
    verify against itself."""
    notes = layer.get("annotations") or {}
    digest = str(layer.get("digest", "?"))
    unknown = sorted(k for k in notes if k.startswith(_OUR_PREFIX) and k not in _KNOWN)
    if unknown:
        raise PlatformError(f"layer {digest}: declares files by {unknown[0]}, which signing cannot read yet")
    if ANNOTATION_FILE_PATH not in notes and ANNOTATION_FILES not in notes:
        return []
    members = declared_members(notes)
    if members is None or not all(SHA256_HEX_RE.match(sha256) for _, sha256 in members):
        raise PlatformError(f"layer {digest}: its file annotations do not list paths with sha256 hex digests")
    size = int(layer["size"])
    return [
        LayerFile(path=path, sha256=sha256, layer_digest=digest, layer_size=size) for path, sha256 in members
    ]


def model_files(manifest: Mapping[str, Any]) -> list[LayerFile]:
    """Every model file of a modelcar manifest, in model_signing's order; a path declared twice is an error."""
    files = [entry for layer in manifest.get("layers") or [] for entry in files_of_layer(layer)]
    seen: set[str] = set()
    for entry in files:
        if entry.path in seen:
            raise PlatformError(f"the manifest declares {entry.path} twice")
        seen.add(entry.path)
    if not files:
        raise PlatformError("the manifest declares no model files (no layer has file annotations)")
    return sorted(files, key=lambda entry: entry.sort_key)
