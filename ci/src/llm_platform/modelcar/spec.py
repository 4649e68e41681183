"""Modelcar specs (`modelcars/<name>.yaml`): the pydantic model, its loader and its canonical hash.

Errors name the file, the line and the dotted field, because the composed YAML nodes keep the line of
every key and pydantic reports the location of every problem: one is mapped onto the other. Specs are
read by `llm_platform.documents` within `CONFIG_LIMITS` (size, depth, aliases; duplicate keys refused).
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node

from llm_platform.documents import (
    CONFIG_LIMITS,
    DocumentError,
    cut,
    load_yaml,
    load_yaml_file,
    locate,
    read_text,
)
from llm_platform.errors import InputError
from llm_platform.oci import DIGEST_RE, GIT_COMMIT_RE
from llm_platform.registry.reference import parse_reference

DEFAULT_BASE = (
    "docker.io/library/busybox:1.37.0@sha256:bdf57e528e45e4433820e045b29b4597825a1c9e38353532d90a01445013f82e"
)
MODELCAR_UID = 1010  # KServe's default uidModelcar: the modelcar and kserve-container share it
SPEC_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SERVED_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_GIT_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_revision(value: str) -> str:
    """A 40-hex commit sha, or a name git accepts for a branch or tag (the rules of git check-ref-format)."""
    if GIT_COMMIT_RE.match(value):
        return value
    problems = []
    if not value:
        problems.append("it is empty")
    if _GIT_REF_FORBIDDEN.search(value):
        problems.append("it contains a space, control character or one of ~ ^ : ? * [ \\")
    if ".." in value or "@{" in value or value == "@":
        problems.append("it contains '..' or '@{' or is '@'")
    if value.startswith("/") or value.endswith("/") or "//" in value:
        problems.append("it starts or ends with '/' or contains '//'")
    if value.endswith((".", ".lock")):
        problems.append("it ends with '.' or '.lock'")
    if any(part.startswith(".") for part in value.split("/")):
        problems.append("a component starts with '.'")
    if re.fullmatch(r"[0-9a-fA-F]{40}", value):
        problems.append("a commit sha must be lowercase hex")
    if problems:
        raise ValueError(
            f"revision {value!r} is neither a 40-hex commit sha nor a valid branch/tag name: {'; '.join(problems)}"
        )
    return value


def check_glob(pattern: str) -> str:
    """A file pattern in huggingface_hub's fnmatch syntax, relative to the model root."""
    if not pattern or pattern != pattern.strip():
        raise ValueError(f"pattern {pattern!r} is empty or has surrounding spaces")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in pattern):
        raise ValueError(f"pattern {pattern!r} contains a control character")
    if pattern.startswith("/") or "\\" in pattern:
        raise ValueError(f"pattern {pattern!r} must be a relative posix pattern (no leading '/', no '\\')")
    if ".." in pattern.split("/"):
        raise ValueError(f"pattern {pattern!r} must not contain '..'")
    # fnmatch quietly treats an unclosed '[' as a literal, which is never what a spec author meant.
    depth = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            close = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if close == -1:
                raise ValueError(f"pattern {pattern!r} has an unclosed '['")
            i = close
        elif ch == "]" and depth == 0:
            raise ValueError(f"pattern {pattern!r} has a ']' without a matching '['")
        i += 1
    try:
        re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a valid glob: {exc}") from exc
    return pattern


def check_repository(value: str) -> str:
    """An image repository without tag or digest (the build adds the digest)."""
    try:
        ref = parse_reference(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid OCI repository: {exc}") from exc
    if ref.tag or ref.digest:
        raise ValueError(f"{value!r} must be a repository without a tag or digest")
    host = value.split("/", 1)[0]
    if "/" not in value or not ("." in host or ":" in host or host == "localhost"):
        raise ValueError(
            f"{value!r} must name its registry host explicitly (e.g. us-central1-docker.pkg.dev/...)"
        )
    return value


def check_pinned_image(value: str) -> str:
    """An image reference pinned by digest (a tag alone can move under us)."""
    try:
        ref = parse_reference(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid OCI image reference: {exc}") from exc
    if not ref.digest or not DIGEST_RE.match(ref.digest):
        raise ValueError(f"{value!r} is not pinned by digest (append @sha256:<64 hex>)")
    return value


def check_hf_repo(value: str) -> str:
    if not _HF_REPO_RE.match(value) or ".." in value or len(value) > 96:
        raise ValueError(f"{value!r} is not a Hugging Face repo id (<owner>/<name>)")
    return value


def check_served_name(value: str) -> str:
    if not _SERVED_NAME_RE.match(value) or len(value) > 128:
        raise ValueError(f"{value!r} is not a served model name (letters, digits, . _ - /; at most 128)")
    return value


Revision = Annotated[str, AfterValidator(check_revision)]
Glob = Annotated[str, AfterValidator(check_glob)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class HuggingFaceSource(_Strict):
    """Where the weights come from: a Hugging Face model repo at a revision, filtered by patterns."""

    repo: Annotated[str, AfterValidator(check_hf_repo)] = Field(
        description="Hugging Face model repo id, e.g. Qwen/Qwen2.5-Coder-7B-Instruct."
    )
    revision: Revision = Field(
        description="Branch or tag (resolved to its commit sha at build time) or a 40-hex commit sha."
    )
    allow_patterns: list[Glob] = Field(
        default_factory=list,
        description="fnmatch patterns of the files to take (empty: all files); '*' also crosses '/'.",
    )
    ignore_patterns: list[Glob] = Field(
        default_factory=list,
        description="fnmatch patterns of files to leave out, applied after allow_patterns.",
    )

    @property
    def pins_commit(self) -> bool:
        """True when the revision is a commit sha: the weights can never change under the spec."""
        return bool(GIT_COMMIT_RE.match(self.revision))


class ImageTarget(_Strict):
    """The image the build produces."""

    repository: Annotated[str, AfterValidator(check_repository)] = Field(
        description="Target repository, registry host included, no tag or digest."
    )
    base: Annotated[str, AfterValidator(check_pinned_image)] = Field(
        default=DEFAULT_BASE,
        description="Base image (needs sh, ln, sleep, [, ls, echo for KServe), pinned by digest.",
    )
    user: int = Field(
        default=MODELCAR_UID,
        ge=1,
        le=2**31 - 1,
        description="Numeric non-root uid the image runs as (its config's User). The default is KServe's "
        "modelcar uid (uidModelcar 1010), so a pod with runAsNonRoot and no runAsUser runs it, as the same "
        "uid as the serving container.",
    )
    max_layers: int | None = Field(
        default=None,
        ge=2,
        description="Most layers the image may have, the base image's included (default 127: Docker and older "
        "containers/storage run at most 128, newer containers/storage about 500). Above it the smallest model "
        "files share layers; it must leave the model files at least one layer. `--max-layers` overrides it.",
    )


class Serving(_Strict):
    served_model_name: Annotated[str, AfterValidator(check_served_name)] = Field(
        description="Name the serving runtime exposes the model under (vLLM --served-model-name)."
    )


class ModelcarSpecFile(_Strict):
    """The content of `modelcars/<name>.yaml` (the name is the file stem)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Modelcar spec",
        json_schema_extra={"$id": "https://llm-platform.example/schemas/modelcar.schema.json"},
    )

    huggingface: HuggingFaceSource
    image: ImageTarget
    serving: Serving


class ModelcarSpec(ModelcarSpecFile):
    """A validated spec with its name."""

    name: str

    @property
    def source_url(self) -> str:
        return f"https://huggingface.co/{self.huggingface.repo}"


def spec_json_schema() -> dict[str, Any]:
    """The published JSON schema of a spec file (modelcars/modelcar.schema.json)."""
    schema = ModelcarSpecFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def spec_sha256(spec: ModelcarSpec) -> str:
    """sha256 of the canonical JSON of the validated spec: comments and formatting don't change it."""
    # Unset optional fields (None) are left out, so adding one keeps the hash of every spec that does not
    # set it, and with it their locks.
    canonical = json.dumps(
        spec.model_dump(mode="json", exclude_none=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def spec_field_line(path: Path, loc: tuple[str, ...]) -> int:
    """1-based line of the field `loc` in the spec file `path` (which loaded), for a problem with its value
    that only a later step can see (say, against the base image)."""
    doc = load_yaml_file(path, CONFIG_LIMITS)
    return locate(doc.node, loc)[0] if doc is not None else 1


def _line_of(document: Node, loc: tuple[int | str, ...]) -> int:
    """1-based line of the deepest node of `loc` that exists in the YAML document."""
    return locate(document, loc)[0]


def _known_fields(parent: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = ModelcarSpecFile
    for part in parent:
        annotation = model.model_fields[str(part)].annotation if str(part) in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        close = difflib.get_close_matches(str(loc[-1]), _known_fields(loc[:-1]), n=1)
        return f"unknown field (did you mean {close[0]!r}?)" if close else "unknown field"
    if kind == "missing":
        return "field required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _spec_name(source_name: str) -> str:
    name = PurePosixPath(source_name).name.removesuffix(".yaml").removesuffix(".yml")
    if not SPEC_NAME_RE.match(name):
        raise InputError(f"{source_name}: spec name {name!r} (the file stem) must match [a-z0-9][a-z0-9.-]*")
    return name


def load_spec(path: Path) -> ModelcarSpec:
    """Read and validate `modelcars/<name>.yaml`; an InputError names file, line and field of each problem."""
    _spec_name(str(path))
    try:
        text = read_text(path, CONFIG_LIMITS)
    except DocumentError as exc:
        if exc.kind == "missing":
            raise InputError(f"{path}: spec file not found") from None
        if exc.kind in ("limit", "syntax"):
            raise
        raise InputError(f"{path}: cannot read spec: {exc.detail}") from None
    return load_spec_text(text, source_name=str(path))


def load_spec_text(text: str, *, source_name: str) -> ModelcarSpec:
    """Validate a spec's text; `source_name` (e.g. `modelcars/<name>.yaml`) gives the name (its stem) and
    starts every error line: `<source_name>:<line>: <field>: <problem>`.

    For callers that hold a spec's content rather than a file (the Dagger module reads it from a
    dagger.File): the same checks and messages as load_spec, without writing the text anywhere.
    """
    name = _spec_name(source_name)
    try:
        doc = load_yaml(text, source=source_name, limits=CONFIG_LIMITS)
    except DocumentError as exc:
        if exc.syntax:
            raise InputError(
                f"{exc.where}: invalid YAML: {exc.detail.removeprefix('not valid YAML: ')}"
            ) from None
        raise
    if doc is None or not isinstance(doc.node, MappingNode) or not isinstance(doc.data, dict):
        line = doc.locate()[0] if doc is not None else 1
        raise InputError(
            f"{source_name}:{line}: a spec must be a mapping with huggingface, image and serving"
        )
    document = doc.node
    if "name" in doc.data:
        raise InputError(
            f"{source_name}:{_line_of(document, ('name',))}: name: unknown field (the name is the file stem)"
        )
    try:
        return ModelcarSpec.model_validate({**doc.data, "name": name})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = _line_of(document, loc)
            field = ".".join(str(part) for part in loc) or "(spec)"
            lines.append(f"{source_name}:{line}: {field}: {cut(_describe(error), 300)}")
        raise InputError("\n".join(lines)) from None
