"""The OCI vocabulary, defined once: media types, annotation keys, digest and commit patterns, the
`sha256:` helper, canonical JSON and the one atomic file write that every module uses."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

# -- media types (image-spec v1.1, and the Docker schema-2 names of the same things) -----------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYOUT_VERSION = "1.0.0"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}"
# Docker media types of the same bytes, renamed so the result is a pure OCI image.
DOCKER_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}

# -- annotation keys ------------------------------------------------------------------------------------
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"
ANNOTATION_SPEC = "io.llm-platform.modelcar.spec"
ANNOTATION_HF_REPO = "io.llm-platform.modelcar.hf-repo"
ANNOTATION_FILE_PATH = "io.llm-platform.modelcar.file.path"
ANNOTATION_FILE_SHA256 = "io.llm-platform.modelcar.file.sha256"
# A layer holding several model files (above the layer budget): a JSON list of {"path", "sha256"}, one entry
# per file in the order the layer holds them. A layer of one file carries the two keys above instead.
ANNOTATION_FILES = "io.llm-platform.modelcar.files"

# -- attachments: signatures, attestations and the ModelPack view of a modelcar (llm_platform.signing) ----
OCI_EMPTY = "application/vnd.oci.empty.v1+json"  # the config of an artifact manifest: the 2 bytes `{}`
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
ANNOTATION_COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_BUNDLE_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
MODELPACK_MANIFEST = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODELPACK_WEIGHT = "application/vnd.cncf.model.weight.v1.tar"
MODELPACK_WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.tar"
MODELPACK_DOC = "application/vnd.cncf.model.doc.v1.tar"
ANNOTATION_MODELPACK_FILEPATH = "org.cncf.model.filepath"

# -- patterns ---------------------------------------------------------------------------------------------
SHA256_HEX_PATTERN = r"[0-9a-f]{64}"
DIGEST_PATTERN = rf"sha256:{SHA256_HEX_PATTERN}"
GIT_COMMIT_PATTERN = r"[0-9a-f]{40}"
DIGEST_RE = re.compile(rf"^{DIGEST_PATTERN}$")
SHA256_HEX_RE = re.compile(rf"^{SHA256_HEX_PATTERN}$")
GIT_COMMIT_RE = re.compile(rf"^{GIT_COMMIT_PATTERN}$")


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return digest_of(hashlib.sha256(data))


def digest_of(hasher: hashlib._Hash) -> str:
    """`sha256:<hex>` of what a streaming sha256 has seen."""
    return "sha256:" + hasher.hexdigest()


def canonical_json(value: Any) -> bytes:
    """Byte-stable JSON: sorted keys, no spaces, UTF-8 (what manifests and configs are hashed as)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def atomic_write(path: Path, data: bytes, *, keep_mode: bool = True) -> None:
    """Write `data` to `path` through a unique temporary file in the same directory and a rename, so a
    crash or a concurrent writer never leaves half a file. With `keep_mode`, an existing file keeps its
    permission bits."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if keep_mode and path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
