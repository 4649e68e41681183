"""The model files an image carries, read from its manifest's layer annotations (path and sha256 per file):
what the OMS bundle, the provenance and the ModelPack manifest are built from, without reading a weight byte.

One reading, `files_of_layer`: today a model layer carries one file (`io.llm-platform.modelcar.file.path` and
`.file.sha256`); a layer that groups several files adds its own annotation, read in that same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from llm_platform.errors import PlatformError
from llm_platform.oci import ANNOTATION_FILE_PATH, ANNOTATION_FILE_SHA256, SHA256_HEX_RE


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
_KNOWN = {ANNOTATION_FILE_PATH, ANNOTATION_FILE_SHA256}


def files_of_layer(layer: Mapping[str, Any]) -> list[LayerFile]:
    """The files one layer descriptor declares; [] for a layer without file annotations (the base image's).

    A layer annotation of ours that this reading does not know (a newer way to declare files) is an error, not
    a layer without files: an attestation silently missing files would still verify against itself."""
    notes = layer.get("annotations") or {}
    unknown = sorted(k for k in notes if k.startswith(_OUR_PREFIX) and k not in _KNOWN)
    if unknown:
        raise PlatformError(
            f"layer {layer.get('digest', '?')}: declares files by {unknown[0]}, which signing cannot read yet"
        )
    if ANNOTATION_FILE_PATH not in notes:
        return []
    path, sha256 = notes[ANNOTATION_FILE_PATH], notes.get(ANNOTATION_FILE_SHA256, "")
    digest = layer.get("digest", "?")
    if not SHA256_HEX_RE.match(str(sha256)):
        raise PlatformError(f"layer {digest}: {ANNOTATION_FILE_SHA256} is not a sha256 hex digest")
    return [
        LayerFile(path=str(path), sha256=str(sha256), layer_digest=str(digest), layer_size=int(layer["size"]))
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
