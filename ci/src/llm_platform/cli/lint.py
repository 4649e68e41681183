"""`llm-platform lint`: a thin front door over llm_platform.lint.run_lint."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from llm_platform.errors import CouldNotRunError, PlatformError
from llm_platform.logs import get_logger

log = get_logger("lint")


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


def lint(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or directories to lint (default: gitops/).")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output format on stdout.")
    ] = OutputFormat.text,
    crds: Annotated[
        list[Path] | None,
        typer.Option(
            "--crds",
            help="Directory of CRD manifests (repeatable). "
            "Default: the cache filled by `llm-platform crds sync`, "
            "if present.",
        ),
    ] = None,
    kubernetes_version: Annotated[
        str | None,
        typer.Option(
            "--kubernetes-version",
            help="Kubernetes minor version of the built-in schemas "
            "(default: the version the tree targets, 1.35).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Lint config file (path silencing, allowed schema-less kinds, repo URLs, accepted "
            "tag-pinned images). Default: <first PATH>/lint.yaml when it exists (gitops/lint.yaml).",
        ),
    ] = None,
    render_charts: Annotated[
        bool,
        typer.Option(
            "--render-charts/--no-render-charts",
            help="Render each Helm chart source of each Application like Argo CD (helm template with its "
            "values) and lint the rendered objects too (the default). Charts come verified from "
            "gitops/charts.lock.yaml (the `charts sync` cache); renders are cached. A chart that cannot be "
            "obtained is listed as not rendered.",
        ),
    ] = True,
    charts_mirror: Annotated[
        Path | None,
        typer.Option(
            "--charts-mirror",
            help="With --render-charts: take chart packages from this mirror directory (packages + "
            "INDEX.json). Default: $LLM_PLATFORM_CHARTS_MIRROR.",
        ),
    ] = None,
) -> None:
    """Lint the GitOps tree: YAML, kustomize render, schemas + CRD CEL rules, Argo CD, policy, cross-references.

    Findings go to stdout (`path:line:col: severity rule-id message`, sorted). Exit 0 clean, 1 errors found,
    2 could not run. Silence a rule on one object with the annotation
    `lint.llm-platform.io/ignore: rule-a,rule-b`, or on a path with `ignore:` in --config.
    """
    from llm_platform.lint import load_config, run_lint
    from llm_platform.lint.crds_lock import default_crd_cache
    from llm_platform.lint.helm import HelmOptions
    from llm_platform.lint.output import FORMATS

    if crds is None and default_crd_cache().is_dir():
        crds = [default_crd_cache()]
        log.info("lint: using CRDs from %s (filled by `llm-platform crds sync`)", crds[0])
    paths = paths or [Path("gitops")]
    if config is None and paths[0].is_dir() and (paths[0] / "lint.yaml").is_file():
        config = paths[0] / "lint.yaml"
        log.info("lint: using config %s", config)
    try:
        cfg = load_config(config) if config is not None else None
        report = run_lint(
            paths,
            crd_dirs=crds or [],
            kubernetes_version=kubernetes_version,
            config=cfg,
            render_charts=render_charts,
            helm_options=HelmOptions(mirror=charts_mirror),  # default: $LLM_PLATFORM_CHARTS_MIRROR
        )
    except PlatformError as exc:
        raise CouldNotRunError(str(exc)) from exc
    sys.stdout.write(FORMATS[output_format.value](report))
    cov = report.coverage
    log.info(
        "lint: %d finding(s) (%d error(s)) in %d file(s), %d object(s); schemas: %d built-in, %d CRD; "
        "%d CEL rule evaluation(s), %d CEL rule(s) not evaluable here; %d silenced",
        len(report.findings),
        len(report.errors),
        cov.files,
        cov.objects,
        cov.schema_core,
        cov.schema_crd,
        cov.cel_rules_evaluated,
        len(cov.cel_rules_skipped),
        cov.silenced,
    )
    if render_charts:
        log.info(
            "lint: %d Helm chart source(s) rendered, %d not rendered",
            len(cov.charts_rendered),
            len(cov.not_rendered),
        )
        for line in cov.not_rendered:
            log.info("lint: not rendered: %s", line)
    if cov.accepted_unpinned_images:
        log.info(
            "lint: %d image(s) accepted pinned by tag only (accept_unpinned_images in the lint config)",
            len(cov.accepted_unpinned_images),
        )
    for image in cov.unused_accepted_images:
        log.warning("lint: accept_unpinned_images lists %s, which no linted object uses: remove it", image)
    raise typer.Exit(report.exit_code)


def rules() -> None:
    """List every lint rule: id, severity and the one-line rationale."""
    from llm_platform.lint import RULES

    for rid in sorted(RULES):
        r = RULES[rid]
        sys.stdout.write(f"{rid}\t{r.severity.value}\t{r.rationale}\n")


def register(app: typer.Typer) -> None:
    app.command("lint")(lint)
    app.command("lint-rules")(rules)
