"""The ModelPack (CNCF model-spec v1) view of a modelcar: a manifest of artifactType
`application/vnd.cncf.model.manifest.v1+json` whose layers are the modelcar's own model layer blobs (same
digests: no weight byte is uploaded again), with a config naming the model, its family, format, precision
and parameter size where config.json tells, and its source URL and revision.

The layers are the modelcar's tar layers, so each file sits at `models/<path>` inside its tar; the
`org.cncf.model.filepath` annotation gives the path relative to the model root.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from llm_platform.modelcar.tar_layer import member_name
from llm_platform.oci import (
    ANNOTATION_FILE_PATH,
    ANNOTATION_FILE_SHA256,
    ANNOTATION_MODELPACK_FILEPATH,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    ANNOTATION_TITLE,
    MODELPACK_CONFIG,
    MODELPACK_DOC,
    MODELPACK_MANIFEST,
    MODELPACK_WEIGHT,
    MODELPACK_WEIGHT_CONFIG,
    canonical_json,
)
from llm_platform.signing.files import LayerFile
from llm_platform.signing.referrers import artifact_manifest, descriptor

_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt"}
_FORMATS = {
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    ".onnx": "onnx",
    ".bin": "pytorch",
    ".pt": "pytorch",
}
_DOC_STEMS = {"readme", "license", "licence", "notice", "copying"}
CONFIG_JSON_LIMIT = 1 << 20  # read config.json only when its layer is small


def layer_media_type(path: str) -> str:
    name = PurePosixPath(path)
    if name.suffix.lower() in _WEIGHT_SUFFIXES:
        return MODELPACK_WEIGHT
    if name.stem.lower() in _DOC_STEMS or name.suffix.lower() == ".md":
        return MODELPACK_DOC
    return MODELPACK_WEIGHT_CONFIG


def config_json_from_layer(layer_tar: bytes) -> dict[str, Any] | None:
    """config.json out of its (small) modelcar layer, when it is a JSON object."""
    try:
        with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
            member = tar.extractfile(member_name("config.json"))
            text = member.read() if member is not None else b""
    except (KeyError, tarfile.TarError):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _param_size(count: object) -> str | None:
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        return None
    for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)


def modelpack_config(
    name: str, annotations: Mapping[str, str], files: list[LayerFile], config_json: dict[str, Any] | None
) -> bytes:
    descriptor_fields: dict[str, Any] = {"name": name}
    model_config: dict[str, Any] = {}
    formats = {_FORMATS[s] for s in (PurePosixPath(f.path).suffix.lower() for f in files) if s in _FORMATS}
    if len(formats) == 1:
        model_config["format"] = formats.pop()
    if config_json:
        if isinstance(config_json.get("model_type"), str):
            descriptor_fields["family"] = config_json["model_type"]
        if isinstance(config_json.get("torch_dtype"), str):
            model_config["precision"] = config_json["torch_dtype"]
        size = _param_size(config_json.get("num_parameters"))
        if size:
            model_config["paramSize"] = size
    if annotations.get(ANNOTATION_SOURCE):
        descriptor_fields["sourceURL"] = annotations[ANNOTATION_SOURCE]
    if annotations.get(ANNOTATION_REVISION):
        descriptor_fields["revision"] = annotations[ANNOTATION_REVISION]
    model_layers = list(dict.fromkeys(f.layer_digest for f in files))
    return canonical_json(
        {
            "descriptor": descriptor_fields,
            "modelfs": {"type": "layers", "diffIds": model_layers},  # uncompressed tar: diff id = digest
            "config": model_config,
        }
    )


def modelpack_manifest(name: str, files: list[LayerFile], config: bytes, subject: dict[str, Any]) -> bytes:
    by_layer: dict[str, list[LayerFile]] = {}
    for entry in files:
        by_layer.setdefault(entry.layer_digest, []).append(entry)
    layers = []
    for digest, held in by_layer.items():
        types = {layer_media_type(f.path) for f in held}
        # A layer holding several files is a weight layer if any of them is a weight, and so on.
        media_type = next(t for t in (MODELPACK_WEIGHT, MODELPACK_WEIGHT_CONFIG, MODELPACK_DOC) if t in types)
        notes = {ANNOTATION_MODELPACK_FILEPATH: held[0].path} if len(held) == 1 else {}
        if len(held) == 1:
            notes |= {ANNOTATION_FILE_PATH: held[0].path, ANNOTATION_FILE_SHA256: held[0].sha256}
        layers.append(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": held[0].layer_size,
                "annotations": notes,
            }
        )
    return artifact_manifest(
        MODELPACK_MANIFEST,
        layers,
        subject,
        annotations={ANNOTATION_TITLE: name},
        config=descriptor(MODELPACK_CONFIG, config),
    )
