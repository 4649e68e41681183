"""Writing an image plan as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`).

The layout is assembled in a sibling temporary directory and moved into place only when every
blob is written and verified, so a failed build never leaves a half-written layout behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from llm_platform.errors import InputError, PlatformError
from llm_platform.logs import get_logger
from llm_platform.modelcar.blob import Blob, BytesBlob
from llm_platform.modelcar.image import ImagePlan, ModelLayer
from llm_platform.oci import (
    ANNOTATION_REF_NAME,
    OCI_INDEX,
    OCI_LAYOUT_VERSION,
    OCI_MANIFEST,
    canonical_json,
    digest_of,
)

log = get_logger("modelcar.layout")
OCI_LAYOUT = {"imageLayoutVersion": OCI_LAYOUT_VERSION}


def _write_blob(blobs: Path, blob: Blob) -> None:
    """Stream `blob` into blobs/sha256/<hex>, hashing in the same pass; the name is checked after."""
    fd, name = tempfile.mkstemp(dir=blobs, prefix=".partial-")
    tmp = Path(name)
    # Our blobs check their own bytes against digest and size as they stream; hashing again here
    # would cost a third sha256 pass over every model byte.
    hasher = None if getattr(blob, "verifies_digest", False) else hashlib.sha256()
    try:
        count = 0
        with os.fdopen(fd, "wb") as handle:
            for chunk in blob.open():
                if hasher is not None:
                    hasher.update(chunk)
                count += len(chunk)
                handle.write(chunk)
        digest = blob.digest if hasher is None else digest_of(hasher)
        if digest != blob.digest or count != blob.size:
            raise PlatformError(
                f"blob written as {digest} ({count} bytes), expected {blob.digest} ({blob.size})"
            )
        os.chmod(tmp, 0o644)
        tmp.replace(blobs / digest.removeprefix("sha256:"))
    finally:
        tmp.unlink(missing_ok=True)


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--output {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "oci-layout").is_file():
        raise InputError(
            f"--output {out_dir}: directory is not empty and not an OCI layout; refusing to replace it"
        )


def write_layout(plan: ImagePlan, out_dir: Path | str, *, tag: str | None = None) -> str:
    """Write the layout (replacing an earlier layout in `out_dir`); return the manifest digest.

    index.json names the image manifest, tagged with `tag` (default: the spec name).
    """
    out_dir = Path(out_dir)
    _check_target(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    except OSError as exc:  # checked before a single model byte is read
        where = (
            "a parent is not a directory"
            if isinstance(exc, (FileExistsError, NotADirectoryError))
            else (exc.strerror or str(exc))
        )
        raise InputError(f"--output {out_dir}: cannot write the layout there ({where})") from None
    try:
        blobs = staging / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        written: set[str] = set()
        for index, layer in enumerate(plan.layers, 1):
            title = layer.label if isinstance(layer, ModelLayer) else "base layer"
            # Only base layers can repeat (e.g. empty layers); their digests are known without reading.
            if not isinstance(layer, ModelLayer) and layer.digest in written:
                continue
            log.info("layer %d/%d: %s (%d bytes)", index, len(plan.layers), title, layer.size)
            _write_blob(blobs, layer)
            written.add(layer.digest)
        _write_blob(blobs, plan.config)
        manifest_blob = BytesBlob(OCI_MANIFEST, plan.manifest_bytes)
        _write_blob(blobs, manifest_blob)
        descriptor = {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_blob.digest,
            "size": manifest_blob.size,
            "annotations": {ANNOTATION_REF_NAME: tag or plan.spec.name},
        }
        index_doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}
        (staging / "index.json").write_bytes(canonical_json(index_doc))
        (staging / "oci-layout").write_text(json.dumps(OCI_LAYOUT))
        os.chmod(staging, 0o755)
        _swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest_blob.digest


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        staging.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out_dir)
