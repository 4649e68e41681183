"""The SLSA v1 provenance (an in-toto statement) of a modelcar: the spec and its hash, the Hugging Face repo
and resolved commit, the base image digest, every file's sha256, and the builder that made it.

Everything comes from the spec and the manifest (its annotations and layer annotations): no weight is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from llm_platform.modelcar.spec import ModelcarSpec, spec_sha256
from llm_platform.oci import ANNOTATION_BASE_DIGEST, ANNOTATION_HF_REPO, ANNOTATION_REVISION, GIT_COMMIT_RE
from llm_platform.signing.dsse import statement
from llm_platform.signing.files import LayerFile

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://llm-platform.example/modelcar/build/v1"


@dataclass(frozen=True)
class Builder:
    """Who built the image: the `llm-platform` CLI, or the Dagger module (its caller passes its own)."""

    id: str
    version: dict[str, str] = field(default_factory=dict)


def cli_builder() -> Builder:
    return Builder(
        "https://llm-platform.example/builders/cli", {"llm-platform": metadata.version("llm-platform")}
    )


def _file_uri(repo: str, revision: str, path: str) -> str:
    return f"https://huggingface.co/{repo}/resolve/{revision}/{path}"


def provenance_statement(
    *,
    image: str,
    manifest_digest: str,
    annotations: Mapping[str, str],
    files: list[LayerFile],
    spec: ModelcarSpec,
    builder: Builder,
) -> dict[str, Any]:
    """`image` is REGISTRY/REPOSITORY; `annotations` the modelcar manifest's."""
    repo, revision = annotations[ANNOTATION_HF_REPO], annotations[ANNOTATION_REVISION]
    source: dict[str, Any] = {"name": "huggingface", "uri": f"https://huggingface.co/{repo}"}
    if GIT_COMMIT_RE.match(revision):
        source["digest"] = {"gitCommit": revision}
    else:  # --source-dir with a branch in the spec: no commit was resolved
        source["annotations"] = {"revision": revision}
    base = {
        "name": "base-image",
        "digest": {"sha256": annotations[ANNOTATION_BASE_DIGEST].removeprefix("sha256:")},
    }
    if spec.image.base.endswith(annotations[ANNOTATION_BASE_DIGEST]):
        base["uri"] = spec.image.base
    weights = [
        {"name": f"models/{f.path}", "uri": _file_uri(repo, revision, f.path), "digest": {"sha256": f.sha256}}
        for f in files
    ]
    return statement(
        [{"name": image, "digest": {"sha256": manifest_digest.removeprefix("sha256:")}}],
        PREDICATE_TYPE,
        {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "spec": {
                        "name": spec.name,
                        "sha256": spec_sha256(spec),
                        "content": spec.model_dump(mode="json"),
                    }
                },
                "resolvedDependencies": [source, base, *weights],
            },
            "runDetails": {"builder": {"id": builder.id, "version": dict(builder.version)}},
        },
    )


def provenance_problems(
    signed: dict[str, Any],
    *,
    manifest_digest: str,
    annotations: Mapping[str, str],
    files: list[LayerFile],
    spec: ModelcarSpec | None,
) -> list[str]:
    """What in a verified provenance statement disagrees with the image (and, when given, with the spec)."""
    if signed.get("predicateType") != PREDICATE_TYPE:
        return [f"predicate type {signed.get('predicateType')!r}, expected {PREDICATE_TYPE}"]
    try:
        subjects = signed["subject"]
        definition = signed["predicate"]["buildDefinition"]
        recorded_spec = definition["externalParameters"]["spec"]
        dependencies = {d["name"]: d for d in definition["resolvedDependencies"]}
    except (KeyError, TypeError):
        return ["statement is not a SLSA v1 provenance (subject, predicate.buildDefinition)"]
    problems = []
    if [s.get("digest", {}).get("sha256") for s in subjects] != [manifest_digest.removeprefix("sha256:")]:
        problems.append(f"its subject is not {manifest_digest}")
    source = dependencies.get("huggingface", {})
    if source.get("uri") != f"https://huggingface.co/{annotations.get(ANNOTATION_HF_REPO)}":
        problems.append(f"Hugging Face repo {source.get('uri')!r} is not the image's")
    revision = annotations.get(ANNOTATION_REVISION, "")
    recorded_revision = source.get("digest", {}).get("gitCommit") or source.get("annotations", {}).get(
        "revision"
    )
    if recorded_revision != revision:
        problems.append(f"revision {recorded_revision!r} is not the image's {revision!r}")
    base = dependencies.get("base-image", {}).get("digest", {}).get("sha256")
    if base != annotations.get(ANNOTATION_BASE_DIGEST, "").removeprefix("sha256:"):
        problems.append("base image digest is not the image's")
    recorded_files = {
        name.removeprefix("models/"): d.get("digest", {}).get("sha256")
        for name, d in dependencies.items()
        if name.startswith("models/")
    }
    if recorded_files != {f.path: f.sha256 for f in files}:
        problems.append("its file list differs from the image's layer annotations")
    if spec is not None:
        if recorded_spec.get("name") != spec.name:
            problems.append(f"spec name {recorded_spec.get('name')!r} is not {spec.name!r}")
        if recorded_spec.get("sha256") != spec_sha256(spec):
            problems.append(
                f"spec sha256 {recorded_spec.get('sha256')!r} is not {spec_sha256(spec)} (the spec changed)"
            )
    return problems
