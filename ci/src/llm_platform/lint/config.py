"""The lint config file (`--config FILE`): path silencing, allowed schema-less kinds and repo facts."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_platform.documents import CONFIG_LIMITS, DocumentError, cut, load_yaml_file, locate
from llm_platform.errors import InputError


class PathIgnore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="glob matched against the finding's path, e.g. gitops/legacy/**")
    rules: list[str] = Field(default_factory=lambda: ["*"], description="rule ids (globs); default all")


class AcceptedImage(BaseModel):
    """An image a chart renders pinned by tag only, accepted until its digest can be verified."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, description="the reference exactly as rendered, e.g. quay.io/x/y:v1")
    reason: str = Field(min_length=10, description="why it cannot be pinned by digest yet")


class LintConfig(BaseModel):
    """Example:

    ```yaml
    template: true           # only in the upstream template, whose placeholders `configure` sets
    kubernetes_version: "1.33"
    ignore:
      - path: gitops/clusters/kind/**
        rules: [policy-gpu-toleration]
    allow_missing_schema: ["example.com/Widget"]
    repo_urls: ["https://github.com/example/llm-platform.git"]
    provides_crds: {my-operator: [example.com]}
    kustomize_build_options: ["--load-restrictor", "LoadRestrictionsNone"]
    accept_unpinned_images:
      - image: quay.io/argoproj/argocd:v3.4.3
        reason: "digest not verified yet: pin it (values) once `crane digest` can reach quay.io"
    ```

    `lint` reads `<first PATH>/lint.yaml` (e.g. gitops/lint.yaml) when no --config is given.
    """

    model_config = ConfigDict(extra="forbid")

    template: bool = Field(
        default=False,
        description="this tree is the upstream template: placeholders are expected (config-placeholder is off); "
        "`llm-platform configure` removes the line from a fork",
    )
    kubernetes_version: str | None = None
    ignore: list[PathIgnore] = Field(default_factory=list)
    allow_missing_schema: list[str] = Field(default_factory=list, description='"group/Kind" globs')
    repo_urls: list[str] = Field(default_factory=list, description="repoURLs that mean this repository")
    repo_root: str | None = Field(default=None, description="repository root for Application paths")
    provides_crds: dict[str, list[str]] = Field(
        default_factory=dict, description="Helm chart name -> CRD groups it installs"
    )
    kustomize_build_options: list[str] = Field(default_factory=list)
    argocd_namespace: str = "argocd"
    accept_unpinned_images: list[AcceptedImage] = Field(
        default_factory=list,
        description="tag-pinned images policy-image-not-digest accepts, each with its reason (listed in the "
        "coverage; an entry no object uses any more is reported there too)",
    )

    def accepts_unpinned(self, image: str) -> bool:
        return any(entry.image == image for entry in self.accept_unpinned_images)

    def path_ignored(self, path: str, rule_id: str) -> bool:
        for entry in self.ignore:
            if fnmatch.fnmatch(path, entry.path) and any(fnmatch.fnmatch(rule_id, r) for r in entry.rules):
                return True
        return False

    def schema_allowed_missing(self, group: str, kind: str) -> bool:
        return any(fnmatch.fnmatch(f"{group}/{kind}", p) for p in self.allow_missing_schema)


def load_config(path: Path) -> LintConfig:
    """The lint config at `path`; any problem is one InputError line: `--config FILE:LINE: what`."""
    try:
        doc = load_yaml_file(path, CONFIG_LIMITS)
    except DocumentError as exc:
        raise InputError(f"--config {exc}") from None
    data = doc.data if doc is not None else None
    try:
        return LintConfig.model_validate(data if data is not None else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(root)"
        line = locate(doc.node, loc)[0] if doc is not None else 1
        raise InputError(f"--config {path}:{line}: field {where}: {cut(err['msg'])}") from None
